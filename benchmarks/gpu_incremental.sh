#!/usr/bin/env bash
# Issue 25's incremental table on a lent GPU machine (no network, 64 MiB of working tree, 10 minutes a command): every
# row of experiments/params/gpu_incremental.yaml (9 methods, students WRN-16-2 and WRN-16-1) for SEEDS (default 0 1:
# the images of two seeds and the union test set, delta-coded, are 42 MiB, and a call carries at most 64 MiB with the
# 15 MiB tree; seed 2 takes another lease), fp32, WORKERS runs at once on the GPU, the committed CPU-trained teacher
# copied in (not retrained).
#
# Here, before the lease (the GPU machine has python3 with torch, numpy, pyyaml and scikit-learn, but not fastcore):
#     python benchmarks/make_incremental_data.py experiments/params/gpu_incremental.yaml --seeds 0 1   # -> .gpu_data/cifar100.npz.xz
#     pip download --no-deps -c constraints.txt -d .whl fastcore                               # -> .whl/fastcore-*.whl
# Then the device tool: run(command="bash benchmarks/gpu_incremental.sh", carry=[".gpu_data", ".whl"], timeout_s=...)
# and, after it, append $OUT/results.csv's new rows to the parameter file's results file (PROVENANCE.md says where
# they ran). A second call on the same (warm) machine resumes every unfinished run from its checkpoints.
#
# Another parameter file: PARAMS=experiments/params/cub_incremental.yaml DATA_DIR=.gpu_cub SEEDS=0 STUDENTS=mobilenet_v1
# with the image folder packed here (`tar -czf .gpu_cub/cub100_proxy_128.tar.gz -C $REFILLED_DATA cub100_proxy_128`;
# every *.tar.gz of DATA_DIR is unpacked into the data folder) and a Pillow wheel for the machine's Python in .whl
# (`pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 -d .whl pillow`).
set -euo pipefail
cd "$(dirname "$0")/.."
WORKERS=${WORKERS:-14}; LIMIT=${LIMIT:-540}; SEEDS=${SEEDS:-0 1}; PARAMS=${PARAMS:-experiments/params/gpu_incremental.yaml}
OUT=${OUT:-benchmarks/out}; DATA_DIR=${DATA_DIR:-.gpu_data}; STUDENTS=${STUDENTS:-}; mkdir -p "$OUT"
compgen -G "$DATA_DIR/*.tar.gz" >/dev/null || test -f "$DATA_DIR/cifar100.npz.xz" ||
  { echo "no data in $DATA_DIR: run benchmarks/make_incremental_data.py (CIFAR) or pack the image folder (above) here first"; exit 1; }
python3 -c "import fastcore" 2>/dev/null || python3 -m pip install -q --no-index --find-links .whl fastcore
if ! python3 -c "import PIL" 2>/dev/null && compgen -G ".whl/pillow-*" >/dev/null; then python3 -m pip install -q --no-index --find-links .whl pillow; fi
data=/tmp/refilled-data; mkdir -p "$data"
if [ -f "$DATA_DIR/cifar100.npz.xz" ] && [ ! -f "$data/cifar100/cifar100.npz" ]; then
  mkdir -p "$data/cifar100"; python3 benchmarks/unpack_gpu_data.py "$DATA_DIR/cifar100.npz.xz" "$data"
fi
for t in "$DATA_DIR"/*.tar.gz; do if [ -e "$t" ]; then tar -xzf "$t" -C "$data"; echo "unpacked $t"; fi; done
nproc; grep -o -m1 'avx512f' /proc/cpuinfo || true      # before OMP_NUM_THREADS, which nproc reports instead
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" REFILLED_DATA="$data" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1
nvidia-smi -L || true
python3 -c "import torch, sklearn; print('torch', torch.__version__, '| sklearn', sklearn.__version__, '| cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
git rev-parse --short=10 HEAD 2>/dev/null || true
read -r csv proto < <(python3 -c "import sys, yaml; f = yaml.safe_load(open(sys.argv[1])); print(f['results_csv'], f['protocol'])" "$PARAMS")
test -f "$OUT/results.csv" || ! test -f "$csv" || cp "$csv" "$OUT/results.csv"     # rows already there are skipped
status=0
timeout "$LIMIT" python3 benchmarks/run_incremental.py "$PARAMS" --seeds $SEEDS ${STUDENTS:+--students $STUDENTS} --workers "$WORKERS" \
  --results "$OUT/results.csv" --logs "$OUT/logs" || status=$?
[ "$status" = 124 ] && echo "stopped at the ${LIMIT}-s limit: call again to resume the unfinished runs (checkpoints stay on this machine until it goes back)"
tar -czf "$OUT/logs.tgz" -C "$OUT" logs
echo "exit $status; $proto rows in $OUT/results.csv: $(grep -c "^$proto," "$OUT/results.csv" 2>/dev/null || true)"

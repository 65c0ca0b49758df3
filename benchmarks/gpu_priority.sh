#!/usr/bin/env bash
# The GPU runs issue 22 needs most, for a lent GPU machine (no network, 64 MiB of working tree, 10 minutes a command):
# `student_long` and P3's REFILLED variant (`refilled_lkd_long`) at E = 338 (near the vanilla plateau), 60 % overlap, seeds 0-1 (grid gpu_e338 of
# experiments/params/cpu_fidelity.yaml; gpu_e338_s2 holds seed 2 for a second lease), fp32, 4 runs at once on the GPU,
# the committed cpu_cifar teacher resumed (not retrained).
#
# Here, before the lease (the GPU machine has python3 with torch, numpy, pyyaml, but not fastcore):
#     python benchmarks/make_sweep_data.py experiments/params/cpu_fidelity.yaml --grid gpu_e338   # -> .gpu_data/cifar100.npz.xz
#     pip download --no-deps -c constraints.txt -d .whl fastcore                                    # -> .whl/fastcore-*.whl
# Then the device tool: run(command="bash benchmarks/gpu_priority.sh gpu_e338", carry=[".gpu_data", ".whl"], timeout_s=590)
# and, after it, append $OUT/results.csv's rows to experiments/results/gkd_fidelity.csv (PROVENANCE.md says where they ran).
# A second call with the same command resumes every unfinished run from its checkpoints ($OUT/work.tar carries them back
# only if small; the machine is bare again after a give-back, so plan one lease per grid).
set -euo pipefail
cd "$(dirname "$0")/.."
GRID=${1:-gpu_e338}; WORKERS=${WORKERS:-4}; LIMIT=${LIMIT:-540}; PARAMS=${PARAMS:-experiments/params/cpu_fidelity.yaml}
OUT=${OUT:-benchmarks/out}; mkdir -p "$OUT"
test -f .gpu_data/cifar100.npz.xz || { echo "missing .gpu_data/cifar100.npz.xz: run benchmarks/make_sweep_data.py here first"; exit 1; }
python3 -c "import fastcore" 2>/dev/null || python3 -m pip install -q --no-index --find-links .whl fastcore
data=$(mktemp -d); mkdir -p "$data/cifar100"
python3 -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" .gpu_data/cifar100.npz.xz "$data/cifar100/cifar100.npz"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" REFILLED_DATA="$data" PYTHONUNBUFFERED=1
nvidia-smi -L || true
python3 -c "import torch; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
git rev-parse --short=10 HEAD 2>/dev/null || true
cp experiments/results/gkd_fidelity.csv "$OUT/results.csv" 2>/dev/null || true     # rows already there are skipped
status=0
timeout "$LIMIT" python3 benchmarks/run_grid.py "$PARAMS" --grid "$GRID" --workers "$WORKERS" \
    --results "$OUT/results.csv" --logs "$OUT/logs" || status=$?
[ "$status" = 124 ] && echo "stopped at the ${LIMIT}-s limit: call again to resume the unfinished runs (checkpoints are on this machine until it goes back)"
tar -czf "$OUT/logs.tgz" -C "$OUT" logs && rm -rf "$OUT/logs"
echo "exit $status; rows in $OUT/results.csv: $(($(wc -l < "$OUT/results.csv") - 1))"

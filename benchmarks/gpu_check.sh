#!/usr/bin/env bash
# GPU check for refilled: one CUDA GPU, torch + torchvision installed, no network, < 8 minutes.
# Needs only the repository and the CIFAR-100 subset built beforehand on a machine that has the data:
#     python benchmarks/make_gpu_subset.py          # -> .gpu_data/cifar100/cifar100.npz (~44 MiB, git-ignored)
# Then, on the GPU machine, from the repository root:  bash benchmarks/gpu_check.sh
# Prints the GPU, the step benchmark on CUDA with bf16 autocast + channels_last for both teacher/student pairs, and a
# 2-epoch REFILLED run on the subset with img/s per stage. No package beyond torch/torchvision/numpy/pillow is imported.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" REFILLED_DATA="$PWD/.gpu_data" PYTHONUNBUFFERED=1
test -f .gpu_data/cifar100/cifar100.npz || { echo "missing .gpu_data/cifar100/cifar100.npz: run benchmarks/make_gpu_subset.py first"; exit 1; }
nvidia-smi -L || true
python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__, '| cuda', torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else '')"
echo "== step overhead (CUDA, bf16, channels_last, batch 128)"
timeout 240 python3 benchmarks/step_overhead.py --device cuda --amp --steps 30 --warmup 5
echo "== 2-epoch REFILLED run on the subset"
timeout 240 python3 benchmarks/gpu_refilled_run.py --epochs 2

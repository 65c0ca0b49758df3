#!/usr/bin/env python
"""Input-pipeline throughput on CIFAR-100 at batch 128: refilled's BatchLoader vs torchvision PIL transforms + DataLoader.

Both pipelines do the same work per image: random crop with 4-pixel zero padding, horizontal flip, conversion to
float and per-channel normalisation; both deliver shuffled [128, 3, 32, 32] float batches with labels on the CPU.
The target is >= 16,000 img/s for BatchLoader: 10x the WRN-16-1 training throughput of the project's 2-core
machine (~1,600 img/s, channels_last), so the input pipeline is never the bottleneck.

Usage:  GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184 \\
        REFILLED_DATA=/path/to/data .venv/bin/python benchmarks/data_pipeline.py [--epochs 2] [--workers 2]
"""
import argparse, os, time
from types import SimpleNamespace
import numpy as np
import torch
import torchvision.transforms as T
from torch.utils.data import DataLoader
from refilled.experiments import cpu_name
from refilled.data import load_cifar100, BatchLoader, ArrayDataset, CIFAR100_MEAN, CIFAR100_STD, IMAGENET_MEAN, IMAGENET_STD

TARGET = 16_000


def machine() -> str:
    cpu = cpu_name()                                             # model and torch's CPU capability (AVX2, AVX512, ...)
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ''
    return (f"{cpu}, {os.cpu_count()} logical CPUs{gpu}, torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
            f"GLIBC_TUNABLES={'set' if os.environ.get('GLIBC_TUNABLES') else 'unset'}, "
            f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


def sync(device):
    if torch.device(device).type == 'cuda': torch.cuda.synchronize()


def time_epochs(make_iter, epochs, skip=5, device='cpu'):
    "img/s of each epoch, timed after its first `skip` batches (worker start-up and warm-up excluded)."
    rates = []
    for e in range(epochs):
        it = make_iter(e); n = 0
        for _ in range(skip): next(it)
        sync(device); t0 = time.perf_counter()
        for xb, yb in it: n += len(yb)
        sync(device); rates.append(n / (time.perf_counter() - t0))
    return rates


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--epochs', type=int, default=2, help='timed epochs per pipeline (the best is reported)')
    ap.add_argument('--batch-size', type=int, default=128)
    ap.add_argument('--workers', type=int, default=2, help='DataLoader workers of the torchvision pipeline')
    ap.add_argument('--device', default='cpu', help="where BatchLoader keeps the images and builds batches")
    ap.add_argument('--synthetic', action='store_true', help='random uint8 images of CIFAR-100 shape (no data needed)')
    ap.add_argument('--rrc', action='store_true', help='also time BatchLoader random-resized-crop 256 -> 224 (CUB size)')
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.synthetic:
        g = np.random.default_rng(0)
        c = SimpleNamespace(train_x=g.integers(0, 256, (50_000, 32, 32, 3), dtype=np.uint8),
                            train_y=np.repeat(np.arange(100), 500))
    else: c = load_cifar100()
    t_load = time.perf_counter() - t0
    print(f"machine: {machine()}")
    print(f"CIFAR-100 train split{' (synthetic pixels)' if args.synthetic else ''}: {len(c.train_y):,} images, "
          f"loaded in {t_load:.1f} s; batch {args.batch_size}; BatchLoader on {args.device}\n")

    ld = BatchLoader(c.train_x, c.train_y, args.batch_size, augment='cifar', mean=CIFAR100_MEAN, std=CIFAR100_STD,
                     device=args.device, seed=0)
    def ours(e): ld.set_epoch(e); return iter(ld)
    r_ours = time_epochs(ours, args.epochs, device=args.device)

    tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(CIFAR100_MEAN, CIFAR100_STD)])
    ds = ArrayDataset(c.train_x, c.train_y, tf)
    dl = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                    persistent_workers=args.workers > 0)
    r_tv = time_epochs(lambda e: iter(dl), args.epochs)
    dl0 = DataLoader(ds, batch_size=args.batch_size, shuffle=True, num_workers=0)
    r_tv0 = time_epochs(lambda e: iter(dl0), 1)

    best = max(r_ours)
    rows = [(f'refilled BatchLoader (augment="cifar", batch ops on {args.device}, 1 process)', r_ours),
            (f'torchvision PIL transforms + DataLoader(num_workers={args.workers})', r_tv),
            ('torchvision PIL transforms + DataLoader(num_workers=0)', r_tv0)]
    print('| pipeline | img/s (per timed epoch) | best img/s |\n|---|---|---|')
    for name, r in rows: print(f"| {name} | {', '.join(f'{v:,.0f}' for v in r)} | {max(r):,.0f} |")
    print(f"\nBatchLoader / torchvision({args.workers} workers): {best / max(r_tv):.1f}x; "
          f"target >= {TARGET:,} img/s: {'MET' if best >= TARGET else 'NOT MET'} ({best:,.0f} img/s)")
    if args.rrc:
        n = 2048 if torch.device(args.device).type == 'cuda' else 512
        big = np.random.default_rng(1).integers(0, 256, (n, 256, 256, 3), dtype=np.uint8)
        for aug in ('rrc', 'center'):
            lr = BatchLoader(big, np.zeros(n), 64, augment=aug, size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                             device=args.device)
            r = time_epochs(lambda e: (lr.set_epoch(e), iter(lr))[1], 1, skip=2, device=args.device)
            print(f"BatchLoader augment={aug!r}, {n} synthetic 256x256 images -> 224x224, batch 64, on {args.device}: "
                  f"{r[0]:,.0f} img/s")


if __name__ == '__main__':
    main()

#!/usr/bin/env python
"""Forward time of FEAT's public ConvNet-4 teacher with and without its subnormal weights, on this CPU.

`load_teacher` zeroes a checkpoint's subnormal floats (|w| < 1.18e-38; FEAT's ConvNet-4 holds about ten thousand) and
computes without them; x86 CPUs handle subnormal operands in microcode. This prints, for the same batch, the median
time of `Teacher.embed` as loaded (zeroed) and with the checkpoint's values put back into the live weights, their
ratio, and whether the two embeddings are bit-identical. Needs the checkpoint under $REFILLED_TEACHERS; uses
MiniImageNet images when $REFILLED_DATA has them, else random uint8 images.

Usage:  .venv/bin/python benchmarks/subnormal_teacher.py [--images 128] [--repeats 3] [--threads N]
"""
import argparse, os, statistics, time
import torch
from refilled.core import data_available, MissingDataError
from refilled.teachers import load_teacher
from refilled.experiments import cpu_name


def images(n):
    "n uint8 images [n, 84, 84, 3]: MiniImageNet's first test images when available, else random pixels."
    if data_available('miniimagenet'):
        from refilled.data import load_miniimagenet
        return torch.from_numpy(load_miniimagenet().test_x[:n].copy()), 'MiniImageNet test images'
    return torch.randint(0, 256, (n, 84, 84, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)), 'random pixels'


def timed(teacher, x, repeats):
    with torch.no_grad():
        teacher.embed(x[:8])                                        # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter(); z = teacher.embed(x); times.append(time.perf_counter() - t0)
    return statistics.median(times), z


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--images', type=int, default=128)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--threads', type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    try: t = load_teacher('feat_convnet4_miniimagenet')
    except MissingDataError as e: print(f"skipped: {e}"); return
    raw, what = images(args.images)
    x = ((raw.permute(0, 3, 1, 2).float() / 255) - torch.tensor(t.mean).view(1, 3, 1, 1)) / torch.tensor(t.std).view(1, 3, 1, 1)
    n_sub = sum(len(i) for i, _ in t._subnormals.values())
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average at start {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"FEAT ConvNet-4, {n_sub:,} subnormal values in {len(t._subnormals)} tensors; {args.images} {what} at 84 px, "
          f"median of {args.repeats}\n")
    fast, z0 = timed(t, x, args.repeats)
    t.model.load_state_dict(t.state_dict())                         # the checkpoint's values, subnormals included, live
    slow, z1 = timed(t, x, args.repeats)
    print(f"| weights | s per batch | img/s |\n|---|---|---|")
    print(f"| subnormals zeroed (as loaded) | {fast:.3f} | {args.images / fast:,.0f} |")
    print(f"| the checkpoint's values | {slow:.3f} | {args.images / slow:,.0f} |")
    print(f"\nratio {slow / fast:.2f}x; embeddings bit-identical: {torch.equal(z0, z1)} "
          f"(max |difference| {float((z0 - z1).abs().max()):.3g})")
    print(f"load average at end {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == '__main__':
    main()

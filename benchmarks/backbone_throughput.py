#!/usr/bin/env python
"""CPU training throughput (img/s) of the CIFAR backbones at batch 128, 32x32 inputs, channels_last, fp32.

One step = zero_grad, forward, cross-entropy (100 classes), backward, SGD (momentum 0.9, weight decay 5e-4), on a fixed
random batch. Per model: 2 warm-up steps, then steps until `--seconds` have passed (at least 3); the median step time
gives img/s. Runs on 2 cores shared with other jobs vary by about +-10 %.

Usage:  GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184 \\
        .venv/bin/python benchmarks/backbone_throughput.py [--seconds 3] [--models wrn_16_1 resnet8x4] [--contiguous]
"""
import argparse, os, statistics, time
import torch
import torch.nn.functional as F
from refilled.backbones import create_model, count_params
from refilled.experiments import cpu_name

CIFAR_MODELS = ['wrn_40_2', 'wrn_16_2', 'wrn_40_1', 'wrn_16_1', 'wrn_28_4', 'wrn_16_4', 'wrn_28_2', 'resnet14', 'resnet20',
                'resnet32', 'resnet56', 'resnet50', 'resnet110', 'resnet8x4', 'resnet32x4', 'mobilenet_v2']


def step_rate(name, bs, seconds, channels_last):
    torch.manual_seed(0)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    m = create_model(name, 100).to(memory_format=fmt).train()
    opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(bs, 3, 32, 32).contiguous(memory_format=fmt); y = torch.randint(0, 100, (bs,))
    def step():
        opt.zero_grad(set_to_none=True); F.cross_entropy(m(x), y).backward(); opt.step()
    for _ in range(2): step()
    times, t_end = [], time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 3:
        t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
    return bs / statistics.median(times), count_params(m), len(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--seconds', type=float, default=3.0, help='timed seconds per model (after 2 warm-up steps)')
    ap.add_argument('--batch-size', type=int, default=128)
    ap.add_argument('--models', nargs='*', default=CIFAR_MODELS)
    ap.add_argument('--contiguous', action='store_true', help='also time the default (NCHW-contiguous) layout')
    ap.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch\'s choice)')
    args = ap.parse_args()
    if args.threads: torch.set_num_threads(args.threads)
    cpu = cpu_name()                                             # model and torch's CPU capability (AVX2, AVX512, ...)
    print(f"machine: {cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, {torch.get_num_threads()} torch "
          f"threads, GLIBC_TUNABLES={'set' if os.environ.get('GLIBC_TUNABLES') else 'unset'}, "
          f"load average at start {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    print(f"training step, batch {args.batch_size}, 32x32, fp32, 100 classes, SGD momentum 0.9\n")
    head = '| model | params | img/s channels_last | s per 50k epoch |' + (' img/s contiguous |' if args.contiguous else '')
    print(head)
    print('|' + '---|' * (head.count('|') - 1))
    for name in args.models:
        r, n, k = step_rate(name, args.batch_size, args.seconds, True)
        row = f"| {name} | {n / 1e6:.2f}M | {r:,.0f} | {50_000 / r:,.0f} |"
        if args.contiguous: row += f" {step_rate(name, args.batch_size, args.seconds, False)[0]:,.0f} |"
        print(row, flush=True)
    print(f"\nload average at end {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == '__main__':
    main()

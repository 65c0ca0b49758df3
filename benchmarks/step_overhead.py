#!/usr/bin/env python
"""Per-step cost of REFILLED's two stages against the floor they cannot go below.

For each (teacher -> student) pair, at batch 128 on one batch of real CIFAR-100 images (50 student classes; random
images if the data is absent), in ONE process with the measurements interleaved round-robin, this prints median
times of:
  student      student forward + backward + SGD step (cross-entropy)
  teacher      teacher forward (eval, no grad)
  floor        student + teacher (what any distillation step must at least do)
  stage1       a REFILLED stage-1 step (mining + comparison matching, Eq. 3-5) via refilled.train.train_step
  stage2       a REFILLED stage-2 step (NCM teacher + PL-weighted LKD, Eq. 7-10) via refilled.train.train_step
and the ratios stage/floor (target: each <= 1.10).

    python benchmarks/step_overhead.py                          # CPU, fp32, channels_last
    python benchmarks/step_overhead.py --device cuda --amp      # GPU, bf16 autocast, channels_last
"""
import argparse, os, statistics, sys, time
from pathlib import Path
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from refilled.backbones import create_model
from refilled.distillers import create_distiller
from refilled.train import train_step
from refilled.data import CIFAR100_MEAN, CIFAR100_STD
from refilled.experiments import cpu_name

PAIRS = [('wrn_16_2', 'wrn_16_1'), ('wrn_40_2', 'wrn_16_2')]


def real_batch(n, device, classes=50):
    "n CIFAR-100 training images of the first `classes` fine classes, normalised, with labels 0..classes-1."
    try:
        from refilled.data import load_cifar100
        a = load_cifar100()
        x, y = torch.from_numpy(np.array(a.train_x)), torch.from_numpy(np.array(a.train_y)).long()
        keep = (y < classes).nonzero().flatten()
        idx = keep[torch.randperm(len(keep), generator=torch.Generator().manual_seed(0))[:n]]
        x, y, src = x[idx], y[idx], 'CIFAR-100'
    except Exception as e:
        g = torch.Generator().manual_seed(0)
        x, y, src = torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8, generator=g), torch.randint(0, classes, (n,), generator=g), f'random ({type(e).__name__})'
    mean, std = torch.tensor(CIFAR100_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR100_STD).view(1, 3, 1, 1)
    xf = ((x.permute(0, 3, 1, 2).float()/255 - mean)/std).contiguous(memory_format=torch.channels_last)
    return xf.to(device), y.to(device), src


def timed(fn, device, sync):
    if sync: torch.cuda.synchronize(device)
    t = time.perf_counter(); fn()
    if sync: torch.cuda.synchronize(device)
    return time.perf_counter() - t


def bench_pair(tname, sname, args, device):
    torch.manual_seed(0)
    C, sync, amp = 50, device.type == 'cuda', args.amp
    teacher = create_model(tname, C).to(device).to(memory_format=torch.channels_last).eval()
    for p in teacher.parameters(): p.requires_grad_(False)
    x, y, src = real_batch(args.batch, device, C)
    with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=amp):
        centers = torch.stack([teacher.embed(x)[y == c].float().mean(0) if (y == c).any() else torch.zeros(teacher.embed_dim, device=device)
                               for c in range(C)])
    centers[centers.norm(dim=1) == 0] = 1.0
    students, opts, fns = {}, {}, {}
    for kind in ('student', 'stage1', 'stage2'):
        torch.manual_seed(0)
        s = create_model(sname, C).to(device).to(memory_format=torch.channels_last).train()
        d = {'student': lambda: create_distiller('vanilla', s),
             'stage1': lambda: create_distiller('refilled_stage1', s, teacher),
             'stage2': lambda: create_distiller('refilled_stage2', s, teacher, centers=centers)}[kind]().to(device).train()
        params = [p for n, p in d.named_parameters() if not n.startswith('teacher.') and p.requires_grad
                  and not (kind == 'stage1' and n.startswith('student.classifier'))]
        if kind == 'stage1':
            for p in d.student.classifier.parameters(): p.requires_grad_(False)
        opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
        fns[kind] = (lambda d=d, opt=opt: train_step(d, opt, x, y, amp=amp))
    def teacher_fwd():
        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=amp): teacher.embed(x)
    fns['teacher'] = teacher_fwd
    times = {k: [] for k in fns}
    for _ in range(args.warmup):
        for f in fns.values(): f()
    for _ in range(args.steps):
        for k, f in fns.items(): times[k].append(timed(f, device, sync))
    med = {k: statistics.median(v)*1000 for k, v in times.items()}
    med['floor'] = med['student'] + med['teacher']
    return med, src


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--device', default='cpu'); ap.add_argument('--amp', action='store_true', help='bf16 autocast')
    ap.add_argument('--batch', type=int, default=128); ap.add_argument('--steps', type=int, default=15)
    ap.add_argument('--warmup', type=int, default=3); ap.add_argument('--threads', type=int, default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    if args.threads: torch.set_num_threads(args.threads)
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else f'{cpu_name()}, {torch.get_num_threads()} threads'
    print(f"step overhead: batch {args.batch}, {'bf16 autocast' if args.amp else 'fp32'}, channels_last, median of {args.steps} interleaved steps")
    print(f"machine: {name}; torch {torch.__version__}; GLIBC_TUNABLES={'set' if os.environ.get('GLIBC_TUNABLES') else 'unset'}")
    ok = True
    for t, s in PAIRS:
        med, src = bench_pair(t, s, args, device)
        r1, r2 = med['stage1']/med['floor'], med['stage2']/med['floor']
        ok &= r1 <= 1.10 and r2 <= 1.10
        img_s = {k: args.batch/med[k]*1000 for k in ('student', 'stage1', 'stage2')}
        print(f"\n{t} -> {s} (data: {src})")
        print(f"  student fwd+bwd+step {med['student']:8.1f} ms   teacher fwd {med['teacher']:8.1f} ms   floor {med['floor']:8.1f} ms")
        print(f"  stage-1 step         {med['stage1']:8.1f} ms   ratio {r1:.3f}   ({img_s['stage1']:.0f} img/s)")
        print(f"  stage-2 step         {med['stage2']:8.1f} ms   ratio {r2:.3f}   ({img_s['stage2']:.0f} img/s)")
        print(f"  vanilla student step {img_s['student']:.0f} img/s")
    print(f"\nall ratios <= 1.10: {ok}")


if __name__ == '__main__':
    main()

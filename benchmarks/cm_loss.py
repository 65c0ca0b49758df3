"""Cost of REFILLED's stage-1 loss per training step: tuple mining + comparison-matching loss (forward + backward).

Figures printed:
  1. time of `mine_tuples` + `comparison_matching_loss` (forward and backward to the student embedding) at
     B = 64, 128, 256, 512 (student embedding d=64 as WRN-16-1, teacher d=128 as WRN-40-2, labels uniform over
     50 classes), for the paper preset (masked, all impostors) and the official preset (margin 0.2, K = batch min);
  2. the same as a fraction of one WRN-16-1 training step (forward + backward + SGD, 32x32 inputs) at the same B;
     target <= 5 % at B = 256;
  3. memory: the largest tensor any op creates while mining + loss + backward run (counted with a
     TorchDispatchMode, so it is exact), against B^2, B^3 and T*(K+1); the generic semi-hard miner of
     pytorch-metric-learning (if installed) for comparison.

Two embedding geometries: "random" (i.i.d. Gaussian) and "clustered" (class means + noise, like a trained
embedding: nearly every other-class instance is farther than the neighbour, the largest K).

Run: GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184 .venv/bin/python benchmarks/cm_loss.py
Options: --device cuda, --batches 64 128, --reps N, --no-step (skip the WRN step timing).
"""
import argparse, os, statistics, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from refilled.tuples import mine_tuples
from refilled.losses import comparison_matching_loss, CM_PRESETS
from refilled.experiments import cpu_name

N_CLASSES, D_STUDENT, D_TEACHER = 50, 64, 128


# ---------------------------------------------------------------------------------------------------------------
# LOCAL STAND-IN, used only when refilled.backbones is not importable yet: a minimal WRN-16-1 (pre-activation
# wide ResNet, depth 16, width 1, channels 16-16-32-64, 0.18 M parameters). Labelled as such in the output.
class _Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.short = None if (cin == cout and stride == 1) else nn.Conv2d(cin, cout, 1, stride, bias=False)
    def forward(self, x):
        o = F.relu(self.bn1(x))
        y = self.conv2(F.relu(self.bn2(self.conv1(o))))
        return y + (x if self.short is None else self.short(o))

class LocalWRN16_1(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        n, w = 2, 1
        layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False)], 16
        for cout, stride in [(16*w, 1), (32*w, 2), (64*w, 2)]:
            for i in range(n): layers.append(_Block(cin, cout, stride if i == 0 else 1)); cin = cout
        self.features, self.bn, self.fc = nn.Sequential(*layers), nn.BatchNorm2d(cin), nn.Linear(cin, num_classes)
    def forward(self, x): return self.fc(F.adaptive_avg_pool2d(F.relu(self.bn(self.features(x))), 1).flatten(1))
# ---------------------------------------------------------------------------------------------------------------


def models():
    "(label, model) pairs to time a training step with: the project's WRN-16-1 if importable, and the local one."
    out = []
    try:
        from refilled.backbones import create_model
        out.append(('refilled.backbones wrn_16_1', create_model('wrn_16_1', N_CLASSES)))
    except Exception as e:  # not written yet, or failed to import
        print(f'# refilled.backbones not importable ({type(e).__name__}: {e}); using the LOCAL stand-in only')
    out.append(('LOCAL stand-in WRN-16-1 (this script)', LocalWRN16_1(N_CLASSES)))
    return out


def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()


def timeit(fn, dev, reps, warmup=2):
    for _ in range(warmup): fn()
    ts = []
    for _ in range(reps):
        sync(dev); t0 = time.perf_counter(); fn(); sync(dev); ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def make_batch(B, geometry, dev, seed=0):
    g = torch.Generator().manual_seed(seed + B)
    y = torch.randint(0, N_CLASSES, (B,), generator=g)
    if geometry == 'random':
        s, t = torch.randn(B, D_STUDENT, generator=g), torch.randn(B, D_TEACHER, generator=g)
    else:
        ms, mt = torch.randn(N_CLASSES, D_STUDENT, generator=g), torch.randn(N_CLASSES, D_TEACHER, generator=g)
        s = ms[y] + torch.randn(B, D_STUDENT, generator=g)
        t = mt[y] + torch.randn(B, D_TEACHER, generator=g)
    return s.to(dev), t.to(dev), y.to(dev)


def cm_step(s, t, y, preset):
    "What the engine does per step: mine on the student, compute the loss, backpropagate to the embedding."
    se = s.detach().requires_grad_()
    loss, tp = comparison_matching_loss(se, t, y, **CM_PRESETS[preset], return_tuples=True)
    loss.backward()
    return tp


def wrn_step_fn(model, B, dev):
    model = model.to(dev).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=True)
    x = torch.randn(B, 3, 32, 32, device=dev); y = torch.randint(0, N_CLASSES, (B,), device=dev)
    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return step


class LargestTensor(TorchDispatchMode):
    "Records the largest number of elements of any tensor an op returns (forward and backward)."
    def __init__(self): super().__init__(); self.max_numel, self.op = 0, None
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for o in tree_flatten(out)[0]:
            if isinstance(o, torch.Tensor) and o.numel() > self.max_numel: self.max_numel, self.op = o.numel(), str(func)
        return out


def largest_intermediate(fn):
    m = LargestTensor()
    with m: res = fn()
    return m.max_numel, m.op, res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--device', default='cpu')
    ap.add_argument('--batches', type=int, nargs='+', default=[64, 128, 256, 512])
    ap.add_argument('--reps', type=int, default=15)
    ap.add_argument('--no-step', action='store_true')
    ap.add_argument('--threads', type=int, default=None, help='torch.set_num_threads (default: torch default)')
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    print(f'# machine: {cpu_name()}, os.cpu_count()={os.cpu_count()}, '
          f'torch threads={torch.get_num_threads()}, torch {torch.__version__}, device={dev}'
          + (f' ({torch.cuda.get_device_name(dev)})' if dev.type == 'cuda' else ''))
    print(f'# GLIBC_TUNABLES={os.environ.get("GLIBC_TUNABLES", "(unset)")}')
    torch.manual_seed(0)

    print('\n## 1-2. time per step (median of %d), mining + CM loss forward + backward' % a.reps)
    nets = [] if a.no_step else models()
    steps = {B: [(name, timeit(wrn_step_fn(m, B, dev), dev, max(5, a.reps // 2))) for name, m in nets] for B in a.batches}
    hdr = '| B | geometry | preset | T | K | impostors | CM ms |'
    names = [n for n, _ in nets]
    for n in names: hdr += f' {n} step ms | CM / step |'
    print(hdr); print('|' + '---|' * (hdr.count('|') - 1))
    for B in a.batches:
        for geometry in ('random', 'clustered'):
            s, t, y = make_batch(B, geometry, dev)
            for preset in ('paper', 'official'):
                tp = cm_step(s, t, y, preset)
                ms = 1e3 * timeit(lambda: cm_step(s, t, y, preset), dev, a.reps)
                row = f'| {B} | {geometry} | {preset} | {len(tp)} | {tp.K} | {int(tp.mask.sum())} | {ms:.2f} |'
                for n, st in steps.get(B, []): row += f' {1e3*st:.1f} | {100*ms/(1e3*st):.2f} % |'
                print(row)

    print('\n## 3. memory: largest tensor created by any op (elements), mining + loss + backward, paper preset')
    print('| B | geometry | T | K | T*(K+1) | B^2 | B^3 | largest (ours) | by op | largest / max(B^2, T*(K+1)) | PML semihard miner largest |')
    print('|---|---|---|---|---|---|---|---|---|---|---|')
    try:
        from pytorch_metric_learning.miners import TripletMarginMiner
        pml = TripletMarginMiner(margin=float('inf'), type_of_triplets='semihard')
    except Exception: pml = None
    for B in a.batches:
        for geometry in ('random', 'clustered'):
            s, t, y = make_batch(B, geometry, dev)
            n, op, tp = largest_intermediate(lambda: cm_step(s, t, y, 'paper'))
            ref = max(B*B, len(tp)*(tp.K+1))
            pml_n = largest_intermediate(lambda: pml(s, y))[0] if pml is not None else 'n/a'
            print(f'| {B} | {geometry} | {len(tp)} | {tp.K} | {len(tp)*(tp.K+1)} | {B*B} | {B**3} | {n} | {op} | {n/ref:.2f} | {pml_n} |')


if __name__ == '__main__':
    main()

#!/usr/bin/env python
"""What the other CPU code path of tests/test_records.py costs, and whether it changes a training's floating-point results.

A WRN-16-1 training step (forward, cross-entropy, backward, SGD with momentum; batch 64 of random 32x32 images, one
fixed batch, seed 0) is timed in a fresh process per code path:
  own          this machine's own path (ATen's vector kernels for its CPU, oneDNN at its best ISA)
  aten_scalar  ATEN_CPU_CAPABILITY=default: ATen's scalar kernels, oneDNN as on the own path
  other_path   the test's OTHER_PATH: ATen's scalar kernels and oneDNN limited to AVX (no AVX2, no FMA)
The processes run round-robin, ROUNDS times each; a line gives the median ms per step over all rounds, its ratio to
`own` (measured in this one run), and a hash of the weights after the warm-up and timed steps: a hash that differs
from `own`'s shows that the path changes the training's rounding; `own` twice with one hash shows that a path repeats
itself to the last bit.

    python benchmarks/cpu_code_paths.py [--rounds 3] [--steps 10]
"""
import argparse, hashlib, os, statistics, subprocess, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tests'))
from test_records import OTHER_PATH                 # the path the records' test uses, defined once there

PATHS = {'own': {}, 'aten_scalar': {'ATEN_CPU_CAPABILITY': 'default'}, 'other_path': OTHER_PATH}


def child(steps:int):
    "Run in a child process: time `steps` training steps after 3 warm-up ones; print ms per step and the weights' hash."
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, str(ROOT))
    from refilled.backbones import create_model
    torch.manual_seed(0)
    model = create_model('wrn_16_1', 100).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 3, 32, 32, generator=g), torch.randint(0, 100, (64,), generator=g)
    def step():
        out = model(x)
        loss = F.cross_entropy(out[0] if isinstance(out, tuple) else out, y)
        opt.zero_grad(); loss.backward(); opt.step()
    for _ in range(3): step()
    times = []
    for _ in range(steps):
        t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
    h = hashlib.sha1(b''.join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest()[:12]
    print(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads(), ' '.join(f'{t:.6f}' for t in times), h)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--steps', type=int, default=10)
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from refilled.experiments import cpu_name
    flags = sorted({f for f in Path('/proc/cpuinfo').read_text().split() if f in ('avx2', 'avx512f', 'fma')}) \
        if Path('/proc/cpuinfo').exists() else []
    print(f'cpu: {cpu_name()}; flags: {" ".join(flags) or "unknown"}; {a.rounds} rounds x {a.steps} steps per path')
    res = {k: {'t': [], 'hash': set(), 'cap': None} for k in PATHS}
    for _ in range(a.rounds):
        for name, env in PATHS.items():
            r = subprocess.run([sys.executable, __file__, '--child', str(a.steps)], env={**os.environ, **env},
                               capture_output=True, text=True, check=True)
            cap, threads, *ts, h = r.stdout.split()
            res[name]['t'] += map(float, ts); res[name]['hash'].add(h); res[name]['cap'] = f'{cap}, {threads} threads'
    own = statistics.median(res['own']['t'])
    for name, r in res.items():
        m = statistics.median(r['t'])
        print(f"{name:12s} {m*1000:8.1f} ms/step  x{m/own:4.2f} of own  weights {', '.join(sorted(r['hash']))}"
              f"  (ATen {r['cap']}; {' '.join(f'{k}={v}' for k, v in PATHS[name].items()) or 'no overrides'})")


if __name__ == '__main__':
    if len(sys.argv) == 3 and sys.argv[1] == '--child': child(int(sys.argv[2]))
    else: main()

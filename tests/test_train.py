"""The training engine: exact resume after SIGKILL, DDP with 2 gloo processes, schedules, checkpoints, selection."""
import json, os, signal, subprocess, sys, textwrap, time
from pathlib import Path
import pytest
import torch
import torch.nn.functional as F

from refilled.backbones import create_model
from refilled.distillers import create_distiller
from refilled.train import fit, load_checkpoint, make_scheduler, CKPT_FORMAT

ROOT = Path(__file__).resolve().parents[1]

# A learnable synthetic task, built identically in every process (no data files needed).
TASK_SRC = textwrap.dedent('''
    import torch
    from types import SimpleNamespace
    from refilled.data import make_task, CIFAR100_MEAN, CIFAR100_STD
    def synthetic_task(per_class=60, classes=6):
        g = torch.Generator().manual_seed(0)
        protos = torch.randint(40, 216, (classes, 32, 32, 3), generator=g)
        def imgs(n): return (protos.repeat_interleave(n, 0) + torch.randint(-60, 61, (classes*n, 32, 32, 3), generator=g)).clamp(0, 255).to(torch.uint8)
        a = SimpleNamespace(train_x=imgs(per_class), train_y=torch.arange(classes).repeat_interleave(per_class),
                            test_x=imgs(10), test_y=torch.arange(classes).repeat_interleave(10))
        return make_task(a, list(range(classes)), val_per_class=10, seed=0)
    NORM = dict(mean=CIFAR100_MEAN, std=CIFAR100_STD)
''')

RUN_SRC = TASK_SRC + textwrap.dedent('''
    import sys, torch
    from refilled.backbones import create_model
    from refilled.distillers import create_distiller
    from refilled.train import fit
    run_dir, epochs = sys.argv[1], int(sys.argv[2])
    torch.manual_seed(0)
    student = create_model('wrn_16_1', 6, dropout=0.3)   # dropout: the global RNG state must be restored too
    r = fit(create_distiller('vanilla', student), synthetic_task(), epochs=epochs, batch_size=8, lr=0.05, seed=3,
            deterministic=True, device='cpu', run_dir=run_dir, resume=True, verbose=False, **NORM)
    torch.save({k: v for k, v in student.state_dict().items()}, run_dir + '/final_state.pt')
    print('DONE', r.best_epoch, r.test_acc_best_val, r.test_acc_last)
''')


def _script(tmp_path, name, src):
    f = tmp_path/name; f.write_text(src); return f


def _env():
    # one thread: batches of 8 gain nothing from a second, and where two processes (or make test's other worker) share the
    # cores, OpenMP threads waiting on each other slow a step many times over (244 s instead of 29 s, measured)
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')


def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
    script = _script(tmp_path, 'run.py', RUN_SRC)
    epochs = 4
    # 1. the reference: uninterrupted
    ref = subprocess.run([sys.executable, str(script), str(tmp_path/'ref'), str(epochs)], env=_env(), capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-3000:]
    # 2. the same run, SIGKILLed in the middle of epoch 2 ...
    killed = tmp_path/'killed'
    p = subprocess.Popen([sys.executable, str(script), str(killed), str(epochs)], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    log = killed/'metrics.jsonl'
    t0 = time.time()
    while time.time() - t0 < 300 and p.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 1: break
        time.sleep(0.02)
    time.sleep(0.15)                      # into epoch 2
    assert p.poll() is None, 'the run finished before it could be killed'
    p.send_signal(signal.SIGKILL); p.wait()
    ck = load_checkpoint(killed/'last.pt')
    assert 1 <= ck['epoch'] < epochs, ck['epoch']
    # ... and resumed
    res = subprocess.run([sys.executable, str(script), str(killed), str(epochs)], env=_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().splitlines()[-1] == ref.stdout.strip().splitlines()[-1]        # same final metrics
    a, b = torch.load(tmp_path/'ref'/'final_state.pt', weights_only=True), torch.load(killed/'final_state.pt', weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)                   # bit-identical weights
    ha = [json.loads(l) for l in (tmp_path/'ref'/'metrics.jsonl').read_text().splitlines()]
    hb = [json.loads(l) for l in (killed/'metrics.jsonl').read_text().splitlines()]
    strip = lambda h: [{k: v for k, v in r.items() if k not in ('secs', 'img_s')} for r in h]
    assert strip(ha) == strip(hb)


DDP_SRC = TASK_SRC + textwrap.dedent('''
    import os, sys, torch, torch.distributed as dist
    from refilled.backbones import create_model
    from refilled.distillers import create_distiller
    from refilled.train import fit
    out = sys.argv[1]
    torch.manual_seed(0)
    student = create_model('wrn_16_1', 6)
    fit(create_distiller('vanilla', student), synthetic_task(per_class=30), epochs=2, batch_size=8, lr=0.05, seed=1,
        device='cpu', verbose=False, **NORM)
    rank = dist.get_rank()
    torch.save({n: p.detach() for n, p in student.named_parameters()}, f'{out}/rank{rank}.pt')
    with open(f'{out}/world{rank}.txt', 'w') as f: f.write(str(dist.get_world_size()))
    dist.destroy_process_group()
''')


def test_ddp_two_gloo_processes_hold_identical_weights(tmp_path):
    script = _script(tmp_path, 'ddp.py', DDP_SRC)
    env = _env()
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', str(script), str(tmp_path)],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert (tmp_path/'world0.txt').read_text() == '2' and (tmp_path/'world1.txt').read_text() == '2'
    a, b = torch.load(tmp_path/'rank0.pt', weights_only=True), torch.load(tmp_path/'rank1.pt', weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(0); init = dict(create_model('wrn_16_1', 6).named_parameters())
    assert any(not torch.equal(a[k], init[k].detach()) for k in a)      # and they did train


def test_step_schedule_matches_paper():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    s = make_scheduler(opt, 200, 'step')
    lrs = []
    for _ in range(200): lrs.append(opt.param_groups[0]['lr']); opt.step(); s.step()
    assert lrs[49] == pytest.approx(0.1) and lrs[50] == pytest.approx(0.02) and lrs[150] == pytest.approx(0.0008)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    s = make_scheduler(opt, 10, 'cosine', eta_min=0.1)
    for _ in range(10): opt.step(); s.step()
    assert opt.param_groups[0]['lr'] == pytest.approx(0.01)
    with pytest.raises(ValueError, match='schedule must be'): make_scheduler(opt, 10, 'linear')


@pytest.fixture(scope='module')
def task():
    ns = {}; exec(TASK_SRC, ns); return ns['synthetic_task'](per_class=30), ns['NORM']


def test_checkpoints_are_weights_only_and_selection_uses_validation(tmp_path, task):
    t, norm = task
    torch.manual_seed(0)
    r = fit(create_distiller('vanilla', create_model('wrn_16_1', 6)), t, epochs=3, batch_size=16, lr=0.05, device='cpu',
            run_dir=tmp_path, verbose=False, test_every=1, **norm)
    for f in ('last.pt', 'best.pt'):
        ck = torch.load(tmp_path/f, weights_only=True)          # loads without unpickling arbitrary objects
        assert ck['format'] == CKPT_FORMAT
    best = max(range(3), key=lambda i: (r.history[i]['val_acc'], -i))
    assert r.best_epoch == best + 1 and r.test_acc_best_val == r.history[best]['test_acc']
    assert all('test_acc' in h for h in r.history)               # test_every=1
    assert load_checkpoint(tmp_path/'best.pt')['epoch'] == r.best_epoch


def test_foreign_checkpoint_is_refused(tmp_path):
    torch.save({'hello': torch.zeros(1)}, tmp_path/'x.pt')
    with pytest.raises(ValueError, match='not a refilled-checkpoint'): load_checkpoint(tmp_path/'x.pt')
    (tmp_path/'y.pt').write_bytes(b'not a checkpoint')
    with pytest.raises(ValueError, match='not a loadable'): load_checkpoint(tmp_path/'y.pt')


def test_divergence_is_reported(task):
    from refilled.distillers import Distiller
    class Exploding(Distiller):          # a method whose loss becomes NaN: fit must stop and say when
        name, needs_teacher = 'exploding', False
        def forward(self, x, y):
            logits = self.student(x)
            return logits, {'ce': F.cross_entropy(logits, y) * torch.tensor(float('nan'))}
    t, norm = task
    with pytest.raises(FloatingPointError, match='diverged at epoch 1'):
        fit(Exploding(create_model('wrn_16_1', 6)), t, epochs=1, batch_size=16, device='cpu', verbose=False, **norm)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
def test_resume_on_cuda_of_cpu_and_cuda_checkpoints(tmp_path):
    # `fit` loads last.pt with map_location=device, so the RNG states arrive on the GPU and must still be restorable:
    # a finished run written on the CPU (a teacher trained here, reused on a GPU machine) or on CUDA, resumed on CUDA,
    # returns the same result without training again.
    ns = {}; exec(TASK_SRC, ns)
    task, norm = ns['synthetic_task'](per_class=20), ns['NORM']
    for first in ('cpu', 'cuda'):
        def run(device):
            torch.manual_seed(0)
            return fit(create_distiller('vanilla', create_model('wrn_16_1', 6)), task, epochs=2, batch_size=8, lr=0.05, seed=3,
                       device=device, run_dir=tmp_path/first, resume=True, verbose=False, **norm)
        a = run(first)
        b = run('cuda')
        assert [h['epoch'] for h in b.history] == [1, 2] and b.history == a.history
        assert (b.best_epoch, b.test_acc_best_val, b.test_acc_last) == (a.best_epoch, a.test_acc_best_val, a.test_acc_last)


def test_two_processes_on_one_run_dir_train_it_once(tmp_path):
    "Parallel sweep workers that need the same stage: one trains it, the other waits for the run folder's lock, then resumes."
    script, run_dir = _script(tmp_path, 'run.py', RUN_SRC), tmp_path/'run'
    procs = [subprocess.Popen([sys.executable, str(script), str(run_dir), '2'], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    done = [next(l for l in o.splitlines() if l.startswith('DONE')) for o, _ in outs]
    assert done[0] == done[1]                                                    # the same result ...
    assert len((run_dir/'metrics.jsonl').read_text().splitlines()) == 2           # ... from one training of 2 epochs
    assert sum('waiting for another process' in e for _, e in outs) == 1

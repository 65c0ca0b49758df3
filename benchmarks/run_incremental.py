#!/usr/bin/env python
"""Run the rows of an incremental parameter file with `refilled.incremental.incremental` directly, several at once on one GPU.

    python benchmarks/run_incremental.py experiments/params/gpu_incremental.yaml [--seeds 0 1] [--workers 8] [--results R.csv] [--logs DIR]

What the experiment notebook's run cell does, without papermill (which a lent GPU machine does not have): the same
parameters and the same loop (every method of the file; the teacher-network methods on the teacher, the others on each
student; every seed), rows appended to the file's results file (or `--results`), rows already there (same protocol,
method, student and seed) skipped, each job's printed output in DIR/<job>.log. Every stage resumes from its checkpoints
in the work folder, so a job cut off by a deadline continues where it stopped when started again.

The teacher is trained (or, copied in from the file's `teachers` folder, loaded) by a first job alone, and every other
job starts once it is done, so that no two processes train it at once. The REFILLED variants of one student and seed
share their first stage (the same cached comparison-matching training): a job trains it alone first, and the three
variants' jobs start once it is done. Jobs start by seed, then longest first, so that a deadline leaves whole seeds
done. `--students` runs the student methods for some of the file's students only (the teacher-network methods run
whatever it says).
"""
import argparse, contextlib, multiprocessing as mp, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARED_STAGE1 = ('refilled_lwof', 'refilled_emb_lwof', 'refilled_minus_lwof')
ROW_KEYS = ('method', 'ewc_lam', 'lwof_weight', 'lwof_tau', 'lr_Cs', 'fisher_images', 'test_per_class')

def _teacher(kw):
    "`kw`'s parameters, work folder, device, task and teacher, the teacher trained (or resumed, or loaded) as `incremental` would."
    from refilled.incremental import _inc_params
    from refilled.experiments import _work_dir, _resolve_device, student_task, run_teacher
    p, ip = _inc_params(*(kw[k] for k in ROW_KEYS[:5]), {k: v for k, v in kw.items() if k not in ROW_KEYS})
    ip['fisher_images'] = kw['fisher_images']
    work, device = _work_dir(p), _resolve_device(p['device'])
    task = student_task(p, work)
    return p, ip, work, device, task, run_teacher(p, task, device, work)

def _stage1(kw):
    "Train (or resume) the first stage of `kw`'s method alone, as `incremental` would train it."
    from refilled.incremental import INCREMENTAL_METHODS
    from refilled.experiments import train_stages
    p, ip, work, device, task, T = _teacher(kw)
    train_stages(p, task, T, work, device, stages=INCREMENTAL_METHODS[kw['method']](p, ip)[:1])

def _one(job):
    "Run one job in a worker: (key, seconds, error or None)."
    key, kind, kw, log, _ = job
    import torch
    from refilled.incremental import incremental, INCREMENTAL_CRITERIA
    torch.set_num_threads(1)
    t = time.time()
    with open(log, 'a') as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        try:
            if kind == 'teacher': print(f"TEACHER done: test accuracy {_teacher(kw)[-1]['test_acc']}", flush=True)
            elif kind == 'stage1': _stage1(kw); print(f"STAGE1 done: {kw['student']} seed {kw['seed']}", flush=True)
            else:
                r = incremental(**kw)
                print(f"ROW {kw['method']} {kw['student']} seed {kw['seed']}: " + '  '.join(f"{k} {r[k]:.2f}" for k in INCREMENTAL_CRITERIA), flush=True)
            return key, time.time() - t, None
        except Exception as e:
            print(f"FAILED: {type(e).__name__}: {e}", flush=True); return key, time.time() - t, f"{type(e).__name__}: {e}"

def jobs(meta, csv, logs):
    """The file's rows not yet in `csv` as jobs (key, kind, kwargs, log path, the key of the job it waits for), in start order:
    the teacher first (every other job waits for it); then by seed; in a seed, the shared first stages first, then the
    longest runs."""
    from refilled.experiments import read_results
    from refilled.incremental import TEACHER_NETWORK
    done = {(r['method'], r['student'], str(r['seed'])) for r in read_results(csv) if r['protocol'] == meta['protocol']} if Path(csv).exists() else set()
    run = meta['run']
    common = dict(ewc_lam=meta['ewc_lam'], lwof_weight=meta['lwof_weight'], lwof_tau=meta['lwof_tau'], lr_Cs=meta['lr_Cs'],
                  fisher_images=meta['fisher_images'], test_per_class=meta['test_per_class'], protocol=meta['protocol'],
                  results_csv=str(csv), work_dir=meta['work_dir'], **{k: v for k, v in run.items() if k != 'student'})
    out = []
    for seed in meta['seeds']:
        for m in meta['methods']:
            for s in ([run['teacher']] if m in TEACHER_NETWORK else meta['students']):
                if (m, s, str(seed)) in done: continue
                kw, dep = dict(common, method=m, student=s, seed=seed), 'teacher'
                if m in SHARED_STAGE1:
                    dep = f"stage1-{s}-s{seed}"
                    if dep not in {j[2] for j in out}: out.append((seed, -1e9, dep, 'stage1', kw, 'teacher'))
                out.append((seed, -_epochs(m, run['epochs']), f"{m}-{s}-s{seed}", 'row', kw, dep))
    out.sort(key=lambda j: j[:2])
    if out: out.insert(0, (None, None, 'teacher', 'teacher', out[0][4], None))   # the same teacher for every row of the file
    return [(key, kind, kw, str(Path(logs)/f'{key}.log'), dep) for _, _, key, kind, kw, dep in out]

def _epochs(method, E):
    "A row's training epochs (its start-order key; the REFILLED variants' shared first stage not counted)."
    return {'teacher_lr': 0, 'student_long_lwof': 1.5 * E, 'rkd_lwof': 1.5 * E}.get(method, E)

def schedule(todo, workers):
    "Run `todo` on `workers` processes, each job once the job it waits for is done; a failed job's dependants are dropped."
    import queue
    pending, finished, running, q = list(todo), set(), 0, queue.Queue()
    with mp.get_context('spawn').Pool(workers) as pool:
        while pending or running:
            ready = [j for j in pending if j[4] is None or j[4] in finished]
            for j in ready[:workers - running]:
                pending.remove(j); running += 1
                pool.apply_async(_one, (j,), callback=q.put, error_callback=lambda e, k=j[0]: q.put((k, 0.0, repr(e))))
            if not running: break
            key, secs, err = q.get(); running -= 1
            print(f"  {'FAILED' if err else 'done'} {key} in {secs:.0f} s{': ' + err if err else ''}", flush=True)
            if err:
                for j in [j for j in pending if j[4] == key]: pending.remove(j); print(f"  dropped {j[0]}: {key} failed", flush=True)
            else: finished.add(key)

if __name__ == '__main__':
    import yaml
    from refilled.cli import seed_teachers
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('params'); ap.add_argument('--workers', type=int, default=1); ap.add_argument('--results', default=None)
    ap.add_argument('--seeds', type=int, nargs='+', default=None, help="run these of the file's seeds (default: all)")
    ap.add_argument('--students', nargs='+', default=None, help="run the student methods for these of the file's students (default: all)")
    ap.add_argument('--logs', default='benchmarks/out/logs'); ap.add_argument('--dry-run', action='store_true', help='list the jobs, run nothing')
    a = ap.parse_args()
    meta = yaml.safe_load(Path(a.params).read_text())
    if a.seeds is not None:
        if not set(a.seeds) <= set(meta['seeds']): sys.exit(f"--seeds {a.seeds}: {a.params} has seeds {meta['seeds']}")
        meta['seeds'] = a.seeds
    if a.students is not None:
        if not set(a.students) <= set(meta['students']): sys.exit(f"--students {a.students}: {a.params} has students {meta['students']}")
        meta['students'] = a.students
    csv = Path(a.results or meta['results_csv'])
    for name in seed_teachers(meta, dry_run=a.dry_run): print(f"  {'would copy' if a.dry_run else 'copied'} teacher {name}", flush=True)
    logs = Path(a.logs); logs.mkdir(parents=True, exist_ok=True)
    todo = jobs(meta, csv, logs)
    print(f"{a.params}: {sum(j[1] == 'row' for j in todo)} rows to run in {len(todo)} jobs on {a.workers} workers", flush=True)
    for key, kind, kw, _, dep in todo: print(f"  {key}" + (f" (after {dep})" if dep else ''), flush=True)
    if a.dry_run: sys.exit(0)
    schedule(todo, a.workers)

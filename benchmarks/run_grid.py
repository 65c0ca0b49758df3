#!/usr/bin/env python
"""Run the runs of some grids of a sweep file with `refilled.experiments.distill` directly, several at once on one GPU.

    python benchmarks/run_grid.py experiments/params/cpu_fidelity.yaml --grid gpu_e338 [--workers 4] [--results R.csv] [--logs DIR]

What `refilled sweep` does without papermill (which a lent GPU machine does not have): the same parameters
(`refilled.cli.load_sweep`), the same run ids, result rows appended to the sweep's results file (or `--results`),
runs whose run id is already there skipped, each run's printed output in DIR/<run name>.log. Every run resumes from
its stage checkpoints, so a run cut off by a deadline continues where it stopped when started again.
"""
import argparse, contextlib, multiprocessing as mp, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

def _one(job):
    params, log = job
    from refilled.experiments import distill
    t = time.time()
    with open(log, 'a') as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        try: distill(**params); return log, time.time() - t, None
        except Exception as e: print(f"FAILED: {type(e).__name__}: {e}", flush=True); return log, time.time() - t, f"{type(e).__name__}: {e}"

if __name__ == '__main__':
    from refilled.cli import load_sweep, run_name, seed_teachers
    from refilled.experiments import read_results
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('params'); ap.add_argument('--grid', action='append', required=True)
    ap.add_argument('--workers', type=int, default=1); ap.add_argument('--results', default=None); ap.add_argument('--logs', default='benchmarks/out/logs')
    a = ap.parse_args()
    meta, runs = load_sweep(a.params)
    runs = [r for r in runs if r['grid'] in a.grid]
    csv = a.results or meta['results_csv']
    done = {r['run_id'] for r in read_results(csv)} if csv else set()
    todo = [r for r in runs if r['run_id'] not in done]
    for name in seed_teachers(meta): print(f'  copied teacher {name}', flush=True)
    logs = Path(a.logs); logs.mkdir(parents=True, exist_ok=True)
    jobs = [(dict(r['params'], results_csv=str(csv) if csv else None, verbose=True), str(logs/f"{run_name(r['params']).removesuffix('.ipynb')}.log")) for r in todo]
    print(f"{a.params} grids {a.grid}: {len(runs)} runs, {len(runs) - len(todo)} done, {len(todo)} to run on {a.workers} workers", flush=True)
    with mp.get_context('spawn').Pool(a.workers) as pool:
        for log, secs, err in pool.imap_unordered(_one, jobs):
            print(f"  {'FAILED' if err else 'done'} {Path(log).stem} in {secs:.0f} s{': ' + err if err else ''}", flush=True)

"""The committed verification records (experiments/runs/smoke) check on any CPU: what nbval compares exactly is the same
on every machine, and every number from training is checked by `check_record` within a stated tolerance.

`make test` re-executes each record once with nbval. A record without numbers from training (tables read from the
committed rows) runs on this machine's own CPU code path. A record with them (a `check_record` cell) runs in the test
below, under a code path that no recording machine takes (records are made on AVX2 and AVX-512 machines), and
experiments/runs/smoke/conftest.py leaves it out of the session's own-path run: on a machine of the recording's kind
that run would take the recording's own code path and test no tolerance, and on any other kind it would be one more
cross-path run like this one. The tests here also show that a record whose number lies outside its tolerance fails,
naming the cell.
"""
import ast, json, os, re, subprocess, sys
from pathlib import Path
import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT/'experiments'/'runs'/'smoke'
RECORDS = sorted(SMOKE.glob('*.ipynb'))
SWEEP_TEMPLATE = ROOT/yaml.safe_load((ROOT/'experiments'/'params'/'smoke.yaml').read_text())['notebook']
# the template each record was executed from: the notebook of the same name in nbs/experiments or nbs/tutorials
# (tools/record.py), else the smoke sweep's template. `make test` executes a template with a record through its record
# (nbval) only.
TEMPLATE_DIRS = (ROOT/'nbs'/'experiments', ROOT/'nbs'/'tutorials')
TEMPLATE_OF = {p: next((d/p.name for d in TEMPLATE_DIRS if (d/p.name).exists()), SWEEP_TEMPLATE) for p in RECORDS}
NBVAL = ['--nbval', '--nbval-current-env', '--nbval-sanitize-with', str(ROOT/'experiments'/'nbval_sanitize.cfg')]
# PyTorch's scalar (non-vectorised) ATen kernels and oneDNN limited to AVX (no AVX2, no FMA): a CPU code path other
# than the one the records were made on (AVX2 or AVX-512), open to any x86-64 machine (a cap, not a demand). The
# scalar kernels change a training's weights, and oneDNN at AVX changes them again; together they made a WRN-16-1
# training step 2.25 times as slow as the own path on an AMD EPYC with AVX2, the scalar kernels alone 1.41 times
# (benchmarks/cpu_code_paths.py; output in benchmarks/results/cpu_code_paths_cpu.txt). oneDNN at SSE4.1 would do
# too, but an earlier session measured it about five times as slow.
OTHER_PATH = {'ATEN_CPU_CAPABILITY': 'default', 'ONEDNN_MAX_CPU_ISA': 'AVX'}


def recorded_of(nb) -> dict | None:
    "The `recorded` parameter of an executed notebook (its injected-parameters cell), evaluated as the literal it is."
    for c in nb.cells:
        if 'injected-parameters' in c.metadata.get('tags', []):
            for node in ast.parse(c.source).body:
                if isinstance(node, ast.Assign) and [t.id for t in node.targets] == ['recorded']:
                    return ast.literal_eval(node.value)
    return None


def check_names(nb) -> list:
    "The names of the `check_record` calls in a notebook, in order."
    return [m for c in nb.cells if c.cell_type == 'code' for m in re.findall(r"check_record\('(\w+)'", c.source)]


def nbval(paths, env=None, timeout=2400):
    # `timeout` only guards against a hung kernel (unloaded, the slowest call takes ~450 s; with a training sharing the
    # two cores, 3-4x that); speed is measured by the benchmarks, not here.
    return subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-q', *map(str, paths), *NBVAL],
                          cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def code_of(nb) -> list:
    "The sources of a notebook's code cells, without its parameters (the template's defaults, a record's injected values)."
    return [c.source for c in nb.cells if c.cell_type == 'code'
            and not {'parameters', 'injected-parameters'} & set(c.metadata.get('tags', []))]


@pytest.mark.parametrize('path', RECORDS, ids=[p.name for p in RECORDS])
def test_record_runs_the_current_template(path):
    """A record holds exactly its template's code: its re-execution tests the template (which `make test` therefore
    does not run a second time), and a template edited without re-recording fails here."""
    tpl = TEMPLATE_OF[path]
    assert code_of(nbformat.read(path, as_version=4)) == code_of(nbformat.read(tpl, as_version=4)), \
        f'{path.name} is older than {tpl.relative_to(ROOT)}: re-record with `make smoke-runs`'


def test_records_exist():
    assert {p.stem.split('-')[0] for p in RECORDS} >= {'student', 'refilled', 'gkd_analysis', 'gkd_results'}, RECORDS


@pytest.mark.parametrize('path', RECORDS, ids=[p.name for p in RECORDS])
def test_every_measured_output_is_checked_against_the_record(path):
    """Each cell whose output nbval ignores is followed by a `check_record` cell, and the record holds the numbers of
    every check: a record can't pass by checking nothing."""
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == 'code']
    for i, c in enumerate(cells):
        if 'nbval-ignore-output' in c.metadata.get('tags', []):
            assert i + 1 < len(cells) and 'check_record(' in cells[i+1].source, f'{path.name}: cell {c.source[:60]!r} has no check after it'
    names, rec = check_names(nb), recorded_of(nb)
    if not names: return                                  # e.g. gkd_results: tables of committed rows, compared exactly
    assert rec, f'{path.name}: check cells but no recorded numbers (record it with `make smoke-runs`)'
    assert sorted(rec) == sorted(names), (sorted(rec), names)
    assert all(isinstance(v, dict) and v for v in rec.values())


MEASURED = [p for p in RECORDS if check_names(nbformat.read(p, as_version=4))]


def test_most_records_hold_numbers_from_training():
    assert len(MEASURED) >= 3, MEASURED


@pytest.mark.needs_data('cifar100')
@pytest.mark.parametrize('path', MEASURED, ids=[p.name for p in MEASURED])
def test_a_record_passes_on_another_cpu_code_path(path):
    """A record with numbers from training (a `check_record` cell), re-executed with PyTorch's scalar kernels and oneDNN
    at AVX, passes nbval: every cell, the checks of its numbers within their tolerances included."""
    r = nbval([path], env=OTHER_PATH)
    print(r.stdout[-3000:])
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]
    last = r.stdout.splitlines()[-1]
    if not re.search(r'\b\d+ passed\b', last) and re.search(r'\b\d+ skipped\b', last):   # its data set is missing
        pytest.skip(next((l for l in r.stdout.splitlines() if l.startswith('SKIPPED')), last))
    assert re.search(r'\b\d+ passed\b', last) and ' failed' not in last, last


@pytest.mark.needs_data('cifar100')
def test_a_record_run_on_another_path_is_left_out_of_the_own_path_run():
    "The session that re-executes a record on the other path deselects its nbval cells; without that test they run here."
    student = next(p for p in MEASURED if p.name.startswith('student-'))
    def cells(*args):
        r = subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '--collect-only', '-q', *args, *NBVAL],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
        return {l.split('::')[0] for l in r.stdout.splitlines() if '::Cell' in l}
    every = {str(p.relative_to(ROOT)) for p in RECORDS}
    for p in (student, next(p for p in MEASURED if p != student)):   # only the record whose other-path run is selected
        other_path_run = f'tests/test_records.py::test_a_record_passes_on_another_cpu_code_path[{p.name}]'
        assert cells(str(SMOKE), other_path_run) == every - {str(p.relative_to(ROOT))}


@pytest.mark.needs_data('cifar100')
def test_a_number_outside_its_tolerance_fails_naming_the_cell(tmp_path):
    "Corrupt one recorded accuracy by 5 points (its tolerance is 2.5): nbval fails on the check cell and says why."
    src = next(p for p in RECORDS if p.name.startswith('student-'))
    nb = nbformat.read(src, as_version=4)
    inj = next(c for c in nb.cells if 'injected-parameters' in c.metadata.get('tags', []))
    rec = recorded_of(nb); good = rec['row']['test_acc_best_val']
    rec['row']['test_acc_best_val'] = round(good + 5, 2)
    inj.source = re.sub(r'recorded = \{.*', 'recorded = ' + repr(rec), inj.source, flags=re.S)
    nbformat.write(nb, tmp_path/src.name)
    r = nbval([tmp_path/src.name])
    code = [c for c in nb.cells if c.cell_type == 'code']                 # nbval numbers the code cells from 0
    check_cell = next(i for i, c in enumerate(code) if "check_record('row'" in c.source)
    assert r.returncode != 0, r.stdout[-3000:]
    assert f'::Cell {check_cell} ' in r.stdout, r.stdout[-3000:]
    # the run's own number differs between CPUs (within the tolerance of the uncorrupted record): read it, don't assume it
    m = re.search(r'test_acc_best_val = ([-\d.]+), recorded ' + re.escape(str(round(good + 5, 2))) + r' \(allowed ±2\.5\)', r.stdout)
    assert m, r.stdout[-3000:]
    assert abs(float(m.group(1)) - good) <= 2.5, (m.group(1), good)   # it fails because of the corruption, not the run
    assert '1 failed' in r.stdout.splitlines()[-1]

"Experiment recipes and parameters: validation (CLI, notebooks, sweeps), run identity, result rows, an end-to-end smoke run."
import csv, json, subprocess, sys
from pathlib import Path
import pytest
from refilled.experiments import (validate_params, ParameterError, METHODS, run_id, append_result, read_results, RESULT_COLUMNS,
                                  distill, student_task, CIFAR_OVERLAPS)
from refilled.core import InputError

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

BAD = [('method', 'refiled'), ('overlap', 50), ('overlap', '60'), ('student', 'wrn_16_3'), ('teacher', 'resnet'), ('lam', -1.0),
       ('epochs', 0), ('epochs', 2.5), ('batch_size', -8), ('lr', 0), ('tau_teacher', 0.0), ('tau_student', -1.0),
       ('cm_scale', 0), ('tuple_mode', 'hard'), ('weights', 'adaptive'), ('ncm_form', 'euclid'), ('margin', -0.2),
       ('max_impostors', 0), ('seed', -3), ('seed', 2**32), ('train_per_class', 0), ('val_frac', 1.5), ('schedule', 'linear'),
       ('device', 'tpu'), ('amp', 'yes'), ('deterministic', 'no'), ('long_factor', 0), ('dataset', 'imagenet'), ('order', 'sorted'),
       ('tau_teacher', 'hot'), ('tau_teacher', '-2'), ('smooth_weight', -0.1)]


@pytest.mark.parametrize('name,value', BAD, ids=[f'{k}={v!r}' for k, v in BAD])
def test_bad_values_are_refused_naming_the_parameter(name, value):
    with pytest.raises(ParameterError, match=f"parameter '{name}'"):
        validate_params('distill', {name: value})


def test_unknown_and_cross_parameter_errors():
    with pytest.raises(ParameterError, match=r"unknown parameter\(s\) \['lamda'\]"): validate_params('distill', {'lamda': 2.0})
    with pytest.raises(ParameterError, match="needs overlap=100"): validate_params('distill', {'method': 'kd', 'overlap': 60})
    with pytest.raises(ParameterError, match="max_impostors"): validate_params('distill', {'tuple_mode': 'official', 'max_impostors': 5})
    with pytest.raises(ParameterError, match="epochs must be"): validate_params('distill', {'method': 'refilled', 'epochs': 1})
    with pytest.raises(ParameterError, match="parameter 'tau_teacher': 'calibrated' fits"): validate_params('distill', {'val_frac': 0.0})
    for ok in ({'val_frac': 0.0, 'tau_teacher': 2.0}, {'val_frac': 0.0, 'method': 'refilled_emb'}, {'val_frac': 0.0, 'val_per_class': 5}):
        validate_params('distill', ok)   # a fixed temperature, a method without stage 2, an explicit hold-out
    with pytest.raises(ParameterError, match="unknown parameter"): validate_params('train_teacher', {'method': 'student'})
    p = validate_params('distill', {'method': 'kd', 'overlap': 100})
    assert p['overlap'] == 100 and p['lam'] == 2.0


def test_recipes_follow_the_paper():
    p = validate_params('distill', {'epochs': 100})
    st = {m: METHODS[m](p) for m in METHODS}
    assert [(s.distiller, s.epochs, s.select, s.init) for s in st['refilled']] == \
           [('refilled_stage1', 50, 'val_ncm', 'init'), ('refilled_stage2', 100, 'val_acc', 'previous')]
    assert st['refilled'][1].kwargs['weights'] == 'pl' and st['refilled_minus'][1].kwargs['weights'] == 'none'
    assert st['refilled_gap'][1].kwargs['weights'] == 'gap' and st['refilled_official'][1].kwargs['weights'] == 'official'
    assert st['refilled_official'][0].kwargs == dict(tau_student=4.0, tau_teacher=4.0, scale=1000.0, mode='official', margin=0.2, max_impostors=None)
    assert [s.distiller for s in st['refilled_emb']] == ['refilled_stage1', 'vanilla'] and st['refilled_emb'][1].init == 'previous'
    assert [(s.distiller, s.init) for s in st['refilled_lkd']] == [('refilled_stage2', 'init')]
    assert st['student'][0].epochs == 100 and st['student_long'][0].epochs == 150 and st['refilled_onestage'][0].epochs == 150
    assert [s.distiller for s in st['rkd']] == ['rkd', 'vanilla'] and [s.distiller for s in st['aml']] == ['aml', 'vanilla']
    assert st['refilled'][0].kwargs == st['refilled_emb'][0].kwargs == st['refilled_minus'][0].kwargs   # the shared stage 1


def test_refilled_defaults_are_the_choices_made_on_validation():
    "The recipe's defaults are P0's choices (gkd_fidelity): dot NCM at a calibrated τ_T; tuple temperatures 0.5 / 0.5 at scale 10."
    s1, s2 = METHODS['refilled'](validate_params('distill', {}))
    assert (s1.kwargs['tau_teacher'], s1.kwargs['tau_student'], s1.kwargs['scale']) == (0.5, 0.5, 10.0)
    assert (s2.kwargs['ncm_form'], s2.kwargs['tau_teacher'], s2.kwargs['lam']) == ('dot', 'calibrated', 2.0)


def test_the_controls_that_isolate_each_stage():
    p = validate_params('distill', {'epochs': 100, 'tau_teacher': 'calibrated', 'ncm_form': 'dot'})
    assert validate_params('distill', {'tau_teacher': '1.5'})['tau_teacher'] == 1.5            # a number from the CLI
    assert [(s.distiller, s.epochs, s.select, s.init) for s in METHODS['student_restart'](p)] == \
           [('vanilla', 50, 'val_ncm', 'init'), ('vanilla', 100, 'val_acc', 'previous')]        # REFILLED's schedule, no teacher
    (lkd,) = METHODS['refilled_lkd_long'](p)
    assert (lkd.distiller, lkd.epochs, lkd.init, lkd.kwargs['tau_teacher'], lkd.kwargs['ncm_form']) == ('refilled_stage2', 150, 'init', 'calibrated', 'dot')
    assert lkd.kwargs == METHODS['refilled_lkd'](p)[0].kwargs                                   # stage 2 itself, on student_long's schedule
    (sm,) = METHODS['student_smooth'](p)
    assert (sm.distiller, sm.epochs, sm.kwargs) == ('batch_smooth', 150, {'weight': 0.096})
    assert run_id(p) == run_id(dict(p, smooth_weight=0.5)) and run_id(dict(p, method='student_smooth')) != run_id(dict(p, method='student_smooth', smooth_weight=0.5))


def test_run_id_depends_only_on_what_the_method_uses():
    base = validate_params('distill', {'method': 'student'})
    assert run_id(base) == run_id(dict(base, lam=4.0, tag='other', work_dir='/x', verbose=False))   # λ is not used by `student`
    r = dict(base, method='refilled')
    assert run_id(r) != run_id(dict(r, lam=4.0)) and run_id(r) != run_id(dict(r, seed=1)) and run_id(r) != run_id(base)


def test_result_rows_round_trip(tmp_path):
    f = tmp_path/'r.csv'
    append_result({'protocol': 'x', 'method': 'student', 'overlap': 60, 'test_acc_best_val': 51.25, 'ncm_acc': None}, f)
    append_result({'protocol': 'x', 'method': 'refilled', 'overlap': 0, 'test_acc_best_val': 52.5, 'ncm_acc': 40.0}, f)
    rows = read_results(f)
    assert [r['method'] for r in rows] == ['student', 'refilled'] and rows[0]['ncm_acc'] is None and rows[1]['test_acc_best_val'] == 52.5
    assert next(csv.reader(open(f))) == RESULT_COLUMNS
    assert RESULT_COLUMNS[:14] == ['protocol', 'method', 'overlap', 'student', 'teacher', 'seed', 'epochs', 'best_val_epoch',
                                   'test_acc_best_val', 'test_acc_last', 'ncm_acc', 'wall_s', 'device', 'commit']


def test_cli_help_and_errors():
    r = subprocess.run([str(BIN/'refilled'), 'distill', '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and '--overlap' in r.stdout and '--lam' in r.stdout
    r = subprocess.run([str(BIN/'refilled'), 'distill', '--overlap', '50'], capture_output=True, text=True)
    assert r.returncode == 2 and "parameter 'overlap'" in r.stderr
    r = subprocess.run([str(BIN/'refilled'), 'trane-teacher'], capture_output=True, text=True)
    assert r.returncode == 2 and 'unknown command' in r.stderr


def test_papermill_notebook_refuses_an_unknown_parameter(tmp_path):
    import papermill as pm
    with pytest.raises(pm.PapermillExecutionError, match='lamda'):
        pm.execute_notebook(str(ROOT/'nbs'/'experiments'/'gkd_cifar.ipynb'), str(tmp_path/'out.ipynb'), parameters={'lamda': 2.0},
                            kernel_name='python3', progress_bar=False, cwd=str(ROOT/'nbs'/'experiments'))


def test_sweep_dry_run_and_validation(tmp_path):
    (tmp_path/'settings.ini').write_text('')
    (tmp_path/'ok.yaml').write_text('base: {teacher: wrn_16_1}\ngrids:\n  - {name: g, method: [student, refilled], overlap: [0, 60], seed: [0, 1]}\n')
    r = subprocess.run([str(BIN/'refilled'), 'sweep', str(tmp_path/'ok.yaml'), '--dry_run'], capture_output=True, text=True)
    assert r.returncode == 0 and '8 runs, 0 done, 8 to run' in r.stdout, r.stdout + r.stderr
    (tmp_path/'bad.yaml').write_text('grids:\n  - {name: g, method: [student], overlap: [50]}\n')
    r = subprocess.run([str(BIN/'refilled'), 'sweep', str(tmp_path/'bad.yaml'), '--dry_run'], capture_output=True, text=True)
    assert r.returncode == 2 and "grid 'g'" in r.stderr and "parameter 'overlap'" in r.stderr


def test_sweep_injects_every_parameter_so_template_defaults_never_leak(tmp_path):
    "A template whose parameters cell holds smoke-scale values gets the run's full parameter set, None values included."
    import json, nbformat
    from refilled.cli import sweep
    seen = tmp_path/'seen.json'
    nb = nbformat.v4.new_notebook(metadata={'kernelspec': {'name': 'python3', 'language': 'python', 'display_name': 'Python 3'},
                                            'language_info': {'name': 'python'}})
    params = nbformat.v4.new_code_cell("teacher_train_per_class = 20\ntrain_per_class = 20\nepochs = 2\nmax_impostors = 5")
    params.metadata['tags'] = ['parameters']
    keys = ('teacher_train_per_class', 'train_per_class', 'epochs', 'teacher_epochs', 'max_impostors', 'tag')
    nb.cells = [params, nbformat.v4.new_code_cell(
        f"import json\njson.dump({{k: v for k, v in dict(globals()).items() if k in {keys!r}}}, open({str(seen)!r}, 'w'))")]
    nbformat.write(nb, tmp_path/'probe.ipynb')
    (tmp_path/'settings.ini').write_text('')
    (tmp_path/'s.yaml').write_text("notebook: probe.ipynb\nresults_csv: null\nwork_dir: temp\noutput_dir: runs\n"
                                   "base: {teacher: wrn_16_1, teacher_epochs: 3, epochs: 30}\ngrids:\n  - {name: g, method: [student]}\n")
    done = sweep(str(tmp_path/'s.yaml'))
    assert len(done) == 1 and Path(done[0]).exists()
    assert json.loads(seen.read_text()) == {'teacher_train_per_class': None, 'train_per_class': None, 'epochs': 30,
                                            'teacher_epochs': 3, 'max_impostors': None, 'tag': 'g'}


@pytest.mark.needs_data('cifar100')
def test_distill_end_to_end_on_real_cifar(tmp_path):
    kw = dict(overlap=0, teacher='wrn_16_1', teacher_epochs=1, teacher_train_per_class=8, student='wrn_16_1', epochs=2, batch_size=32,
              train_per_class=8, val_per_class=4, deterministic=True, verbose=False, work_dir=str(tmp_path/'w'), results_csv=str(tmp_path/'r.csv'))
    a = distill(method='refilled', **kw)
    b = distill(method='student', **kw)
    assert a['init_hash'] == b['init_hash'] and a['teacher_hash'] == b['teacher_hash']
    assert a['stage_epochs'] == '1+2' and a['ncm_acc'] is not None and b['ncm_acc'] is None
    assert 0 <= a['test_acc_best_val'] <= 100 and a['device'].startswith('cpu')
    rows = read_results(tmp_path/'r.csv')
    assert [r['method'] for r in rows] == ['refilled', 'student'] and rows[0]['run_id'] == a['run_id']
    # the readouts and the teacher-target diagnostics (overlap 0: the teacher saw none of the student's classes)
    assert a['val_acc_lastq'] is not None and a['test_acc_last10'] is not None
    assert a['tau_teacher'] == 'calibrated' and isinstance(a['tau_value'], float) and a['tau_value'] > 0   # the default: fitted on validation
    assert 0 < a['cm_entropy_rel'] <= 1 and 0 < a['tgt_entropy_rel'] <= 1 and a['tgt_peak_ratio'] >= 1
    assert a['lam_seen'] is None and 0 < a['lam_unseen'] <= 2 * a['lam']
    assert b['cm_entropy_rel'] is None and b['tgt_entropy_rel'] is None and b['test_acc_last10'] is not None
    again = distill(method='refilled', **dict(kw, results_csv=None))       # every stage is found finished: same numbers
    assert {k: again[k] for k in ('test_acc_best_val', 'ncm_acc', 'best_val_epoch')} == {k: a[k] for k in ('test_acc_best_val', 'ncm_acc', 'best_val_epoch')}



@pytest.mark.needs_data('cifar100')
def test_commit_column_names_the_code_the_run_started_with(tmp_path, monkeypatch):
    "A commit made while a run trains (git_commit changes) is not credited with the run: the row keeps the commit read at its start."
    import refilled.experiments as E
    state = {'trained': False}
    real_fit = E.fit
    def fit(*a, **k): state['trained'] = True; return real_fit(*a, **k)
    monkeypatch.setattr(E, 'fit', fit)
    monkeypatch.setattr(E, 'git_commit', lambda: 'made-later' if state['trained'] else 'at-start')
    row = E.distill(method='student', overlap=0, teacher='wrn_16_1', teacher_epochs=1, teacher_train_per_class=4, epochs=1, batch_size=32,
                    train_per_class=4, val_per_class=2, verbose=False, work_dir=str(tmp_path/'w'), results_csv=str(tmp_path/'r.csv'))
    assert state['trained'] and row['commit'] == 'at-start' and read_results(tmp_path/'r.csv')[0]['commit'] == 'at-start'


def test_append_result_from_parallel_processes_loses_no_row(tmp_path):
    "Parallel sweep workers append to one results file: every row arrives once, under one header."
    f = tmp_path/'r.csv'
    src = ("import sys\nfrom refilled.experiments import append_result\n"
           "for i in range(12): append_result({'protocol': 'x', 'method': 'student', 'seed': int(sys.argv[1]) * 100 + i}, sys.argv[2])")
    procs = [subprocess.Popen([sys.executable, '-c', src, str(k), str(f)]) for k in range(3)]
    assert [p.wait() for p in procs] == [0, 0, 0]
    rows = read_results(f)
    assert sorted(r['seed'] for r in rows) == sorted(k * 100 + i for k in range(3) for i in range(12))
    assert f.read_text().count('protocol,method') == 1


def _probe_sweep(tmp_path, cell):
    import nbformat
    nb = nbformat.v4.new_notebook(metadata={'kernelspec': {'name': 'python3', 'language': 'python', 'display_name': 'Python 3'},
                                            'language_info': {'name': 'python'}})
    params = nbformat.v4.new_code_cell("seed = 0"); params.metadata['tags'] = ['parameters']
    nb.cells = [params, nbformat.v4.new_code_cell(cell)]
    nbformat.write(nb, tmp_path/'probe.ipynb')
    (tmp_path/'settings.ini').write_text('')
    (tmp_path/'s.yaml').write_text("notebook: probe.ipynb\nresults_csv: null\nwork_dir: temp\noutput_dir: runs\n"
                                   "base: {teacher: wrn_16_1}\ngrids:\n  - {name: g, method: [student], seed: [0, 1, 2, 3]}\n")
    return str(tmp_path/'s.yaml')


def test_sweep_workers_execute_runs_at_once(tmp_path):
    from refilled.cli import sweep
    # each run announces its start, then waits (up to 120 s) until three runs have started: only runs that execute at the
    # same time meet, whatever the machine's load (a fixed sleep raced the kernels' start-up on a busy CPU)
    f = _probe_sweep(tmp_path, f"import json, time, pathlib\nd = pathlib.Path(r'{tmp_path}'); (d/f'start{{seed}}').touch(); t0 = time.time()\n"
                               f"while len(list(d.glob('start*'))) < 3 and time.time() - t0 < 120: time.sleep(0.05)\n"
                               f"if seed == 3: raise RuntimeError('run 3 fails')\n"
                               f"json.dump(len(list(d.glob('start*'))), open(r'{tmp_path}/' + str(seed) + '.json', 'w'))")
    done = sweep(f, workers=3, keep_going=True)
    assert len(done) == 3 and all(Path(d).exists() for d in done)               # run 3 failed, the others finished
    assert [json.loads((tmp_path/f'{s}.json').read_text()) >= 3 for s in range(3)] == [True]*3   # all three ran at the same time
    with pytest.raises(Exception, match='run 3 fails'): sweep(f, workers=2)      # without keep_going a failure stops the sweep
    with pytest.raises(ParameterError, match='workers must be a positive integer'): sweep(f, workers=0)


def test_sweep_in_one_process_stops_at_a_failure_and_honours_max_runs(tmp_path, capsys):
    "workers=1 runs one after another: max_runs caps the executed runs, keep_going passes a failure, otherwise it stops the sweep."
    from refilled.cli import sweep
    f = _probe_sweep(tmp_path, f"if seed == 1: raise RuntimeError('run 1 fails')\n"
                               f"open(r'{tmp_path}/' + str(seed) + '.done', 'w').close()")
    ran = lambda: sorted(int(p.stem) for p in tmp_path.glob('*.done'))
    assert len(sweep(f, max_runs=1)) == 1 and ran() == [0]                       # only the first pending run
    with pytest.raises(Exception, match='run 1 fails'): sweep(f)
    assert ran() == [0]                                                          # runs 2 and 3 never started
    out = capsys.readouterr().out
    assert 'FAILED' in out and out.count('running ') == 3                       # 0 (max_runs), then 0 and 1
    done = sweep(f, keep_going=True)
    assert len(done) == 3 and ran() == [0, 2, 3]                                 # run 1 failed, the others finished
    assert sweep(f, max_runs=0) == []


def test_append_result_widens_an_older_file_and_refuses_a_foreign_one(tmp_path):
    "A results file of an older version (a prefix of today's columns) gets the new columns, empty; any other file is refused."
    f = tmp_path/'r.csv'
    old_cols = RESULT_COLUMNS[:-1]
    f.write_text(','.join(old_cols) + '\n' + ','.join('x' if c == 'protocol' else '7' if c == 'seed' else '' for c in old_cols) + '\n')
    append_result({'protocol': 'x', 'method': 'student', 'seed': 8, RESULT_COLUMNS[-1]: 100}, f)
    rows = read_results(f)
    assert next(csv.reader(open(f))) == RESULT_COLUMNS
    assert [r['seed'] for r in rows] == [7, 8] and rows[0][RESULT_COLUMNS[-1]] is None and rows[1][RESULT_COLUMNS[-1]] == 100
    g = tmp_path/'other.csv'; g.write_text('name,score\na,1\n')
    with pytest.raises(ValueError, match=r"not a prefix of \['protocol', 'method'"): append_result({'protocol': 'x'}, g)
    assert g.read_text() == 'name,score\na,1\n'                                 # untouched
    append_result({'name': 'b', 'score': 2, 'other': 3}, g, columns=['name', 'score'])  # a file of other columns, named
    assert read_results(g) == [{'name': 'a', 'score': 1}, {'name': 'b', 'score': 2}]


def _teacher_store_sweep(tmp_path, work_dir='work'):
    "A sweep file with a `teachers` folder holding one (fake) finished teacher training, and a probe notebook."
    _probe_sweep(tmp_path, "pass")
    store = tmp_path/'store'/'cifar100-wrn_16_1-0123456789abcdef'; store.mkdir(parents=True)
    for f in ('best.pt', 'last.pt', 'metrics.jsonl'): (store/f).write_text(f'committed {f}')
    (tmp_path/'t.yaml').write_text(f"notebook: probe.ipynb\nresults_csv: null\nwork_dir: {work_dir}\noutput_dir: runs\nteachers: store\n"
                                   "base: {teacher: wrn_16_1}\ngrids:\n  - {name: g, method: [student], seed: [0, 1]}\n")
    return str(tmp_path/'t.yaml'), store.name


def test_sweep_copies_committed_teachers_into_its_work_folder(tmp_path, capsys):
    from refilled.cli import sweep
    f, name = _teacher_store_sweep(tmp_path)
    dest = tmp_path/'work'/'teachers'/name
    assert sweep(f, dry_run=True) == [] and not dest.exists()                    # a dry run copies nothing ...
    assert f'would copy teacher {name} from store' in capsys.readouterr().out    # ... it names what it would copy
    assert sweep(f, max_runs=0) == [] and not dest.exists()                      # nothing to run: nothing copied
    assert len(sweep(f, max_runs=1)) == 1
    assert f'copied teacher {name} from store' in capsys.readouterr().out
    assert {p.name: p.read_text() for p in dest.iterdir()} == {g: f'committed {g}' for g in ('best.pt', 'last.pt', 'metrics.jsonl')}
    (dest/'last.pt').write_text('trained here')                                   # the work folder's own training wins
    assert len(sweep(f)) == 2 and 'copied teacher' not in capsys.readouterr().out
    assert (dest/'last.pt').read_text() == 'trained here'


def test_sweep_teachers_key_is_checked(tmp_path):
    from refilled.cli import load_sweep
    f, _ = _teacher_store_sweep(tmp_path, work_dir='temp')
    with pytest.raises(ParameterError, match="teachers needs a work_dir"): load_sweep(f)
    Path(f).write_text(Path(f).read_text().replace('teachers: store', 'teachers: nowhere').replace('work_dir: temp', 'work_dir: w'))
    with pytest.raises(FileNotFoundError, match='teachers: no folder at'): load_sweep(f)


@pytest.mark.needs_data('cifar100')
def test_a_copied_teacher_is_loaded_not_retrained(tmp_path, capsys):
    "A teacher training copied from a `teachers` folder is the teacher a run gets: the same weights, no epoch trained."
    import shutil
    from refilled.experiments import train_teacher
    from refilled.cli import load_sweep, seed_teachers
    kw = dict(teacher='wrn_16_1', teacher_epochs=1, teacher_train_per_class=8, deterministic=True, verbose=True)
    a = train_teacher(**kw, work_dir=str(tmp_path/'a'))
    assert 'loss=' in capsys.readouterr().out                                     # trained: one epoch line
    shutil.copytree(tmp_path/'a'/'teachers', tmp_path/'store')
    (tmp_path/'settings.ini').write_text('')
    (tmp_path/'s.yaml').write_text("teachers: store\nwork_dir: b\nbase: {teacher: wrn_16_1}\ngrids:\n  - {name: g, method: [student]}\n")
    assert seed_teachers(load_sweep(tmp_path/'s.yaml')[0]) == [Path(a['checkpoint']).parent.name]
    b = train_teacher(**kw, work_dir=str(tmp_path/'b'))
    out = capsys.readouterr().out
    assert b['hash'] == a['hash'] and b['test_acc'] == a['test_acc']
    assert 'resumed' in out and 'loss=' not in out                                # found finished: nothing trained


def test_protocol_rows_keep_their_run_ids():
    """Every committed row of the CPU protocol has the `run_id` of a run of its sweep file: the parameters added for foreign
    data and teachers leave the GKD preset's identities alone, so a sweep still finds its finished rows."""
    from refilled.cli import load_sweep
    _, runs = load_sweep(ROOT/'experiments'/'params'/'cpu_cifar.yaml')
    rows = [r for r in read_results(ROOT/'experiments'/'results'/'gkd_cifar.csv') if r['protocol'] == 'cpu_cifar']
    assert len(rows) >= 40
    assert [r['run_id'] for r in rows if r['run_id'] not in {x['run_id'] for x in runs}] == []
    _, runs = load_sweep(ROOT/'experiments'/'params'/'cpu_fidelity.yaml')   # every value it ran with is in the file, not a default
    rows = [r for r in read_results(ROOT/'experiments'/'results'/'gkd_fidelity.csv') if r['protocol'] == 'cpu_fidelity']
    assert len(rows) >= 23
    assert [r['run_id'] for r in rows if r['run_id'] not in {x['run_id'] for x in runs}] == []


def test_foreign_data_and_teacher_parameters(tmp_path):
    "The GKD preset refuses the foreign-task parameters; a foreign task needs a loadable teacher; kd needs a shared label space."
    for k, v in (('classes', '0-4'), ('size', 64), ('resize', 72), ('test_frac', 0.3)):
        with pytest.raises(ParameterError, match=f"parameter '{k}' describes `data`"): validate_params('distill', {k: v})
    with pytest.raises(ParameterError, match="needs `data`"): validate_params('distill', {'teacher': 'chenyaofo_cifar100_resnet56'})
    with pytest.raises(ParameterError, match="parameter 'teacher_ckpt'"): validate_params('distill', {'data': 'cifar100', 'teacher': 'resnet20'})
    with pytest.raises(ParameterError, match="parameter 'method'"):
        validate_params('distill', {'data': 'cifar100', 'teacher': 'chenyaofo_cifar10_resnet56', 'method': 'kd'})
    p = validate_params('distill', {'data': 'cifar100', 'teacher': 'chenyaofo_cifar100_resnet56', 'method': 'kd', 'classes': [3, 'bear']})
    assert p['classes'] == [3, 'bear']
    with pytest.raises(ParameterError, match="parameter 'teacher' names no torchvision model"):
        validate_params('distill', {'data': 'cifar100', 'teacher': 'torchvision:resnet9000', 'teacher_ckpt': 'x.pt'})


def _folder(root, classes=('ant', 'bee', 'cat'), n=(6, 3)):
    import numpy as np
    from PIL import Image
    for part, k in zip(('train', 'test'), n):
        for ci, c in enumerate(classes):
            (root/part/c).mkdir(parents=True, exist_ok=True)
            for j in range(k):
                img = np.random.default_rng([ci, j, part == 'test']).integers(0, 255, (20, 20, 3), dtype=np.uint8)
                img[..., ci % 3] = 255                               # a class colour the student can learn ...
                if ci >= 3: img[:5 * (ci // 3)] = 0                  # ... and past three classes, a dark band of its own
                Image.fromarray(img).save(root/part/c/f'{j}.png')
    return root


def test_distill_on_an_image_folder_with_a_checkpoint_teacher(tmp_path):
    "teacher × task × method on a user's folder: the row names the data and checkpoint, stages resume, the teacher converts its input."
    import torch
    from refilled.backbones import create_model
    data = _folder(tmp_path/'imgs')
    torch.manual_seed(0); torch.save({'state_dict': create_model('convnet4', 7).state_dict()}, tmp_path/'t.pth')
    kw = dict(data=f'imagefolder:{data}', size=16, resize=18, teacher='convnet4', teacher_ckpt=str(tmp_path/'t.pth'),
              teacher_size=24, student='convnet4', epochs=2, batch_size=6, val_per_class=1, work_dir=str(tmp_path/'w'),
              results_csv=str(tmp_path/'r.csv'), verbose=False, deterministic=True)
    row = distill(method='refilled', **kw)
    assert (row['data'], row['overlap'], row['teacher_ckpt'], row['teacher_test_acc']) == (kw['data'], None, kw['teacher_ckpt'], None)
    assert row['stage_epochs'] == '1+2' and 0 <= row['test_acc_best_val'] <= 100 and row['ncm_acc'] is not None
    again = distill(method='refilled', **kw)                                  # every stage is found finished
    assert again['test_acc_best_val'] == row['test_acc_best_val'] and again['stage_dirs'] == row['stage_dirs']
    assert [r['run_id'] for r in read_results(tmp_path/'r.csv')] == [row['run_id']] * 2
    assert row['run_id'] != distill(method='refilled', **dict(kw, teacher_size=16))['run_id']   # the teacher's input is part of the run


@pytest.mark.needs_data('cifar100', 'chenyaofo_cifar')
def test_public_teacher_on_its_own_classes_reports_its_accuracy(tmp_path):
    "A public CIFAR-100 teacher on a CIFAR-100 student task: its test accuracy over its own 100 classes is in the row."
    kw = dict(data='cifar100', classes='0-4', teacher='chenyaofo_cifar100_resnet20', student='resnet20', epochs=1, batch_size=50,
              train_per_class=10, val_per_class=5, work_dir=str(tmp_path), verbose=False)
    row = distill(method='student', **kw)
    assert 60 <= row['teacher_test_acc'] <= 100 and row['data'] == 'cifar100'
    with pytest.raises(ParameterError, match="'kd' matches logits class by class"):   # 5 of the teacher's 100 classes
        distill(method='kd', **kw)


def test_standard_kd_recipes_carry_the_published_weights():
    p = validate_params('distill', {'epochs': 96})
    (kd,) = METHODS['kd'](p)
    assert kd.kwargs == {'lam': 1.0, 'tau': 4.0}                           # kd_ce at its default stays out of the stage (and its identity)
    (kd,) = METHODS['kd'](dict(p, kd_ce=0.1, kd_lam=0.9))
    assert kd.kwargs == {'lam': 0.9, 'tau': 4.0, 'ce': 0.1}                  # RepDistiller: 0.1 CE + 0.9 KD
    (d,) = METHODS['dkd'](p)
    assert (d.distiller, d.epochs, d.kwargs) == ('dkd', 96, dict(alpha=1.0, beta=8.0, tau=4.0, warmup=20))
    assert METHODS['fitnet'](p)[0].kwargs == dict(beta=100.0, stage=1, kernel_size=3, relu=True)
    assert METHODS['at'](p)[0].kwargs == dict(beta=2000.0, n_stages=3)      # RepDistiller's 1000 on Σ mean(...)² is β/2 of the AT distiller
    assert METHODS['nst'](p)[0].kwargs == dict(beta=50.0, n_stages=3)
    (r,) = METHODS['rkd_joint'](p)
    assert (r.distiller, r.epochs, r.kwargs) == ('rkd', 96, dict(weight=1.0, ce=1.0))
    with pytest.raises(ParameterError, match="method 'dkd' matches logits class by class and needs overlap=100"):
        validate_params('distill', {'method': 'dkd', 'overlap': 60})


def test_the_schedule_shape_enters_the_identity_only_when_set():
    from refilled.experiments import _schedule_shape, _last_phase
    p = validate_params('distill', {'method': 'student'})
    q = validate_params('distill', {'method': 'student', 'lr_milestones': [0.25, 0.5, 0.75]})
    assert q['lr_milestones'] == '0.25,0.5,0.75' and run_id(p) == run_id(q) and _schedule_shape(q) == {}
    r = validate_params('distill', {'method': 'student', 'lr_milestones': '0.625, 0.75,0.875', 'lr_decay': 0.1, 'nesterov': False})
    assert r['lr_milestones'] == '0.625,0.75,0.875' and run_id(r) != run_id(p)
    assert _schedule_shape(r) == dict(milestones=(0.625, 0.75, 0.875), gamma=0.1, nesterov=False)
    assert _last_phase(96, 'step', (0.625, 0.75, 0.875)) == 12 and _last_phase(240, 'step', (0.625, 0.75, 0.875)) == 30


@pytest.mark.parametrize('name,grids', [('cpu_standard_kd', {'budget': 2, 'seed0': 7, 'tau': 2, 'seeds': 6, 'seeds_refilled': 2, 'tau_paper': 1}), ('repdistiller_cifar', {'all': 27})])
def test_standard_kd_protocols_validate(name, grids):
    "Every run of the standard-KD parameter files validates; the CPU one gives the student at least 15,000 SGD steps."
    from refilled.cli import load_sweep
    import yaml
    path = ROOT/'experiments'/'params'/f'{name}.yaml'
    _, runs = load_sweep(path)
    assert {g: sum(r['grid'] == g for r in runs) for g in grids} == grids and len(runs) == sum(grids.values())
    b = yaml.safe_load(path.read_text())['base']
    assert b['data'] == 'cifar100' and b['teacher'] == 'chenyaofo_cifar100_resnet56' and b['student'] == 'resnet20'
    if name == 'cpu_standard_kd':
        steps = -(-100*b['train_per_class'] // b['batch_size']) * b['epochs']
        assert steps >= 15_000, steps
        tau = [r['params'] for r in runs if r['grid'] == 'tau']   # the temperature choice: REFILLED, seed 0, numbers only
        assert {(p['method'], p['seed'], p['tau_teacher']) for p in tau} == {('refilled', 0, 2.0), ('refilled', 0, 1.0)}
        assert b['tau_teacher'] == 'calibrated'   # the seed-0 row's recipe, the third candidate
        late = [r['params'] for r in runs if r['grid'] == 'tau_paper']   # exploratory: the paper's standard-KD value
        assert [(p['method'], p['seed'], p['tau_teacher']) for p in late] == [('refilled', 0, 4.0)]


@pytest.mark.needs_data('cifar100')
def test_standard_kd_methods_train_end_to_end(tmp_path):
    "Each standard-KD recipe trains on the preset at 100 % overlap, with RepDistiller's schedule reaching `fit`."
    from refilled.train import load_checkpoint
    kw = dict(overlap=100, teacher='wrn_16_1', teacher_epochs=1, teacher_train_per_class=6, student='wrn_16_1', epochs=1, batch_size=32,
              train_per_class=6, val_per_class=3, lr_milestones='0.625,0.75,0.875', lr_decay=0.1, nesterov=False, kd_ce=0.1, kd_lam=0.9,
              dkd_warmup=1, deterministic=True, verbose=False, work_dir=str(tmp_path))
    rows = []
    for m in ('kd', 'dkd', 'fitnet', 'at', 'nst', 'rkd_joint'):
        row = distill(method=m, **kw); rows.append(row)
        assert row['method'] == m and 0 <= row['test_acc_best_val'] <= 100 and row['test_acc_last10'] is not None, row
        cfg = load_checkpoint(Path(row['stage_dirs'][-1])/'last.pt')['config']
        assert (cfg['distiller'], cfg['milestones'], cfg['gamma'], cfg['nesterov']) == (
            {'rkd_joint': 'rkd'}.get(m, m), [0.625, 0.75, 0.875], 0.1, False), cfg
    # the teacher's accuracies and the untrained student's NCM accuracy were measured once for the six runs (`measured_once`)
    assert len({(r['teacher_test_acc'], r['ncm_acc_init']) for r in rows}) == 1, rows
    assert len(list((tmp_path/'measured').glob('*.json'))) == 2


def test_a_kernel_that_never_started_is_started_again(tmp_path, monkeypatch):
    "Kernels started at once can race for a port; the sweep starts another (twice at most); any other error stops the run."
    import papermill
    from refilled import cli
    calls = []
    def flaky(nb, out, **kw):
        calls.append(out)
        if len(calls) == 1: raise RuntimeError('Kernel died before replying to kernel_info')
        Path(out).write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    monkeypatch.setattr(papermill, 'execute_notebook', flaky)
    cli._execute_run('t.ipynb', str(tmp_path/'o.ipynb'), {}, 'python3', str(tmp_path))
    assert len(calls) == 2
    def broken(nb, out, **kw): calls.append(out); raise RuntimeError('something else')
    monkeypatch.setattr(papermill, 'execute_notebook', broken)
    with pytest.raises(RuntimeError, match='something else'): cli._execute_run('t.ipynb', str(tmp_path/'o.ipynb'), {}, 'python3', str(tmp_path))
    assert len(calls) == 3


def test_the_gkd_preset_on_an_image_folder(tmp_path):
    """The preset on a user's folder: it trains the teacher on the first half of the classes (its own folder, key and
    normalisation), the student sees the overlap's share of them, a second run finds both finished; incremental
    learning scores the teacher's classes on their own test images."""
    from refilled.incremental import incremental
    data = _folder(tmp_path/'imgs', classes=tuple('abcdefgh'), n=(5, 2))
    kw = dict(dataset=f'imagefolder:{data}', size=16, resize=18, teacher='convnet4', teacher_epochs=1, teacher_val_frac=0.2, student='convnet4', epochs=2,
              batch_size=8, val_per_class=1, work_dir=str(tmp_path/'w'), verbose=False, deterministic=True)
    with pytest.raises(ParameterError, match="'cifar-fs' is CIFAR-100's order"): validate_params('distill', dict(kw, order='cifar-fs'))
    with pytest.raises(ParameterError, match="parameter 'classes' describes `data`"): validate_params('distill', dict(kw, classes='0-3'))
    row = distill(method='refilled', overlap=50, **kw)
    assert (row['data'], row['overlap'], row['stage_epochs']) == (kw['dataset'], 50, '1+2') and row['teacher_test_acc'] is not None
    (tdir,) = (tmp_path/'w'/'teachers').iterdir()
    assert tdir.name.startswith('imagefolder-imgs-convnet4-')
    p = validate_params('distill', dict(kw, overlap=50))
    assert p['order'] == 'natural'
    task = student_task(p, tmp_path/'w')
    assert task.classes.tolist() == [2, 3, 4, 5] and task.seen.tolist() == [True, True, False, False] and task.size == 16
    assert distill(method='refilled', overlap=50, **kw)['stage_dirs'] == row['stage_dirs']          # both stages found finished
    assert distill(method='student', overlap=50, **dict(kw, size=18, resize=20))['run_id'] != distill(method='student', overlap=50, **kw)['run_id']
    with pytest.raises(InputError, match='k/4 for k = 0..4'): distill(method='student', overlap=60, **kw)
    r = incremental('teacher_lr', lr_Cs='1.0', **kw, overlap=0)
    assert (r['n_old_images'], r['n_new_images']) == (8, 8) and 0 <= r['hm'] <= 100                  # 2 test images x 4 classes each side

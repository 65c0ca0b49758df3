"The GPU-lease tools of the incremental table: the lossless image coding that lets two seeds' images travel, and the job plan."
import importlib.util
from pathlib import Path
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT/'benchmarks'/f'{name}.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod); return mod

@pytest.mark.parametrize('shape', [(5, 32, 32, 3), (3, 7, 9, 1), (1, 1, 1, 3)])
def test_delta_coding_is_lossless(shape):
    "Every uint8 image comes back bit for bit, including the wrap-around values 0 and 255, and the coded form is not the image."
    codec = _load('unpack_gpu_data')
    x = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    x[0, 0, 0] = 255; x[-1, -1, -1] = 0
    d = codec.delta_encode(x)
    assert d.dtype == np.uint8 and d.shape == (shape[0], shape[3], shape[1], shape[2])
    assert np.array_equal(codec.delta_decode(d), x)
    if x.size > 3: assert not np.array_equal(d.transpose(0, 2, 3, 1), x)

def test_delta_coding_shrinks_smooth_images():
    "A smooth gradient codes to nearly constant differences (what makes real photographs compress better)."
    codec = _load('unpack_gpu_data')
    g = (np.arange(32)[None, :, None, None] * 3 + np.arange(32)[None, None, :, None] * 2 + np.array([0, 10, 20])).astype(np.uint8)
    d = codec.delta_encode(np.repeat(g, 2, axis=0))
    assert len(np.unique(d[:, :, 1:, 1:])) == 1 and np.array_equal(codec.delta_decode(d), np.repeat(g, 2, axis=0))

def test_job_plan_skips_done_rows_and_orders_the_shared_stage_first(tmp_path):
    "Rows already in the results file are skipped; the teacher's job comes first and every job waits for it; each REFILLED variant waits for its student's and seed's first-stage job, which starts before it."
    import yaml
    ri = _load('run_incremental')
    meta = yaml.safe_load((ROOT/'experiments'/'params'/'gpu_incremental.yaml').read_text())
    meta['seeds'] = [0, 7]
    csv = tmp_path/'r.csv'
    csv.write_text('protocol,tag,method,student,teacher,seed\ngpu_incremental,,ewc,wrn_16_2,wrn_16_2,7\n'
                   'other_protocol,,ewc,wrn_16_2,wrn_16_2,0\n')
    todo = ri.jobs(meta, csv, tmp_path)
    keys = [j[0] for j in todo]
    rows = [j for j in todo if j[1] == 'row']
    assert len(rows) == 2 * (3 + 6 * 2) - 1 and 'ewc-wrn_16_2-s7' not in keys and 'ewc-wrn_16_2-s0' in keys
    assert len(set(keys)) == len(keys) and [j[0] for j in todo if j[1] == 'stage1'] == ['stage1-wrn_16_2-s0', 'stage1-wrn_16_1-s0', 'stage1-wrn_16_2-s7', 'stage1-wrn_16_1-s7']
    assert keys[0] == 'teacher' and todo[0][1] == 'teacher' and todo[0][4] is None   # trained (or loaded) once, alone, first
    for key, kind, kw, log, dep in todo[1:]:
        if kw['method'] in ri.SHARED_STAGE1 and kind == 'row': assert dep == f"stage1-{kw['student']}-s{kw['seed']}" and keys.index(dep) < keys.index(key)
        else: assert dep == 'teacher'
    assert max(i for i, j in enumerate(todo) if j[2]['seed'] == 0) < min(i for i, j in enumerate(todo) if j[2]['seed'] == 7)
    assert all(j[2]['protocol'] == 'gpu_incremental' and j[2]['results_csv'] == str(csv) for j in todo)

def test_students_option_runs_some_of_the_files_students(tmp_path):
    "`--students` keeps the student methods to the students named (the teacher-network methods run regardless); a student not in the file is refused by name."
    import subprocess, sys
    cmd = [sys.executable, str(ROOT/'benchmarks'/'run_incremental.py'), str(ROOT/'experiments'/'params'/'cub_incremental.yaml'),
           '--seeds', '0', '--results', str(tmp_path/'r.csv'), '--logs', str(tmp_path/'logs'), '--dry-run']
    out = subprocess.run(cmd + ['--students', 'mobilenet_v1_025'], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    listed = [l.split()[0] for l in out.splitlines() if l.startswith('  ')]
    assert listed[0] == 'teacher' and '9 rows to run in 11 jobs' in out
    assert {k.split('-')[1] for k in listed if k.count('-') == 2 and not k.startswith('stage1')} == {'mobilenet_v1', 'mobilenet_v1_025'}
    assert {k for k in listed if '-mobilenet_v1-' in k} == {f'{m}-mobilenet_v1-s0' for m in ('teacher_lr', 'teacher_ft', 'ewc')}
    bad = subprocess.run(cmd + ['--students', 'wrn_16_1'], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode != 0 and "--students ['wrn_16_1']" in bad.stderr and 'mobilenet_v1_075' in bad.stderr

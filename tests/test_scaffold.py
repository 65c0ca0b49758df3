"The nbdev scaffold: settings, the one _quarto.yml, README/index agreement, tags surviving nbdev_clean."
import configparser, json, re, shutil, subprocess, sys
from pathlib import Path
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _cfg():
    c = configparser.ConfigParser(delimiters=['=']); c.read(ROOT/'settings.ini'); return c['DEFAULT']


def test_settings():
    c = _cfg()
    assert c['lib_name'] == 'refilled'
    assert c['tst_flags'].split() == ['notest', 'slow', 'gpu']      # space separated, notest kept
    assert c['allowed_cell_metadata_keys'] == 'tags'                # papermill's `parameters` survives nbdev_clean
    assert c['readme_nb'] == 'index.ipynb' and c.getboolean('recursive')
    assert not c.getboolean('update_pyproject')
    reqs = c['requirements'].split()
    torch_req = next(r for r in reqs if r.startswith('torch') and not r.startswith('torchvision'))
    assert '>=' in torch_req and '==' not in torch_req                 # GPU machines keep their torch 2.11
    assert not (ROOT/'pyproject.toml').exists()


def test_one_quarto_yml():
    link = ROOT/'nbs'/'_quarto.yml'
    assert link.is_symlink() and link.resolve() == (ROOT/'_quarto.yml').resolve()


def _shell_blocks(md: str):
    return [b.strip() for b in re.findall(r'```(?:sh|bash|shell)\n(.*?)```', md, re.S)]


def test_readme_and_index_agree_on_commands():
    index = '\n\n'.join(c.source for c in nbformat.read(ROOT/'nbs'/'index.ipynb', as_version=4).cells
                        if c.cell_type == 'markdown')
    readme = (ROOT/'README.md').read_text(encoding='utf-8')
    cmds = _shell_blocks(index)
    assert any('make test' in b for b in cmds) and any('make demo' in b for b in cmds), cmds
    assert _shell_blocks(readme) == cmds


def test_readme_regenerates_from_index():
    r = subprocess.run([sys.executable, 'tools/docs.py', 'readme', '--check'], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_parameters_tag_survives_nbdev_clean(tmp_path):
    nb = nbformat.v4.new_notebook()
    c = nbformat.v4.new_code_cell('epochs = 1', execution_count=3)
    c.metadata = {'tags': ['parameters'], 'papermill': {'duration': 0.1}}
    nb.cells.append(c)
    f = tmp_path/'exp.ipynb'; nbformat.write(nb, f)
    r = subprocess.run([str(BIN/'nbdev_clean'), '--fname', str(f)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cell = json.loads(f.read_text())['cells'][0]
    assert cell['execution_count'] is None               # the clean did run
    assert cell['metadata'] == {'tags': ['parameters']}  # ...and kept the tag, dropping the rest


def test_committed_notebooks_have_titles():
    for f in sorted((ROOT/'nbs').rglob('*.ipynb')):
        if any(p.startswith(('_', '.')) for p in f.relative_to(ROOT/'nbs').parts): continue
        first = nbformat.read(f, as_version=4).cells[0]
        assert first.cell_type == 'markdown' and first.source.startswith('# '), f
        assert '\n> ' in first.source, f'{f}: needs a `> subtitle` line'


def test_no_cell_mixes_imports_with_other_code():
    "nbdev's docs build executes every cell that imports something; such a cell must hold imports only."
    import ast
    bad = []
    for f in sorted((ROOT/'nbs').rglob('*.ipynb')):
        for i, c in enumerate(nbformat.read(f, as_version=4).cells):
            if c.cell_type != 'code' or 'nbdev_export(' in c.source: continue   # nbdev's own idiom, skipped by its processors
            src = '\n'.join(l for l in c.source.splitlines() if not l.lstrip().startswith(('%', '!')))
            try: body = ast.parse(src).body
            except SyntaxError: continue
            kinds = {isinstance(s, (ast.Import, ast.ImportFrom)) for s in body}
            if kinds == {True, False}: bad.append(f'{f.relative_to(ROOT)} cell {i}')
    assert not bad, bad


# The package's one-way flow: a module imports only modules listed before it (a function-level import included).
LAYERS = ['core', 'data', 'tasks', 'backbones', 'teachers', 'tuples', 'losses', 'distillers', 'train', 'eval', 'experiments', 'fewshot', 'incremental', 'cli']


def test_modules_import_only_the_layers_below_them():
    import ast
    pkg = Path(__file__).resolve().parents[1]/'refilled'
    mods = sorted(p.stem for p in pkg.glob('*.py') if not p.stem.startswith('_'))
    assert sorted(LAYERS) == mods, f"place every module in LAYERS: {sorted(set(mods) ^ set(LAYERS))}"
    bad = []
    for m in LAYERS:
        for node in ast.walk(ast.parse((pkg/f'{m}.py').read_text())):
            if isinstance(node, ast.ImportFrom):
                name = node.module or ''
                dep = name.split('.')[1] if name.startswith('refilled.') else name if node.level else None
            elif isinstance(node, ast.Import): dep = next((a.name.split('.')[1] for a in node.names if a.name.startswith('refilled.')), None)
            else: continue
            if dep and dep in LAYERS and LAYERS.index(dep) >= LAYERS.index(m): bad.append(f'{m} imports {dep}')
    assert bad == []


def test_make_test_keeps_a_notebook_and_a_shared_fixture_on_one_worker(tmp_path):
    """`make test` runs on pytest-xdist workers (`--dist loadgroup`). A notebook's cells (each needs the one before it)
    and the tests that share a module fixture stay on one worker; any other test is scheduled alone. With grouping lost
    (pytest-xdist#1386) the notebook's cells are spread over the workers and fail."""
    import nbformat, shutil, subprocess, sys
    shutil.copy(ROOT/'tests'/'conftest.py', tmp_path/'conftest.py')
    cells = [nbformat.v4.new_code_cell('x = 0')] + [nbformat.v4.new_code_cell(f'assert x == {i}; x += 1') for i in range(7)]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), tmp_path/'chain.ipynb')
    (tmp_path/'test_shared.py').write_text(
        "import os, pytest\n"
        "@pytest.fixture(scope='module')\n"
        "def built():\n"
        "    with open('builds.txt', 'a') as f: f.write(os.environ['PYTEST_XDIST_WORKER'] + '\\n')\n"
        "@pytest.mark.parametrize('i', range(8))\n"
        "def test_shared(built, i): pass\n"
        "@pytest.mark.parametrize('i', range(8))\n"
        "def test_alone(i): pass\n")
    r = subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', '-v', '-n', '2', '--dist', 'loadgroup',
                        '--nbval', '--nbval-current-env', '--rootdir', str(tmp_path), '-c', '/dev/null', str(tmp_path)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and '24 passed' in r.stdout.splitlines()[-1], r.stdout[-3000:] + r.stderr[-2000:]
    assert (tmp_path/'builds.txt').read_text().count('\n') == 1          # the module fixture was built once
    done = [l.split()[-1] for l in r.stdout.splitlines() if ' PASSED ' in l]
    assert sum(n.endswith('@notebook:chain.ipynb') for n in done) == 8 and sum(n.endswith('@module:test_shared.py') for n in done) == 8, done
    assert sum('test_alone[' in n and '@' not in n for n in done) == 8, done

"""One pytest item per notebook in nbs/: each is executed by nbdev's own runner.

Cells flagged with any of settings.ini's `tst_flags` (`notest slow gpu`) are skipped, exactly as `nbdev_test` does;
every other cell, with its assertions, must run without error.

Missing data sets never fail a notebook. A cell that reads one carries `#| needs_<name>` (`needs_cifar100`,
`needs_miniimagenet`, `needs_cub`, `needs_dogs`: the keys of `refilled.core.DATASETS`); a notebook that needs one as a
whole says so in its title cell's frontmatter list, `- needs: cifar100` (or `- needs: [cifar100, cub]`). When a data set
is missing under `data_root()`, its cells are skipped, every other cell still runs (and can fail), and the item is
then reported as skipped with the one-line reason and the number of cells skipped; a notebook that needs it as a whole
is skipped without running.
"""
from pathlib import Path
import pytest
from nbdev.config import get_config
from nbdev.doclinks import nbglob
from nbdev.frontmatter import FrontmatterProc
from nbdev.process import NBProcessor
from nbdev.test import test_nb as run_notebook  # renamed so pytest does not collect nbdev's function itself
from refilled.core import DATASETS, missing_data_reason

ROOT = Path(__file__).resolve().parents[1]
CFG = get_config(path=ROOT)
# a template with a verification record is executed through its record by nbval (tests/test_records.py checks that
# the record holds the template's current code), not a second time here
from test_records import TEMPLATE_OF
NOTEBOOKS = sorted(Path(p) for p in nbglob(CFG.nbs_path) if Path(p).resolve() not in {t.resolve() for t in TEMPLATE_OF.values()})
FLAG = 'needs_'   # `#| needs_<data set>`


def data_needs(nb:Path)->tuple[list, dict]:
    "The data sets `nb` needs as a whole (frontmatter `needs`) and, per `needs_<name>` flag, its code cells' indices."
    proc = NBProcessor(nb, procs=FrontmatterProc, process=True).nb
    whole = getattr(proc, 'frontmatter_', {}).get('needs') or []
    whole = [whole] if isinstance(whole, str) else list(whole)
    cells = {}
    for c in proc.cells:
        if c.cell_type != 'code': continue
        for d in (getattr(c, 'directives_', None) or {}):
            if d.startswith(FLAG): cells.setdefault(d, []).append(c)
    unknown = sorted({str(n) for n in whole} - set(DATASETS)) + sorted(f for f in cells if f[len(FLAG):] not in DATASETS)
    if unknown: raise ValueError(f"{nb.name}: unknown data set(s) {unknown}; known: {', '.join(DATASETS)}")
    return whole, cells


def test_every_notebook_is_collected():
    "nbglob must see the notebooks (guards against an empty parametrisation passing silently)."
    assert any(p.name == '00_core.ipynb' for p in NOTEBOOKS), NOTEBOOKS


def test_data_flags_are_known():
    "Every `needs_*` flag and frontmatter `needs` names a data set of the registry (a typo would never skip)."
    for nb in NOTEBOOKS: data_needs(nb)


@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[str(p.relative_to(CFG.nbs_path)) for p in NOTEBOOKS])
def test_notebook(nb):
    whole, cells = data_needs(nb)
    name = nb.relative_to(CFG.nbs_path).as_posix()
    if reasons := [r for r in map(missing_data_reason, whole) if r]:
        pytest.skip(f"{name}: {'; '.join(reasons)} [whole notebook skipped]")
    tst_flags = CFG.tst_flags.split()
    missing = {f: missing_data_reason(f[len(FLAG):]) for f in cells}
    missing = {f: r for f, r in missing.items() if r}
    ok, secs = run_notebook(nb, skip_flags=tst_flags + list(missing), basepath=CFG.config_path)
    assert ok, f'{nb.relative_to(ROOT)} failed (traceback above, in captured stderr)'
    # the cells skipped only for want of data (a cell with a tst_flag is skipped anyway), each counted once
    skipped, reasons = set(), []
    for f, r in missing.items():
        mine = {id(c) for c in cells[f] if not set(tst_flags) & set(c.directives_)}
        if mine: skipped |= mine; reasons.append(r)
    if skipped: pytest.skip(f"{name}: {'; '.join(reasons)} [{len(skipped)} cell(s) skipped]")

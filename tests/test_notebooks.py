"""One pytest item per notebook in nbs/: each is executed by nbdev's own runner.

Cells flagged with any of settings.ini's `tst_flags` (`notest slow gpu`) are skipped, exactly as `nbdev_test` does;
every other cell, with its assertions, must run without error.
"""
from pathlib import Path
import pytest
from nbdev.config import get_config
from nbdev.doclinks import nbglob
from nbdev.test import test_nb as run_notebook  # renamed so pytest does not collect nbdev's function itself

ROOT = Path(__file__).resolve().parents[1]
CFG = get_config(path=ROOT)
NOTEBOOKS = sorted(Path(p) for p in nbglob(CFG.nbs_path))


def test_every_notebook_is_collected():
    "nbglob must see the notebooks (guards against an empty parametrisation passing silently)."
    assert any(p.name == '00_core.ipynb' for p in NOTEBOOKS), NOTEBOOKS


@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[str(p.relative_to(CFG.nbs_path)) for p in NOTEBOOKS])
def test_notebook(nb):
    ok, secs = run_notebook(nb, skip_flags=CFG.tst_flags.split(), basepath=CFG.config_path)
    assert ok, f'{nb.relative_to(ROOT)} failed (traceback above, in captured stderr)'

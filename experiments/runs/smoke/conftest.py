"""nbval re-executes the run records in this folder (`make test`); a record that reads a data set missing under
`refilled.core.data_root()` is skipped, every cell of it, with `missing_data_reason`'s one line.

A record declares the data sets it reads (names are keys of `refilled.core.DATASETS`) in either of two ways:

* its `dataset` parameter, in its `parameters` or papermill's `injected-parameters` cell (the last assignment wins,
  as when the record ran; its `data_dir` parameter, when set, is where that data set is looked for). Every record of
  a sweep over `nbs/experiments/gkd_cifar.ipynb` has it;
* the `needs` entry of its title cell's frontmatter list (`- needs: cifar100`), the convention of the notebooks in
  `nbs/`. A record without one takes its template's: the notebook of the same name in `nbs/experiments/` or `nbs/tutorials/`
  (`tools/record.py` keeps the name), so declaring it in the template covers records made before the declaration.

A record with numbers from training that tests/test_records.py re-executes on another CPU code path in the same session
is left out of the own-path run here (pytest counts its cells as deselected); run alone, it runs here as any record.
"""
import ast
from pathlib import Path
import nbformat
import pytest
from nbdev.frontmatter import FrontmatterProc
from nbdev.process import NBProcessor
from refilled.core import DATASETS, missing_data_reason

HERE = Path(__file__).resolve().parent
TEMPLATE_DIRS = [HERE.parents[2]/'nbs'/'experiments', HERE.parents[2]/'nbs'/'tutorials']


def frontmatter_needs(nb:Path)->list:
    "The data sets named by `nb`'s frontmatter `needs` (a name or a list)."
    if not nb.is_file(): return []
    needs = getattr(NBProcessor(nb, procs=FrontmatterProc, process=True).nb, 'frontmatter_', {}).get('needs') or []
    return [needs] if isinstance(needs, str) else list(needs)


def parameters(nb:Path)->dict:
    "The constant parameters assigned in `nb`'s `parameters` and `injected-parameters` cells, in execution order."
    out = {}
    for c in nbformat.read(nb, as_version=4).cells:
        if c.cell_type != 'code' or not {'parameters', 'injected-parameters'} & set(c.metadata.get('tags', [])): continue
        for node in ast.parse(c.source).body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for t in node.targets:
                    if isinstance(t, ast.Name): out[t.id] = node.value.value
    return out


def record_needs(nb:Path)->dict:
    "Data set -> data folder (None: `data_root()`) for every data set the record `nb` reads."
    p = parameters(nb)
    from_template = next((f for f in (frontmatter_needs(d/nb.name) for d in TEMPLATE_DIRS) if f), [])
    needs = {n: None for n in (frontmatter_needs(nb) or from_template)}
    if p.get('dataset'): needs[p['dataset']] = p.get('data_dir')
    unknown = sorted(set(needs) - set(DATASETS))
    if unknown: raise pytest.UsageError(f"{nb}: unknown data set(s) {unknown}; known: {', '.join(DATASETS)}")
    return needs


# tests/test_records.py re-executes each record with numbers from training under another CPU code path (this test, one
# item per record); a record that this session re-executes there is left out of its own-path run here (see there why).
OTHER_PATH_TEST = 'test_a_record_passes_on_another_cpu_code_path'


def runs_elsewhere(items)->set:
    "The records that an item of `OTHER_PATH_TEST` among `items` will re-execute (one not marked to be skipped)."
    return {Path(i.callspec.params['path']).resolve() for i in items
            if getattr(i, 'originalname', None) == OTHER_PATH_TEST and not i.get_closest_marker('skip')}


@pytest.hookimpl(trylast=True)   # after `-k`/`-m` selection and tests/conftest.py's data skips
def pytest_collection_modifyitems(config, items):
    reasons, elsewhere = {}, runs_elsewhere(items)
    for item in items:
        path = Path(str(item.path)).resolve()
        if path.suffix != '.ipynb' or path.parent != HERE: continue
        if path not in reasons:
            reasons[path] = '; '.join(r for n, root in record_needs(path).items() if (r := missing_data_reason(n, root)))
        if reasons[path]: item.add_marker(pytest.mark.skip(reason=reasons[path]))
    once = [i for i in items if Path(str(i.path)).resolve() in elsewhere]
    if once:
        config.hook.pytest_deselected(items=once)
        items[:] = [i for i in items if Path(str(i.path)).resolve() not in elsewhere]

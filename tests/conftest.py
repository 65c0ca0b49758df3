"""Shared pytest fixtures for the refilled test-suite.

Tests that read a data set never fail for want of it: they skip with `refilled.core.missing_data_reason`'s one line.
A test marks the data sets it reads with `@pytest.mark.needs_data('cifar100', ...)` (names are keys of
`refilled.core.DATASETS`); the `cifar` and `mini` fixtures below skip the tests that use them by themselves.
"""
from pathlib import Path
import pytest
from refilled.core import DATASETS, DATA_HELP, data_root, missing_data_reason

ROOT = Path(__file__).resolve().parents[1]


def data_skip_reason(*names:str)->str:
    "The one-line reasons, joined by '; ', of the data sets among `names` missing under `data_root()`; '' if none is."
    return '; '.join(r for r in map(missing_data_reason, names) if r)


def skip_without_data(*names:str):
    "Skip the running test (or fixture) unless every data set in `names` is under `data_root()`."
    if r := data_skip_reason(*names): pytest.skip(r)


def pytest_configure(config):
    config.addinivalue_line('markers', f"needs_data(*names): the test reads these data sets ({', '.join(DATASETS)}); "
                                       "skipped, with the reason, when one is missing under data_root()")


def xdist_group(item)->str|None:
    """What must run in one worker process when `make test` runs the session on several (pytest-xdist, `--dist
    loadgroup`): the cells of one notebook (nbval executes them in order in one kernel), and the tests of a module that
    share a module- or class-scoped fixture (built once, e.g. the docs site). Any other test goes to whichever worker
    is free."""
    if item.path.suffix == '.ipynb': return f'notebook:{item.path.name}'
    defs = getattr(getattr(item, '_fixtureinfo', None), 'name2fixturedefs', {})
    if any(d[-1].scope in ('module', 'class') for d in defs.values()): return f'module:{item.path.name}'
    return None


def set_xdist_group(item, group:str):
    """Put `item` in `group`. pytest-xdist passes the group to its scheduler as an `@group` suffix of the node id, which
    it writes to `item._nodeid`; pytest 9.2 keeps the id elsewhere, so that write is lost and every test is scheduled
    alone (pytest-xdist#1386, silently: a notebook's cells would be spread over workers). Where pytest keeps the id in
    `item._id`, the suffix is written there; elsewhere pytest-xdist's own hook writes it, after this one."""
    item.add_marker(pytest.mark.xdist_group(group))
    if hasattr(item, '_id'):
        from _pytest.nodeid import coerce_node_id
        item._id = coerce_node_id(f'{item.nodeid}@{group}')


# The slowest tests of `make test` (its --durations list: each 1-5 minutes on 2 cores). Workers take tests in collection
# order, so in a parallel session these go first: the session then ends on short tests, not waiting on a long one.
SLOWEST_FIRST = ('test_a_record_passes_on_another_cpu_code_path', 'test_kill_and_resume_matches_uninterrupted_run',
                 'test_standard_kd_methods_train_end_to_end', 'test_distill_end_to_end_on_real_cifar', 'test_notebook')


@pytest.hookimpl(tryfirst=True)   # before pytest-xdist's worker reads the groups (and before the smoke records' deselection)
def pytest_collection_modifyitems(config, items):
    grouped = getattr(config.option, 'loadgroup', False)   # set in each xdist worker of a `--dist loadgroup` session
    if grouped: items.sort(key=lambda i: getattr(i, 'originalname', None) not in SLOWEST_FIRST)   # stable: groups keep their order
    for item in items:
        if grouped and (g := xdist_group(item)): set_xdist_group(item, g)
        names = [n for m in item.iter_markers('needs_data') for n in m.args]
        if not names: continue
        if not all(n in DATASETS for n in names):
            raise pytest.UsageError(f"{item.nodeid}: needs_data{tuple(names)}: known data sets are {', '.join(DATASETS)}")
        if r := data_skip_reason(*names): item.add_marker(pytest.mark.skip(reason=r))


@pytest.fixture(scope='session')
def root() -> Path:
    "The repository root (where settings.ini lives)."
    return ROOT


@pytest.fixture(scope='session')
def cifar():
    "All of CIFAR-100 (`load_cifar100()` under `data_root()`); skips the test when it is missing."
    skip_without_data('cifar100')
    from refilled.data import load_cifar100
    return load_cifar100()


@pytest.fixture(scope='session')
def mini():
    "The project's MiniImageNet subset (the npz, decoded); skips the test when MiniImageNet is missing."
    skip_without_data('miniimagenet')
    npz = data_root()/'miniimagenet_subset'/'miniimagenet_subset.npz'
    if not npz.is_file(): pytest.skip(f"MiniImageNet subset not found at {npz} (only a folder layout is there): {DATA_HELP}")
    from refilled.data import load_miniimagenet
    return load_miniimagenet(source='npz')

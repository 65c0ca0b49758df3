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


def pytest_collection_modifyitems(config, items):
    for item in items:
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

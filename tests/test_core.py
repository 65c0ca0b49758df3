"Unit tests of refilled.core against the exported package (the notebook asserts the same from the inside)."
import os, random
from pathlib import Path
import numpy as np
import pytest
import torch
from refilled.core import seed_everything, default_device, data_root, DATASETS, data_available, missing_data_reason


def _draw():
    return random.random(), float(np.random.rand()), torch.rand(3).tolist()


def test_seed_everything_reproduces_all_generators():
    seed_everything(123); a = _draw()
    seed_everything(123); b = _draw()
    seed_everything(124); c = _draw()
    assert a == b and a != c


@pytest.mark.parametrize('bad,err', [(-1, ValueError), (2**32, ValueError), (1.0, TypeError), ('3', TypeError), (True, TypeError)])
def test_seed_everything_rejects_bad_seeds(bad, err):
    with pytest.raises(err, match='seed'):
        seed_everything(bad)


def test_deterministic_switch():
    try:
        seed_everything(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        seed_everything(0)
    assert not torch.are_deterministic_algorithms_enabled()


def test_default_device():
    assert default_device().type == ('cuda' if torch.cuda.is_available() else 'cpu')


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv('REFILLED_DATA', raising=False)
    assert data_root() == (Path.home()/'.cache'/'refilled').resolve()
    monkeypatch.setenv('REFILLED_DATA', str(tmp_path/'env'))
    assert data_root() == (tmp_path/'env').resolve()
    assert data_root(tmp_path/'explicit') == (tmp_path/'explicit').resolve()
    monkeypatch.setenv('REFILLED_DATA', '')
    assert data_root() == (Path.home()/'.cache'/'refilled').resolve()


def test_missing_data_reason_names_the_data_set_and_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv('REFILLED_DATA', str(tmp_path)); monkeypatch.setenv('REFILLED_TEACHERS', str(tmp_path))
    assert [data_available(n) for n in DATASETS] == [False] * len(DATASETS)
    assert missing_data_reason('cifar100') == (f"CIFAR-100 not found under $REFILLED_DATA={tmp_path.resolve()} "
                                               "(cifar100/cifar100.npz or cifar-100-python/): see README, Data")
    assert missing_data_reason('cub', tmp_path/'x').startswith(f"CUB-200-2011 not found under {(tmp_path/'x').resolve()} (")
    monkeypatch.delenv('REFILLED_DATA')
    assert f"{data_root()} ($REFILLED_DATA not set)" in missing_data_reason('dogs', '') or data_available('dogs')
    for n in DATASETS:
        r = missing_data_reason(n, tmp_path)
        assert r.startswith(DATASETS[n].title + ' not found') and '\n' not in r
    (tmp_path/'miniimagenet_subset').mkdir(); (tmp_path/'miniimagenet_subset'/'miniimagenet_subset.npz').touch()
    assert data_available('miniimagenet', tmp_path) and missing_data_reason('miniimagenet', tmp_path) == ''


@pytest.mark.parametrize('bad', ['cifar10', 'CIFAR100', 'cub200', ''])
def test_unknown_data_set_names_the_known_ones(bad):
    with pytest.raises(ValueError, match='known: cifar100, miniimagenet, cub, dogs'): data_available(bad)
    with pytest.raises(ValueError, match='unknown data set'): missing_data_reason(bad)

"Unit tests of refilled.core against the exported package (the notebook asserts the same from the inside)."
import os, random
from pathlib import Path
import numpy as np
import pytest
import torch
from refilled.core import seed_everything, default_device, data_root


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

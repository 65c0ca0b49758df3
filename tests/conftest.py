"Shared pytest fixtures for the refilled test-suite."
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(scope='session')
def root() -> Path:
    "The repository root (where settings.ini lives)."
    return ROOT

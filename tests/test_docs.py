"The docs site builds offline: nbdev's processing into _proc/, then HTML for every page, each showing its outputs."
import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_offline():
    r = subprocess.run([sys.executable, 'tools/docs.py', 'build'], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert 'docs check:' in r.stdout
    assert (ROOT/'_docs'/'index.html').exists() and (ROOT/'_docs'/'00_core.html').exists()
    assert 'seed_everything' in (ROOT/'_docs'/'00_core.html').read_text()

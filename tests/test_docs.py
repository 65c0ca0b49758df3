"""The docs site builds offline: nbdev's processing into _proc/, then HTML for every page, each showing its outputs,
with the sidebar, no Quarto markup, local MathJax; a headless Chromium checks what a reader sees when it is on PATH."""
import shutil, subprocess, sys
from pathlib import Path

import nbformat, pytest
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
import docs_browser_check as bc  # noqa: E402
import docs_html  # noqa: E402

NO_CHROMIUM = 'no chromium on PATH: browser check not run; `make docs-check` installs it'


@pytest.fixture(scope='module')
def site():
    "The docs site, built once by `tools/docs.py build` (which also runs `check`)."
    r = subprocess.run([sys.executable, 'tools/docs.py', 'build'], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert 'docs check:' in r.stdout
    return ROOT/'_docs'


def test_docs_build_offline(site):
    "Pages where Quarto puts them, titled; real links for show_doc; the sidebar; local MathJax; no CDN."
    assert (site/'index.html').exists() and (site/'core.html').exists()
    core = (site/'core.html').read_text()
    assert 'seed_everything' in core and '<title>core</title>' in core
    losses = (site/'losses.html').read_text()
    assert '{target=' not in losses and 'target="_blank"' in losses      # show_doc's source links are real links
    assert 'class="offline-sidebar"' in losses and 'aria-current="page"' in losses
    assert 'href="../core.html"' in (site/'experiments'/'gkd_results.html').read_text()
    assert (site/'mathjax'/'MathJax.js').exists() and 'mathjax/MathJax.js?config=' in losses
    for page in site.rglob('*.html'):
        if 'mathjax' in page.parts: continue
        soup = BeautifulSoup(page.read_text(encoding='utf-8'), 'html.parser')
        assert not bc.check_network(soup), page


def test_experiment_pages_show_their_records(site):
    "The experiment pages name their run record and show its outputs (cells changed since the record: none)."
    for nb, out in [('experiments/gkd_results.ipynb', 'experiments/gkd_results.html'),
                    ('experiments/gkd_analysis.ipynb', 'experiments/gkd_analysis.html')]:
        page = docs_html.Page(nb, out, '', '')
        record = docs_html.record_for(page)
        if record is None: pytest.skip(f'no run record for {nb}')
        text = (site/out).read_text(encoding='utf-8')
        assert record.relative_to(ROOT).as_posix() in text and 'class="record-note"' in text
        text = BeautifulSoup(text, 'html.parser').get_text()
        recorded = [o for c in nbformat.read(record, as_version=4).cells for o in c.get('outputs', [])]
        shown = [o for c in docs_html.page_notebook(page).cells for o in c.get('outputs', [])]
        assert all(o in recorded for o in shown if o.output_type == 'stream')
        for o in shown:
            if o.output_type == 'stream' and o.text.strip(): assert o.text.strip().splitlines()[0].strip() in text


def test_browser_check_on_site(site):
    "Every page of the real build passes the browser check (with chromium on PATH)."
    if not bc.chromium(): pytest.skip(NO_CHROMIUM)
    n, n_eq, problems, _ = bc.check_site(site, log=lambda *a: None)
    print(f'docs browser check: {n} pages checked, {n_eq} equations rendered, {len(problems)} problems')
    assert n >= 14 and n_eq > 100
    assert not problems, '\n'.join(f'{p}: {x}' for p, x in problems)


def test_quarto_markdown_to_html():
    "Quarto's markdown extensions become HTML nbconvert passes through; code fences are left alone."
    md = docs_html.quarto_markdown
    assert md('[source](https://x/y.py#L2){target="_blank" style="float:right"}') == \
        '<a href="https://x/y.py#L2" target="_blank" style="float:right">source</a>'
    assert md('## Setup {#setup .unnumbered}') == '## Setup'
    assert md('a [word]{.smallcaps} b') == 'a <span class="smallcaps">word</span> b'
    div = md('::: {.callout-note}\nSome *text*.\n:::')
    assert div.startswith('<div class="callout callout-note">') and '*text*' in div and div.rstrip().endswith('</div>')
    assert md('```\n[x](y){.z}\n```') == '```\n[x](y){.z}\n```'     # code fences untouched


GOOD = """<!DOCTYPE html><html><head><title>ok</title></head><body>
<nav class="offline-sidebar"><ul><li><a href="index.html" class="active" aria-current="page">home</a></li>
<li><a href="bad.html">bad</a></li><li><a href="gone.html">gone</a></li></ul></nav>
<main><p>fine</p></main></body></html>"""
BAD = """<!DOCTYPE html><html><head><script src="https://cdn.example.org/x.js"></script></head><body>
<nav class="offline-sidebar"><ul><li><a href="index.html">home</a></li><li><a href="bad.html">bad</a></li></ul></nav>
<main><p>Equation $$\\frac{a}{b}$$ and $x_i$ left raw; <a href="u">source</a>{target="_blank"};
see [the paper](https://example.org/paper.pdf) and <a href="nowhere.html">this</a>.</p></main></body></html>"""


def _bad_site(tmp_path):
    "A three-page site: index.html fine, bad.html broken in every way the check knows, orphan.html not in the sidebar."
    (tmp_path/'index.html').write_text(GOOD)
    (tmp_path/'bad.html').write_text(BAD)
    (tmp_path/'orphan.html').write_text(GOOD)
    return tmp_path


def _assert_reports_everything(problems):
    "Every breakage of bad.html and of the sidebar is among `problems`; the good page has no TeX problem."
    text = '\n'.join(f'{p}: {x}' for p, x in problems)
    for want in ['bad.html: raw TeX ($$)', 'bad.html: raw TeX (TeX command)', 'bad.html: raw TeX (inline $...$)',
                 'bad.html: Quarto markup ({target=)', 'bad.html: raw markdown link',
                 'bad.html: loads <script src="https://cdn.example.org/x.js">',
                 'bad.html: link to a missing page: nowhere.html',
                 'bad.html: the current page is not marked', 'index.html: sidebar links to a missing page: gone.html',
                 'index.html: page orphan.html is missing from the sidebar']:
        assert want in text, f'{want!r} not reported in:\n{text}'
    assert not any(p == 'index.html' and 'TeX' in x for p, x in problems)


def test_checks_report_a_broken_page_without_browser(tmp_path):
    "The checks on the static HTML (what Chromium would also see here: these pages have no scripts to run)."
    site, problems = _bad_site(tmp_path), []
    pages = bc.site_pages(site)
    soups = {p: BeautifulSoup((site/p).read_text(), 'html.parser') for p in pages}
    ids = {p: {t['id'] for t in s.find_all(id=True)} for p, s in soups.items()}
    for p, soup in soups.items():
        found = bc.check_network(soup) + bc.check_sidebar(p, soup, pages) + bc.check_page_links(site, p, soup, ids)[0]
        problems += [(p, x) for x in found + bc.check_text(soup)]
    _assert_reports_everything(problems)


def test_browser_check_reports_a_broken_page(tmp_path):
    "The end-to-end check (Chromium) fails on the broken site, exit status 1."
    if not bc.chromium(): pytest.skip(NO_CHROMIUM)
    n, n_eq, problems, _ = bc.check_site(_bad_site(tmp_path), log=lambda *a: None)
    assert n == 3 and n_eq == 0
    _assert_reports_everything(problems)
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'docs_browser_check.py'), str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 1 and 'docs browser check: 3 pages checked, 0 equations rendered' in r.stdout


def test_browser_check_without_chromium_says_why(monkeypatch):
    "Without chromium the check stops with the one-line reason."
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    with pytest.raises(SystemExit) as e: bc.main([str(ROOT/'_docs')])
    assert str(e.value) == NO_CHROMIUM

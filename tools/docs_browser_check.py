#!/usr/bin/env python
"""Load every page of the built docs site in headless Chromium, with the network blocked, and check what a reader sees.

    python tools/docs_browser_check.py [SITE_DIR]     # default _docs/; exit 1 on any problem

Each page is loaded from file:// and its DOM dumped after its scripts (MathJax) ran. Problems reported:
- raw TeX in the text outside rendered math and outside code (`$$`, `\\frac`, `$x_i$`, ...), MathJax errors,
  a page with math whose MathJax never finished;
- Quarto-only markup in the text (`{target=`, `::: {.callout}`, `{.class}`) and raw markdown links (`[text](url)`);
- a missing sidebar, a page of the site not in it, a sidebar or page link to a file that does not exist, the current
  page not marked in the sidebar;
- a script, stylesheet, image or font loaded from the network.
Links to a `#fragment` the target page lacks are printed as warnings (Quarto would not catch those either: they come
from the notebooks, e.g. a doc link to a method without its own show_doc) and do not fail the check.
It prints one line per problem and a summary: pages checked, equations rendered, problems.
"""
import argparse, posixpath, re, shutil, subprocess, sys, tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote

from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
                  '--disable-background-networking', '--disable-component-update', '--disable-sync',
                  '--disable-dev-shm-usage', '--host-resolver-rules=MAP * ~NOTFOUND', '--virtual-time-budget=20000']
SKIP_DIRS = ('mathjax/',)   # the local MathJax copy: assets, not pages

TEX_COMMANDS = ('frac mathbf mathrm mathcal text sum prod big Big left right qquad quad cdot dots alpha beta lambda tau '
                'phi sigma infty log exp min max operatorname').split()
RAW_TEX = [(re.compile(r'\$\$'), '$$'),
           (re.compile(r'\\(?:' + '|'.join(TEX_COMMANDS) + r')(?![a-zA-Z])'), 'TeX command'),
           # $...$ holding TeX-ish characters (_ ^ \\ { }), so that prices or shell variables do not count
           (re.compile(r'(?<![\w$\\])\$(?=[^\s$])[^$\n]{1,200}?[_^\\{}][^$\n]{0,200}?(?<=\S)\$(?![\w$])'), 'inline $...$')]
QUARTO = [(re.compile(r'\{target='), '{target='),
          (re.compile(r'^\s*:::', re.M), 'fenced div :::'),
          (re.compile(r'\{[#.][\w-]+[^}\n]*\}'), '{.class} attributes'),
          (re.compile(r'\{\{<'), 'shortcode {{<')]
# [text](url) whose url looks like one (absolute, ./, #, or a page): not code such as METHODS[m](_d)
MD_LINK = re.compile(r'\[[^\]\n]*\]\((?:(?:https?://|\.{0,2}/|#)[^)\s]*|[\w./-]+\.(?:html|ipynb|md)(?:#[^)\s]*)?)\)')
EXTERNAL = re.compile(r'^(?:https?:)?//', re.I)


def chromium():
    "The Chromium binary on PATH, or None."
    return shutil.which('chromium') or shutil.which('chromium-browser')


def dump_dom(browser, page, timeout=120):
    "The page's DOM after its scripts ran, as HTML, from a fresh headless profile with the network blocked."
    with tempfile.TemporaryDirectory(prefix='docs-check-') as profile:
        cmd = [browser, *CHROMIUM_FLAGS, f'--user-data-dir={profile}', '--dump-dom', page.resolve().as_uri()]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0 or '<html' not in r.stdout:
        raise RuntimeError(f'chromium failed on {page} (exit {r.returncode}): {r.stderr[-500:]}')
    return r.stdout


def site_pages(site):
    "Every page of the site, relative to it (posix), MathJax's own files left out."
    return sorted(p.relative_to(site).as_posix() for p in site.rglob('*.html')
                  if not p.relative_to(site).as_posix().startswith(SKIP_DIRS))


def page_texts(soup):
    "(all visible text, code included; prose: the text outside code, where MathJax typesets) of a page's DOM."
    soup = BeautifulSoup(str(soup), 'html.parser')    # a copy: elements are removed below
    for t in soup(['script', 'style', 'noscript']): t.decompose()   # rendered math keeps its TeX only in scripts
    text = soup.get_text(' ')
    for t in soup(['pre', 'code', 'textarea']): t.decompose()
    return text, soup.get_text(' ')


def _snippet(text, m):
    "A short excerpt around a regex match, on one line."
    return '...' + ' '.join(text[max(0, m.start() - 40):m.end() + 40].split()) + '...'


def _found(rx, text, what):
    "One problem line for all matches of `rx` in `text` (count and the first two excerpts), or none."
    ms = list(rx.finditer(text))
    if not ms: return []
    more = f' (x{len(ms)})' if len(ms) > 1 else ''
    return [f'{what}{more}: ' + ' | '.join(_snippet(text, m) for m in ms[:2])]


def check_text(soup):
    "Raw TeX, Quarto markup and raw markdown links in a page's text."
    text, prose = page_texts(soup)
    problems = [p for rx, what in RAW_TEX for p in _found(rx, prose, f'raw TeX ({what})')]
    problems += [p for rx, what in QUARTO for p in _found(rx, prose, f'Quarto markup ({what})')]
    return problems + _found(MD_LINK, text, 'raw markdown link')


def check_math(soup):
    "Number of equations MathJax rendered, and its problems (errors, never finished)."
    scripts = soup.find_all('script', type=re.compile(r'^math/tex'))
    frames = soup.find_all(id=re.compile(r'^MathJax-Element-\d+-Frame$'))
    problems = [f'MathJax error: {e.get_text(" ")[:80]}' for e in soup.select('.merror, .MathJax_Error, .noError')]
    if scripts and soup.body.get('data-mathjax') != 'done': problems.append('MathJax did not finish typesetting')
    if len(frames) < len(scripts): problems.append(f'{len(scripts) - len(frames)} equations not rendered')
    return len(frames), problems


def check_network(soup):
    "Scripts, stylesheets, images, frames or fonts the page would load from the network."
    problems = []
    for tag, attr in (('script', 'src'), ('link', 'href'), ('img', 'src'), ('iframe', 'src'), ('source', 'src')):
        for t in soup.find_all(tag, attrs={attr: EXTERNAL}):
            if tag == 'link' and not set(t.get('rel', [])) & {'stylesheet', 'preload', 'icon', 'modulepreload'}: continue
            problems.append(f'loads <{tag} {attr}="{t[attr]}"> from the network')
    for st in soup.find_all('style'):
        for m in re.finditer(r'''(?:@import\s+|url\()\s*["']?((?:https?:)?//[^"')\s]+)''', st.get_text()):
            problems.append(f'CSS loads {m.group(1)} from the network')
    return problems


def _target(page, href):
    "A relative link's target page (posix, relative to the site) and raw fragment; None for external links."
    if EXTERNAL.match(href) or re.match(r'^[a-z][\w+.-]*:', href, re.I): return None
    path, _, frag = href.partition('#')
    return (posixpath.normpath(posixpath.join(posixpath.dirname(page), unquote(path))) if path else page), frag


def check_sidebar(page, soup, pages):
    "The sidebar: present, every page of the site in it, its links resolving, the current page marked."
    nav = soup.select_one('nav.offline-sidebar') or soup.select_one('#quarto-sidebar')
    if nav is None: return ['no sidebar']
    problems, listed = [], set()
    for a in nav.find_all('a', href=True):
        if (t := _target(page, a['href'])) is None: continue
        listed.add(t[0])
        if t[0] not in pages: problems.append(f'sidebar links to a missing page: {a["href"]} ({t[0]})')
    problems += [f'page {p} is missing from the sidebar' for p in pages if p not in listed]
    if not any((_target(page, a['href']) or ('',))[0] == page for a in nav.select('a.active, a[aria-current="page"]')):
        problems.append('the current page is not marked in the sidebar')
    return problems


def check_page_links(site, page, soup, ids):
    "Links in the page's content: (problems: missing pages, warnings: missing #anchors)."
    problems, warnings = [], []
    for a in soup.select('main a[href]'):
        if (t := _target(page, a['href'])) is None: continue
        if t[0] not in ids and not (site/t[0]).exists(): problems.append(f'link to a missing page: {a["href"]}')
        elif t[1] and t[0] in ids and not {t[1], unquote(t[1])} & ids[t[0]]:
            warnings.append(f'link to a missing anchor: {a["href"]}')
    return problems, sorted(set(warnings))


def check_site(site, browser=None, jobs=2, log=print):
    "Check every page of `site`; returns (pages checked, equations rendered, [(page, problem)], [(page, warning)])."
    site, browser = Path(site), browser or chromium()
    if browser is None: raise RuntimeError('no chromium on PATH')
    pages = site_pages(site)
    with ThreadPoolExecutor(jobs) as ex:
        soups = dict(zip(pages, ex.map(lambda p: BeautifulSoup(dump_dom(browser, site/p), 'html.parser'), pages)))
    ids = {p: {t['id'] for t in s.find_all(id=True)} for p, s in soups.items()}
    problems, warnings, n_eq = [], [], 0
    for p, soup in soups.items():
        n, math = check_math(soup)
        bad_links, warn = check_page_links(site, p, soup, ids)
        found = math + check_network(soup) + check_sidebar(p, soup, pages) + bad_links + check_text(soup)
        n_eq += n
        problems += [(p, x) for x in found]
        warnings += [(p, x) for x in warn]
        log(f'  {p}: {n} equations, {len(found)} problems' + (f', {len(warn)} warnings' if warn else ''))
    return len(pages), n_eq, problems, warnings


def main(argv=None):
    "Command line: check the site, print problems, warnings and the summary; exit status 1 on any problem."
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('site', nargs='?', default=str(ROOT/'_docs'))
    ap.add_argument('--jobs', type=int, default=2, help='pages loaded at once')
    a = ap.parse_args(argv)
    if not chromium(): sys.exit('no chromium on PATH: browser check not run; `make docs-check` installs it')
    if not Path(a.site, 'index.html').exists():
        sys.exit(f'{a.site}/index.html not found: build the docs first (`make docs`)')
    n, n_eq, problems, warnings = check_site(a.site, jobs=a.jobs)
    for p, x in warnings: print(f'{p}: warning: {x}')
    for p, x in problems: print(f'{p}: {x}')
    print(f'docs browser check: {n} pages checked, {n_eq} equations rendered, {len(problems)} problems'
          f' ({len(warnings)} warnings)')
    return 1 if problems else 0


if __name__ == '__main__':
    sys.exit(main())

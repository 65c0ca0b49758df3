"""The offline docs site: nbconvert HTML for every processed notebook in `_proc/`, with what Quarto would add.

Used by `tools/docs.py build` when Quarto is not on PATH. Quarto would give each page the site's sidebar, turn
Quarto's markdown extensions into HTML, resolve `.ipynb` links and load math; here:

- pages go where Quarto puts them (`output-file` of the frontmatter, beside the notebook), titled from it;
- every page carries the sidebar of `nbs/sidebar.yml` with relative links, the current page marked;
- Quarto markdown (`[text](url){attrs}`, `[text]{.cls}`, `::: {.callout-note}` divs, heading attributes) becomes
  HTML before nbconvert's markdown renderer sees it; doc links to the published site become relative links;
- equations are typeset by a local copy of MathJax 2 (from the `jupyter-server-mathjax` wheel): no network;
- the experiment templates show the outputs of their committed run records (`RECORDS`).
"""
import glob, html, posixpath, re, shutil
from dataclasses import dataclass
from pathlib import Path

import nbformat, yaml

ROOT = Path(__file__).resolve().parents[1]
PROC, DOCS, NBS = ROOT/'_proc', ROOT/'_docs', ROOT/'nbs'

# Template notebook (relative to nbs/) -> its committed run record (a glob, relative to the repository root).
# The page shows the template's text with the record's outputs, so the site shows what the last recorded run printed
# instead of whatever outputs happened to be saved in the template.
RECORDS = {
    'experiments/gkd_results.ipynb': 'experiments/runs/smoke/gkd_results.ipynb',
    'experiments/gkd_fidelity.ipynb': 'experiments/runs/smoke/gkd_fidelity.ipynb',
    'experiments/standard_kd.ipynb': 'experiments/runs/smoke/standard_kd.ipynb',
    'experiments/fewshot_miniimagenet.ipynb': 'experiments/runs/smoke/fewshot_miniimagenet.ipynb',
    'experiments/gkd_analysis.ipynb': 'experiments/runs/smoke/gkd_analysis.ipynb',
    # gkd_cifar documents one run; its smoke REFILLED run at 60 % overlap is a papermill execution of exactly this
    # template, committed and re-executed by `make test` (nbval), so its outputs are current and verified, and its
    # injected parameters show what the run was. The template's own saved outputs are not checked by anything.
    'experiments/gkd_cifar.ipynb': 'experiments/runs/smoke/refilled-o60-*.ipynb',
    # the tutorial's page shows its larger CPU run (the one its text discusses); the smoke record is what `make test`
    # re-executes
    'tutorials/own_teacher_own_data.ipynb': 'experiments/runs/tutorial/own_teacher_own_data.ipynb',
}

# What of the wheel's MathJax 2 the pages need: the combined TeX/HTML-CSS config and its STIX-Web fonts.
# Left out: the SVG output's font data, the accessibility extensions and non-English menus (2.5 of 10.5 MB copied).
MATHJAX_SKIP = ('jax/output/SVG/', 'extensions/a11y/', 'localization/')
MATHJAX_KEEP = ('localization/en/',)
MATHJAX_CONFIG = 'TeX-AMS-MML_HTMLorMML-full,Safe'


@dataclass
class Page:
    nb: str      # notebook path relative to nbs/ and _proc/, posix
    out: str     # page path relative to _docs/, posix
    title: str
    desc: str

    @property
    def root(self):
        "Relative path from this page's folder up to the site root ('' or '../')."
        return '../' * self.out.count('/')

    def href(self, other_out):
        "Relative link from this page to another page of the site."
        return posixpath.relpath(other_out, posixpath.dirname(self.out) or '.')


def frontmatter(nb):
    "The YAML frontmatter nbdev puts in a raw first cell of a processed notebook, as a dict (cell removed)."
    if nb.cells and nb.cells[0].cell_type == 'raw' and nb.cells[0].source.startswith('---'):
        m = re.match(r'---\s*\n(.*?)\n---', nb.cells.pop(0).source, re.S)
        return (yaml.safe_load(m.group(1)) if m else None) or {}
    return {}


def site_pages():
    "One `Page` per processed notebook (skipping `_`/`.` paths), placed and titled as Quarto would."
    pages = []
    for src in sorted(PROC.rglob('*.ipynb')):
        rel = src.relative_to(PROC)
        if any(p.startswith(('_', '.')) for p in rel.parts): continue
        fm = frontmatter(nbformat.read(src, as_version=4))
        out = posixpath.join(posixpath.dirname(rel.as_posix()), fm.get('output-file') or rel.with_suffix('.html').name)
        pages.append(Page(rel.as_posix(), out, str(fm.get('title') or rel.stem), str(fm.get('description') or '')))
    return pages


# ---------------------------------------------------------------------------------------------- run records

def record_for(page):
    "The run record whose outputs `page` shows, or None (no mapping, or no such file at build time)."
    pattern = RECORDS.get(page.nb)
    found = sorted(glob.glob(str(ROOT/pattern)), key=lambda f: Path(f).stat().st_mtime) if pattern else []
    return Path(found[-1]) if found else None


def with_record(nb, record):
    "Give each code cell of `nb` the outputs of the record cell with the same source; add the injected parameters."
    rec = nbformat.read(record, as_version=4)
    by_src = {c.source.strip(): c for c in rec.cells if c.cell_type == 'code'}
    missing = 0
    for c in nb.cells:
        if c.cell_type != 'code': continue
        r = by_src.get(c.source.strip())
        if r is None: missing += c.source.strip() != ''
        c.outputs, c.execution_count = (r.outputs, r.execution_count) if r is not None else ([], None)
    _insert_injected(nb, rec)
    return nb, missing


def _insert_injected(nb, rec):
    "Papermill's `injected-parameters` cell of the record, placed after the cell it followed in the record."
    code = [c for c in rec.cells if c.cell_type == 'code']
    for i, c in enumerate(code):
        if 'injected-parameters' not in c.metadata.get('tags', []) or i == 0: continue
        prev = code[i - 1].source.strip()
        at = next((j for j, t in enumerate(nb.cells) if t.cell_type == 'code' and t.source.strip() == prev), None)
        if at is not None:
            nb.cells.insert(at + 1, nbformat.v4.new_code_cell(c.source, metadata={'tags': ['injected-parameters']}))


def record_note(record, missing):
    "One line at the top of a page rendered from a run record: which record it is."
    rel = record.relative_to(ROOT).as_posix()
    note = (f'Outputs on this page come from the run record <code>{html.escape(rel)}</code>, a papermill execution of '
            'this notebook committed with the repository (re-executed by <code>make test</code> with nbval).')
    if missing: note += f' {missing} code cell(s) changed since that record was made and are shown without outputs.'
    return nbformat.v4.new_markdown_cell(f'<p class="record-note">{note}</p>')


# --------------------------------------------------------------------------------------- Quarto -> HTML

def quarto_attrs(spec):
    "Quarto/pandoc attributes `{#id .cls key=\"v\"}` as an HTML attribute string."
    out, classes = [], []
    for tok in re.findall(r'''[\w-]+=(?:"[^"]*"|'[^']*'|\S+)|[#.][\w:-]+''', spec):
        if tok[0] == '.': classes.append(tok[1:])
        elif tok[0] == '#': out.append(f'id="{html.escape(tok[1:])}"')
        else:
            k, v = tok.split('=', 1)
            out.append(f'{k}="{html.escape(v.strip(chr(34) + chr(39)))}"')
    if classes: out.insert(0, f'class="{" ".join(classes)}"')
    return ' '.join(out)


_ATTR = r'''(?:[.#][\w:-]+|[\w-]+=(?:"[^"]*"|'[^']*'|[^\s}]+))'''     # .class, #id or key=value
_ATTRS = rf'\{{(\s*{_ATTR}(?:\s+{_ATTR})*\s*)\}}'                      # {.cls #id key="v"}: group = the inside
_LINK_ATTRS = re.compile(r'(!?)\[([^\]\n]*)\]\(([^)\s]+)(?:\s+"([^"]*)")?\)' + _ATTRS)
_SPAN_ATTRS = re.compile(r'(?<![\]!])\[([^\]\n]+)\]' + _ATTRS)
_HEADING_ATTRS = re.compile(r'^(#{1,6}\s.*?)\s*' + _ATTRS + r'\s*$')
_DIV_OPEN = re.compile(r'^:::+\s*(?:\{([^}]*)\}|([\w-]+))\s*$')
_DIV_CLOSE = re.compile(r'^:::+\s*$')


def _link_html(m):
    "`[text](url){attrs}` -> <a>, `![alt](src){attrs}` -> <img>."
    bang, text, url, title, attrs = m.groups()
    t = f' title="{html.escape(title)}"' if title else ''
    a = quarto_attrs(attrs)
    if bang: return f'<img src="{html.escape(url)}" alt="{html.escape(text)}"{t} {a}>'
    return f'<a href="{html.escape(url)}"{t} {a}>{text}</a>'


def _div_open(m):
    "A fenced div `::: {.callout-note title=\"…\"}` as an HTML block (markdown inside stays markdown)."
    spec = m.group(1) if m.group(1) is not None else '.' + m.group(2)
    attrs, title = quarto_attrs(spec), re.search(r'title="([^"]*)"', spec)
    kind = re.search(r'\.callout-(\w+)', spec)
    label = title.group(1) if title else kind.group(1).capitalize() if kind else ''
    head = f'<div class="callout-title">{html.escape(label)}</div>\n' if label else ''
    if kind: attrs = attrs.replace('class="', 'class="callout ', 1)
    return f'<div {attrs}>\n{head}\n'


def quarto_markdown(text):
    "Quarto's markdown extensions rewritten as HTML/plain markdown that nbconvert renders; code fences untouched."
    out, fence = [], None
    for line in text.split('\n'):
        f = re.match(r'^\s*(`{3,}|~{3,})', line)
        if fence:
            if f and f.group(1)[0] == fence[0] and len(f.group(1)) >= len(fence): fence = None
            out.append(line); continue
        if f: fence = f.group(1); out.append(line); continue
        if _DIV_CLOSE.match(line): out.append('\n</div>\n'); continue
        if (m := _DIV_OPEN.match(line)): out.append(_div_open(m)); continue
        out.append(_outside_code_spans(_HEADING_ATTRS.sub(r'\1', line), _inline_attrs))
    return '\n'.join(out)


def _inline_attrs(text):
    "Links, images and spans with Quarto attributes in a piece of markdown text as HTML."
    text = _LINK_ATTRS.sub(_link_html, text)
    return _SPAN_ATTRS.sub(lambda m: f'<span {quarto_attrs(m.group(2))}>{m.group(1)}</span>', text)


def _outside_code_spans(line, fn):
    "`fn` applied to the parts of a markdown line outside inline code spans."
    parts = re.split(r'(`+[^`]*`+)', line)
    return ''.join(p if i % 2 else fn(p) for i, p in enumerate(parts))


def quarto_cell_options(nb):
    "Apply the Quarto cell options nbdev leaves in `_proc/` (include/echo/output) so nbconvert shows what Quarto would."
    cells = []
    for c in nb.cells:
        if c.cell_type == 'code':
            opts = dict(re.findall(r'^#\|\s*([\w-]+):\s*(.*)$', c.source, re.M))
            if opts.get('include') == 'false': continue
            c.source = '\n'.join(l for l in c.source.splitlines() if not l.startswith('#|')).strip()
            if opts.get('output') == 'false': c.outputs = []
            if opts.get('echo') == 'false':
                c.metadata.setdefault('transient', {})['remove_source'] = True
                c.source = ''
            if not c.source and not c.outputs: continue
        cells.append(c)
    nb.cells = cells
    return nb


def quartoless(nb):
    "Cell options applied, and Quarto markdown rewritten in markdown cells and in markdown outputs (show_doc)."
    nb = quarto_cell_options(nb)
    for c in nb.cells:
        if c.cell_type == 'markdown': c.source = quarto_markdown(c.source)
        for o in c.get('outputs', []):
            if 'text/markdown' in o.get('data', {}):
                o.data['text/markdown'] = quarto_markdown(''.join(o.data['text/markdown']))
    return nb


def page_notebook(page):
    "The notebook a page renders: processed, frontmatter removed, record outputs merged, Quarto-isms rewritten."
    nb = nbformat.read(PROC/page.nb, as_version=4)
    frontmatter(nb)
    if (record := record_for(page)):
        nb, missing = with_record(nb, record)
        nb.cells.insert(0, record_note(record, missing))
    return quartoless(nb)


# ------------------------------------------------------------------------------------------------ links

def site_url():
    "The published site's URL (nbdev's doc links point there), without a trailing slash."
    from nbdev.config import get_config
    cfg = get_config()
    return (cfg.doc_host + cfg.doc_baseurl).rstrip('/')


_CODE_LINK = re.compile(r'\[`([^`\[\]<>\n]+)`\]\(([^()\s<>"]+)\)')


def code_links(body):
    "nbdev's doc links inside show_doc's signature code blocks (`[`name`](url)` in a comment) as real links."
    return _CODE_LINK.sub(lambda m: f'<a href="{m.group(2)}">{m.group(1)}</a>', body)


def relink(body, page, pages, base):
    "Links to the published site or to `.ipynb` notebooks become relative links to this site's pages."
    by_out, by_nb = {p.out for p in pages}, {p.nb: p.out for p in pages}

    def fix(m):
        "One href: its relative replacement, or unchanged."
        url, _, frag = m.group(2).partition('#')
        frag = '#' + frag if frag else ''
        if url.startswith(base + '/') and url[len(base) + 1:] in by_out: target = url[len(base) + 1:]
        elif url.endswith('.ipynb') and '://' not in url:
            target = by_nb.get(posixpath.normpath(posixpath.join(posixpath.dirname(page.nb), url)))
        else: target = None
        return m.group(0) if target is None else f'{m.group(1)}{page.href(target)}{frag}"'
    return re.sub(r'(href=")([^"]*)"', fix, body)


def lower_heading_ids(body):
    "Heading ids lowercased, as pandoc (Quarto) makes them and nbdev's doc links expect (`#cifar100arrays`)."
    ids = set(re.findall(r'<h[1-6] id="([^"]+)"', body))
    for i in sorted(ids, key=len, reverse=True):
        if i != i.lower():
            body = body.replace(f'id="{i}"', f'id="{i.lower()}"').replace(f'href="#{i}"', f'href="#{i.lower()}"')
    return body


# ---------------------------------------------------------------------------------------------- sidebar

def sidebar_entries(path=NBS/'sidebar.yml'):
    "The sidebar of `nbs/sidebar.yml`: a list of notebook paths and (section, [entries]) pairs."
    def conv(items):
        "sidebar.yml items -> entries (recursing into sections)."
        out = []
        for it in items or []:
            if isinstance(it, str): out.append(it)
            elif 'section' in it: out.append((str(it['section']), conv(it.get('contents'))))
            elif 'href' in it: out.append(it['href'])
        return out
    return conv(yaml.safe_load(path.read_text())['website']['sidebar']['contents'])


def sidebar_html(page, pages, entries):
    "The sidebar as nested lists, links relative to `page`, the current page marked."
    by_nb = {p.nb: p for p in pages}

    def item(e):
        "One entry as a list item: a section with its sub-list, or a page link."
        if isinstance(e, tuple):
            return (f'<li class="sidebar-section"><span class="sidebar-section-title">{html.escape(e[0])}</span>'
                    f'<ul>{"".join(item(x) for x in e[1])}</ul></li>')
        p = by_nb.get(e)
        out = p.out if p else posixpath.splitext(e)[0] + '.html'   # Quarto's default name: a broken link, reported
        cur = ' class="active" aria-current="page"' if p is page else ''
        return f'<li><a href="{page.href(out)}"{cur}>{html.escape(p.title if p else e)}</a></li>'
    home = next((p for p in pages if p.out == 'index.html'), page)
    return (f'<nav class="offline-sidebar" aria-label="Site"><a class="sidebar-title" href="{page.href(home.out)}">'
            f'{html.escape(home.title)}</a><ul>{"".join(item(e) for e in entries)}</ul></nav>')


# ------------------------------------------------------------------------------------------------ pages

TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_js_mathjax -%}
<script type="text/x-mathjax-config">
MathJax.Hub.Config({
  tex2jax: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
            processEscapes: true, processEnvironments: true},
  TeX: {equationNumbers: {autoNumber: 'AMS', useLabelIds: true}},
  'HTML-CSS': {availableFonts: [], preferredFont: null, webFont: 'STIX-Web', imageFont: null},
  displayAlign: 'center', messageStyle: 'none', showMathMenu: false
});
MathJax.Hub.Queue(function () { document.body.setAttribute('data-mathjax', 'done'); });
</script>
<script src="{{ resources.docs.root }}mathjax/MathJax.js?config={{ resources.docs.mathjax_config }}"></script>
{%- endblock html_head_js_mathjax -%}
{%- block html_head_css -%}
<link rel="stylesheet" href="{{ resources.docs.root }}styles.css">
{%- endblock html_head_css -%}
{%- block body_header -%}
<body class="jp-Notebook offline-docs" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
{{ resources.docs.sidebar }}
<main class="offline-main">
<header class="offline-header"><h1 class="title">{{ resources.docs.title | e }}</h1>
{%- if resources.docs.desc %}<div class="description">{{ resources.docs.desc }}</div>{% endif -%}
</header>
{%- endblock body_header -%}
"""


def exporter():
    "nbconvert's lab HTML exporter with the site's page template (no CDN scripts, local MathJax, sidebar)."
    from nbconvert import HTMLExporter
    exp = HTMLExporter(template_name='lab')
    exp.raw_template = TEMPLATE
    exp.exclude_input_prompt = exp.exclude_output_prompt = True
    return exp


def render_page(exp, page, pages, entries, base):
    "One page's HTML: rendered notebook in the site template, links fixed."
    from nbconvert.filters.markdown import markdown2html
    desc = markdown2html(page.desc).strip() if page.desc else ''
    docs = dict(root=page.root, title=page.title, desc=desc, sidebar=sidebar_html(page, pages, entries),
                mathjax_config=MATHJAX_CONFIG)
    body, _ = exp.from_notebook_node(page_notebook(page), resources={'metadata': {'name': page.title}, 'docs': docs})
    return lower_heading_ids(relink(code_links(body), page, pages, base))


def mathjax_dir():
    "The MathJax 2 tree shipped by the `jupyter-server-mathjax` wheel (a dev requirement)."
    import importlib.util
    spec = importlib.util.find_spec('jupyter_server_mathjax')
    if spec is None:
        raise SystemExit('docs: jupyter-server-mathjax is not installed (it is a dev requirement: run `make install`)')
    return Path(spec.submodule_search_locations[0])/'static'


def copy_mathjax(dst):
    "The part of MathJax the pages load, copied into `dst` (`_docs/mathjax`)."
    src, n = mathjax_dir(), 0
    for f in sorted(src.rglob('*')):
        rel = f.relative_to(src).as_posix()
        if f.is_dir() or (rel.startswith(MATHJAX_SKIP) and not rel.startswith(MATHJAX_KEEP)): continue
        (dst/rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dst/rel); n += 1
    return n


def render_offline():
    "Render every processed notebook to a page under `_docs/`, with styles.css and MathJax beside them."
    if DOCS.exists(): shutil.rmtree(DOCS)
    pages, entries, exp, base = site_pages(), sidebar_entries(), exporter(), site_url()
    for page in pages:
        dst = DOCS/page.out
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(render_page(exp, page, pages, entries, base), encoding='utf-8')
    shutil.copy(NBS/'styles.css', DOCS/'styles.css')
    copy_mathjax(DOCS/'mathjax')
    return pages

"""Build a browsable site from the executed copies, offline: ``python -m tools.site`` (``make site``).

``site/index.html`` is the README's notebook table (each row linking to its page, with the date and
commit of the run), and ``site/NN_name.html`` is each executed copy of ``executed/`` as nbconvert renders
it, with previous/next links. Nothing on a page is fetched from elsewhere: the scripts nbconvert's lab
template loads from a CDN (require.js, MathJax, Mermaid; no notebook uses them) are left out, and an
image linked from the web (the Colab badge) becomes its alt text, still a link. Links between notebooks
point at their pages; a link to a source notebook points at the repository on GitHub.
``python -m tools.site_check`` then opens every page in a headless browser (see that module).
"""

from __future__ import annotations

import argparse
import html
import itertools
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from tools import publish, run
from utils import runtime

TEMPLATE_FOLDER = Path(__file__).parent / "site_template"
NOTEBOOK_LINK = re.compile(r'href="(?:(?:\.\./)?(?:notebooks|executed)/)?(\d\d_[\w-]+)\.ipynb(#[^"]*)?"')
WEB_IMAGE = re.compile(r'<img\b[^>]*\bsrc="https?://[^"]*"[^>]*>')
ALT_TEXT = re.compile(r'\balt="([^"]*)"')
TABLE_HEADING = "## The notebooks"
PAGE_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }
table { border-collapse: collapse; } th, td { border: 1px solid #ccc; padding: 0.3rem 0.5rem; vertical-align: top; }
"""


class SiteError(RuntimeError):
    """The site cannot be built from what is there; the message names the file and the fix."""


@dataclass(frozen=True)
class Page:
    """One notebook's page: where its executed copy is, the page's file name and its title."""

    copy_path: Path
    file_name: str
    title: str


def notebook_title(notebook) -> str:
    """The first ``# `` heading of the notebook's markdown (after the provenance cell), else its file name."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("# "):
            return cell.source.splitlines()[0][2:].strip()
    return ""


def page_links(page_html: str) -> str:
    """``page_html`` with links to notebooks pointing at their pages and web images turned into their alt text.

    A link to ``../notebooks/NN.ipynb`` (the source) goes to the repository on GitHub instead, where the
    source is; links to sibling notebooks (``NN.ipynb``) go to ``NN.html``.
    """
    def link(match: re.Match) -> str:
        anchor = match.group(2) or ""
        if "notebooks/" in match.group(0):
            return f'href="{runtime.REPOSITORY_URL}/blob/main/notebooks/{match.group(1)}.ipynb{anchor}"'
        return f'href="{match.group(1)}.html{anchor}"'

    def alt_text(match: re.Match) -> str:
        alt = ALT_TEXT.search(match.group(0))
        return f"<span>{alt.group(1) if alt else 'image'}</span>"

    return WEB_IMAGE.sub(alt_text, NOTEBOOK_LINK.sub(link, page_html))


def navigation(pages: list[Page], position: int) -> str:
    """The bar at the top and bottom of a page: the contents, the previous and the next notebook."""
    parts = ['<a href="index.html">Contents</a>']
    if position > 0:
        parts.append(f'<a href="{pages[position - 1].file_name}">&larr; {html.escape(pages[position - 1].title)}</a>')
    if position < len(pages) - 1:
        parts.append(f'<a href="{pages[position + 1].file_name}">{html.escape(pages[position + 1].title)} &rarr;</a>')
    return f'<nav class="site-nav">{" ".join(parts)}</nav>'


def render_notebook(notebook) -> str:
    """The notebook as one self-contained HTML page (lab template, no script from a CDN)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", template_file=str(TEMPLATE_FOLDER / "offline.html.j2"))
    body, _ = exporter.from_notebook_node(notebook)
    return body


def with_navigation(page_html: str, bar: str) -> str:
    """``page_html`` with ``bar`` right after ``<body ...>`` and right before ``</body>``."""
    page_html = re.sub(r"(<body\b[^>]*>)", lambda match: match.group(1) + bar, page_html, count=1)
    head, _, tail = page_html.rpartition("</body>")
    return f"{head}{bar}</body>{tail}" if head else page_html + bar


def readme_table(readme_text: str, readme_path: Path) -> str:
    """The markdown table under the README's ``## The notebooks`` heading."""
    _, found, after = readme_text.partition(TABLE_HEADING + "\n")
    table = list(itertools.takewhile(lambda line: line.startswith("|"), after.lstrip("\n").splitlines()))
    if not found or len(table) < 3:
        raise SiteError(f"{readme_path} has no notebook table under '{TABLE_HEADING}', which the site's index "
                        "page is built from: put the table (a header row, a separator and a row per notebook) "
                        "right under that heading, then run `make site` again.")
    return "\n".join(table)


def index_page(readme_text: str, readme_path: Path, pages: list[Page], runs: list[dict]) -> str:
    """The contents page: the README's notebook table, and when, where and how each copy was run."""
    import mistune

    table_html = page_links(mistune.html(readme_table(readme_text, readme_path)).replace('href="notebooks/', 'href="'))
    table_html = re.sub(r'<table>', '<table class="notebooks">', table_html, count=1)
    items = "\n".join(
        f'<li><a href="{page.file_name}">{html.escape(page.title)}</a>: {record.get("profile", "?")} profile, '
        f'{record.get("date", "date unknown")}, commit <code>{str(record.get("commit", "unknown"))[:10]}</code>, '
        f'{html.escape(str(record.get("hardware", "hardware unknown")))}, '
        f'{float(record.get("wall_seconds", 0)) / 60:.1f} min</li>'
        for page, record in zip(pages, runs))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>CNN notebooks, run</title><style>{PAGE_STYLE}</style></head><body>"
        "<h1>CNN notebooks, with their outputs</h1>"
        "<p>Every notebook of the suite as it ran headless on the real data, for reading without running "
        "anything. Each page says at its top how and where it was run.</p>"
        f"<h2>The notebooks</h2>{table_html}<h2>The runs</h2><ul>{items}</ul></body></html>\n")


def executed_pages(executed_folder: Path) -> list[Page]:
    """A :class:`Page` for each executed copy in ``executed_folder``, in notebook order."""
    import nbformat

    copies = sorted(executed_folder.glob("[0-9][0-9]_*.ipynb"))
    if not copies:
        raise SiteError(f"{executed_folder} holds no executed copy (NN_name.ipynb), which the site is built from: "
                        f"publish them first, for example `{publish.regenerate_command('03_x')}`.")
    return [Page(path, path.stem + ".html", notebook_title(nbformat.read(path, as_version=4)) or path.stem)
            for path in copies]


def build_site(executed_folder: Path, readme_path: Path, output_folder: Path) -> list[Path]:
    """Write the index and one page per executed copy to ``output_folder``; returns the files written."""
    import nbformat

    pages = executed_pages(executed_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    written, runs = [], []
    for position, page in enumerate(pages):
        notebook = nbformat.read(page.copy_path, as_version=4)
        runs.append(publish.read_provenance(notebook))
        page_html = with_navigation(page_links(render_notebook(notebook)), navigation(pages, position))
        target = output_folder / page.file_name
        target.write_text(page_html, encoding="utf-8")
        written.append(target)
    index = output_folder / "index.html"
    index.write_text(index_page(readme_path.read_text(encoding="utf-8"), readme_path, pages, runs), encoding="utf-8")
    return [index, *written]


def default_site_folder() -> Path:
    """``site/`` beside ``notebooks/`` (git-ignored: the site is rebuilt from ``executed/``)."""
    return run.notebooks_dir().parent / "site"


def main(arguments: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executed", type=Path, default=None, help="folder of the executed copies (default executed/)")
    parser.add_argument("--output", type=Path, default=None, help="folder to write the site to (default site/)")
    options = parser.parse_args(arguments)
    executed_folder = options.executed or publish.default_output_folder()
    output_folder = options.output or default_site_folder()
    readme_path = run.notebooks_dir().parent / "README.md"
    try:
        written = build_site(executed_folder, readme_path, output_folder)
    except SiteError as error:
        print(error, file=sys.stderr)
        return 1
    size = sum(path.stat().st_size for path in written)
    print(f"Wrote {len(written)} pages ({size / 1e6:.1f} MB) to {output_folder}; open {output_folder / 'index.html'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The browsable site (tools.site): pages from executed copies, links between them, nothing fetched from the web.

The browser check itself (tools.site_check) needs Debian's chromium and runs outside the test suite
(``make site-check``); here the pages it opens are built from small notebooks made in the test.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import nbformat
import pytest

from tools import publish, site

BADGE = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
         "(https://colab.research.google.com/github/someone/repo/blob/main/notebooks/{name}.ipynb)")
README = """# The suite

## The notebooks

| # | notebook | what it teaches |
| --- | --- | --- |
| 00 | [Pixels](notebooks/00_pixels.ipynb) | arrays |
| 01 | [Convolution](notebooks/01_convolution.ipynb) | loops |

## Next section
"""
ONE_PIXEL_PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360f8cf"
    "c0f01f0005000201e5273fbd0000000049454e44ae426082")).decode("ascii")


def executed_copy(folder: Path, name: str, title: str, next_name: str | None) -> Path:
    """A small executed copy with provenance, a Colab badge, a link to the next notebook and a figure."""
    notebook = nbformat.v4.new_notebook()
    link = f"Next: [{next_name}]({next_name}.ipynb)" if next_name else "The end."
    figure = nbformat.v4.new_output("display_data", data={"image/png": ONE_PIXEL_PNG, "text/plain": "<Figure>"})
    notebook.cells = [nbformat.v4.new_markdown_cell(f"# {title}\n\n{BADGE.format(name=name)}\n\n{link}"),
                      nbformat.v4.new_code_cell("print(1)", outputs=[figure])]
    publish.add_provenance(notebook, {
        "notebook": name, "profile": "lesson", "parameters": {}, "commit": "0123456789abcdef",
        "uncommitted_changes": False, "date": "2026-12-06 03:00 UTC", "hardware": "AMD EPYC (2 cores)",
        "precision": "mixed_bfloat16", "tensorflow": "2.21.0", "keras": "3.15.1", "python": "3.11.7",
        "wall_seconds": 90.0})
    path = folder / f"{name}.ipynb"
    nbformat.write(notebook, path)
    return path


@pytest.fixture()
def built_site(tmp_path: Path) -> tuple[Path, list[Path]]:
    executed = tmp_path / "executed"
    executed.mkdir()
    executed_copy(executed, "00_pixels", "00 · Pixels", "01_convolution")
    executed_copy(executed, "01_convolution", "01 · Convolution", None)
    readme = tmp_path / "README.md"
    readme.write_text(README, encoding="utf-8")
    output = tmp_path / "site"
    return output, site.build_site(executed, readme, output)


def test_site_has_an_index_and_a_page_per_executed_copy(built_site):
    output, written = built_site
    assert sorted(path.name for path in written) == ["00_pixels.html", "01_convolution.html", "index.html"]
    index = (output / "index.html").read_text(encoding="utf-8")
    assert 'href="00_pixels.html"' in index and 'href="01_convolution.html"' in index
    assert "0123456789" in index and "1.5 min" in index  # each run's commit and wall time
    assert "Next section" not in index  # the table only, not the rest of the README


def test_pages_link_to_each_other_and_to_the_source_on_github(built_site):
    output, _ = built_site
    first = (output / "00_pixels.html").read_text(encoding="utf-8")
    second = (output / "01_convolution.html").read_text(encoding="utf-8")
    assert 'href="01_convolution.html"' in first  # the notebook's own "Next:" link, and the navigation bar
    assert first.count('<nav class="site-nav">') == 2  # at the top and the bottom
    assert "&larr;" in second and "&rarr;" not in second  # the last page has a previous link only
    assert "/blob/main/notebooks/00_pixels.ipynb" in first  # the provenance cell's link to the source


def test_no_page_fetches_anything_from_the_web(built_site):
    output, written = built_site
    for path in written:
        page = path.read_text(encoding="utf-8")
        assert not re.search(r'<(?:img|script|link)\b[^>]*\b(?:src|href)="https?://', page), path.name
        assert "colab-badge.svg" not in page
    assert "Open In Colab" in (output / "00_pixels.html").read_text(encoding="utf-8")  # the badge's text stays
    assert "data:image/png;base64" in (output / "00_pixels.html").read_text(encoding="utf-8")  # figures inline


def test_a_readme_without_the_notebook_table_is_named_with_the_fix(tmp_path: Path):
    executed = tmp_path / "executed"
    executed.mkdir()
    executed_copy(executed, "00_pixels", "00 · Pixels", None)
    readme = tmp_path / "README.md"
    readme.write_text("# The suite\n\nNo table here.\n", encoding="utf-8")
    with pytest.raises(site.SiteError, match=r"README\.md has no notebook table under '## The notebooks'"):
        site.build_site(executed, readme, tmp_path / "site")


def test_an_empty_executed_folder_says_how_to_publish(tmp_path: Path):
    (tmp_path / "executed").mkdir()
    with pytest.raises(site.SiteError, match="make publish"):
        site.build_site(tmp_path / "executed", tmp_path / "README.md", tmp_path / "site")


def test_the_browser_check_report_names_each_problem():
    from tools import site_check

    clean = site_check.PageReport("a.html", images=3)
    broken = site_check.PageReport("b.html", images=2, images_without_size=["missing.png"],
                                   outside_requests=["https://example.com/x.png"])
    assert clean.passed and clean.line().startswith("ok")
    assert not broken.passed
    assert "1 image(s) without a size" in broken.line() and "https://example.com/x.png" in broken.line()


def test_the_site_builds_from_the_committed_copies(tmp_path: Path):
    """What `make site` builds: the index and one page per notebook, none fetching from the web."""
    root = Path(__file__).resolve().parents[1]
    written = site.build_site(root / "executed", root / "README.md", tmp_path)
    notebooks = sorted(path.stem for path in (root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(path.stem for path in written) == sorted([*notebooks, "index"])
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert all(f'href="{name}.html"' in index for name in notebooks)
    for path in written:
        assert not re.search(r'<(?:img|script|link)\b[^>]*\b(?:src|href)="https?://', path.read_text(encoding="utf-8"))

"""The house style of CONTRIBUTING.md, checked on every committed notebook."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

NOTEBOOK_FOLDER = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_FOLDER.glob("[0-9][0-9]_*.ipynb"))
COLAB_PREFIX = "https://colab.research.google.com/github/cnn-course-suite/cnn-notebooks/blob/main/notebooks/"


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def test_there_are_notebooks() -> None:
    assert NOTEBOOKS, "no numbered notebooks found in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_committed_without_outputs(path: Path) -> None:
    for index, cell in enumerate(load(path)["cells"]):
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{path.name} cell {index} has outputs: run `make strip`"
            assert cell.get("execution_count") is None, f"{path.name} cell {index} has an execution count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_title_badge_setup_and_closing(path: Path) -> None:
    notebook = load(path)
    cells = notebook["cells"]
    title = source(cells[0])
    assert cells[0]["cell_type"] == "markdown" and title.startswith(f"# {path.stem[:2]}")
    assert COLAB_PREFIX + path.name in title, f"{path.name}: Colab badge must link to its own path"
    assert any("parameters" in cell.get("metadata", {}).get("tags", []) for cell in cells), "no parameters cell"
    assert any("runtime.setup_notebook(" in source(cell) for cell in cells if cell["cell_type"] == "code")
    assert cells[-1]["cell_type"] == "markdown" and "## What we learned" in source(cells[-1])
    assert notebook["metadata"].get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_every_code_cell_has_a_lead_in(path: Path) -> None:
    cells = load(path)["cells"]
    for index, cell in enumerate(cells):
        if cell["cell_type"] == "code":
            previous = cells[index - 1] if index else None
            assert previous is not None and previous["cell_type"] == "markdown" and source(previous).strip(), (
                f"{path.name} cell {index} ({source(cell).strip()[:50]!r}) has no markdown lead-in above it")


def defined_functions(path: Path) -> set[str]:
    names = set()
    for cell in load(path)["cells"]:
        if cell["cell_type"] != "code":
            continue
        code = "\n".join(line for line in source(cell).splitlines() if not line.lstrip().startswith(("!", "%")))
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names.add(node.name)
    return names


def test_no_helper_is_defined_in_two_notebooks() -> None:
    seen: dict[str, str] = {}
    for path in NOTEBOOKS:
        for name in defined_functions(path):
            assert name not in seen, f"{name} is defined in {seen[name]} and {path.name}: move it into utils/"
            seen[name] = path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_uses_the_shared_setup_cell(path: Path) -> None:
    setup = next(source(cell) for cell in load(path)["cells"] if "runtime.setup_notebook(" in source(cell))
    assert re.search(r"REPOSITORY_URL = \"https://github.com/cnn-course-suite/cnn-notebooks\"", setup)
    assert "google.colab" in setup

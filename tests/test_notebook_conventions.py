"""The house style of CONTRIBUTING.md, checked on every committed notebook."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from utils import runtime

PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_FOLDER = PROJECT_ROOT / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_FOLDER.glob("[0-9][0-9]_*.ipynb"))


NAVIGATION_MARK = "<!-- navigation -->"
MARKDOWN_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def colab_badge_target(notebook_name: str) -> str:
    """The address a notebook's "Open in Colab" badge must link to: the notebook on the repository's main branch."""
    repository = runtime.REPOSITORY_URL.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{repository}/blob/main/notebooks/{notebook_name}"


def test_badge_target_is_built_from_the_repository_url() -> None:
    target = colab_badge_target("03_x.ipynb")
    assert target.startswith("https://colab.research.google.com/github/")
    assert runtime.REPOSITORY_URL.removeprefix("https://github.com/") in target and target.endswith("/03_x.ipynb")


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
    above_navigation = title.split(NAVIGATION_MARK)[0]  # the links to the neighbours open in Colab too
    badge_targets = re.findall(r"\]\((https://colab\.research\.google\.com/github/[^)]+)\)", above_navigation)
    assert badge_targets == [colab_badge_target(path.name)], (
        f"{path.name}: the Colab badge must link to {colab_badge_target(path.name)} "
        f"(built from runtime.REPOSITORY_URL), found {badge_targets}")
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


def setup_cell(path: Path) -> str:
    return next(source(cell) for cell in load(path)["cells"] if "runtime.setup_notebook(" in source(cell))


def contributing_setup_block() -> str:
    text = (PROJECT_ROOT / "CONTRIBUTING.md").read_text()
    return re.search(r"```python\n(# Find the suite's.*?)\n```", text, re.DOTALL).group(1)


def without_setup_call(block: str) -> str:
    """The setup block up to its last line, which may pass extra arguments to setup_notebook."""
    head, last = block.rstrip("\n").rsplit("\n", 1)
    assert last.startswith("context = runtime.setup_notebook(PROFILE, seed=SEED, keep_on_drive=KEEP_ON_DRIVE"), last
    return head


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_uses_the_shared_setup_cell(path: Path) -> None:
    assert without_setup_call(setup_cell(path)) == without_setup_call(contributing_setup_block()), (
        f"{path.name}: the setup cell differs from CONTRIBUTING.md's block; copy the block from there")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_clone_url_is_the_one_in_runtime(path: Path) -> None:
    urls = re.findall(r'^REPOSITORY_URL = "([^"]+)"$', setup_cell(path), re.MULTILINE)
    assert urls == [runtime.REPOSITORY_URL], f"{path.name}: REPOSITORY_URL must be {runtime.REPOSITORY_URL!r}"


def test_setup_block_explains_a_failed_clone_and_offers_drive() -> None:
    block = contributing_setup_block()
    assert "check=True" not in block, "a failed clone must explain itself, not raise CalledProcessError"
    assert "REPOSITORY_URL" in block.split("raise FileNotFoundError", 1)[1] and "upload" in block
    assert re.search(r"^KEEP_ON_DRIVE = False  #", block, re.MULTILINE)
    assert len(block.splitlines()) <= 25, "keep the setup cell short"


def test_contributing_badge_example_uses_the_repository_url() -> None:
    text = (PROJECT_ROOT / "CONTRIBUTING.md").read_text()
    assert colab_badge_target("NN_name.ipynb") in text


def run_setup_block_as_on_colab(folder: Path, repository_url: str) -> subprocess.CompletedProcess:
    """Run the setup block up to the utils import in a fresh Python that believes it is on Colab."""
    block = contributing_setup_block().split("from utils import runtime", 1)[0]
    block = block.replace(f'REPOSITORY_URL = "{runtime.REPOSITORY_URL}"', f"REPOSITORY_URL = {repository_url!r}")
    program = ("import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')\n"
               + block + "\nprint('utils found in', found[0])\n")
    return subprocess.run([sys.executable, "-c", program], cwd=folder, capture_output=True, text=True, timeout=120)


def test_failed_clone_explains_itself(tmp_path: Path) -> None:
    completed = run_setup_block_as_on_colab(tmp_path, str(tmp_path / "no-such-repository"))
    assert completed.returncode != 0
    assert "CalledProcessError" not in completed.stderr
    assert "FileNotFoundError: The suite's utils/ package is not in" in completed.stderr
    assert "does not exist" in completed.stdout + completed.stderr, "git's own reason is shown"


def test_uploaded_utils_folder_is_used_without_cloning(tmp_path: Path) -> None:
    (tmp_path / "utils").symlink_to(PROJECT_ROOT / "utils")
    completed = run_setup_block_as_on_colab(tmp_path, str(tmp_path / "no-such-repository"))
    assert completed.returncode == 0, completed.stderr
    assert f"utils found in {tmp_path}" in completed.stdout


SHIPPED_TEXT = sorted([*PROJECT_ROOT.glob("utils/**/*.py"), *NOTEBOOKS, PROJECT_ROOT / "CONTRIBUTING.md"])
OUTSIDE_FILES = re.compile(r"\.\./shared|\b(?:COURSE|FAST_CIFAR|STYLE)\.md\b")


@pytest.mark.parametrize("path", SHIPPED_TEXT, ids=lambda path: str(path.relative_to(PROJECT_ROOT)))
def test_no_reference_to_files_a_clone_does_not_have(path: Path) -> None:
    found = OUTSIDE_FILES.findall(path.read_text())
    assert not found, f"{path.relative_to(PROJECT_ROOT)} refers to {found}, which a clone of the repository lacks"


def navigation_links(text: str) -> dict[str, str]:
    """The links of a navigation line: 'previous', 'next' (local notebook files), 'contents', and their Colab twins."""
    assert NAVIGATION_MARK in text, "no navigation line (previous / all notebooks / next) at the top and the bottom"
    line = text.split(NAVIGATION_MARK)[1].strip()
    links = {}
    for label in ("Previous", "Next"):
        found = re.search(rf"{label}: \[[^\]]+\]\(([^)]+)\) \(\[Colab\]\(([^)]+)\)\)", line)
        if found:
            links[label.lower()], links[f"{label.lower()} colab"] = found.groups()
    [links["contents"]] = re.findall(r"\[All notebooks\]\(([^)]+)\)", line)
    return links


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_previous_and_next_links_lead_to_the_neighbours(path: Path) -> None:
    """Top and bottom of every notebook link its neighbours (file and Colab) and the README's contents table."""
    cells = load(path)["cells"]
    position = NOTEBOOKS.index(path)
    readme_headings = re.findall(r"^#+ (.+)$", (PROJECT_ROOT / "README.md").read_text(), flags=re.M)
    anchors = {re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-") for heading in readme_headings}
    for where, cell in (("title", cells[0]), ("closing", cells[-1])):
        links = navigation_links(source(cell))
        expected = {}
        if position > 0:
            expected["previous"] = NOTEBOOKS[position - 1].name
        if position + 1 < len(NOTEBOOKS):
            expected["next"] = NOTEBOOKS[position + 1].name
        assert {key: links[key] for key in ("previous", "next") if key in links} == expected, f"{path.name} {where}"
        for key, name in expected.items():
            assert (NOTEBOOK_FOLDER / links[key]).is_file()
            assert links[f"{key} colab"] == colab_badge_target(name), f"{path.name} {where} {key}"
        readme, _, anchor = links["contents"].partition("#")
        assert (NOTEBOOK_FOLDER / readme).resolve() == PROJECT_ROOT / "README.md" and anchor in anchors, (
            f"{path.name} {where}: {links['contents']} does not lead to a README heading")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_parameters_cell_names_every_profile_and_the_default(path: Path) -> None:
    [parameters] = [cell for cell in load(path)["cells"] if "parameters" in cell.get("metadata", {}).get("tags", [])]
    [profile_line] = [line for line in source(parameters).splitlines() if line.startswith("PROFILE = ")]
    for name in runtime.PROFILE_NAMES:
        assert f'"{name}"' in profile_line, f"{path.name}: the PROFILE comment does not name {name!r}"
    assert "None:" in profile_line and "GPU" in profile_line, f"{path.name}: the PROFILE comment omits the default rule"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_references_cell_cites_the_course_and_the_sources(path: Path) -> None:
    cells = load(path)["cells"]
    [references] = [cell for cell in cells if "references" in cell.get("metadata", {}).get("tags", [])]
    text = source(references)
    entries = [line for line in text.splitlines() if line.startswith("- ")]
    assert text.startswith("## References") and len(entries) >= 3, f"{path.name}: too few references"
    assert "The course this suite reproduces" in entries[0]
    assert cells.index(references) == len(cells) - 2, f"{path.name}: References belongs just before the closing cell"

"""Publishing executed copies: cleaning, photo compression, path scrubbing, provenance, markdown sync, the CI check."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import nbformat
import numpy as np
import pytest

from tools import publish, run

ROOT = "/work/someone/cnn-notebooks"
DATA = "/srv/datasets/cnn"
REPLACEMENTS = {ROOT: ".", DATA: "data"}


def fake_photo_png(size: int = 160) -> bytes:
    """A smooth colour gradient with sensor-like noise: tens of thousands of colours, like a photograph."""
    from PIL import Image

    rows, columns = np.mgrid[0:size, 0:size] / size
    channels = np.stack([np.sin(6 * columns + 3 * rows) ** 2, np.cos(4 * rows) ** 2 * columns, rows * columns], -1)
    noisy = np.clip(channels + 0.05 * np.random.default_rng(0).random((size, size, 3)), 0, 1)
    buffer = io.BytesIO()
    Image.fromarray((noisy * 255).astype("uint8")).save(buffer, format="PNG")
    return buffer.getvalue()


def plot_png() -> bytes:
    """A matplotlib line plot with a legend and a grid, as notebooks draw training curves."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(4, 3))
    for seed in range(3):
        axes.plot(np.cumsum(np.random.default_rng(seed).normal(size=50)), label=f"seed {seed}")
    axes.legend()
    axes.grid(True)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def image_output(png: bytes) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("display_data", data={"image/png": base64.b64encode(png).decode("ascii"),
                                                        "text/plain": "<Figure size 400x300>"},
                                  metadata={"image/png": {"width": 400}})


def notebook_with(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = list(cells)
    return notebook


def code(source: str, *outputs: nbformat.NotebookNode, tags: list[str] | None = None) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, outputs=list(outputs))
    if tags:
        cell.metadata["tags"] = tags
    return cell


def printed(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_output("stream", name="stdout", text=text)


def provenance(name: str = "10_tiny") -> publish.Provenance:
    return publish.Provenance(
        notebook=name, profile="lesson", parameters={"PROFILE": "'lesson'"}, commit="0123456789abcdef",
        uncommitted_changes=False, date="2025-01-01 12:00 UTC", hardware="Test CPU (2 cores)", precision="float32",
        tensorflow="2.19.0", keras="3.10.0", python="3.12.0", wall_seconds=90.0)


def test_cleaning_drops_timing_metadata_and_widget_state() -> None:
    widget = nbformat.v4.new_output("display_data", data={publish.WIDGET_VIEW_MIME: {"model_id": "abc"},
                                                          "text/plain": "progress 100%"})
    widget_only = nbformat.v4.new_output("display_data", data={publish.WIDGET_VIEW_MIME: {"model_id": "def"}})
    cell = code("x = 1", widget, widget_only, printed("done\n"))
    cell.metadata["execution"] = {"iopub.execute_input": "2025-01-01T12:00:00Z"}
    cell.metadata["ExecuteTime"] = {"end_time": "2025-01-01T12:00:01Z"}
    cell.metadata["tags"] = ["keep-me"]
    notebook = notebook_with(cell)
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    publish.drop_run_metadata(notebook)
    publish.drop_widget_state(notebook)
    assert dict(cell.metadata) == {"tags": ["keep-me"]}
    assert "widgets" not in notebook.metadata
    assert [output.get("data", {}).get("text/plain") for output in cell.outputs] == ["progress 100%", None]
    assert cell.outputs[1]["text"] == "done\n"


def test_photo_like_pngs_become_jpeg_and_plots_stay_png() -> None:
    photo, plot = fake_photo_png(), plot_png()
    assert publish.is_photo_like(photo) and not publish.is_photo_like(plot)
    notebook = notebook_with(code("show(photo)", image_output(photo)), code("plot()", image_output(plot)))
    assert publish.compress_photo_outputs(notebook) == 1
    photo_output, plot_output = notebook.cells[0].outputs[0], notebook.cells[1].outputs[0]
    jpeg = base64.b64decode(photo_output["data"]["image/jpeg"])
    assert "image/png" not in photo_output["data"] and jpeg[:3] == b"\xff\xd8\xff" and len(jpeg) < len(photo)
    assert photo_output["metadata"] == {"image/jpeg": {"width": 400}}
    assert base64.b64decode(plot_output["data"]["image/png"]) == plot
    nbformat.validate(notebook)


def test_machine_folders_become_relative_names() -> None:
    html = nbformat.v4.new_output("execute_result", data={"text/html": f"<td>{DATA}/flowers</td>",
                                                          "text/plain": f"'{ROOT}'"}, execution_count=1)
    notebook = notebook_with(code("print(paths)", printed(f"saved {ROOT}/results/a.csv from {DATA}/cifar10\n"), html))
    publish.scrub_paths(notebook, REPLACEMENTS)
    assert notebook.cells[0].outputs[0]["text"] == "saved results/a.csv from data/cifar10\n"
    assert notebook.cells[0].outputs[1]["data"] == {"text/html": "<td>data/flowers</td>", "text/plain": "'.'"}
    assert publish.find_absolute_paths(notebook) == []


def test_machine_paths_cover_the_project_and_its_folders(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CNN_DATA_DIR", str(tmp_path / "my data"))
    replacements = publish.machine_paths()
    assert replacements[str(tmp_path / "my data")] == "data"
    assert replacements[str(publish.runtime.project_root())] == "."


def test_an_absolute_path_left_after_scrubbing_is_refused() -> None:
    notebook = notebook_with(code("save()", printed(f"model in /tmp/cache/model.keras, data in {DATA}\n")))
    publish.scrub_paths(notebook, REPLACEMENTS)
    with pytest.raises(publish.PublishError) as refused:
        publish.refuse_absolute_paths(notebook, "The executed copy of 10_tiny.ipynb")
    message = str(refused.value)
    assert "10_tiny.ipynb" in message and "cell 0: /tmp/cache/model.keras" in message
    assert "relative_to(runtime.project_root())" in message and DATA not in message


def test_urls_and_relative_paths_are_not_machine_paths() -> None:
    notebook = notebook_with(code("x", printed("see https://example.org/home/page and data/home/x, ~/tmp/y\n")))
    assert publish.find_absolute_paths(notebook) == []


def test_provenance_goes_into_metadata_and_a_first_markdown_cell() -> None:
    notebook = notebook_with(nbformat.v4.new_markdown_cell("# 10 · Tiny"), code("x = 1"))
    publish.add_provenance(notebook, provenance())
    publish.add_provenance(notebook, provenance())  # publishing again replaces, never stacks
    recorded = notebook.metadata["cnn_suite"]["provenance"]
    assert recorded["profile"] == "lesson" and recorded["hardware"] == "Test CPU (2 cores)"
    assert set(recorded) >= {"parameters", "commit", "date", "precision", "tensorflow", "keras", "wall_seconds"}
    first = notebook.cells[0]
    assert first.cell_type == "markdown" and first.metadata["tags"] == [publish.PROVENANCE_TAG]
    assert [cell.source for cell in notebook.cells[1:]] == ["# 10 · Tiny", "x = 1"]
    for shown in ("**lesson** profile", "`0123456789`", "Test CPU (2 cores)", "float32", "TensorFlow 2.19.0",
                  "1.5 minutes", "`PROFILE='lesson'`", 'make publish ONLY="10" PROFILE=lesson'):
        assert shown in first.source
    nbformat.validate(notebook)


def test_the_precision_is_read_from_the_setup_report() -> None:
    report = printed("Profile: lesson (set by ...)\nPrecision: mixed_bfloat16 (no GPU; the CPU has ...)\n")
    assert publish.reported_precision(notebook_with(code("setup", report))) == "mixed_bfloat16"
    assert publish.reported_precision(notebook_with(code("x = 1"))) == "not reported"


def source_notebook() -> nbformat.NotebookNode:
    """A numbered notebook's shape: title, parameters, lead-in, code, closing."""
    return notebook_with(
        nbformat.v4.new_markdown_cell("# 10 · Tiny"),
        code("PROFILE = None\nSEED = 1", tags=["parameters"]),
        nbformat.v4.new_markdown_cell("Print a number."),
        code("print(6 * 7)"),
        nbformat.v4.new_markdown_cell("## What we learned\n- numbers"))


def executed_copy(source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """What publishing makes of ``source``: injected parameters, outputs, provenance."""
    executed = nbformat.from_dict(json.loads(json.dumps(source)))
    run.inject_parameters(executed, {"PROFILE": "lesson"})
    executed.cells[4].outputs = [printed("42\n")]
    publish.add_provenance(executed, provenance())
    return executed


def write_pair(tmp_path: Path) -> tuple[Path, Path]:
    """A source notebook in notebooks/ and its fresh executed copy in executed/."""
    (tmp_path / "notebooks").mkdir(exist_ok=True)
    (tmp_path / "executed").mkdir(exist_ok=True)
    source = source_notebook()
    nbformat.write(source, tmp_path / "notebooks" / "10_tiny.ipynb")
    nbformat.write(executed_copy(source), tmp_path / "executed" / "10_tiny.ipynb")
    return tmp_path / "notebooks" / "10_tiny.ipynb", tmp_path / "executed" / "10_tiny.ipynb"


def edit_cell(path: Path, index: int, new_source: str) -> None:
    notebook = nbformat.read(path, as_version=4)
    notebook.cells[index].source = new_source
    nbformat.write(notebook, path)


def test_sync_markdown_copies_text_edits_and_keeps_outputs(tmp_path: Path) -> None:
    source_path, executed_path = write_pair(tmp_path)
    edit_cell(source_path, 2, "Print the answer.")
    source = nbformat.read(source_path, as_version=4)
    source.cells.insert(4, nbformat.v4.new_markdown_cell("A new remark."))
    nbformat.write(source, source_path)
    assert publish.sync_markdown(source_path, executed_path)
    synced = nbformat.read(executed_path, as_version=4)
    assert [cell.source for cell in publish.published_cells(synced)] == [cell.source for cell in source.cells]
    assert synced.cells[3].metadata["tags"] == [run.INJECTED_PARAMETERS_TAG]  # still right after the parameters
    assert synced.cells[5].outputs[0]["text"] == "42\n"
    assert "markdown_synced" in publish.read_provenance(synced) and "without re-running" in synced.cells[0].source
    publish.check_executed_copies(tmp_path / "executed", tmp_path / "notebooks")
    assert not publish.sync_markdown(source_path, executed_path)  # nothing left to sync


def test_sync_markdown_refuses_a_code_change_naming_the_cell(tmp_path: Path) -> None:
    source_path, executed_path = write_pair(tmp_path)
    edit_cell(source_path, 2, "Print another number.")
    edit_cell(source_path, 3, "print(6 * 9)")
    before = executed_path.read_text()
    with pytest.raises(publish.PublishError) as refused:
        publish.sync_markdown(source_path, executed_path)
    assert "cell 3 ('print(6 * 9)')" in str(refused.value)
    assert 'make publish ONLY="10" PROFILE=lesson' in str(refused.value)
    assert executed_path.read_text() == before


def test_the_check_passes_a_fresh_copy_and_names_the_fix_for_a_stale_one(tmp_path: Path) -> None:
    source_path, _ = write_pair(tmp_path)
    publish.check_executed_copies(tmp_path / "executed", tmp_path / "notebooks")
    edit_cell(source_path, 2, "Print the answer.")
    with pytest.raises(publish.ExecutedCopyError, match="--sync-markdown --only 10"):
        publish.check_executed_copies(tmp_path / "executed", tmp_path / "notebooks")
    edit_cell(source_path, 3, "print(6 * 9)")
    with pytest.raises(publish.ExecutedCopyError) as stale:
        publish.check_executed_copies(tmp_path / "executed", tmp_path / "notebooks")
    assert "10_tiny.ipynb is stale" in str(stale.value) and 'make publish ONLY="10" PROFILE=lesson' in str(stale.value)


def test_the_check_finds_errors_paths_size_and_missing_copies(tmp_path: Path) -> None:
    _, executed_path = write_pair(tmp_path)
    executed = nbformat.read(executed_path, as_version=4)
    executed.cells[5].outputs = [printed("wrote /home/someone/out.csv\n"),
                                 nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=[])]
    nbformat.write(executed, executed_path)
    nbformat.write(source_notebook(), tmp_path / "notebooks" / "11_other.ipynb")
    problems = publish.executed_copy_problems(tmp_path / "executed", tmp_path / "notebooks", require_all=True,
                                              budget_bytes=1_000, total_budget_bytes=1_000)
    text = "\n".join(problems)
    assert "shows an error (cell 5 ('print(6 * 7)'): ValueError: boom)" in text
    assert "cell 5: /home/someone/out.csv" in text
    assert "over the 0.0 MB budget per copy" in text and "executed/ holds" in text
    assert '11_other.ipynb has no executed copy; make it with `make publish ONLY="11" PROFILE=lesson`' in text


def test_the_check_refuses_an_invalid_notebook(tmp_path: Path) -> None:
    _, executed_path = write_pair(tmp_path)
    broken = json.loads(executed_path.read_text())
    broken["cells"][5]["outputs"] = [{"output_type": "stream", "name": "stdout"}]  # no text: invalid
    executed_path.write_text(json.dumps(broken))
    problems = publish.executed_copy_problems(tmp_path / "executed", tmp_path / "notebooks")
    assert len(problems) == 1 and "10_tiny.ipynb: not a valid notebook" in problems[0]


TINY_NOTEBOOK = [
    "PROFILE = None\nSEED = 1",
    "import os\nprint('Precision: float32 (the test says so)')\nprint('runs in', os.environ['CNN_RUNS_DIR'])",
    "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()",
]


def test_publishing_a_tiny_notebook_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real path: the runner executes it, the copy is cleaned and checked; then a code edit makes it stale."""
    (tmp_path / "notebooks").mkdir()
    source = notebook_with(*(code(text) for text in TINY_NOTEBOOK))
    source.cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(source, tmp_path / "notebooks" / "10_tiny.ipynb")
    monkeypatch.setenv("CNN_NOTEBOOKS_DIR", str(tmp_path / "notebooks"))
    monkeypatch.setattr(publish.runtime, "hardware_name", lambda: "Test CPU (2 cores)")  # no TensorFlow import
    monkeypatch.setattr(publish.runtime, "import_tensorflow", lambda: None)
    assert publish.main(["--only", "10", "--profile", "quick", "--param", "SEED=7"]) == 0
    executed = nbformat.read(tmp_path / "executed" / "10_tiny.ipynb", as_version=4)
    recorded = publish.read_provenance(executed)
    assert recorded["parameters"] == {"PROFILE": "'quick'", "SEED": "7"} and recorded["precision"] == "float32"
    assert "".join(output["text"] for output in executed.cells[3].outputs).endswith("runs in runs\n")
    assert all("execution" not in cell.metadata for cell in executed.cells)
    assert "image/png" in executed.cells[4].outputs[0]["data"]  # a plot stays PNG
    publish.check_executed_copies(tmp_path / "executed", require_all=True)
    assert publish.main(["--check"]) == 0
    edit_cell(tmp_path / "notebooks" / "10_tiny.ipynb", 1, "print('changed')")
    with pytest.raises(publish.ExecutedCopyError, match='regenerate it with `make publish ONLY="10" PROFILE=quick`'):
        publish.check_executed_copies(tmp_path / "executed")
    assert publish.main(["--sync-markdown", "--only", "10"]) == 1  # a code change is refused


# The committed copies -----------------------------------------------------------------------------------------

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_executed_copies_are_complete_and_current() -> None:
    """Every numbered notebook has a copy in executed/: same cells, valid, no error, no path, in budget, HTML-able.

    A failure names the notebook and the command that regenerates its copy.
    """
    publish.check_executed_copies(PROJECT_ROOT / "executed", PROJECT_ROOT / "notebooks", require_all=True)


def test_the_committed_copies_were_run_in_the_lesson_profile_from_a_clean_commit() -> None:
    for path in sorted((PROJECT_ROOT / "executed").glob("[0-9][0-9]_*.ipynb")):
        recorded = publish.read_provenance(nbformat.read(path, as_version=4))
        assert recorded["profile"] == "lesson", path.name
        assert not recorded["uncommitted_changes"], f"{path.name} was run from a tree with uncommitted changes"
        assert recorded["precision"] in {"float32", "mixed_bfloat16", "mixed_float16"}, path.name


def test_the_readme_links_each_copy_with_the_date_and_commit_of_its_run() -> None:
    readme_lines = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    for path in sorted((PROJECT_ROOT / "executed").glob("[0-9][0-9]_*.ipynb")):
        recorded = publish.read_provenance(nbformat.read(path, as_version=4))
        rows = [line for line in readme_lines if line.startswith("|") and f"(executed/{path.name})" in line]
        assert rows, f"README.md's notebook table has no 'read it run' link to executed/{path.name}"
        assert recorded["commit"][:7] in rows[0] and recorded["date"][:10] in rows[0], (
            f"README.md's row for {path.name} does not give its run's commit {recorded['commit'][:7]} and date "
            f"{recorded['date'][:10]}")

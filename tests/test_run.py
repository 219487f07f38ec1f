"""The headless notebook runner: success, a failing cell named, the summary table."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from utils import run


def write_notebook(path: Path, sources: list[str]) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


def test_runner_passes_profile_and_records_failures(tmp_path: Path) -> None:
    good = write_notebook(tmp_path / "10_good.ipynb", ["import os\nprint(os.environ['CNN_PROFILE'])"])
    bad = write_notebook(tmp_path / "11_bad.ipynb", ["x = 1", "raise ValueError('boom')"])
    outcome = run.execute_notebook(good, tmp_path / "out", "quick", timeout_seconds=120)
    assert outcome.status == "ok"
    executed = nbformat.read(tmp_path / "out" / "10_good.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"].strip() == "quick"
    failed = run.execute_notebook(bad, tmp_path / "out", "quick", timeout_seconds=120)
    assert failed.status == "failed" and "cell 1" in failed.detail and "boom" in failed.detail
    run.write_summary([outcome, failed], tmp_path / "summary.csv")
    assert "11_bad,failed" in (tmp_path / "summary.csv").read_text()
    assert "failed" in run.format_table([outcome, failed])


def test_list_notebooks_filters_by_number() -> None:
    every = run.list_notebooks()
    assert every == sorted(every)
    if every:
        number = every[0].stem[:2]
        assert run.list_notebooks([number]) == [every[0]]
    with pytest.raises(SystemExit, match="No notebook matches"):
        run.list_notebooks(["99"])


def test_executed_copy_keeps_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when the test process draws off-screen, the executed notebook embeds its figures."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    source = write_notebook(tmp_path / "12_plot.ipynb",
                            ["import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"])
    assert run.execute_notebook(source, tmp_path / "out", "quick", timeout_seconds=120).status == "ok"
    outputs = nbformat.read(tmp_path / "out" / "12_plot.ipynb", as_version=4).cells[0].outputs
    assert any("image/png" in output.get("data", {}) for output in outputs)

"""Every notebook runs top to bottom in a fresh kernel in the quick profile, and its saved outputs read cleanly.

The notebooks use the real datasets when ``CNN_DATA_DIR`` points at them and
small synthetic data otherwise (see ``conftest.py``).  They share one results
and runs folder for the session, in order, so a later notebook can reuse what
an earlier one saved (notebook 07 reuses notebook 03's model).  The executed
copy must hold no TensorFlow C++ log line and, per cell, at most
``MAX_PROGRESS_LINES_PER_CELL`` Keras progress lines (one line per epoch, not
one per redraw of a live bar). Every results row a notebook adds names the precision its setup cell printed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from tools import run

NOTEBOOKS = run.list_notebooks()
# Notebook 03 trains seven experiments of one quick epoch each: two lines per epoch ("Epoch 1/1" and
# its summary) is 14; a live bar saved line by line gave hundreds.
MAX_PROGRESS_LINES_PER_CELL = 30


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_in_quick_profile(path: Path, session_output_dir: Path) -> None:
    environment = {key: os.environ[key] for key in ("CNN_RESULTS_DIR", "CNN_RUNS_DIR")}
    rows_before = table_lengths(Path(environment["CNN_RESULTS_DIR"]))
    outcome = run.execute_notebook(path, session_output_dir / "executed", "quick", timeout_seconds=900,
                                   extra_environment=environment)
    assert outcome.status == "ok", f"{path.name} failed at {outcome.detail}"
    executed = nbformat.read(session_output_dir / "executed" / path.name, as_version=4)
    errors = run.error_outputs(executed)  # a figure that fails to render leaves an error and runs on
    assert not errors, f"{path.name} shows {run.describe_errors(errors)}"
    for cell in run.output_noise(executed):
        assert cell.log_lines == 0, f"{path.name} cell {cell.cell_index}: {cell.log_lines} TensorFlow log line(s)"
        assert cell.progress_lines <= MAX_PROGRESS_LINES_PER_CELL, (
            f"{path.name} cell {cell.cell_index}: {cell.progress_lines} progress lines; train with "
            f"verbose=runtime.progress_verbosity()")
    printed = set(re.findall(r"^Precision: (\S+)", printed_text(executed), re.MULTILINE))
    for table, rows in added_rows(Path(environment["CNN_RESULTS_DIR"]), rows_before).items():
        recorded = set(rows["precision"].astype(str)) if "precision" in rows.columns else set()
        assert recorded <= printed, f"{path.name} printed precision {printed} but recorded {recorded} in {table}"


def table_lengths(folder: Path) -> dict[str, int]:
    """Rows per results table in ``folder`` (tables are only ever appended to)."""
    return {path.name: len(pd.read_csv(path)) for path in folder.glob("*.csv")}


def added_rows(folder: Path, lengths_before: dict[str, int]) -> dict[str, pd.DataFrame]:
    """The rows each results table in ``folder`` gained since ``lengths_before`` was taken."""
    return {path.name: pd.read_csv(path).iloc[lengths_before.get(path.name, 0):] for path in folder.glob("*.csv")}


def printed_text(notebook: nbformat.NotebookNode) -> str:
    """Everything the executed notebook's cells printed (stream outputs), one text."""
    return "\n".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", [])
                     if output.get("output_type") == "stream")

"""Every notebook runs top to bottom in a fresh kernel in the quick profile.

The notebooks use the real datasets when ``CNN_DATA_DIR`` points at them and
small synthetic data otherwise (see ``conftest.py``).  They share one results
and runs folder for the session, in order, so a later notebook can reuse what
an earlier one saved (notebook 07 reuses notebook 03's model).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from utils import run

NOTEBOOKS = run.list_notebooks()


@pytest.mark.notebook
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_in_quick_profile(path: Path, session_output_dir: Path) -> None:
    environment = {key: os.environ[key] for key in ("CNN_RESULTS_DIR", "CNN_RUNS_DIR")}
    outcome = run.execute_notebook(path, session_output_dir / "executed", "quick", timeout_seconds=900,
                                   extra_environment=environment)
    assert outcome.status == "ok", f"{path.name} failed at {outcome.detail}"

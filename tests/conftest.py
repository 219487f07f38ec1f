"""Test-wide settings: never download, draw figures off-screen, keep outputs out of the tree."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["CNN_OFFLINE"] = "1"
# Notebooks run on real data when CNN_DATA_DIR points at it, otherwise on synthetic data.
if not os.environ.get("CNN_DATA_DIR") and not os.environ.get("CNN_DATA"):
    os.environ["CNN_DATA"] = "synthetic"


@pytest.fixture(scope="session")
def session_output_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder per test session for results and run outputs (shared by the notebook tests)."""
    return tmp_path_factory.mktemp("outputs")


@pytest.fixture(autouse=True)
def isolated_outputs(monkeypatch: pytest.MonkeyPatch, session_output_dir: Path) -> None:
    """Results and run outputs of tests go to a temporary folder, never into results/ or runs/."""
    monkeypatch.setenv("CNN_RESULTS_DIR", str(session_output_dir / "results"))
    monkeypatch.setenv("CNN_RUNS_DIR", str(session_output_dir / "runs"))


@pytest.fixture
def own_outputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A test of its own: an empty results folder and runs folder, and the float32 policy before and after."""
    import keras

    monkeypatch.setenv("CNN_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("CNN_RUNS_DIR", str(tmp_path / "runs"))
    keras.mixed_precision.set_global_policy("float32")
    yield tmp_path
    keras.mixed_precision.set_global_policy("float32")


@pytest.fixture
def data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data folder that the loaders search (and cache into) instead of the real one."""
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("CNN_DATA_DIR", str(folder))
    monkeypatch.setenv("CNN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CNN_DATA", raising=False)
    return folder

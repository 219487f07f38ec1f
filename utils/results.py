"""Result tables: one CSV per notebook topic under ``results/``, one row per run.

Rows are appended atomically (the whole file is rewritten to a temporary file
and moved into place), so a crash or Ctrl-C in the middle of a write never
leaves a half-written table behind.  New columns may appear over time; old rows
simply get empty cells for them.
"""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from utils import runtime


def results_path(name: str) -> Path:
    """Path of the result table ``name`` (``"mnist"`` -> ``results/mnist.csv``)."""
    return runtime.results_dir() / (name if name.endswith(".csv") else f"{name}.csv")


def read_results(name: str) -> pd.DataFrame:
    """The table as a DataFrame (empty when nothing has been recorded yet)."""
    path = results_path(name)
    if not path.exists() or path.stat().st_size == 0:
        return pd.DataFrame()
    return pd.read_csv(path)


def _write_atomically(table: pd.DataFrame, path: Path) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", newline="") as handle:
            table.to_csv(handle, index=False)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def append_result(name: str, row: dict[str, Any]) -> Path:
    """Append one run's row to the table, adding a UTC ``timestamp`` if the row has none."""
    row = {"timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"), **row}
    path = results_path(name)
    table = pd.concat([read_results(name), pd.DataFrame([row])], ignore_index=True)
    _write_atomically(table, path)
    return path


def library_versions() -> dict[str, str]:
    """TensorFlow and Keras versions, for recording next to a result."""
    report = runtime.environment_report()
    return {"tensorflow": report["tensorflow"], "keras": report["keras"], "gpus": report["gpus"]}

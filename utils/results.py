"""Result tables: one CSV per notebook topic under ``results/``, one row per run.

Tables are rewritten atomically, so a crash mid-write never leaves half a table; new columns leave old rows
with empty cells.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

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


def write_text_atomically(write: Callable[[Any], None], path: Path) -> None:
    """Call ``write(handle)`` on a temporary file beside ``path``, then move it into place (atomically).

    Readers see the old file or the new one, never half; if ``write`` fails, ``path`` is untouched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", newline="") as handle:
            write(handle)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json_atomically(data: Any, path: Path) -> None:
    """Save ``data`` as JSON at ``path`` atomically (see :func:`write_text_atomically`)."""
    write_text_atomically(lambda handle: json.dump(data, handle), path)


def _write_atomically(table: pd.DataFrame, path: Path) -> None:
    write_text_atomically(lambda handle: table.to_csv(handle, index=False), path)


def append_result(name: str, row: dict[str, Any]) -> Path:
    """Append one run's row to the table, adding a UTC ``timestamp`` if the row has none."""
    row = {"timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"), **row}
    path = results_path(name)
    table = pd.concat([read_results(name), pd.DataFrame([row])], ignore_index=True)
    _write_atomically(table, path)
    return path


def library_versions() -> dict[str, str]:
    """What a result depends on besides its settings: library versions, hardware, precision.

    Recorded next to every result so that two rows can be compared fairly.
    """
    import keras

    report = runtime.environment_report()
    return {"tensorflow": report["tensorflow"], "keras": report["keras"], "gpus": report["gpus"],
            "hardware": report["hardware"], "precision": keras.mixed_precision.global_policy().name}

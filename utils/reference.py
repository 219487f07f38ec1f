"""Reference results: runs measured by this suite's own code, shipped in ``results/reference/`` (03, 05, 08).

A learner's table means more beside the course's figures and a *reference* run of the same notebook, on
named hardware and precision, with its wall time and library versions. Reference tables are committed CSV
files copied only from finished runs by ``python -m tools.reference`` (``results/reference/README.md`` lists
them); a figure not measured yet says so and is never estimated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pandas as pd

from utils import runtime

NOT_MEASURED = "not measured yet"
# Columns a reference table must have for the notebook to show it.
REQUIRED_COLUMNS = ("experiment", "epochs", "train_accuracy", "val_accuracy", "test_accuracy", "seconds",
                    "images_per_second", "precision", "hardware", "tensorflow", "keras", "data_source")
EPOCH_COLUMNS = ("experiment", "epoch", "accuracy", "val_accuracy", "loss", "val_loss")


def reference_dir() -> Path:
    """The committed folder of reference tables (inside the repository, never ``CNN_RESULTS_DIR``)."""
    return runtime.project_root() / "results" / "reference"


@dataclass
class ReferenceTable:
    """A reference table as read from disk, or the reason it could not be used."""

    path: Path
    rows: pd.DataFrame
    problem: str = ""

    @property
    def usable(self) -> bool:
        """True when the file was read and has every required column."""
        return not self.problem


def read_reference(name: str, required: Sequence[str] = REQUIRED_COLUMNS,
                   folder: Path | None = None) -> ReferenceTable:
    """Read ``results/reference/<name>.csv``; a missing or malformed file gives a message, not an exception.

    The notebook prints :attr:`ReferenceTable.problem` and carries on, so a damaged file never stops a run.
    """
    path = (folder or reference_dir()) / f"{name}.csv"
    empty = pd.DataFrame(columns=list(required))
    if not path.exists():
        return ReferenceTable(path, empty, f"No reference table at {path.name}: no reference run has been "
                                           f"shipped for this profile yet, so the reference column says "
                                           f"'{NOT_MEASURED}'.")
    try:
        rows = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        return ReferenceTable(path, empty, f"The reference table {path} could not be read ({error}). Restore it "
                                           f"with `git checkout -- results/reference/{path.name}`; until then "
                                           f"the reference column says '{NOT_MEASURED}'.")
    missing = [column for column in required if column not in rows.columns]
    if missing:
        return ReferenceTable(path, empty, f"The reference table {path} lacks the columns {missing}, so it was "
                                           f"not used. Restore it with `git checkout -- results/reference/"
                                           f"{path.name}` or re-export it with `python -m tools.reference`.")
    return ReferenceTable(path, rows)


def read_reference_histories(name: str, folder: Path | None = None) -> dict[str, dict[str, list[float]]]:
    """Learning curves of a reference run, one Keras-style history per experiment (empty if none)."""
    table = read_reference(f"{name}_epochs", required=EPOCH_COLUMNS, folder=folder)
    histories: dict[str, dict[str, list[float]]] = {}
    for experiment, epochs in table.rows.groupby("experiment", sort=False):
        ordered = epochs.sort_values("epoch")
        histories[str(experiment)] = {metric: ordered[metric].astype(float).tolist()
                                      for metric in EPOCH_COLUMNS[2:]}
    return histories


def reference_name(profile: str) -> str:
    """File stem of notebook 03's reference table for a profile (``cifar10_full``)."""
    return f"cifar10_{profile}"

"""Reference results: runs measured by this suite's own code, shipped in ``results/reference/``.

A learner's own table means more beside two others: the course's reported figures and
a *reference* run of the same notebook made with this code, on named hardware, in a
named precision, with its wall time and library versions. Reference tables are plain
CSV files committed to the repository (unlike ``results/``, which holds your runs):

- ``results/reference/cifar10_<profile>.csv``: one row per experiment, the same columns
  as ``results/cifar10_experiments.csv``;
- ``results/reference/cifar10_<profile>_epochs.csv``: the per-epoch log of each of those
  runs (one row per experiment and epoch), from which their learning curves are drawn.

Rows are only ever copied from runs that finished (:func:`export_cifar10_reference`);
an experiment not measured yet is shown as "not measured yet", never estimated.

Reference runs are made headless, resumably, with
``python -m utils.reference cifar10 --profile full --experiments I III`` (see :func:`main`);
each finished experiment is exported at once, so an interrupted session keeps every
row that landed.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import pandas as pd

from utils import recording, results, runtime

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

    The notebook prints :attr:`ReferenceTable.problem` and carries on without the
    reference columns, so a damaged file never stops a learner's run.
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
                                           f"{path.name}` or re-export it with utils.reference.")
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


def export_cifar10_reference(row: dict, epoch_log: dict[int, dict[str, float]], profile: str,
                             folder: Path | None = None) -> Path:
    """Add one finished run (its results row and epoch log) to the profile's reference tables.

    A row for the same experiment already there is replaced, so re-running an
    experiment updates its reference rather than duplicating it.
    """
    folder = folder or reference_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = reference_name(profile)
    experiment = str(row["experiment"])
    finished = {"timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    _replace_rows(folder / f"{name}.csv", pd.DataFrame([{**finished, **row}]), experiment)
    epochs = pd.DataFrame([{"experiment": experiment, "epoch": epoch + 1,
                            **{metric: values.get(metric) for metric in EPOCH_COLUMNS[2:]},
                            "seconds": values.get("seconds")}
                           for epoch, values in sorted(epoch_log.items())])
    _replace_rows(folder / f"{name}_epochs.csv", epochs, experiment)
    return folder / f"{name}.csv"


def _replace_rows(path: Path, new_rows: pd.DataFrame, experiment: str) -> None:
    """Write ``new_rows`` into the CSV at ``path`` in place of that experiment's old rows (atomically)."""
    old = pd.read_csv(path) if path.exists() else pd.DataFrame()
    if not old.empty:
        old = old[old["experiment"].astype(str) != experiment]
    table = pd.concat([old, new_rows], ignore_index=True)
    order = {name: index for index, name in enumerate(("I", "II", "III", "IV", "V", "VI", "VII"))}
    table = table.sort_values("experiment", key=lambda names: names.map(lambda name: order.get(str(name), 99)),
                              kind="stable")
    results.write_text_atomically(lambda handle: table.to_csv(handle, index=False), path)


def run_cifar10_reference(profile: str, names: Sequence[str], seed: int = runtime.DEFAULT_SEED,
                          epochs: int | None = None, export: bool = True) -> list[Path]:
    """Train notebook 03's experiments in ``profile`` exactly as the notebook does and export each one.

    Uses the same splits (holdout, seed ``seed``) and :func:`utils.experiments.run_experiment`
    as the notebook, in the precision :func:`utils.runtime.choose_precision` picks; an
    interrupted run resumes from its checkpoint when started again. ``export=False`` only
    records the runs in ``results/`` (for side experiments such as a float32 check).
    """
    from utils import data, experiments

    context = runtime.setup_notebook(profile, seed=seed, mixed_precision=True)
    settings = experiments.profile_settings(context.profile)
    dataset = data.load_cifar10()
    splits = data.make_splits(dataset, protocol="holdout", validation_size=settings.validation_images,
                              seed=seed, train_limit=settings.train_images, test_limit=settings.test_images)
    print(splits.describe(), flush=True)
    exported = []
    for name in names:
        outcome = experiments.run_experiment(name, splits, seed=seed, profile=context.profile.name,
                                             epochs=epochs or settings.epochs, strategy=context.strategy,
                                             precision=context.precision_policy, verbose=2)
        print(f"Experiment {name}: train {outcome.row['train_accuracy']:.4f}, validation "
              f"{outcome.row['val_accuracy']:.4f}, test {outcome.row['test_accuracy']:.4f}, "
              f"{outcome.row['seconds']:.0f} s, {outcome.row['precision']}", flush=True)
        if export:
            path = export_cifar10_reference(outcome.row, recording.read_epoch_log(outcome.folder),
                                            context.profile.name)
            print(f"exported to {path}", flush=True)
            exported.append(path)
    return exported


def main(arguments: list[str] | None = None) -> int:
    """Command line: ``python -m utils.reference cifar10 --profile full --experiments I III``."""
    parser = argparse.ArgumentParser(description="Measure and export reference results of notebook 03.")
    parser.add_argument("notebook", choices=["cifar10"], help="which notebook's reference to measure")
    parser.add_argument("--profile", default="full", choices=runtime.PROFILE_NAMES)
    parser.add_argument("--experiments", nargs="+", default=["I", "II", "III", "IV", "V", "VI", "VII"])
    parser.add_argument("--seed", type=int, default=runtime.DEFAULT_SEED)
    parser.add_argument("--no-export", action="store_true", help="record in results/ only, not as reference")
    options = parser.parse_args(arguments)
    run_cifar10_reference(options.profile, options.experiments, seed=options.seed, export=not options.no_export)
    return 0


if __name__ == "__main__":
    sys.exit(main())

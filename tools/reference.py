"""Maintainer commands that measure and ship reference rows: ``python -m tools.reference``.

A learner's run is compared with rows the maintainers measured with this suite's own code
and committed in ``results/reference/`` (see its README). Producing those rows is not part
of any notebook's lesson profile: it takes hours on a CPU. Two commands make them:

- ``python -m tools.reference cifar10 --profile full --experiments I III`` trains notebook
  03's experiments exactly as the notebook does and exports each one as soon as it finishes,
  so an interrupted session keeps every row that landed;
- ``python -m tools.reference transfer`` runs notebook 05 headless in the lesson profile and exports its
  data-efficiency curve and its pretraining row (``--export-only`` exports what ``results/`` holds);
- ``python -m tools.reference fast_cifar`` runs notebook 08 headless in the lesson profile
  with the reference settings (:data:`FAST_CIFAR_REFERENCE`: three seeds at ten minutes, one
  at twenty, the ten-row ablation) and then exports its rows; ``--export-only`` exports what
  ``results/`` already holds.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

import pandas as pd

from utils import fast_cifar, recording, reference, results, runtime

COURSE_ORDER = ("I", "II", "III", "IV", "V", "VI", "VII")
# The ablations the lesson profile leaves out: the smallest effects in the records' ablations.
MINOR_ABLATIONS = ("plain momentum, not Nesterov", "ReLU instead of GELU")
# Notebook 08's parameters for its reference rows; the lesson profile reads these rows instead of training them.
FAST_CIFAR_REFERENCE = {
    "BUDGET_MINUTES": [10, 20],  # the headline budgets (the lesson profile's own race is at 3 minutes)
    "SEEDS": [42, 43, 44],  # three seeds at the first budget; the lesson profile trains later budgets with one
    "ABLATION_MINUTES": 3,  # every ablation row, the full recipe and the course's recipe on this clock
    "ABLATIONS": [name for name in fast_cifar.ABLATIONS if name not in MINOR_ABLATIONS],
}


def export_cifar10_reference(row: dict, epoch_log: dict[int, dict[str, float]], profile: str,
                             folder: Path | None = None) -> Path:
    """Add one finished run (its results row and epoch log) to the profile's reference tables.

    A row for the same experiment already there is replaced, so re-running an
    experiment updates its reference rather than duplicating it.
    """
    folder = folder or reference.reference_dir()
    folder.mkdir(parents=True, exist_ok=True)
    name = reference.reference_name(profile)
    experiment = str(row["experiment"])
    finished = {"timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    replace_rows(folder / f"{name}.csv", pd.DataFrame([{**finished, **row}]), experiment)
    epochs = pd.DataFrame([{"experiment": experiment, "epoch": epoch + 1,
                            **{metric: values.get(metric) for metric in reference.EPOCH_COLUMNS[2:]},
                            "seconds": values.get("seconds")}
                           for epoch, values in sorted(epoch_log.items())])
    replace_rows(folder / f"{name}_epochs.csv", epochs, experiment)
    return folder / f"{name}.csv"


def replace_rows(path: Path, new_rows: pd.DataFrame, experiment: str) -> None:
    """Write ``new_rows`` into the CSV at ``path`` in place of that experiment's old rows (atomically)."""
    old = pd.read_csv(path) if path.exists() else pd.DataFrame()
    if not old.empty:
        old = old[old["experiment"].astype(str) != experiment]
    table = pd.concat([old, new_rows], ignore_index=True)
    order = {name: index for index, name in enumerate(COURSE_ORDER)}
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
def real_rows(table: str, profile: str, notebook: str, command: str) -> pd.DataFrame:
    """The real-data rows of ``profile`` in ``results/<table>.csv``; a clear error naming the command if none."""
    rows = results.read_results(table)
    rows = rows[rows["profile"] == profile] if not rows.empty else rows
    if not rows.empty:
        rows = rows[~rows["data_source"].astype(str).str.startswith("synthetic")]
    if rows.empty:
        raise FileNotFoundError(
            f"{results.results_path(table)} has no real-data rows of the {profile!r} profile to export. Run notebook "
            f"{notebook} first: python -m tools.reference {command} --profile {profile} (with CNN_DATA_DIR pointing "
            "at the real data), or --export-only once its runs are recorded.")
    return rows


def export_reference(profile: str, folder: Path | None = None) -> Path:
    """Copy this machine's finished real-data rows of ``profile`` from ``results/`` into notebook 08's reference table.

    Only rows that runs recorded are copied (never estimates); synthetic-data rows are
    refused. Raises ``FileNotFoundError`` with the command to run when there is nothing to copy.
    """
    rows = real_rows(fast_cifar.RESULTS_TABLE, profile, "08", "fast_cifar")
    path = (folder or reference.reference_dir()) / f"{fast_cifar.RESULTS_TABLE}_{profile}.csv"
    shipped = shippable_rows(rows)
    results.write_text_atomically(lambda handle: shipped.to_csv(handle, index=False), path)
    return path


def shippable_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows as they ship: with their training speed, without this machine's model paths or empty columns.

    ``images_per_second`` (training images seen per second of training) is filled in for
    rows recorded before it was a column; columns no exported row uses (left over from
    other rows of the local table) and ``model_path`` (a file on this machine) are dropped.
    """
    rows = rows.drop(columns=["model_path"], errors="ignore").dropna(axis="columns", how="all").copy()
    if {"train_images", "epochs_done", "train_seconds"} <= set(rows.columns):
        speed = rows["train_images"].astype(float) * rows["epochs_done"].astype(float) / rows["train_seconds"].astype(float)
        rows["images_per_second"] = rows.get("images_per_second", speed).fillna(speed).round(1)
    return rows



def fast_cifar_reference_arguments(profile: str = "lesson") -> list[str]:
    """The ``tools.run`` arguments that run notebook 08 with :data:`FAST_CIFAR_REFERENCE`."""
    assignments = " ".join(f"{name}={value!r}" for name, value in FAST_CIFAR_REFERENCE.items())
    return ["--profile", profile, "--only", "08", "--param", assignments]


def run_fast_cifar_reference(profile: str = "lesson", export_only: bool = False) -> Path:
    """Run notebook 08 with the reference settings (runs already recorded are reused), then export its rows."""
    if not export_only:
        from tools import run

        status = run.main(fast_cifar_reference_arguments(profile))
        if status:
            raise RuntimeError(f"Notebook 08 did not finish (exit status {status}); nothing was exported. Its "
                               "executed copy under runs/ names the failing cell; rerun this command after fixing it "
                               "(finished runs are reused).")
    return export_reference(profile)


def export_transfer_reference(profile: str, folder: Path | None = None) -> list[Path]:
    """Copy notebook 05's real-data curve and pretraining rows of ``profile`` into ``results/reference/``.

    Synthetic-data rows are never shipped, nor this machine's model paths.
    """
    from utils import data_efficiency

    written = []
    for table in (data_efficiency.CURVE_TABLE, data_efficiency.PRETRAINING_TABLE):
        rows = real_rows(table, profile, "05", "transfer")
        path = (folder or reference.reference_dir()) / f"{table}_{profile}.csv"
        shipped = rows.drop(columns=["model_path"], errors="ignore").dropna(axis="columns", how="all")
        results.write_text_atomically(lambda handle: shipped.to_csv(handle, index=False), path)
        written.append(path)
    return written


def run_transfer_reference(profile: str = "lesson", export_only: bool = False) -> list[Path]:
    """Run notebook 05 headless in ``profile`` (recorded runs are reused), then export its rows."""
    if not export_only:
        from tools import run

        status = run.main(["--profile", profile, "--only", "05"])
        if status:
            raise RuntimeError(f"Notebook 05 did not finish (exit status {status}); nothing was exported. Its executed "
                               "copy under runs/ names the failing cell; rerun this command after fixing it.")
    return export_transfer_reference(profile)


def main(arguments: list[str] | None = None) -> int:
    """Command line: ``python -m tools.reference cifar10 --profile full --experiments I III``, ``... transfer``, ``... fast_cifar``."""
    parser = argparse.ArgumentParser(description="Measure and export the reference rows of notebook 03, 05 or 08.")
    parser.add_argument("notebook", choices=["cifar10", "transfer", "fast_cifar"],
                        help="03 (cifar10), 05 (transfer) or 08 (fast_cifar)")
    parser.add_argument("--profile", default=None, choices=[name for name in runtime.PROFILE_NAMES if name != "quick"],
                        help="default: full for cifar10, lesson for fast_cifar")
    parser.add_argument("--experiments", nargs="+", default=list(COURSE_ORDER), help="cifar10 only")
    parser.add_argument("--seed", type=int, default=runtime.DEFAULT_SEED, help="cifar10 only")
    parser.add_argument("--no-export", action="store_true", help="cifar10: record in results/ only")
    parser.add_argument("--export-only", action="store_true", help="transfer, fast_cifar: export the rows results/ holds")
    options = parser.parse_args(arguments)
    if options.notebook == "cifar10":
        run_cifar10_reference(options.profile or "full", options.experiments, seed=options.seed,
                              export=not options.no_export)
    elif options.notebook == "transfer":
        for path in run_transfer_reference(options.profile or "lesson", options.export_only):
            print(f"wrote {path}")
    else:
        print(f"wrote {run_fast_cifar_reference(options.profile or 'lesson', options.export_only)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

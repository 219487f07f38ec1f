"""Running and recording training runs: the bookkeeping every training notebook shares (02, 03, 05, 07, 08).

A notebook only says *what* it trains; :func:`run` does the rest in one order from a :class:`RunSpec`. The
run key (:func:`run_key`) holds every setting that changes a result, and a recorded row with the same key
*is* that run and is reused: nothing is keyed by name alone, so a bfloat16 or batch-64 run never picks up a
float32 batch-32 row. The run folder under ``runs/<table>/`` keeps a checkpoint and the per-epoch log
(``epochs.json``) after every epoch, so an interrupted run resumes and curves are drawn without retraining.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from utils import results, runtime

EPOCH_LOG_NAME = "epochs.json"
BACKUP_FOLDER_NAME = "backup"
TIMING_KEYS = ("seconds", "train_seconds")


# --- Keys and folders -----------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A key value as CSV round-trips it: ints stay ints, floats are written out, the rest is text."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    return str(value)


def run_key(**settings: Any) -> dict[str, Any]:
    """The settings that identify a run, normalised so that they compare equal after a CSV round trip."""
    return {name: _plain(value) for name, value in settings.items()}


def data_fingerprint(*arrays: np.ndarray) -> str:
    """A short digest of the exact arrays a run trains and is evaluated on.

    Different subsets, splits, seeds or decoded copies get different fingerprints even when their descriptions match.
    """
    digest = hashlib.sha1()
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        digest.update(str((contiguous.shape, contiguous.dtype.str)).encode())
        digest.update(contiguous.data)
    return digest.hexdigest()[:12]


def key_digest(key: dict[str, Any]) -> str:
    """A short digest of a whole run key (used to name its folder)."""
    return hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]


def run_folder(table: str, key: dict[str, Any], readable: Sequence[str] = ()) -> Path:
    """The folder under ``runs/<table>/`` holding one run's checkpoint and epoch log.

    Named by the ``readable`` key values, then a digest of the whole key: runs differing in any setting never share.
    """
    parts = [str(key[name]) for name in readable if name in key]
    slug = re.sub(r"[^A-Za-z0-9.-]+", "-", "_".join(parts)).strip("-")
    name = f"{slug}_{key_digest(key)}" if slug else key_digest(key)
    return runtime.runs_dir() / table / name


def find_recorded_row(table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    """The most recent row of results table ``table`` whose values match all of ``key``, or None.

    A table written before some key column existed cannot match it, so the run is trained anew.
    """
    recorded = results.read_results(table)
    if recorded.empty or any(column not in recorded.columns for column in key):
        return None
    matches = np.ones(len(recorded), dtype=bool)
    for column, value in key.items():
        cells = recorded[column]
        matches &= cells.map(_cell_text).to_numpy() == _cell_text(value)
    if not matches.any():
        return None
    return recorded[matches].iloc[-1].to_dict()


def _cell_text(value: Any) -> str:
    """How a CSV cell and a key value are compared: as text, with numbers in one spelling.

    ``64``, ``64.0`` and ``"64.0"`` (as the key writes a whole number and the CSV reads it back) all become ``"64"``.
    """
    text = str(value)
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if np.isfinite(number) and number.is_integer() else text


# --- The per-epoch log ---------------------------------------------------------------------


def read_epoch_log(folder: Path) -> dict[int, dict[str, float]]:
    """The per-epoch metrics and timings saved so far for a run (empty if none)."""
    path = Path(folder) / EPOCH_LOG_NAME
    if not path.exists():
        return {}
    return {int(epoch): logs for epoch, logs in json.loads(path.read_text()).items()}


def history_from_epoch_log(epoch_log: dict[int, dict[str, float]]) -> dict[str, list[float]]:
    """Turn the epoch log into a Keras-style history dict (metric -> one value per epoch), timings left out."""
    history: dict[str, list[float]] = {}
    for epoch in sorted(epoch_log):
        for metric, value in epoch_log[epoch].items():
            if metric not in TIMING_KEYS:
                history.setdefault(metric, []).append(float(value))
    return history


def epoch_logger(folder: Path) -> Any:
    """A Keras callback that saves each finished epoch's metrics and timings to ``epochs.json``.

    It runs before the checkpoint callback, so an epoch without a checkpoint is retrained and its entry
    overwritten. ``train_seconds`` excludes validation.
    """
    import keras

    class EpochLogger(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()
            self.training_done = None

        def on_test_begin(self, logs=None):
            if self.training_done is None:
                self.training_done = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            finished = time.perf_counter()
            entry = {metric: float(value) for metric, value in (logs or {}).items()}
            entry["seconds"] = finished - self.started
            entry["train_seconds"] = (self.training_done or finished) - self.started
            epoch_log = read_epoch_log(folder)
            epoch_log[epoch] = entry
            results.write_json_atomically({str(key): value for key, value in sorted(epoch_log.items())},
                                          Path(folder) / EPOCH_LOG_NAME)

    return EpochLogger()


def epoch_log_totals(epoch_log: dict[int, dict[str, float]]) -> dict[str, float]:
    """Seconds spent in all epochs, of which training alone (validation excluded)."""
    return {"seconds": sum(entry["seconds"] for entry in epoch_log.values()),
            "train_seconds": sum(entry["train_seconds"] for entry in epoch_log.values())}


# --- Resumable training ------------------------------------------------------------------------


def prepare_run_folder(folder: Path, force: bool = False) -> bool:
    """Make the run folder ready; True when a checkpoint exists and training will resume from it.

    ``force`` deletes an earlier attempt; without a checkpoint a stale epoch log is removed, not mixed in.
    """
    folder = Path(folder)
    if force and folder.exists():
        shutil.rmtree(folder)
    backup = folder / BACKUP_FOLDER_NAME
    resuming = (backup / "latest.weights.h5").exists() or (backup / "latest.weights.h5.bkp").exists()
    if not resuming:
        (folder / EPOCH_LOG_NAME).unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    return resuming


def fit_resumably(model: Any, train: Any, *, folder: Path, epochs: int, validation: Any = None,
                  verbose: int | str = "auto", callbacks: Sequence[Any] = ()) -> dict[int, dict[str, float]]:
    """``model.fit`` with a checkpoint and an epoch-log entry after every epoch; returns the epoch log.

    An interrupted attempt in ``folder`` continues after its last checkpoint. The checkpoint is kept (drop it
    with :func:`discard_checkpoint` once recorded), so a crash while evaluating or saving does not retrain.
    """
    model.fit(train, validation_data=validation, epochs=int(epochs), callbacks=[*run_callbacks(folder), *callbacks],
              verbose=verbose, shuffle=False)  # the suite's pipelines reshuffle every epoch themselves
    return read_epoch_log(folder)


def run_callbacks(folder: Path) -> list[Any]:
    """The callbacks every runner ``fit`` passes first: the epoch log, then a checkpoint after each epoch.

    A notebook that writes its ``model.fit`` out passes these, so its run resumes and logs like any other.
    """
    import keras

    return [epoch_logger(folder), keras.callbacks.BackupAndRestore(str(Path(folder) / BACKUP_FOLDER_NAME),
                                                                   double_checkpoint=True, delete_checkpoint=False)]


def discard_checkpoint(folder: Path) -> None:
    """Delete a run's checkpoint once its row is recorded (the epoch log stays for the curves)."""
    shutil.rmtree(Path(folder) / BACKUP_FOLDER_NAME, ignore_errors=True)


# --- The runner: every training run of the suite goes through run() ------------------------------------------

EpochLog = dict[int, dict[str, float]]


@dataclass
class RunSpec:
    """One training run as the runner needs it: where it is recorded, what identifies it, how to do it.

    ``build`` returns a compiled model, called inside the strategy's scope; ``fit(model, folder, resuming)``
    returns the epoch log; ``evaluate(model, epoch_log)`` the row's measured columns. The row is the key, those
    columns, then library versions and hardware.
    """

    table: str  # the results table (results/<table>.csv) and the runs/<table>/ folder
    name: str  # what tables and plots call the run
    settings: dict[str, Any]  # every setting that changes the result: the run key
    build: Callable[[], Any]
    fit: Callable[[Any, Path, bool], EpochLog]
    evaluate: Callable[[Any, EpochLog], dict[str, Any]]
    seed: int
    strategy: Any = None  # default: utils.runtime.distribution_strategy()
    readable: Sequence[str] = ()  # key values that start the run folder's name
    model_path: Path | None = None  # where the trained model is saved; None: not saved (see keep_model)
    definition: Any = None  # the object the run was made from (an experiment, a recipe), handed back
    force: bool = False  # retrain even when the table holds this run
    keep_model: bool = False  # hand the trained model back, also when reused (it is then saved, see model_file)
    fresh_session: bool = True  # False: ``build`` carries on with models built earlier, so the session is kept
    announce: str = ""  # a line printed before training starts

    def model_file(self, folder: Path) -> Path | None:
        """Where the trained model goes: ``model_path``, else the run folder when the model is handed back."""
        return Path(self.model_path) if self.model_path is not None else folder / "model.keras" if self.keep_model else None


@dataclass
class Record:
    """What :func:`run` hands back: the run's row and epoch log, whether it was reused, where its files are."""

    name: str
    row: dict[str, Any]
    epoch_log: EpochLog
    reused: bool
    folder: Path
    definition: Any = None
    model_path: Path | None = None  # the saved model, when the spec asked for one and it exists
    model: Any = None  # the trained model, when the spec asked to keep it

    @property
    def history(self) -> dict[str, list[float]]:
        """The run's metrics per epoch, as Keras's ``History.history`` (empty when the log is gone)."""
        return history_from_epoch_log(self.epoch_log)

    def curve(self) -> Any:
        """Validation accuracy after each epoch against cumulative training minutes, one row per epoch."""
        import pandas as pd

        minutes = np.cumsum([self.epoch_log[epoch]["train_seconds"] / 60.0 for epoch in sorted(self.epoch_log)])
        return pd.DataFrame({"recipe": self.name, "epoch": [epoch + 1 for epoch in sorted(self.epoch_log)],
                             "training_minutes": minutes,
                             "val_accuracy": [self.epoch_log[epoch].get("val_accuracy", float("nan"))
                                              for epoch in sorted(self.epoch_log)]})


def run(spec: RunSpec) -> Record:
    """Train, evaluate and record one run, or hand back its recorded row: the suite's one way to train.

    A row with the same key is reused (unless ``spec.force``), with its saved model when ``spec.keep_model``
    (if that file is gone, the run trains again). A model built in another precision than the key's is refused.
    """
    key = run_key(**spec.settings)
    folder = run_folder(spec.table, key, spec.readable)
    model_file = spec.model_file(folder)
    saved = model_file if model_file is not None and model_file.exists() else None
    recorded = None if spec.force else find_recorded_row(spec.table, key)
    if recorded is not None and (saved is not None or not spec.keep_model):
        model = load_model(saved) if spec.keep_model else None
        return Record(spec.name, recorded, read_epoch_log(folder), True, folder, spec.definition, saved, model)
    resuming = prepare_run_folder(folder, spec.force)
    if spec.fresh_session:
        runtime.clear_session_keeping_precision()
    runtime.set_seed(spec.seed)
    with (spec.strategy or runtime.distribution_strategy()).scope():
        model = spec.build()
    if "precision" in key and runtime.model_precision(model) != key["precision"]:
        raise RuntimeError(f"Run {spec.name!r} was built in {runtime.model_precision(model)}, not the "
                           f"{key['precision']} its run key records; build models after utils.runtime.apply_precision.")
    if spec.announce:
        print(spec.announce + (" - resuming from its checkpoint" if resuming else ""), flush=True)
    epoch_log = spec.fit(model, folder, resuming)
    row = {**key, **spec.evaluate(model, epoch_log)}
    row.update({name: value for name, value in results.library_versions().items() if name not in row})
    if model_file is not None:
        model_file.parent.mkdir(parents=True, exist_ok=True)
        model.save(model_file)
    results.append_result(spec.table, row)
    discard_checkpoint(folder)
    kept = model if spec.keep_model else None
    del model
    if not spec.keep_model and spec.fresh_session:
        runtime.clear_session_keeping_precision()
    return Record(spec.name, row, epoch_log, False, folder, spec.definition, model_file, kept)


def load_model(path: Path, compile: bool = True) -> Any:
    """A model the runner saved, compiled as it was trained unless ``compile=False``.

    Importing :mod:`utils.layers` registers its fused batch norm, which a fresh kernel needs to read such a model.
    """
    import keras

    from utils import layers  # noqa: F401  (registers FusedBatchNormalization for loading)

    return keras.saving.load_model(path, compile=compile)

"""Running and recording training runs: the bookkeeping every training notebook shares.

A notebook that trains something should only have to say *what* it trains. The rest
lives here, the same for every notebook:

- **The run key** (:func:`run_key`): every setting that changes a result (model
  definition, optimizer and learning rate, batch size, epochs, precision, the exact
  data, protocol, seed...). A row already in the results table with the same key *is*
  that run, and is reused instead of retrained; change any one setting and the run is
  new. Nothing is keyed by name alone, so a bfloat16 or batch-64 run can never pick up
  a float32 batch-32 row.
- **The run folder** (:func:`run_folder`) under ``runs/<table>/``: a checkpoint after
  every epoch and the per-epoch log, so an interrupted run (Ctrl-C, a crash, a Colab
  disconnect) resumes from its last finished epoch (:func:`fit_resumably`).
- **The per-epoch log** (``epochs.json``): metrics and seconds per epoch, from which
  learning curves are drawn later without retraining.
- **Atomic result rows** through :mod:`utils.results`: a table is never half written.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

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
    """The settings that identify a run, normalised so that they compare equal after a CSV round trip.

    Pass every setting that changes the result; :func:`find_recorded_row` reuses a row
    only when all of them match.
    """
    return {name: _plain(value) for name, value in settings.items()}


def data_fingerprint(*arrays: np.ndarray) -> str:
    """A short digest of the exact arrays a run trains and is evaluated on.

    Two runs on different subsets, splits, seeds or decoded copies of a dataset get
    different fingerprints even when their descriptions match. Hashing CIFAR-10's
    60,000 images takes about a fifth of a second.
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

    Its name starts with the ``readable`` key values (for people browsing ``runs/``)
    and ends with a digest of the whole key, so two runs differing in any setting
    never share a folder.
    """
    parts = [str(key[name]) for name in readable if name in key]
    slug = re.sub(r"[^A-Za-z0-9.-]+", "-", "_".join(parts)).strip("-")
    name = f"{slug}_{key_digest(key)}" if slug else key_digest(key)
    return runtime.runs_dir() / table / name


def find_recorded_row(table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    """The most recent row of results table ``table`` whose values match all of ``key``, or None.

    A table written before some key column existed has no value to match, so none of
    its rows is reused for a key that names that column: the run is trained anew.
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

    Both sides go through here, so ``64``, ``64.0`` and ``"64.0"`` (a whole number as the
    key writes it, and as the CSV reads it back) all compare as ``"64"``.
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
    """Turn the epoch log into a Keras-style history dict (metric -> one value per epoch).

    Only Keras's own metrics are kept (the keys ``History.history`` has); timings are left out.
    """
    history: dict[str, list[float]] = {}
    for epoch in sorted(epoch_log):
        for metric, value in epoch_log[epoch].items():
            if metric not in TIMING_KEYS:
                history.setdefault(metric, []).append(float(value))
    return history


def epoch_logger(folder: Path) -> Any:
    """A Keras callback that saves each finished epoch's metrics and timings to ``epochs.json``.

    It runs before the checkpoint callback, so an epoch whose checkpoint was not written
    is simply retrained and its entry overwritten. ``train_seconds`` excludes validation.
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

    ``force`` deletes an earlier attempt. Without a checkpoint, training starts from
    scratch, so a stale epoch log from an earlier attempt is removed rather than mixed
    with the new epochs.
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

    If an earlier attempt in ``folder`` was interrupted, training continues after its last
    checkpointed epoch. The checkpoint is kept after fitting (delete it with
    :func:`discard_checkpoint` once the result is recorded), so a crash while evaluating
    or saving resumes after the last epoch instead of retraining.
    """
    import keras

    run_callbacks = [epoch_logger(folder),
                     keras.callbacks.BackupAndRestore(str(Path(folder) / BACKUP_FOLDER_NAME),
                                                      double_checkpoint=True, delete_checkpoint=False),
                     *callbacks]
    model.fit(train, validation_data=validation, epochs=int(epochs), callbacks=run_callbacks,
              verbose=verbose, shuffle=False)  # the suite's pipelines reshuffle every epoch themselves
    return read_epoch_log(folder)


def discard_checkpoint(folder: Path) -> None:
    """Delete a run's checkpoint once its row is recorded (the epoch log stays for the curves)."""
    shutil.rmtree(Path(folder) / BACKUP_FOLDER_NAME, ignore_errors=True)

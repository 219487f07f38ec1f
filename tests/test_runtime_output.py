"""Clean output, Colab persistence and the long-run guard: the parts of utils.runtime a learner meets first."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tools import run
from utils import runtime

PROJECT_ROOT = Path(__file__).resolve().parent.parent
IMPORT_AND_LIST_DEVICES = "from utils import runtime; runtime.import_tensorflow(); print(runtime.gpu_names())"


def tensorflow_start_up_lines(extra_environment: dict[str, str]) -> list[str]:
    environment = {key: value for key, value in os.environ.items() if key != runtime.TENSORFLOW_LOG_LEVEL_VARIABLE}
    environment.update(extra_environment)
    completed = subprocess.run([sys.executable, "-c", IMPORT_AND_LIST_DEVICES], cwd=PROJECT_ROOT,
                               env=environment, capture_output=True, text=True, timeout=300, check=True)
    return [line for line in completed.stderr.splitlines() if run.TENSORFLOW_LOG_LINE.search(line)]


def test_tensorflow_starts_without_log_lines() -> None:
    assert tensorflow_start_up_lines({}) == []


def test_log_lines_come_back_on_request() -> None:
    """The check above can fail: with CNN_TF_LOG_LEVEL=0 TensorFlow's start-up lines are there."""
    assert tensorflow_start_up_lines({runtime.TENSORFLOW_LOG_LEVEL_VARIABLE: "0"})


def test_progress_is_one_line_per_epoch_headless(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runtime.HEADLESS_ENVIRONMENT_VARIABLE, "1")
    assert runtime.progress_verbosity() == 2


def test_progress_is_a_live_bar_in_jupyter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(runtime.HEADLESS_ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert runtime.progress_verbosity() == 1


def test_progress_to_a_log_file_is_one_line_per_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(runtime.HEADLESS_ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setattr(sys, "stdout", open(os.devnull, "w"))
    assert runtime.progress_verbosity() == 2


def test_drive_setting_changes_nothing_outside_colab(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime, "in_colab", lambda: False)
    results_before = runtime.results_dir()
    assert "Colab only" in runtime.keep_outputs_on_drive()
    assert runtime.results_dir() == results_before


def test_drive_setting_moves_results_and_runs_on_colab(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    mounted = []
    colab = types.ModuleType("google.colab")
    colab.drive = types.SimpleNamespace(mount=mounted.append)
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr(runtime, "in_colab", lambda: True)
    monkeypatch.setattr(runtime, "DRIVE_MOUNT_POINT", tmp_path / "drive")
    message = runtime.keep_outputs_on_drive()
    assert mounted == [str(tmp_path / "drive")]
    assert runtime.results_dir() == tmp_path / "drive" / runtime.DRIVE_FOLDER / "results"
    assert runtime.runs_dir() == tmp_path / "drive" / runtime.DRIVE_FOLDER / "runs"
    assert "Google Drive" in message


FULL = runtime.Profile("full", "test")
QUICK = runtime.Profile("quick", "test")


def never_called() -> float:
    raise AssertionError("the quick profile must not spend time estimating")


def test_long_run_guard_is_silent_in_quick_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert runtime.confirm_long_run(QUICK, never_called, False, "CONFIRM_LONG_RUN") is None
    assert "Quick profile" in capsys.readouterr().out


def test_long_full_run_stops_until_confirmed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(runtime.LongRunNotConfirmed, match=r"about 95 minutes.*CONFIRM_LONG_RUN = True"):
        runtime.confirm_long_run(FULL, lambda: 95.0, False, "CONFIRM_LONG_RUN")
    assert "about 95 minute(s)" in capsys.readouterr().out
    assert runtime.confirm_long_run(FULL, lambda: 95.0, True, "CONFIRM_LONG_RUN") == 95.0
    assert runtime.confirm_long_run(FULL, lambda: 3.0, False, "CONFIRM_LONG_RUN") == 3.0


def test_estimate_is_measured_on_a_copy() -> None:
    import keras

    from utils import data

    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    weights_before = [weights.copy() for weights in model.get_weights()]
    images, labels = np.zeros((64, 4, 4), np.uint8), np.arange(64) % 3
    pipeline = data.make_pipeline(images, labels, batch_size=8, num_classes=3, training=True)
    minutes = runtime.estimate_training_minutes(model, pipeline, epochs=10, runs=2, loss="categorical_crossentropy",
                                                probe_steps=2)
    assert 0 < minutes < 5
    assert all(np.array_equal(a, b) for a, b in zip(weights_before, model.get_weights()))
    with pytest.raises(ValueError, match="finite length"):
        runtime.estimate_training_minutes(model, pipeline.repeat(), epochs=1, loss="categorical_crossentropy")


def sleeping_pipeline(batches: int, sleep_seconds) -> Any:
    """``batches`` batches of 8 zero features and one-hot labels; batch ``i`` first sleeps ``sleep_seconds(i)`` s."""
    import time

    import tensorflow as tf

    def features_of(index):
        time.sleep(sleep_seconds(int(index)))
        return np.zeros((8, 4), np.float32)

    features = tf.data.Dataset.range(batches).map(
        lambda index: tf.ensure_shape(tf.py_function(features_of, [index], tf.float32), (8, 4)))
    labels = tf.data.Dataset.from_tensors(tf.one_hot(tf.zeros(8, tf.int32), 3)).repeat(batches)
    return tf.data.Dataset.zip(features, labels).apply(tf.data.experimental.assert_cardinality(batches))


def test_estimate_charges_no_step_with_the_pipeline_start_up() -> None:
    """A pipeline that takes 2 s to deliver its first batch (a shuffle buffer filling, a decode) at every fit.

    Dividing one short fit by its steps would put 2 s / 5 on every step, 12.8 s for the 32-batch epoch;
    the marginal cost of a step leaves the start-up out.
    """
    import keras

    pipeline = sleeping_pipeline(32, lambda index: 2.0 if index == 0 else 0.0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    minutes = runtime.estimate_training_minutes(model, pipeline, epochs=1, loss="categorical_crossentropy")
    assert 0 < minutes * 60 < 2.0, f"{minutes * 60:.1f} s for 32 tiny steps: the start-up was charged to the steps"


def test_estimate_probes_whole_executions() -> None:
    import keras

    from utils import data

    images, labels = np.zeros((256, 4, 4), np.uint8), np.arange(256) % 3
    pipeline = data.make_pipeline(images, labels, batch_size=8, num_classes=3, training=True)
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3)])
    minutes = runtime.estimate_training_minutes(model, pipeline, epochs=1, loss="categorical_crossentropy",
                                                steps_per_execution=4, probe_steps=2)
    assert 0 < minutes < 1


def test_a_small_probe_pipeline_stands_in_for_the_real_epoch() -> None:
    """Notebook 05 times its steps on 16 batches and scales to the real epoch's batches (``batches_per_epoch``)."""
    import keras

    probe = sleeping_pipeline(16, lambda index: 0.02)  # a 20 ms step, whatever the model costs
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    seconds = 60 * runtime.estimate_training_minutes(model, probe, epochs=1, loss="categorical_crossentropy",
                                                     batches_per_epoch=500)
    assert 500 * 0.015 < seconds < 500 * 0.08, f"{seconds:.1f} s for 500 steps of about 20 ms"


def test_the_flower_probe_pipeline_reads_only_its_batches(tmp_path) -> None:
    from PIL import Image

    from utils import data, transfer

    paths = []
    for index in range(40):
        path = tmp_path / f"photo_{index}.jpg"
        Image.fromarray(np.full((20, 20, 3), index * 5, np.uint8)).save(path)
        paths.append(str(path))
    labels = np.arange(40) % 2
    splits = data.FlowerSplits(parts={"train": (np.array(paths), labels)}, class_names=["a", "b"], source="test", seed=0)
    probe = transfer.probe_pipeline(splits, image_size=16, batch_size=4, augmentation=None, batches=3)
    batches = list(probe)
    assert len(batches) == int(probe.cardinality()) == 3
    assert batches[0][0].shape == (4, 16, 16, 3) and batches[0][1].shape == (4, 2)

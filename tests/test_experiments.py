"""Tests for utils.experiments: the seven CIFAR-10 models, the run recorder and the comparison.

Models are trained only on a few dozen tiny random images, so the file runs in
well under a minute on a 2-core CPU; the point is the bookkeeping (rows, resume,
interruption, checkpoints), not accuracy.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import keras
import nbformat
import numpy as np
import pandas as pd
import pytest

from utils import anatomy, course, data, experiments, layers, recording, results, runtime

ROOT = Path(__file__).resolve().parents[1]


# --- parameter counts by formula, independent of the builder -------------------------


def conv_parameters(channels_in: int, filters: int, kernel: int = 3) -> int:
    """Weights of a kernel x kernel conv plus one bias per filter."""
    return kernel * kernel * channels_in * filters + filters


def dense_parameters(inputs: int, outputs: int) -> int:
    """Weights plus biases of a fully connected layer."""
    return inputs * outputs + outputs


def expected_parameters(unit_filters: tuple[int, ...], batch_norm: bool, side: int = 32, channels: int = 3) -> int:
    """The course's CNN counted by hand: 'same' conv keeps the side, 'valid' takes 2 off, pooling halves it."""
    total = 0
    for filters in unit_filters:
        total += conv_parameters(channels, filters) + conv_parameters(filters, filters)
        if batch_norm:
            total += 2 * 4 * filters  # gamma, beta, moving mean, moving variance per BN layer
        side = (side - 2) // 2
        channels = filters
    return total + dense_parameters(side * side * channels, 512) + dense_parameters(512, 10)


def test_experiment_i_matches_a_hand_count():
    # Worked out once by hand: 896 + 9,248 + 18,496 + 36,928 convs, 6x6x64 = 2,304 flattened.
    assert expected_parameters((32, 64), batch_norm=False) == 896 + 9_248 + 18_496 + 36_928 + 1_180_160 + 5_130


@pytest.mark.parametrize("name", list(experiments.EXPERIMENTS))
def test_every_experiment_has_the_expected_parameter_count(name):
    experiment = experiments.EXPERIMENTS[name]
    model = experiments.build_experiment_model(experiment)
    assert model.count_params() == expected_parameters(experiment.unit_filters, experiment.batch_norm)
    keras.backend.clear_session()


def test_switches_add_the_right_layers():
    model = experiments.build_experiment_model("VI")
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Conv2D") == 6
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers) == 6
    assert kinds.count("Dropout") == 4  # three conv units plus the head
    assert model.get_layer("dense").kernel_regularizer is not None
    plain = experiments.build_experiment_model("I")
    assert plain.get_layer("dense").kernel_regularizer is None
    assert [layer.padding for layer in plain.layers if type(layer).__name__ == "Conv2D"] == [
        "same", "valid", "same", "valid"]
    keras.backend.clear_session()


def test_table_carries_the_course_figures():
    table = experiments.experiments_table()
    assert list(table.index) == ["I", "II", "III", "IV", "V", "VI", "VII"]
    assert table.loc["II", "course train acc"] == 0.98
    assert table.loc["VII", "course epochs"] == 5
    assert table["batch norm"].sum() == 6


def test_unknown_experiment_names_the_valid_ones():
    with pytest.raises(ValueError, match="I, II, III"):
        experiments.get_experiment("VIII")
    assert experiments.get_experiment(" iii ").name == "III"


def test_bad_unit_filters_are_refused():
    with pytest.raises(ValueError, match="unit_filters"):
        experiments.build_cifar_model(unit_filters=())


# --- mixed precision and distribution strategy paths ---------------------------------


def test_mixed_precision_model_keeps_float32_outputs_and_trains():
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        model = experiments.build_cifar_model((8,), batch_norm=True)
        assert model.get_layer("unit1_conv1").compute_dtype == "float16"
        assert model.outputs[0].dtype == "float32"
        experiments.compile_like_course(model)
        images = np.random.default_rng(0).random((8, 32, 32, 3), dtype=np.float32)
        labels = keras.utils.to_categorical(np.arange(8) % 10, 10)
        loss, accuracy = model.train_on_batch(images, labels)
        assert np.isfinite(loss)
        # Clearing the session between runs must not drop the policy.
        assert runtime.clear_session_keeping_precision() == "mixed_float16"
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
        keras.backend.clear_session()


def test_model_builds_and_trains_inside_a_distribution_strategy_scope():
    strategy = runtime.distribution_strategy(0)
    with strategy.scope():
        model = experiments.compile_like_course(experiments.build_cifar_model((8,)))
    images = np.zeros((4, 32, 32, 3), dtype=np.float32)
    labels = keras.utils.to_categorical(np.arange(4), 10)
    history = model.fit(images, labels, batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    keras.backend.clear_session()


def test_steps_per_execution_is_one_on_cpu():
    assert experiments.default_steps_per_execution(0) == 1
    assert experiments.default_steps_per_execution(1) > 1


# --- the recorder ----------------------------------------------------------------------


def tiny_splits(protocol: str = "holdout", train: int = 64) -> data.Splits:
    """Random 32x32 colour images with 10 classes: enough to exercise the recorder."""
    generator = np.random.default_rng(0)

    def part(count: int) -> tuple[np.ndarray, np.ndarray]:
        return (generator.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8),
                np.arange(count) % 10)

    x_train, y_train = part(train)
    x_validation, y_validation = part(32)
    x_test, y_test = part(32)
    names = [f"class {index}" for index in range(10)]
    return data.Splits(x_train, y_train, x_validation, y_validation, x_test, y_test, protocol,
                       data.VALIDATION_PROTOCOLS[protocol], names, "synthetic (test fixture)")


def key_of(name: str, splits: data.Splits, *, seed: int, epochs: int, profile: str = "quick",
           batch_size: int = 32, precision: str = "float32") -> dict:
    """The run key run_experiment uses for these settings (float32, the course's batch 32 by default)."""
    return recording.run_key(**experiments.run_settings(experiments.get_experiment(name), splits, seed=seed,
                                                       profile=profile, epochs=epochs, batch_size=batch_size,
                                                       precision=precision))


def test_run_records_a_row_with_every_column_and_saves_the_model(own_outputs):
    outcome = experiments.run_experiment("I", tiny_splits(), seed=1, profile="quick", epochs=2, verbose=0)
    table = results.read_results(experiments.RESULTS_TABLE)
    assert len(table) == 1 and not outcome.reused
    for column in [*experiments.RUN_KEY_COLUMNS, "train_accuracy", "val_accuracy", "test_accuracy", "params",
                   "seconds", "images_per_second", "tensorflow", "keras", "hardware", "timestamp"]:
        assert column in table.columns, column
    assert row_has_no_duplicate_columns(table)
    row = table.iloc[0]
    assert row["experiment"] == "I" and row["epochs"] == 2 and row["epochs_recorded"] == 2
    assert row["params"] == expected_parameters((32, 64), batch_norm=False)
    assert 0.0 <= row["test_accuracy"] <= 1.0 and row["images_per_second"] > 0
    assert "synthetic" in row["data_source"]
    assert len(outcome.history["val_accuracy"]) == 2
    assert set(outcome.history) == {"accuracy", "loss", "val_accuracy", "val_loss"}  # as Keras names them
    assert outcome.model_path == runtime.runs_dir() / "models" / "cifar10_I.keras"
    reloaded = keras.saving.load_model(outcome.model_path)
    assert reloaded.count_params() == row["params"]
    keras.backend.clear_session()


def test_recorded_runs_are_reused_unless_forced(own_outputs):
    splits = tiny_splits()
    first = experiments.run_experiment("I", splits, seed=3, profile="quick", epochs=1, verbose=0)
    again = experiments.run_experiment("I", splits, seed=3, profile="quick", epochs=1, verbose=0)
    assert again.reused and again.row["test_accuracy"] == pytest.approx(first.row["test_accuracy"])
    assert again.history["accuracy"] == first.history["accuracy"]  # curves survive for the plot
    assert len(results.read_results(experiments.RESULTS_TABLE)) == 1
    # A different epoch count or protocol is a different run.
    experiments.run_experiment("I", tiny_splits("course"), seed=3, profile="quick", epochs=1, verbose=0)
    assert len(results.read_results(experiments.RESULTS_TABLE)) == 2
    forced = experiments.run_experiment("I", splits, seed=3, profile="quick", epochs=1, verbose=0, force=True)
    assert not forced.reused
    assert len(results.read_results(experiments.RESULTS_TABLE)) == 3


def row_has_no_duplicate_columns(table: pd.DataFrame) -> bool:
    return len(set(table.columns)) == len(table.columns)


CHANGED_SETTINGS = {
    "batch_size": {"batch_size": 16},
    "epochs": {"epochs": 2},
    "seed": {"seed": 4},
    "profile": {"profile": "lesson"},
}


@pytest.mark.parametrize("setting", [*CHANGED_SETTINGS, "precision", "definition", "optimizer", "train_images",
                                     "data_fingerprint", "validation_protocol"])
def test_changing_any_one_setting_of_the_key_trains_anew(own_outputs, monkeypatch, setting):
    splits = tiny_splits()
    base = {"seed": 3, "epochs": 1, "profile": "quick", "batch_size": 32}
    experiments.run_experiment("I", splits, verbose=0, save_model=False, **base)
    assert experiments.run_experiment("I", splits, verbose=0, save_model=False, **base).reused
    changed = dict(base)
    if setting == "precision":
        runtime.apply_precision("mixed_bfloat16")  # a real bfloat16 run (undone below)
    elif setting in CHANGED_SETTINGS:
        changed.update(CHANGED_SETTINGS[setting])
    elif setting == "definition":
        changed_experiment = experiments.Experiment(**{**experiments.EXPERIMENTS["I"].__dict__,
                                                       "unit_filters": (16, 64)})
        outcome = experiments.run_experiment(changed_experiment, splits, verbose=0, save_model=False, **base)
        assert not outcome.reused
        return
    elif setting == "optimizer":
        monkeypatch.setattr(experiments, "OPTIMIZER", "SGD(learning_rate=0.02)")
    elif setting == "train_images":
        splits = tiny_splits(train=48)
    elif setting == "data_fingerprint":
        splits.x_train[0, 0, 0, 0] ^= 1  # one pixel of one image differs
    elif setting == "validation_protocol":
        splits = tiny_splits("course")
    try:
        outcome = experiments.run_experiment("I", splits, verbose=0, save_model=False, **changed)
    finally:
        runtime.apply_precision("float32")
    assert not outcome.reused, f"changing {setting} reused a recorded row"


class InterruptMidEpoch(keras.callbacks.Callback):
    """Raises KeyboardInterrupt (as Ctrl-C would) after the first batch of the given epoch."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch
        self.current = -1

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == 0:
            raise KeyboardInterrupt("simulated Ctrl-C")


class EpochsSeen(keras.callbacks.Callback):
    """Remembers which epochs fit actually ran."""

    def __init__(self):
        super().__init__()
        self.epochs: list[int] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_an_interrupted_run_leaves_the_table_intact_and_resumes_from_its_checkpoint(own_outputs):
    splits = tiny_splits()
    experiments.run_experiment("I", splits, seed=1, profile="quick", epochs=1, verbose=0)
    table_before = (runtime.results_dir() / "cifar10_experiments.csv").read_bytes()

    with pytest.raises(KeyboardInterrupt):
        experiments.run_experiment("I", splits, seed=2, profile="quick", epochs=3, verbose=0,
                                   callbacks=[InterruptMidEpoch(epoch=2)])
    assert (runtime.results_dir() / "cifar10_experiments.csv").read_bytes() == table_before
    folder = recording.run_folder(experiments.RESULTS_TABLE, key_of("I", splits, seed=2, epochs=3),
                                  experiments.RUN_FOLDER_NAMING)
    assert (folder / "backup" / "latest.weights.h5").exists()
    assert sorted(recording.read_epoch_log(folder)) == [0, 1]

    seen = EpochsSeen()
    resumed = experiments.run_experiment("I", splits, seed=2, profile="quick", epochs=3, verbose=0,
                                         callbacks=[seen])
    assert seen.epochs == [2]  # epochs 0 and 1 came from the checkpoint
    assert len(resumed.history["accuracy"]) == 3 and resumed.row["epochs_recorded"] == 3
    assert not (folder / "backup").exists()  # the backup is removed once the run completes
    table = results.read_results(experiments.RESULTS_TABLE)
    assert list(table["seed"]) == [1, 2]


class InterruptAtTrainEnd(keras.callbacks.Callback):
    """Raises KeyboardInterrupt after the last epoch, before evaluation and recording."""

    def on_train_end(self, logs=None):
        raise KeyboardInterrupt("simulated Ctrl-C after training")


def test_an_interruption_after_the_last_epoch_does_not_retrain(own_outputs):
    splits = tiny_splits()
    with pytest.raises(KeyboardInterrupt):
        experiments.run_experiment("I", splits, seed=4, profile="quick", epochs=2, verbose=0,
                                   callbacks=[InterruptAtTrainEnd()])
    assert results.read_results(experiments.RESULTS_TABLE).empty
    seen = EpochsSeen()
    finished = experiments.run_experiment("I", splits, seed=4, profile="quick", epochs=2, verbose=0,
                                          callbacks=[seen])
    assert seen.epochs == [] and finished.row["epochs_recorded"] == 2
    assert len(finished.history["val_accuracy"]) == 2


def test_a_fresh_start_discards_a_stale_epoch_log(own_outputs):
    splits = tiny_splits()
    folder = recording.run_folder(experiments.RESULTS_TABLE, key_of("I", splits, seed=5, epochs=1),
                                  experiments.RUN_FOLDER_NAMING)
    folder.mkdir(parents=True)
    (folder / "epochs.json").write_text('{"0": {"accuracy": 0.5}, "7": {"accuracy": 0.9}}')
    outcome = experiments.run_experiment("I", splits, seed=5, profile="quick", epochs=1, verbose=0)
    assert len(outcome.history["accuracy"]) == 1


# --- comparison ------------------------------------------------------------------------


def made_up_rows() -> pd.DataFrame:
    """Hand-written result rows: I and III with two seeds each, VI with one."""
    rows = [
        ("I", 1, 0.80, 0.70, 0.69), ("I", 2, 0.82, 0.74, 0.73),
        ("III", 1, 0.90, 0.80, 0.79), ("III", 2, 0.92, 0.82, 0.81),
        ("VI", 1, 0.97, 0.85, 0.84),
    ]
    return pd.DataFrame([
        {"experiment": name, "seed": seed, "epochs": 50, "train_accuracy": train, "val_accuracy": val,
         "test_accuracy": test, "val_images": 5_000, "seconds": 10.0, "images_per_second": 100.0}
        for name, seed, train, val, test in rows
    ])


def test_comparison_table_puts_ours_beside_the_course():
    table = experiments.comparison_table(made_up_rows())
    assert list(table.index) == ["I", "III", "VI"]
    assert table.loc["I", "seeds"] == 2
    assert table.loc["I", "ours train"] == pytest.approx(0.81)
    assert table.loc["I", "ours val"] == pytest.approx(0.72)
    assert table.loc["I", "ours gap"] == pytest.approx(0.09)
    assert table.loc["I", "course gap"] == pytest.approx(0.84 - 0.79)
    assert table.loc["III", "val vs course"] == pytest.approx(0.81 - 0.82)
    assert table.loc["I", "ours val std"] == pytest.approx(np.std([0.70, 0.74], ddof=1))
    assert np.isnan(table.loc["VI", "ours val std"])
    assert table.loc["VI", "course epochs"] == 50


def test_contrasts_measure_each_switch_against_noise():
    contrasts = experiments.contrast_table(made_up_rows()).set_index("switch turned on")
    assert list(contrasts.index) == ["batch norm (with dropout)"]  # the only pair present
    batch_norm = contrasts.loc["batch norm (with dropout)"]
    assert batch_norm["val change"] == pytest.approx(0.81 - 0.72)
    standard_errors = np.array([np.std([0.70, 0.74], ddof=1), np.std([0.80, 0.82], ddof=1)]) / np.sqrt(2)
    assert batch_norm["noise (2 SE)"] == pytest.approx(2 * np.sqrt((standard_errors ** 2).sum()))
    assert not batch_norm["within noise"]
    assert batch_norm["course val change"] == pytest.approx(0.82 - 0.79)


def test_reading_is_computed_from_the_tables():
    rows = made_up_rows()
    lines = experiments.reading_of(experiments.comparison_table(rows), experiments.contrast_table(rows))
    measured = sorted(set(rows["experiment"]), key=list(experiments.EXPERIMENTS).index)
    assert lines[0] == (f"These readings rest on {len(measured)} of 7 experiments ({', '.join(measured)}); "
                        "the others are not measured.")
    lines = lines[1:]
    assert lines[0].startswith("Largest train-validation gap (most overfitting) among them: experiment VI (0.120)")
    assert "smallest: experiment I (0.090)" in lines[0]
    assert "Best validation accuracy: experiment VI (0.850)" in lines[1]
    assert "batch norm (with dropout) (I -> III): validation accuracy +0.090" in lines[2]
    assert "beyond noise" in lines[2] and "The course saw +0.03" in lines[2]
    assert lines[-1] == ("1 of 1 comparisons move validation accuracy beyond noise in the course's direction; "
                         "0 of 1 move overfitting (the gap) beyond noise in the course's direction.")


def test_single_seed_noise_falls_back_to_sampling_error():
    rows = made_up_rows()
    noise = experiments.standard_errors(experiments.summarise_seeds(rows), rows)["val"]
    assert noise["VI"] == pytest.approx(np.sqrt(0.85 * 0.15 / 5_000))


def test_summaries_refuse_an_empty_table():
    with pytest.raises(ValueError, match="run at least one"):
        experiments.summarise_seeds(pd.DataFrame())


def test_steps_per_execution_falls_back_to_one_with_several_replicas():
    assert experiments.usable_steps_per_execution(16, replicas=1) == 16
    assert experiments.usable_steps_per_execution(16, replicas=2) == 1
    assert experiments.usable_steps_per_execution(1, replicas=4) == 1


def tiny_model(softmax_inside_dense: bool = False) -> keras.Model:
    """A classifier ending as the builder's do (logits, then softmax), or as models saved before that did."""
    head = ([keras.layers.Dense(10, activation="softmax", name="softmax")] if softmax_inside_dense
            else [keras.layers.Dense(10, name="logits"), keras.layers.Activation("softmax", name="softmax")])
    return keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), *head])


def test_reusable_model_must_come_from_the_same_data(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CNN_RESULTS_DIR", str(tmp_path / "results"))
    path, reason = experiments.reusable_cifar_model("real photos", ["V"])
    assert path is None and "no saved model" in reason
    saved = experiments.model_path("V")
    saved.parent.mkdir(parents=True, exist_ok=True)
    tiny_model().save(saved)
    path, reason = experiments.reusable_cifar_model("real photos", ["V"])
    assert path is None and "no recorded run" in reason
    results.append_result(experiments.RESULTS_TABLE, {"experiment": "V", "data_source": "synthetic stand-ins",
                                                      "epochs": 1, "train_images": 100, "profile": "quick",
                                                      "test_accuracy": 0.3})
    path, reason = experiments.reusable_cifar_model("real photos", ["V"])
    assert path is None and "other data" in reason
    path, description = experiments.reusable_cifar_model("synthetic stand-ins", ["V"])
    assert path == saved and "experiment V" in description
    path, reason = experiments.reusable_cifar_model("synthetic stand-ins", ["V"], minimum_test_accuracy=0.5)
    assert path is None and "below" in reason
    tiny_model(softmax_inside_dense=True).save(saved)
    path, reason = experiments.reusable_cifar_model("synthetic stand-ins", ["V"])
    assert path is None and "before models had a logits layer" in reason


def test_the_most_accurate_reusable_model_wins_and_loads_with_fused_batch_norm(tmp_path, monkeypatch):
    monkeypatch.setenv("CNN_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("CNN_RESULTS_DIR", str(tmp_path / "results"))
    for name, accuracy in (("I", 0.45), ("III", 0.62), ("V", 0.58)):
        saved = experiments.model_path(name)
        saved.parent.mkdir(parents=True, exist_ok=True)
        experiments.build_experiment_model(name).save(saved)
        results.append_result(experiments.RESULTS_TABLE, {"experiment": name, "data_source": "real", "epochs": 15,
                                                          "train_images": 10_000, "profile": "lesson",
                                                          "test_accuracy": accuracy})
    path, description = experiments.reusable_cifar_model("real")
    assert path == experiments.model_path("III") and "62.0%" in description
    reloaded = experiments.load_saved_model(path)
    assert any(isinstance(layer, keras.layers.BatchNormalization) for layer in reloaded.layers)
    keras.backend.clear_session()


def test_parameter_counts_keep_the_precision_in_force():
    runtime.apply_precision("mixed_bfloat16")
    try:
        experiments.parameter_counts()
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        runtime.apply_precision("float32")


def test_a_run_trains_in_the_precision_it_is_given(own_outputs):
    try:
        outcome = experiments.run_experiment("III", tiny_splits(), seed=1, profile="quick", epochs=1, verbose=0,
                                             precision="mixed_bfloat16", save_model=False)
    finally:
        runtime.apply_precision("float32")
    assert outcome.row["precision"] == "mixed_bfloat16"


class PolicyAtFit(keras.callbacks.Callback):
    """Notes the global policy and the model's own precision when fit starts."""

    def on_train_begin(self, logs=None):
        self.global_policy = keras.mixed_precision.global_policy().name
        self.model_precision = runtime.model_precision(self.model)


def test_the_row_names_the_precision_the_model_trained_in(own_outputs):
    """After the notebooks' reset, with no precision passed, the row must say what fit really ran in."""
    seen = PolicyAtFit()
    try:
        runtime.apply_precision("mixed_bfloat16")
        runtime.clear_session_keeping_precision()  # as the notebooks reset between models
        outcome = experiments.run_experiment("I", tiny_splits(), seed=1, profile="quick", epochs=1, verbose=0,
                                             callbacks=[seen], save_model=False)
    finally:
        runtime.apply_precision("float32")
    assert outcome.row["precision"] == seen.global_policy == seen.model_precision == "mixed_bfloat16"
    assert results.read_results(experiments.RESULTS_TABLE)["precision"].tolist() == ["mixed_bfloat16"]


def test_replicas_are_part_of_the_run_key(own_outputs):
    """A row trained on two GPUs is not reused for a one-GPU request, nor the reverse."""
    splits = tiny_splits()
    assert "replicas" in experiments.RUN_KEY_COLUMNS
    one = key_of("I", splits, seed=1, epochs=1)
    two = recording.run_key(**experiments.run_settings(experiments.get_experiment("I"), splits, seed=1, profile="quick",
                                                       epochs=1, batch_size=32, precision="float32", replicas=2))
    assert one["replicas"] == 1 and two["replicas"] == 2 and {**one, "replicas": 2} == two
    assert recording.run_folder(experiments.RESULTS_TABLE, one) != recording.run_folder(experiments.RESULTS_TABLE, two)
    results.append_result(experiments.RESULTS_TABLE, {**two, "test_accuracy": 0.5})
    assert recording.find_recorded_row(experiments.RESULTS_TABLE, one) is None
    assert recording.find_recorded_row(experiments.RESULTS_TABLE, two)["test_accuracy"] == 0.5


def test_a_mixed_precision_model_reloads_in_float32_for_visualisation(tmp_path):
    """Notebook 07 takes gradients through notebook 03's model: it must come back computing in float32."""
    images = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    try:
        runtime.apply_precision("mixed_float16")
        model = experiments.build_experiment_model("III")  # fused batch norm included
        model(images, training=True)  # move the batch-norm statistics away from their initial values
        expected = model.predict(images, verbose=0)
        model.save(tmp_path / "model.keras")
    finally:
        runtime.apply_precision("float32")
    as_saved = experiments.load_saved_model(tmp_path / "model.keras")
    assert runtime.model_precision(as_saved) == "mixed_float16"  # what loading alone gives
    reloaded = experiments.load_saved_model(tmp_path / "model.keras", float32=True)
    assert all(layer.compute_dtype == "float32" for layer in reloaded.layers)
    np.testing.assert_allclose(reloaded.predict(images, verbose=0), expected, atol=2e-3)
    keras.backend.clear_session()


@pytest.mark.parametrize("profile, train_images, epochs", [("quick", 2_000, 1), ("lesson", 10_000, 15),
                                                           ("full", None, 50)])
def test_profile_settings_size_notebook_03(profile, train_images, epochs):
    settings = experiments.profile_settings(runtime.resolve_profile(profile))
    assert (settings.train_images, settings.epochs) == (train_images, epochs)
    assert settings.validation_images == (500 if profile == "quick" else experiments.HOLDOUT_IMAGES)
    if profile != "quick":
        assert settings.test_images is None  # the whole test set, as the course


def test_the_course_recipe_constants_notebook_03_relies_on():
    """The figures notebook 03 used to assert inline: the course's CIFAR-10 recipe, from COURSE facts."""
    from utils import course

    assert (course.CIFAR10_CONV_DROPOUT, course.CIFAR10_DENSE_DROPOUT, course.CIFAR10_DENSE_UNITS) == (0.25, 0.5, 512)
    assert (course.CIFAR10_LEARNING_RATE, course.CIFAR10_BATCH_SIZE, course.CIFAR10_EPOCHS) == (0.01, 32, 50)
    assert course.CIFAR10_L2_FACTOR == 0.01 and experiments.HOLDOUT_IMAGES == 5_000
    assert course.CIFAR10_EPOCHS_TRAINED_BY_COURSE["VII"] == 5
    assert experiments.OPTIMIZER == "SGD(learning_rate=0.01)"


def test_a_whole_number_float_in_a_key_matches_its_row_after_the_csv_round_trip(own_outputs):
    key = recording.run_key(name="x", width=64.0, rate=0.01, steps=3)
    results.append_result("keys", {**key, "accuracy": 0.5})
    assert recording.find_recorded_row("keys", key)["accuracy"] == 0.5
    assert recording.find_recorded_row("keys", recording.run_key(name="x", width=65.0, rate=0.01, steps=3)) is None


# --- notebook 03 trains experiment III with its own Keras code -----------------------------------


def notebook_cell(path: Path, defines: str) -> str:
    """The source of the one code cell of notebook ``path`` that contains ``defines``."""
    cells = [cell for cell in nbformat.read(path, as_version=4).cells
             if cell.cell_type == "code" and defines in cell.source]
    assert len(cells) == 1, f"{len(cells)} cells of {path.name} contain {defines!r}"
    return cells[0].source


def test_notebook_03s_experiment_iii_is_the_helpers_run_bit_for_bit(own_outputs):
    """The on-page compile and fit give the same run key, weights and accuracies as experiments.run_experiment."""
    splits = tiny_splits()
    helper = experiments.run_experiment("III", splits, seed=3, profile="quick", epochs=2, verbose=0)
    helper_weights = [np.asarray(weight) for weight in experiments.load_saved_model(helper.model_path).weights]
    notebook = ROOT / "notebooks" / "03_cifar10_experiments.ipynb"
    context = SimpleNamespace(profile=SimpleNamespace(name="quick"), precision_policy="float32",
                              strategy=runtime.distribution_strategy())
    namespace = {"keras": keras, "suite_layers": layers, "experiments": experiments, "recording": recording,
                 "anatomy": anatomy, "runtime": runtime, "course": course, "dataclasses": dataclasses, "Path": Path,
                 "splits": splits, "epochs": 2, "verbose": 0, "seeds": [3], "EXPERIMENTS": ["III"],
                 "FORCE": True, "context": context}  # FORCE: train again although the helper's row is recorded
    for defines in ("def experiment_iii(", "def train_experiment_iii("):
        exec(notebook_cell(notebook, defines), namespace)
    [on_page] = namespace["outcomes_iii"]
    on_page_weights = [np.asarray(weight) for weight in experiments.load_saved_model(on_page.model_path).weights]
    key_columns = list(experiments.RUN_KEY_COLUMNS)
    assert {name: on_page.row[name] for name in key_columns} == {name: helper.row[name] for name in key_columns}
    assert on_page.folder == helper.folder and not on_page.reused
    for column in ("train_accuracy", "val_accuracy", "test_accuracy", "train_loss", "val_loss", "test_loss", "params"):
        assert on_page.row[column] == helper.row[column], column
    assert len(on_page_weights) == len(helper_weights)
    assert all(np.array_equal(ours, theirs) for ours, theirs in zip(on_page_weights, helper_weights))
    assert len(results.read_results(experiments.RESULTS_TABLE)) == 2  # the forced retrain's row, and no third run
    keras.backend.clear_session()


def test_every_experiment_ends_in_float32_logits_then_a_float32_softmax_layer():
    for name in experiments.EXPERIMENTS:
        model = experiments.build_experiment_model(name)
        logits, softmax = model.layers[-2:]
        assert logits.name == "logits" and logits.activation.__name__ == "linear" and logits.dtype_policy.name == "float32"
        assert isinstance(softmax, keras.layers.Activation) and softmax.activation.__name__ == "softmax"
        assert softmax.dtype_policy.name == "float32" and not softmax.weights
    keras.backend.clear_session()

"""recording.run, the one runner: reuse without a duplicate row, the model handed back, the precision kept."""

from __future__ import annotations


import keras
import numpy as np
import pytest
import tensorflow as tf

from utils import recording, results, runtime

TABLE = "runner_test"


def tiny_spec(learning_rate: float = 0.1, **changes) -> recording.RunSpec:
    """A two-feature logistic regression trained for two epochs: a whole run in well under a second."""
    generator = np.random.default_rng(0)
    features = generator.normal(size=(64, 2)).astype("float32")
    labels = (features[:, 0] > 0).astype("float32")
    fits = changes.pop("fits", [])

    def build():
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
        model.compile(optimizer=keras.optimizers.SGD(learning_rate), loss="binary_crossentropy", metrics=["accuracy"])
        return model

    def fit(model, folder, resuming):
        fits.append(folder)
        batches = tf.data.Dataset.from_tensor_slices((features, labels)).batch(16)
        return recording.fit_resumably(model, batches, folder=folder, epochs=2, verbose=0)

    def evaluate(model, epoch_log):
        return {"accuracy": float(model.evaluate(features, labels, verbose=0)[1]), "epochs_logged": len(epoch_log)}

    settings = {"learning_rate": learning_rate, "precision": keras.mixed_precision.global_policy().name}
    return recording.RunSpec(**{"table": TABLE, "name": "tiny", "settings": settings, "build": build, "fit": fit,
                                "evaluate": evaluate, "seed": 0, **changes})


def test_a_rerun_reuses_its_row_and_adds_none(own_outputs):
    fits = []
    first = recording.run(tiny_spec(fits=fits))
    again = recording.run(tiny_spec(fits=fits))
    assert not first.reused and again.reused and len(fits) == 1
    assert len(results.read_results(TABLE)) == 1
    assert again.row["accuracy"] == pytest.approx(first.row["accuracy"])
    assert again.history["loss"] == first.history["loss"] and len(first.history["loss"]) == 2
    other = recording.run(tiny_spec(learning_rate=0.2, fits=fits))  # another setting: another run, another row
    assert not other.reused and len(results.read_results(TABLE)) == 2


def test_the_row_is_key_then_measurements_then_versions(own_outputs):
    record = recording.run(tiny_spec())
    columns = list(record.row)
    assert columns[:2] == ["learning_rate", "precision"] and columns[2:4] == ["accuracy", "epochs_logged"]
    assert {"tensorflow", "keras", "hardware"} <= set(columns)
    assert record.row["epochs_logged"] == 2 and not (record.folder / recording.BACKUP_FOLDER_NAME).exists()


def test_a_kept_model_comes_back_also_when_the_run_is_reused(own_outputs):
    trained = recording.run(tiny_spec(keep_model=True))
    assert trained.model is not None and trained.model_path == trained.folder / "model.keras"
    reused = recording.run(tiny_spec(keep_model=True))
    assert reused.reused and reused.model is not None
    probe = np.array([[1.0, 0.0], [-1.0, 0.0]], dtype="float32")
    np.testing.assert_allclose(reused.model.predict(probe, verbose=0), trained.model.predict(probe, verbose=0))
    trained.model_path.unlink()  # the model is gone: it cannot be handed back, so the run trains again
    retrained = recording.run(tiny_spec(keep_model=True))
    assert not retrained.reused and retrained.model_path.exists()


def test_a_model_in_another_precision_than_its_key_is_refused(own_outputs):
    spec = tiny_spec()
    spec.settings["precision"] = "mixed_bfloat16"  # the key says bfloat16, the model builds in float32
    with pytest.raises(RuntimeError, match="was built in float32, not the mixed_bfloat16"):
        recording.run(spec)
    assert results.read_results(TABLE).empty


def test_the_row_names_the_precision_the_model_trained_in(own_outputs):
    runtime.apply_precision("mixed_bfloat16")
    record = recording.run(tiny_spec(keep_model=True))
    assert record.row["precision"] == runtime.model_precision(record.model) == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"  # the session reset kept the policy

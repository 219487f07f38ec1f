"""The prepared GPU check (tools.gpu_check), run small on the CPU.

The figures it prints on a CPU are not GPU figures; these tests check that every part
runs, writes nowhere but its own folder, and that its overflow count can see a skip.
"""

from __future__ import annotations

import numpy as np

from tools import gpu_check


def test_step_counter_sees_steps_a_loss_scale_optimizer_skips():
    """A loss scale far too large overflows float16 gradients: those batches are fed but no step is taken."""
    import keras

    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Activation("softmax", dtype="float32")])
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1), initial_scale=2.0 ** 40)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
        count = gpu_check.StepCount()
        features = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
        labels = np.arange(64) % 3
        model.fit(features, labels, batch_size=8, epochs=2, verbose=0, callbacks=[gpu_check.step_counter(count)])
    finally:
        keras.mixed_precision.set_global_policy(previous)
    assert count.batches == 16
    assert count.skipped > 0, "a scale of 2**40 must overflow float16 gradients at first"
    assert count.optimizer_steps == int(optimizer.iterations.numpy())


def test_step_counter_counts_every_step_without_a_loss_scale():
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", steps_per_execution=4)
    count = gpu_check.StepCount()
    model.fit(np.zeros((64, 4), "float32"), np.zeros(64, int), batch_size=8, epochs=1, verbose=0,
              callbacks=[gpu_check.step_counter(count)])
    assert (count.batches, count.skipped) == (8, 0)


def test_the_check_runs_small_on_a_cpu_and_writes_only_to_its_folder(tmp_path, capsys, monkeypatch):
    for variable in ("CNN_RESULTS_DIR", "CNN_RUNS_DIR", "CNN_PRECISION"):
        monkeypatch.delenv(variable, raising=False)
    status = gpu_check.main(["--skip-notebooks", "--train-images", "512", "--validation-images", "256",
                             "--test-images", "256", "--budget-seconds", "3",
                             "--precision", "float32", "--output", str(tmp_path)])
    printed = capsys.readouterr().out
    assert status == 0, printed
    assert "No GPU visible" in printed
    assert "estimate/measured" in printed and "planned/measured" in printed
    assert "steps skipped by loss-scale overflow 0 of" in printed
    tables = sorted(path.name for path in (tmp_path / "results").glob("*.csv"))
    assert tables == ["cifar10_experiments.csv", "fast_cifar.csv"], tables

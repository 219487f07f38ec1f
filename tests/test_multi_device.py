"""The GPU code paths, exercised on the CPU: several replicas, mixed precision, many steps per call.

Nobody here has GPUs, so the CPU is split into two logical devices and a
``MirroredStrategy`` runs over them: the same code path a two-GPU machine takes
(variables mirrored, batches split between replicas, gradients all-reduced).
It runs in a child process because TensorFlow's devices can be configured only
before it first uses them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

TWO_LOGICAL_CPUS = textwrap.dedent("""
    import json
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
""")

EXPERIMENT_CHILD = TWO_LOGICAL_CPUS + textwrap.dedent("""
    import keras
    import numpy as np
    from utils import data, experiments, recording, runtime

    policy = runtime.apply_precision("mixed_float16")  # what a two-GPU machine would get
    images, labels = data.synthetic_images((32, 32, 3), 10, 12, seed=0)
    dataset = data.ImageDataset("cifar10", images, labels, images[:40], labels[:40],
                                list(data.CIFAR10_CLASS_NAMES), "synthetic (test)")
    splits = data.make_splits(dataset, "holdout", validation_size=20, seed=0)
    outcome = experiments.run_experiment("III", splits, seed=0, profile="quick", epochs=1, strategy=strategy,
                                         steps_per_execution=2, verbose=0, save_model=False)
    keys = {replicas: recording.run_key(**experiments.run_settings(
                experiments.get_experiment("III"), splits, seed=0, profile="quick", epochs=1, batch_size=32,
                precision=policy, replicas=replicas))
            for replicas in (1, 2)}
    print("RESULT " + json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "row_replicas": outcome.row["replicas"],
        "policy_requested": policy,
        "policy_after_run": keras.mixed_precision.global_policy().name,
        "test_accuracy": outcome.row["test_accuracy"],
        "train_loss": outcome.row["train_loss"],
        "keys_differ": keys[1] != keys[2],
        "found_for_two": recording.find_recorded_row(experiments.RESULTS_TABLE, keys[2]) is not None,
        "found_for_one": recording.find_recorded_row(experiments.RESULTS_TABLE, keys[1]) is not None,
    }))
""")


MNIST_CHILD = TWO_LOGICAL_CPUS + textwrap.dedent("""
    import keras
    from utils import data, models, recording, runtime

    policy = runtime.apply_precision("mixed_float16")
    images, labels = data.synthetic_images((28, 28, 1), 10, 4, seed=0)
    pipeline = data.make_pipeline(images, labels, 8, num_classes=10, training=True)

    def build():
        model = models.build_from_spec(models.mnist_cnn_spec())
        model.compile(optimizer=keras.optimizers.Adadelta(learning_rate=1.0), loss="categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    run = recording.run(recording.RunSpec(
        table="mnist", name="two replicas", seed=0, strategy=strategy, keep_model=True,
        settings={"precision": policy, "replicas": strategy.num_replicas_in_sync},
        build=build, fit=lambda model, folder, resuming: recording.fit_resumably(
            model, pipeline, validation=pipeline, folder=folder, epochs=1, verbose=0),
        evaluate=lambda model, epoch_log: {"test_accuracy": float(model.evaluate(pipeline, verbose=0)[1])}))
    print("RESULT " + json.dumps({
        "replicas": int(run.row["replicas"]), "precision": run.row["precision"], "policy": policy,
        "built_in_scope": run.model.distribute_strategy is strategy,
        "mirrored": isinstance(run.model.weights[0].value, tf.distribute.DistributedValues),
        "loss": run.history["loss"][-1],
    }))
""")


TRANSFER_CHILD = TWO_LOGICAL_CPUS + textwrap.dedent("""
    import numpy as np
    from utils import data, runtime, transfer

    policy = runtime.apply_precision("mixed_float16")
    with strategy.scope():
        backbone, choice = transfer.load_backbone(32, weights=None)
        backbone.trainable = False  # experiment 1 of notebook 05
        model = transfer.compile_transfer_model(transfer.build_transfer_model(backbone, transfer.HeadConfig()), 1e-3)
    images, labels = data.synthetic_images((32, 32, 3), 5, 8, seed=0)
    pipeline = data.make_pipeline(images, labels, 8, num_classes=5, training=True)
    history = model.fit(pipeline, epochs=1, verbose=0)
    print("RESULT " + json.dumps({"replicas": strategy.num_replicas_in_sync, "policy": policy,
                                  "output_dtype": str(model.output.dtype), "loss": history.history["loss"][-1],
                                  "weights": choice.label}))
""")


FAST_CIFAR_CHILD = TWO_LOGICAL_CPUS + textwrap.dedent("""
    import keras
    import numpy as np
    from utils import data, fast_cifar, runtime

    policy = runtime.apply_precision("mixed_float16")
    images, labels = data.synthetic_images((32, 32, 3), 10, 8, seed=0)
    dataset = data.ImageDataset("cifar10", images, labels, images[:20], labels[:20],
                                list(data.CIFAR10_CLASS_NAMES), "synthetic (test)")
    splits = data.make_splits(dataset, "holdout", validation_size=20, seed=0)
    recipe = fast_cifar.modern_recipe(name="tiny", widths=(4, 8, 8), epochs=1, batch_size=16)
    run = fast_cifar.run_recipe(recipe, splits, seed=0, profile="quick", time_budget_seconds=600, strategy=strategy)
    print("RESULT " + json.dumps({
        "replicas": strategy.num_replicas_in_sync, "policy": policy, "row_replicas": int(run.row["replicas"]),
        "hardware": run.row["hardware"], "expected_hardware": runtime.hardware_name(),
        "epochs_done": float(run.row["epochs_done"]), "train_loss": float(run.row["train_loss"]),
        "val_accuracy": float(run.row["val_accuracy"]),
    }))
""")


def run_child(code: str, folder: Path) -> dict:
    """Run ``code`` in a fresh Python with the project importable; return its RESULT line as a dict."""
    environment = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT), "CNN_RESULTS_DIR": str(folder / "results"),
                   "CNN_RUNS_DIR": str(folder / "runs"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    finished = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                              env=environment, cwd=folder)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return json.loads(next(line for line in finished.stdout.splitlines() if line.startswith("RESULT "))[7:])


def test_experiment_trains_on_two_mirrored_replicas_in_mixed_precision(tmp_path: Path) -> None:
    """Experiment III (with batch norm) on two replicas, asking for 2 steps per execution."""
    result = run_child(EXPERIMENT_CHILD, tmp_path)
    assert result["replicas"] == result["row_replicas"] == 2
    assert result["policy_requested"] == "mixed_float16" and result["policy_after_run"] == "mixed_float16"
    assert result["keys_differ"] and result["found_for_two"] and not result["found_for_one"]  # 1 GPU retrains
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert result["train_loss"] == result["train_loss"] and result["train_loss"] < 1e4  # finite, not NaN
    table = (tmp_path / "results" / "cifar10_experiments.csv").read_text()
    assert "III" in table


def test_transfer_model_trains_on_two_mirrored_replicas_in_mixed_precision(tmp_path: Path) -> None:
    """The frozen-ResNet50 head of notebook 05 built and trained one epoch inside the strategy's scope."""
    result = run_child(TRANSFER_CHILD, tmp_path)
    assert result["replicas"] == 2 and result["policy"] == "mixed_float16"
    assert result["output_dtype"] == "float32"  # the softmax stays float32 under mixed precision
    assert result["loss"] == result["loss"] and result["loss"] < 1e4
    assert "random" in result["weights"]


def test_fast_cifar_recipe_trains_on_two_mirrored_replicas_and_records_them(tmp_path: Path) -> None:
    """Notebook 08's run_recipe (tf.data batches, compiled lookahead, budget) inside a two-replica MirroredStrategy."""
    result = run_child(FAST_CIFAR_CHILD, tmp_path)
    assert result["replicas"] == 2 and result["row_replicas"] == 2 and result["policy"] == "mixed_float16"
    assert result["hardware"] == result["expected_hardware"]
    assert result["epochs_done"] == 1.0 and 0.0 <= result["val_accuracy"] <= 1.0
    assert result["train_loss"] == result["train_loss"] and result["train_loss"] < 1e4  # finite, not NaN
    table = (tmp_path / "results" / "fast_cifar.csv").read_text()
    assert "replicas" in table.splitlines()[0]


def test_mnist_runs_of_notebook_02_train_on_two_mirrored_replicas(tmp_path: Path) -> None:
    """Notebook 02's training path: built and compiled in the strategy's scope, its row says 2 replicas."""
    result = run_child(MNIST_CHILD, tmp_path)
    assert result["replicas"] == 2 and result["built_in_scope"] and result["mirrored"]
    assert result["precision"] == result["policy"] == "mixed_float16"
    assert result["loss"] == result["loss"] and result["loss"] < 1e4

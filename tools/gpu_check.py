"""The prepared check of a GPU machine: ``make gpu-check`` (``python -m tools.gpu_check``).

A Colab learner with a GPU trains in ``mixed_float16`` with ``steps_per_execution`` above
one, a path a CPU never takes. This check walks it once, in about ten minutes on one GPU,
and prints what a maintainer needs to trust it:

1. every notebook in the quick profile under ``mixed_float16`` (through ``tools.run``);
2. one full-profile epoch of notebook 03's experiment III: the time estimate against the
   measured time, images per second, NaN losses and the optimizer steps skipped because
   the loss scale overflowed;
3. one budgeted minute of notebook 08's modern recipe: the planned seconds per step
   against the measured ones, images per second, skipped steps and the accuracy reached.

Everything it trains is written under a temporary folder (``--output``), so it neither
reuses nor adds to a learner's ``results/`` and ``runs/``. On a machine without a GPU it
says so and still runs (the CPU test runs it small), but its figures are then CPU figures.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from utils import runtime

CHECK_PROFILE = "gpu-check"  # the profile name the check's own rows carry (never mixed with a learner's)


@dataclass
class StepCount:
    """Batches fed against optimizer steps taken: a ``LossScaleOptimizer`` skips a step whose gradients overflowed."""

    batches: int = 0
    optimizer_steps: int = 0

    @property
    def skipped(self) -> int:
        """Steps skipped (loss-scale overflows); zero outside ``mixed_float16``."""
        return self.batches - self.optimizer_steps


def step_counter(count: StepCount) -> Any:
    """A Keras callback filling ``count`` at the end of each epoch (works at any ``steps_per_execution``)."""
    import keras

    class CountSteps(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

        def on_epoch_end(self, epoch, logs=None):
            count.batches += int(self.params.get("steps") or 0)
            now = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
            count.optimizer_steps += now - self.start
            self.start = now

    return CountSteps()


def isolate_outputs(folder: Path) -> None:
    """Send every result table and run folder of this process (and the kernels it starts) under ``folder``."""
    os.environ["CNN_RESULTS_DIR"] = str(folder / "results")
    os.environ["CNN_RUNS_DIR"] = str(folder / "runs")


def check_notebooks(only: Sequence[str] | None = None) -> int:
    """Run the notebooks in the quick profile in fresh kernels (the policy comes from ``CNN_PRECISION``)."""
    command = [sys.executable, "-m", "tools.run", "--profile", "quick"] + (["--only", *only] if only else [])
    print("\n== 1. Notebooks, quick profile, precision " + os.environ.get(runtime.PRECISION_ENVIRONMENT_VARIABLE, "auto"),
          flush=True)
    return subprocess.run(command, cwd=runtime.project_root(), check=False).returncode


def cifar10_splits(train_images: int | None, validation_images: int = 5_000, test_images: int | None = None,
                   seed: int = runtime.DEFAULT_SEED) -> Any:
    """CIFAR-10 as notebook 03's full profile splits it (holdout 45,000 / 5,000 / 10,000), or smaller for a test."""
    from utils import data

    return data.make_splits(data.load_cifar10(), protocol="holdout", validation_size=validation_images, seed=seed,
                            train_limit=train_images, test_limit=test_images)


def check_experiment(splits: Any, context: runtime.NotebookContext, name: str = "III") -> dict[str, Any]:
    """One epoch of experiment ``name`` through notebook 03's runner: estimate, measured time, speed, NaN, skips."""
    from utils import experiments

    print(f"\n== 2. Experiment {name}, one epoch of {len(splits.y_train):,} images, {context.precision_policy}",
          flush=True)
    estimated = 60 * experiments.estimate_training_minutes([name], splits, epochs=1)
    count = StepCount()
    started = time.perf_counter()
    outcome = experiments.run_experiment(name, splits, seed=context.seed, profile=CHECK_PROFILE, epochs=1,
                                         strategy=context.strategy, precision=context.precision_policy,
                                         callbacks=[step_counter(count)], save_model=False, force=True, verbose=2)
    wall = time.perf_counter() - started
    losses = outcome.history.get("loss", []) + outcome.history.get("val_loss", [])
    figures = {"estimated_seconds": estimated, "training_seconds": float(outcome.row["seconds"]),
               "wall_seconds": wall, "images_per_second": float(outcome.row["images_per_second"]),
               "nan_losses": sum(not math.isfinite(value) for value in losses), "skipped_steps": count.skipped,
               "test_accuracy": float(outcome.row["test_accuracy"])}
    print(f"estimate {estimated:.1f} s, measured {figures['training_seconds']:.1f} s of training "
          f"(estimate/measured {estimated / max(figures['training_seconds'], 1e-9):.2f}); "
          f"{figures['images_per_second']:,.0f} images/s; NaN losses {figures['nan_losses']}; "
          f"steps skipped by loss-scale overflow {count.skipped} of {count.batches}", flush=True)
    return figures


def check_fast_recipe(splits: Any, context: runtime.NotebookContext, budget_seconds: float) -> dict[str, Any]:
    """``budget_seconds`` of notebook 08's modern recipe: planned against measured step time, speed, skips."""
    import keras

    from utils import fast_cifar

    print(f"\n== 3. Notebook 08's modern recipe, {budget_seconds:g} s budget, {context.precision_policy}", flush=True)
    recipe = fast_cifar.modern_recipe()
    planned = fast_cifar.measure_seconds_per_step(recipe, splits, strategy=context.strategy)
    epochs = fast_cifar.epochs_for_budget(planned, len(splits.y_train), recipe.batch_size, budget_seconds)
    run = fast_cifar.run_recipe(recipe.changed(epochs=epochs), splits, seed=context.seed, profile=CHECK_PROFILE,
                                time_budget_seconds=budget_seconds, precision=context.precision_policy,
                                force=True, keep_model=True, strategy=context.strategy)
    batches = round(float(run.row["epochs_done"]) * fast_cifar.steps_per_epoch(len(splits.y_train), recipe.batch_size))
    optimizer_steps = int(keras.ops.convert_to_numpy(run.model.optimizer.iterations))
    measured = float(run.row["train_seconds"]) / max(batches, 1)
    figures = {"planned_seconds_per_step": planned, "measured_seconds_per_step": measured, "planned_epochs": epochs,
               "epochs_done": float(run.row["epochs_done"]), "images_per_second": float(run.row["images_per_second"]),
               "skipped_steps": batches - optimizer_steps, "val_accuracy": float(run.row["val_accuracy"])}
    print(f"planned {planned * 1000:.1f} ms per step ({epochs} epochs), measured {measured * 1000:.1f} ms "
          f"(planned/measured {planned / max(measured, 1e-12):.2f}; the first step's tracing is in the measured time); "
          f"{figures['epochs_done']:.2f} epochs done, {figures['images_per_second']:,.0f} images/s; steps skipped by "
          f"loss-scale overflow {figures['skipped_steps']} of {batches}; validation {figures['val_accuracy']:.2%}",
          flush=True)
    return figures


def main(arguments: Sequence[str] | None = None) -> int:
    """Command line; returns non-zero when a notebook failed or a loss was NaN."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", default="mixed_float16", help="Keras dtype policy to check (default mixed_float16)")
    parser.add_argument("--budget-seconds", type=float, default=60.0, help="notebook 08's training budget")
    parser.add_argument("--train-images", type=int, default=None, help="fewer training images (the CPU test)")
    parser.add_argument("--validation-images", type=int, default=5_000, help="held-out images (the CPU test: fewer)")
    parser.add_argument("--test-images", type=int, default=None, help="fewer test images (the CPU test)")
    parser.add_argument("--skip-notebooks", action="store_true", help="leave out part 1")
    parser.add_argument("--only", nargs="+", metavar="NN", help="notebooks for part 1 (default: all)")
    parser.add_argument("--output", type=Path, default=None, help="folder for the check's runs (default: a temporary one)")
    options = parser.parse_args(arguments)
    output = options.output or Path(tempfile.mkdtemp(prefix="cnn-gpu-check-"))
    isolate_outputs(output)
    os.environ[runtime.PRECISION_ENVIRONMENT_VARIABLE] = options.precision
    started = time.perf_counter()
    notebooks_status = 0 if options.skip_notebooks else check_notebooks(options.only)
    context = runtime.setup_notebook("full", mixed_precision=True, precision=options.precision)
    if context.environment.get("gpus", "none") == "none":
        print("No GPU visible: the figures below are CPU figures, not the GPU check's.")
    splits = cifar10_splits(options.train_images, options.validation_images, options.test_images, context.seed)
    experiment = check_experiment(splits, context)
    recipe = check_fast_recipe(splits, context, options.budget_seconds)
    print(f"\nGPU check done in {time.perf_counter() - started:.0f} s; notebooks "
          f"{'skipped' if options.skip_notebooks else ('ok' if notebooks_status == 0 else 'FAILED')}; runs in {output}")
    return int(notebooks_status != 0 or experiment["nan_losses"] > 0 or not math.isfinite(recipe["val_accuracy"]))


if __name__ == "__main__":
    sys.exit(main())

"""The course's CIFAR-10 experiments I-VII: one model builder, one recipe, one results table (notebook 03).

The course trains seven variations of the same small CNN to show what dropout, batch normalisation, L2
regularisation, an extra conv unit and wider units each do: rows of :data:`EXPERIMENTS`, run through the
suite's runner (:mod:`utils.recording`), which records each in ``results/cifar10_experiments.csv``.
"""

from __future__ import annotations

import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from utils import course, recording, reference, results, runtime

RESULTS_TABLE = "cifar10_experiments"
PROTOCOLS = ("holdout", "course")
HOLDOUT_IMAGES = 5_000
# The lesson profile (a CPU's budget), chosen by measurement: see the README's "Profiles".
LESSON_TRAIN_IMAGES = 10_000
LESSON_EPOCHS = 15


@dataclass(frozen=True)
class ProfileSettings:
    """How much data and training notebook 03 uses in one profile (None: all there is)."""

    train_images: int | None
    validation_images: int
    test_images: int | None
    epochs: int


def profile_settings(profile: Any) -> ProfileSettings:
    """Notebook 03's sizes for a :class:`utils.runtime.Profile`: the notebook and reference runs share them."""
    return ProfileSettings(
        train_images=profile.pick(quick=2_000, lesson=LESSON_TRAIN_IMAGES, full=None),
        validation_images=profile.pick(quick=500, lesson=HOLDOUT_IMAGES, full=HOLDOUT_IMAGES),
        test_images=profile.pick(quick=500, lesson=None, full=None),
        epochs=profile.pick(quick=1, lesson=LESSON_EPOCHS, full=course.CIFAR10_EPOCHS),
    )

OPTIMIZER = f"SGD(learning_rate={course.CIFAR10_LEARNING_RATE})"  # the course's optimizer='sgd'

# Columns that identify a run (utils.recording.run_key): the same values are the same run, reused.
RUN_KEY_COLUMNS = (
    "experiment", "definition", "optimizer", "batch_size", "epochs", "precision", "seed", "profile",
    "validation_protocol", "data_source", "train_images", "data_fingerprint", "replicas",
)


# --- The seven experiments ------------------------------------------------------


@dataclass(frozen=True)
class Experiment:
    """One of the course's CIFAR-10 experiments: its architecture switches and reported results.

    ``unit_filters`` lists each conv unit's filters; ``batch_norm`` adds BN after every conv's ReLU,
    ``conv_dropout`` Dropout(0.25) after each unit's pooling, ``dense_l2`` L2(0.01) on the Dense(512) kernel.
    The course's figures are final-epoch accuracies, its "validation" one measured on the test set.
    """

    name: str
    description: str
    unit_filters: tuple[int, ...]
    batch_norm: bool
    conv_dropout: bool
    dense_l2: bool
    course_train_accuracy: float
    course_val_accuracy: float
    course_epochs: int

    @property
    def definition(self) -> str:
        """The architecture in one line, e.g. ``units 32-64, BN, conv dropout 0.25, Dense(512)``.

        Part of the run key, so a recorded row is never reused for a changed model.
        """
        parts = [f"units {'-'.join(str(filters) for filters in self.unit_filters)}"]
        if self.batch_norm:
            parts.append("BN")
        if self.conv_dropout:
            parts.append(f"conv dropout {course.CIFAR10_CONV_DROPOUT}")
        dense = f"Dense({course.CIFAR10_DENSE_UNITS})"
        parts.append(f"{dense} L2 {course.CIFAR10_L2_FACTOR}" if self.dense_l2 else dense)
        parts.append(f"head dropout {course.CIFAR10_DENSE_DROPOUT}")
        return ", ".join(parts)

    def builder_arguments(self) -> dict[str, Any]:
        """The keyword arguments :func:`build_cifar_model` needs for this experiment."""
        return {
            "unit_filters": self.unit_filters,
            "batch_norm": self.batch_norm,
            "conv_dropout": self.conv_dropout,
            "dense_l2": self.dense_l2,
        }


def _experiment(name: str, description: str, unit_filters: tuple[int, ...], batch_norm: bool,
                conv_dropout: bool, dense_l2: bool) -> Experiment:
    train_accuracy, val_accuracy = course.CIFAR10_COURSE_ACCURACY[name]
    return Experiment(name, description, unit_filters, batch_norm, conv_dropout, dense_l2,
                      train_accuracy, val_accuracy, course.CIFAR10_EPOCHS_TRAINED_BY_COURSE[name])


EXPERIMENTS: dict[str, Experiment] = {
    experiment.name: experiment
    for experiment in (
        _experiment("I", "dropout after each conv unit", (32, 64), False, True, False),
        _experiment("II", "batch normalisation, no conv dropout", (32, 64), True, False, False),
        _experiment("III", "batch normalisation and conv dropout", (32, 64), True, True, False),
        _experiment("IV", "batch normalisation and L2 on Dense(512)", (32, 64), True, False, True),
        _experiment("V", "batch normalisation, conv dropout and L2", (32, 64), True, True, True),
        _experiment("VI", "as V plus a third unit of 128 filters", (32, 64, 128), True, True, True),
        _experiment("VII", "as V with wider units (64, 128)", (64, 128), True, True, True),
    )
}


def experiments_table() -> pd.DataFrame:
    """The seven experiments as a table (one row each), for display in the notebook."""
    rows = [
        {
            "experiment": experiment.name,
            "description": experiment.description,
            "unit filters": ", ".join(str(filters) for filters in experiment.unit_filters),
            "batch norm": experiment.batch_norm,
            "conv dropout": experiment.conv_dropout,
            "L2 on Dense(512)": experiment.dense_l2,
            "course epochs": experiment.course_epochs,
            "course train acc": experiment.course_train_accuracy,
            "course val acc": experiment.course_val_accuracy,
        }
        for experiment in EXPERIMENTS.values()
    ]
    return pd.DataFrame(rows).set_index("experiment")


def get_experiment(name: str) -> Experiment:
    """Look an experiment up by its Roman numeral, with an error listing the valid names."""
    key = str(name).strip().upper()
    if key not in EXPERIMENTS:
        raise ValueError(
            f"Unknown CIFAR-10 experiment {name!r}. The course's experiments are "
            f"{', '.join(EXPERIMENTS)}; pass one of those names (for example EXPERIMENTS = ['I', 'III'])."
        )
    return EXPERIMENTS[key]


# --- The model builder ------------------------------------------------------------


def build_cifar_model(
    unit_filters: Sequence[int] = (32, 64),
    batch_norm: bool = False,
    conv_dropout: bool = True,
    dense_l2: bool = False,
    input_shape: tuple[int, int, int] = course.CIFAR10_INPUT_SHAPE,
    num_classes: int = course.CIFAR10_NUM_CLASSES,
    name: str = "cifar_cnn",
    batch_norm_layer: Callable[..., Any] | None = None,
):
    """Build the course's CIFAR-10 CNN with the given switches (uncompiled Sequential model).

    Each unit is two 3x3 convs (same, then valid) and a 2x2 max pool; the switches are :class:`Experiment`'s. The
    logits and softmax are float32 so mixed precision stays safe; ``batch_norm_layer`` replaces
    :func:`utils.layers.batch_normalization` (the benchmark passes ``keras.layers.BatchNormalization``).
    """
    import keras
    from keras import layers

    from utils import layers as suite_layers

    if not unit_filters or any(int(filters) <= 0 for filters in unit_filters):
        raise ValueError(
            f"unit_filters must be a non-empty list of positive filter counts, got {unit_filters!r}; "
            "the course uses (32, 64), (32, 64, 128) or (64, 128)."
        )
    model = keras.Sequential(name=name)
    model.add(keras.Input(shape=input_shape))
    for unit_index, filters in enumerate(unit_filters, start=1):
        for conv_index, padding in enumerate(("same", "valid"), start=1):
            model.add(layers.Conv2D(int(filters), 3, padding=padding, activation="relu",
                                    name=f"unit{unit_index}_conv{conv_index}"))
            if batch_norm:
                make_batch_norm = batch_norm_layer or suite_layers.batch_normalization
                model.add(make_batch_norm(name=f"unit{unit_index}_bn{conv_index}"))
        model.add(layers.MaxPooling2D(2, name=f"unit{unit_index}_pool"))
        if conv_dropout:
            model.add(layers.Dropout(course.CIFAR10_CONV_DROPOUT, name=f"unit{unit_index}_dropout"))
    model.add(layers.Flatten(name="flatten"))
    regularizer = keras.regularizers.L2(course.CIFAR10_L2_FACTOR) if dense_l2 else None
    model.add(layers.Dense(course.CIFAR10_DENSE_UNITS, activation="relu",
                           kernel_regularizer=regularizer, name="dense"))
    model.add(layers.Dropout(course.CIFAR10_DENSE_DROPOUT, name="dense_dropout"))
    model.add(layers.Dense(num_classes, dtype="float32", name="logits"))  # the class scores Grad-CAM reads
    model.add(layers.Activation("softmax", dtype="float32", name="softmax"))
    return model


def build_experiment_model(experiment: Experiment | str, **overrides: Any):
    """The model of one experiment (by object or name); ``overrides`` go to the builder."""
    experiment = experiment if isinstance(experiment, Experiment) else get_experiment(experiment)
    arguments = {**experiment.builder_arguments(), "name": f"cifar10_{experiment.name}", **overrides}
    return build_cifar_model(**arguments)


def parameter_counts() -> pd.DataFrame:
    """Total, trainable and non-trainable parameters of all seven models (built, never trained; precision kept)."""
    rows = []
    for experiment in EXPERIMENTS.values():
        model = build_experiment_model(experiment)
        trainable = sum(int(np.prod(weight.shape)) for weight in model.trainable_weights)
        frozen = sum(int(np.prod(weight.shape)) for weight in model.non_trainable_weights)
        rows.append({"experiment": experiment.name, "params": model.count_params(),
                     "trainable": trainable, "non-trainable": frozen})
        runtime.clear_session_keeping_precision()
    return pd.DataFrame(rows).set_index("experiment")


def compile_like_course(model, steps_per_execution: int = 1):
    """Compile with the course's recipe: plain SGD at 0.01, categorical cross-entropy, accuracy.

    ``steps_per_execution`` > 1 helps GPUs without changing the maths; XLA is off: it made this model slower on a CPU.
    """
    import keras

    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=course.CIFAR10_LEARNING_RATE),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
        steps_per_execution=steps_per_execution,
        jit_compile=False,
    )
    return model


def default_steps_per_execution(gpu_count: int | None = None) -> int:
    """Batches per TensorFlow call: 16 on a GPU (fewer host round trips), 1 on a CPU."""
    if gpu_count is None:
        gpu_count = len(runtime.gpu_names())
    return 16 if gpu_count > 0 else 1


def usable_steps_per_execution(requested: int, replicas: int) -> int:
    """``requested``, or 1 when several replicas train in sync.

    With Keras 3.15 / TensorFlow 2.21, ``steps_per_execution`` > 1 in a ``MirroredStrategy`` with two or more
    replicas fails in graph execution (``InvalidArgumentError``; ``tests/test_multi_device.py`` reproduces it).
    One step per call trains identically.
    """
    if replicas > 1 and requested > 1:
        print(f"steps_per_execution {requested} -> 1: several replicas ({replicas}) train in sync "
              f"(see utils.experiments.usable_steps_per_execution)")
        return 1
    return requested


# --- Recording runs ----------------------------------------------------------------


RUN_FOLDER_NAMING = ("experiment", "profile", "epochs", "precision")  # key values that start a run folder's name


def run_settings(experiment: Experiment, splits: Any, *, seed: int, profile: str, epochs: int,
                 batch_size: int, precision: str, replicas: int = 1) -> dict[str, Any]:
    """Every setting that decides a run's result (see :data:`RUN_KEY_COLUMNS`), for the run key.

    ``replicas`` is part of it: two GPUs sum the gradients in another order, so a two-GPU row is another run.
    """
    return dict(
        experiment=experiment.name, definition=experiment.definition, optimizer=OPTIMIZER,
        batch_size=batch_size, epochs=epochs, precision=precision, seed=seed, profile=profile,
        validation_protocol=splits.protocol, data_source=splits.source, train_images=len(splits.y_train),
        data_fingerprint=recording.data_fingerprint(splits.x_train, splits.y_train, splits.x_validation,
                                                    splits.y_validation, splits.x_test, splits.y_test),
        replicas=replicas,
    )


def model_path(experiment: str) -> Path:
    """Where the trained model of an experiment is saved (the latest run wins); notebook 07 reads it."""
    return runtime.runs_dir() / "models" / f"cifar10_{experiment}.keras"


def load_saved_model(path: Path, float32: bool = False) -> Any:
    """Load a model saved by :func:`run_experiment` (uncompiled), whatever batch-norm layer it uses.

    A mixed-precision model comes back computing in float16/bfloat16 whatever the reader's policy;
    ``float32=True`` returns a float32 copy (:func:`utils.runtime.float32_twin`) for notebook 07's gradients.
    """
    model = recording.load_model(path, compile=False)
    return runtime.float32_twin(model) if float32 else model


def reusable_cifar_model(data_source: str, experiments_to_try: Sequence[str] | None = None,
                         minimum_test_accuracy: float = 0.0) -> tuple[Path | None, str]:
    """The best model saved by notebook 03 that was trained on the same data as this run, if any.

    A saved model qualifies when its latest recorded run used the same ``data_source`` (a model trained on
    synthetic data is never shown real photos) and reached ``minimum_test_accuracy`` (a smoke run has little to
    show); the highest test accuracy wins. Returns ``(path, description)`` or ``(None, reasons)``.
    """
    table = results.read_results(RESULTS_TABLE)
    reasons, candidates = [], []
    for name in list(EXPERIMENTS) if experiments_to_try is None else experiments_to_try:
        path = model_path(name)
        if not path.exists():
            reasons.append(f"{name}: no saved model")
            continue
        if '"name": "logits"' not in zipfile.ZipFile(path).read("config.json").decode():
            reasons.append(f"{name}: saved before models had a logits layer (run notebook 03 with FORCE = True)")
            continue
        rows = table[table["experiment"].astype(str) == name] if "experiment" in table else table.iloc[0:0]
        if rows.empty:
            reasons.append(f"{name}: saved model but no recorded run, so its training data is unknown")
            continue
        latest = rows.iloc[-1]
        if str(latest["data_source"]) != str(data_source):
            reasons.append(f"{name}: trained on other data ({latest['data_source']!s:.60})")
            continue
        if float(latest["test_accuracy"]) < minimum_test_accuracy:
            reasons.append(f"{name}: recorded test accuracy {float(latest['test_accuracy']):.1%} is below "
                           f"the {minimum_test_accuracy:.0%} asked for")
            continue
        candidates.append((float(latest["test_accuracy"]), name, path, latest))
    if not candidates:
        return None, "; ".join(reasons) or "no experiments to try"
    accuracy, name, path, latest = max(candidates, key=lambda candidate: candidate[0])
    return path, (f"notebook 03's experiment {name}: {int(latest['epochs'])} epoch(s) on "
                  f"{int(latest['train_images']):,} images, profile {latest['profile']}, "
                  f"recorded test accuracy {accuracy:.1%}")


def run_experiment(experiment: Experiment | str, splits: Any, **options: Any) -> recording.Record:
    """Train, evaluate and record one experiment with the course's recipe (see :func:`experiment_spec`)."""
    return recording.run(experiment_spec(experiment, splits, **options))


def experiment_spec(
    experiment: Experiment | str,
    splits: Any,
    *,
    seed: int,
    profile: str,
    epochs: int,
    batch_size: int = course.CIFAR10_BATCH_SIZE,
    force: bool = False,
    strategy: Any = None,
    steps_per_execution: int | None = None,
    verbose: int | str = "auto",
    callbacks: Sequence[Any] = (),
    save_model: bool = True,
    precision: str | None = None,
) -> recording.RunSpec:
    """The runner's spec for one experiment: its run key, build, fit and evaluate.

    ``splits`` is a :class:`utils.data.Splits` (uint8 images, integer labels); :data:`RUN_KEY_COLUMNS` says what
    makes a run the same. Notebook 03 replaces ``build`` and ``fit`` with its own Keras code for experiment III
    (``dataclasses.replace``); the key, and so the recorded row, stay this spec's. ``precision`` (a Keras dtype
    policy) is applied first; None keeps the policy in force.
    """
    import keras

    experiment = experiment if isinstance(experiment, Experiment) else get_experiment(experiment)
    if splits.protocol not in PROTOCOLS:
        raise ValueError(f"Unknown validation protocol {splits.protocol!r}; make the splits with "
                         f"utils.data.make_splits(..., protocol='holdout' or 'course').")
    if int(epochs) < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs!r}.")
    policy = runtime.apply_precision(precision) if precision else keras.mixed_precision.global_policy().name
    strategy = strategy or runtime.distribution_strategy()
    steps_per_execution = usable_steps_per_execution(steps_per_execution or default_steps_per_execution(),
                                                     strategy.num_replicas_in_sync)

    def build() -> Any:
        model = build_experiment_model(experiment, num_classes=len(splits.class_names),
                                       input_shape=tuple(splits.x_train.shape[1:]))
        return compile_like_course(model, steps_per_execution=steps_per_execution)

    def fit(model: Any, folder: Path, resuming: bool) -> dict[int, dict[str, float]]:
        train, validation = experiment_pipelines(splits, batch_size, seed)[:2]
        return recording.fit_resumably(model, train, validation=validation, folder=folder, epochs=epochs,
                                       verbose=verbose, callbacks=callbacks)

    def evaluate(model: Any, epoch_log: dict[int, dict[str, float]]) -> dict[str, Any]:
        started = time.perf_counter()
        test_loss, test_accuracy = model.evaluate(experiment_pipelines(splits, batch_size, seed)[2], verbose=0)
        return _measured_columns(epoch_log, test_loss, test_accuracy, time.perf_counter() - started, model, splits)

    return recording.RunSpec(
        table=RESULTS_TABLE, name=experiment.name, definition=experiment, seed=seed, strategy=strategy, force=force,
        settings=run_settings(experiment, splits, seed=seed, profile=profile, epochs=epochs, batch_size=batch_size,
                              precision=policy, replicas=strategy.num_replicas_in_sync),
        readable=RUN_FOLDER_NAMING, build=build, fit=fit, evaluate=evaluate,
        model_path=model_path(experiment.name) if save_model else None,
        announce=f"Experiment {experiment.name} ({experiment.description}): seed {seed}, {epochs} epoch(s), "
                 f"{len(splits.y_train):,} training images, protocol {splits.protocol}, precision {policy}")


def estimate_training_minutes(names: Sequence[str], splits: Any, *, epochs: int, seeds: int = 1,
                              batch_size: int = course.CIFAR10_BATCH_SIZE,
                              steps_per_execution: int | None = None) -> float:
    """Minutes the training of ``names`` (each for ``seeds`` seeds) should take on this machine.

    Each experiment is timed on the real pipeline (their costs differ several-fold); validation and testing come on top.
    """
    train = experiment_pipelines(splits, batch_size, seed=0)[0]
    shape, classes = tuple(splits.x_train.shape[1:]), len(splits.class_names)
    return sum(estimate_experiment_minutes(name, train, epochs, runs=seeds, steps_per_execution=steps_per_execution,
                                           input_shape=shape, num_classes=classes) for name in names)


def estimate_experiment_minutes(name: str, train: Any, epochs: int, runs: int = 1,
                                steps_per_execution: int | None = None,
                                input_shape: tuple[int, ...] = (32, 32, 3), num_classes: int = 10) -> float:
    """Minutes ``runs`` trainings of experiment ``name`` for ``epochs`` epochs of ``train`` should take here."""
    import keras

    model = build_experiment_model(name, num_classes=num_classes, input_shape=input_shape)
    minutes = runtime.estimate_training_minutes(
        model, train, epochs, runs=runs, loss="categorical_crossentropy",
        steps_per_execution=steps_per_execution or default_steps_per_execution(),
        optimizer=keras.optimizers.SGD(learning_rate=course.CIFAR10_LEARNING_RATE), jit_compile=False)
    runtime.clear_session_keeping_precision()
    return minutes


def experiment_pipelines(splits: Any, batch_size: int, seed: int) -> tuple[Any, Any, Any]:
    """Training (shuffled), validation and test pipelines with one-hot labels for the course's loss."""
    from utils import data

    num_classes = len(splits.class_names)
    train = data.make_pipeline(splits.x_train, splits.y_train, batch_size, num_classes=num_classes,
                               training=True, seed=seed)
    validation = data.make_pipeline(splits.x_validation, splits.y_validation, batch_size,
                                    num_classes=num_classes)
    test = data.make_pipeline(splits.x_test, splits.y_test, batch_size, num_classes=num_classes)
    return train, validation, test


def _measured_columns(epoch_log: dict[int, dict[str, float]], test_loss: float, test_accuracy: float,
                      evaluation_seconds: float, model: Any, splits: Any) -> dict[str, Any]:
    """What one finished run measured, for its row: accuracies, losses, size, wall time and speed."""
    history = recording.history_from_epoch_log(epoch_log)
    totals = recording.epoch_log_totals(epoch_log)
    return {
        "train_accuracy": history["accuracy"][-1],
        "val_accuracy": history["val_accuracy"][-1],
        "test_accuracy": float(test_accuracy),
        "train_loss": history["loss"][-1],
        "val_loss": history["val_loss"][-1],
        "test_loss": float(test_loss),
        "params": model.count_params(),
        "seconds": round(totals["seconds"] + evaluation_seconds, 2),
        "images_per_second": round(len(splits.y_train) * len(epoch_log) / totals["train_seconds"], 1),
        "epochs_recorded": len(epoch_log),
        "val_images": len(splits.y_validation),
        "test_images": len(splits.y_test),
    }


def run_experiments(
    names: Iterable[str],
    seeds: Iterable[int],
    splits: Any,
    *,
    profile: str,
    epochs: int,
    **options: Any,
) -> list[recording.Record]:
    """Run (or reuse) every experiment in ``names`` for every seed; ``options`` go to :func:`run_experiment`."""
    outcomes = []
    seeds = list(seeds)
    for name in names:
        for seed in seeds:
            outcome = run_experiment(name, splits, seed=seed, profile=profile, epochs=epochs, **options)
            if outcome.reused:
                print(f"Experiment {name}, seed {seed}: reusing the recorded row "
                      f"(set FORCE = True to retrain).")
            outcomes.append(outcome)
    return outcomes


# --- Comparing runs -----------------------------------------------------------------

# The course's questions as (question, baseline, variant): each variant differs from its baseline in one switch.
CONTRASTS: tuple[tuple[str, str, str], ...] = (
    ("conv dropout (with BN)", "II", "III"),
    ("batch norm (with dropout)", "I", "III"),
    ("L2 on Dense(512) (BN, no dropout)", "II", "IV"),
    ("L2 on Dense(512) (BN and dropout)", "III", "V"),
    ("a third conv unit (depth)", "V", "VI"),
    ("wider units (width)", "V", "VII"),
)


def _order_by_experiment(table: pd.DataFrame) -> pd.DataFrame:
    order = [name for name in EXPERIMENTS if name in table.index]
    return table.loc[order]


def summarise_seeds(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each experiment's accuracies (std NaN with one seed)."""
    if rows.empty:
        raise ValueError("No runs to summarise: run at least one experiment first.")
    summary = rows.groupby("experiment").agg(
        seeds=("seed", "nunique"), epochs=("epochs", "max"),
        train_mean=("train_accuracy", "mean"), train_std=("train_accuracy", "std"),
        val_mean=("val_accuracy", "mean"), val_std=("val_accuracy", "std"),
        test_mean=("test_accuracy", "mean"), test_std=("test_accuracy", "std"),
        val_images=("val_images", "min"), seconds_mean=("seconds", "mean"),
        images_per_second_mean=("images_per_second", "mean"))
    return _order_by_experiment(summary)


LAST_EPOCHS_FOR_NOISE = 3


def standard_errors(summary: pd.DataFrame, rows: pd.DataFrame,
                    histories: dict[str, dict[str, list[float]]] | None = None) -> pd.DataFrame:
    """Standard error of each experiment's mean training (``train``) and validation (``val``) accuracy.

    With several seeds: their spread over sqrt(seeds). With one: the sampling error sqrt(p (1 - p) / n) on the
    run's ``train_images`` (else 10,000, a conservative stand-in) or ``val_images``; for validation, when
    ``histories`` has the run, the std of its last three accuracies if larger (batch-norm models under plain
    SGD jump several points from epoch to epoch).
    """
    train_images = (rows.groupby("experiment")["train_images"].min().reindex(summary.index)
                    if "train_images" in rows.columns else pd.Series(10_000, index=summary.index))
    jitter = pd.Series({name: float(np.std(history["val_accuracy"][-LAST_EPOCHS_FOR_NOISE:], ddof=1))
                        for name, history in (histories or {}).items()
                        if len(history.get("val_accuracy", [])) >= LAST_EPOCHS_FOR_NOISE}, dtype=float)
    errors = {}
    for part, images in (("train", train_images.astype(float)), ("val", summary["val_images"])):
        mean = summary[f"{part}_mean"]
        single_seed = np.sqrt(mean * (1 - mean) / images)
        if part == "val":
            single_seed = np.maximum(single_seed, jitter.reindex(summary.index).fillna(0.0))
        over_seeds = summary[f"{part}_std"] / np.sqrt(summary["seeds"])
        errors[part] = over_seeds.where(summary["seeds"] >= 2, single_seed)
    return pd.DataFrame(errors)


def comparison_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Ours (means over seeds) vs the course, per experiment: accuracies, train-validation gaps, differences."""
    summary = summarise_seeds(rows)
    table = pd.DataFrame({
        "seeds": summary["seeds"],
        "epochs": summary["epochs"],
        "ours train": summary["train_mean"],
        "ours val": summary["val_mean"],
        "ours gap": summary["train_mean"] - summary["val_mean"],
        "course train": [EXPERIMENTS[name].course_train_accuracy for name in summary.index],
        "course val": [EXPERIMENTS[name].course_val_accuracy for name in summary.index],
    }, index=summary.index)
    table["course gap"] = table["course train"] - table["course val"]
    table["train vs course"] = table["ours train"] - table["course train"]
    table["val vs course"] = table["ours val"] - table["course val"]
    table["ours val std"] = summary["val_std"]
    table["ours test"] = summary["test_mean"]
    table["course epochs"] = [EXPERIMENTS[name].course_epochs for name in summary.index]
    return table


def contrast_table(rows: pd.DataFrame, histories: dict[str, dict[str, list[float]]] | None = None,
                   ) -> pd.DataFrame:
    """Each one-switch comparison (see :data:`CONTRASTS`) measured on our runs, beside the course's change.

    Per pair: the change in validation accuracy and in the train-validation gap, each change's noise (two
    standard errors, :func:`standard_errors`; pass ``histories`` to include epoch-to-epoch jitter), and a
    verdict against the course: ``holds``, ``opposite`` (both beyond noise) or ``within noise``.
    """
    summary = summarise_seeds(rows)
    errors = standard_errors(summary, rows, histories)
    noise, train_noise = errors["val"], errors["train"]
    gap = summary["train_mean"] - summary["val_mean"]
    entries = []
    for question, baseline, variant in CONTRASTS:
        if baseline not in summary.index or variant not in summary.index:
            continue
        difference = summary.loc[variant, "val_mean"] - summary.loc[baseline, "val_mean"]
        two_errors = 2 * float(np.hypot(noise[baseline], noise[variant]))
        gap_errors = 2 * float(np.sqrt(noise[baseline] ** 2 + noise[variant] ** 2
                                       + train_noise[baseline] ** 2 + train_noise[variant] ** 2))
        course_change = EXPERIMENTS[variant].course_val_accuracy - EXPERIMENTS[baseline].course_val_accuracy
        course_gap_change = ((EXPERIMENTS[variant].course_train_accuracy - EXPERIMENTS[variant].course_val_accuracy)
                             - (EXPERIMENTS[baseline].course_train_accuracy - EXPERIMENTS[baseline].course_val_accuracy))
        within = bool(abs(difference) <= two_errors)
        gap_change = gap[variant] - gap[baseline]
        entries.append({
            "switch turned on": question,
            "from": baseline,
            "to": variant,
            "val change": difference,
            "noise (2 SE)": two_errors,
            "within noise": within,
            "course val change": course_change,
            "verdict": _verdict(difference, course_change, within),
            "gap change": gap_change,
            "gap noise (2 SE)": gap_errors,
            "course gap change": course_gap_change,
            "gap verdict": _verdict(gap_change, course_gap_change, bool(abs(gap_change) <= gap_errors)),
        })
    return pd.DataFrame(entries)


def _verdict(change: float, course_change: float, within_noise: bool) -> str:
    """``holds``, ``opposite`` or ``within noise``: our change against the course's direction."""
    if within_noise:
        return "within noise"
    return "holds" if np.sign(change) == np.sign(course_change) else "opposite"


def early_learning_table(histories: dict[str, dict[str, list[float]]], epochs: Sequence[int] = (1, 2, 3),
                         baseline: str = "I", variant: str = "III", validation_images: int = HOLDOUT_IMAGES,
                         ) -> pd.DataFrame:
    """Validation accuracy after the first few epochs, to see whether batch norm learns faster early on.

    One row per epoch: both accuracies, their difference and its two standard errors (sampling error on
    ``validation_images``). Empty when either history is missing.
    """
    if baseline not in histories or variant not in histories:
        return pd.DataFrame()
    entries = []
    for epoch in epochs:
        values = [histories[name]["val_accuracy"] for name in (baseline, variant)]
        if min(len(value) for value in values) < epoch:
            break
        first, second = values[0][epoch - 1], values[1][epoch - 1]
        errors = [np.sqrt(value * (1 - value) / validation_images) for value in (first, second)]
        two_errors = 2 * float(np.hypot(*errors))
        entries.append({"epoch": epoch, f"{baseline} val": first, f"{variant} val": second,
                        "difference": second - first, "noise (2 SE)": two_errors,
                        "beyond noise": bool(abs(second - first) > two_errors)})
    return pd.DataFrame(entries).set_index("epoch") if entries else pd.DataFrame()


def reading_of(comparison: pd.DataFrame, contrasts: pd.DataFrame) -> list[str]:
    """Plain sentences saying what our numbers show, every claim derived from the two tables passed in."""
    gaps = comparison["ours gap"]
    lines = [
        f"These readings rest on {len(comparison)} of {len(EXPERIMENTS)} experiments "
        f"({', '.join(comparison.index)}){'' if len(comparison) == len(EXPERIMENTS) else '; the others are not measured'}.",
        f"Largest train-validation gap (most overfitting) among them: experiment {gaps.idxmax()} ({gaps.max():.3f}); "
        f"smallest: experiment {gaps.idxmin()} ({gaps.min():.3f}).",
        f"Best validation accuracy: experiment {comparison['ours val'].idxmax()} "
        f"({comparison['ours val'].max():.3f}); worst: experiment {comparison['ours val'].idxmin()} "
        f"({comparison['ours val'].min():.3f}).",
    ]
    wording = {"holds": "beyond noise, the course's direction", "within noise": "within noise",
               "opposite": "beyond noise, against the course's direction"}
    for _, contrast in contrasts.iterrows():
        verdict = wording[contrast["verdict"]]
        if contrast["verdict"] == "within noise":
            verdict += ", so no measurable effect at this scale"
        overfitting = "less" if contrast["gap change"] < 0 else "more"
        gap_verdict = wording[contrast["gap verdict"]]
        lines.append(
            f"{contrast['switch turned on']} ({contrast['from']} -> {contrast['to']}): validation accuracy "
            f"{contrast['val change']:+.3f} (noise +/-{contrast['noise (2 SE)']:.3f}, {verdict}); "
            f"train-validation gap {contrast['gap change']:+.3f} ({overfitting} overfitting, {gap_verdict}). "
            f"The course saw {contrast['course val change']:+.2f}.")
    if len(contrasts):
        holding = int((contrasts["verdict"] == "holds").sum())
        gap_holding = int((contrasts["gap verdict"] == "holds").sum())
        lines.append(f"{holding} of {len(contrasts)} comparisons move validation accuracy beyond noise in the "
                     f"course's direction; {gap_holding} of {len(contrasts)} move overfitting (the gap) beyond noise "
                     f"in the course's direction.")
    return lines


def read_recorded_runs(profile: str | None = None, protocol: str | None = None) -> pd.DataFrame:
    """Rows of ``results/cifar10_experiments.csv``, optionally only one profile and protocol."""
    table = results.read_results(RESULTS_TABLE)
    if table.empty:
        return table
    if profile is not None:
        table = table[table["profile"] == profile]
    if protocol is not None:
        table = table[table["validation_protocol"] == protocol]
    return table.reset_index(drop=True)


def rows_of(outcomes: Sequence[recording.Record]) -> pd.DataFrame:
    """The result rows of a list of runs as a DataFrame (what the comparison functions take)."""
    return pd.DataFrame([outcome.row for outcome in outcomes])


def histories_of(outcomes: Sequence[recording.Record]) -> dict[str, dict[str, list[float]]]:
    """One learning-curve history per experiment (the first seed's), for the overlay plot."""
    histories: dict[str, dict[str, list[float]]] = {}
    for outcome in outcomes:
        if outcome.history and outcome.name not in histories:
            histories[outcome.name] = outcome.history
    return histories


FIDELITY_POINTS = 0.02  # "within 2 points" of the course's figure


def side_by_side_table(references: dict[str, pd.DataFrame], run_rows: pd.DataFrame | None = None,
                       names: Sequence[str] | None = None) -> pd.DataFrame:
    """The course's figures, each shipped reference run and this run: train and validation, one row per experiment.

    ``references`` maps a label (``"full reference"``) to its rows; unmeasured experiments are NaN.
    """
    names = list(names or EXPERIMENTS)
    table = pd.DataFrame(index=pd.Index(names, name="experiment"))
    table["course train"] = [EXPERIMENTS[name].course_train_accuracy for name in names]
    table["course val"] = [EXPERIMENTS[name].course_val_accuracy for name in names]
    for label, rows in [*references.items(), ("this run", run_rows)]:
        measured = ["train_accuracy", "val_accuracy"]
        means = (rows.groupby("experiment")[measured].mean() if rows is not None and not rows.empty
                 else pd.DataFrame(columns=measured))
        means = means.reindex(names)
        table[f"{label} train"] = means["train_accuracy"].astype(float)
        table[f"{label} val"] = means["val_accuracy"].astype(float)
    return table


def fidelity_table(reference_rows: pd.DataFrame) -> pd.DataFrame:
    """Each measured reference experiment beside the course (none estimated): differences, whether within 2 points."""
    if reference_rows.empty:
        return pd.DataFrame()
    table = side_by_side_table({"reference": reference_rows}).dropna(subset=["reference val"])
    fidelity = pd.DataFrame({
        "course train": table["course train"], "reference train": table["reference train"],
        "train difference": table["reference train"] - table["course train"],
        "course val": table["course val"], "reference val": table["reference val"],
        "val difference": table["reference val"] - table["course val"],
    })
    fidelity["within 2 points"] = ((fidelity["train difference"].abs() <= FIDELITY_POINTS)
                                   & (fidelity["val difference"].abs() <= FIDELITY_POINTS))
    # The course "validated" on the test set, so our test accuracy is its like-for-like twin.
    tests = reference_rows.groupby("experiment")["test_accuracy"].mean().reindex(fidelity.index).astype(float)
    fidelity["reference test"] = tests
    fidelity["test vs course val"] = tests - fidelity["course val"]
    return fidelity


# The course's conclusions from its table, and the one-switch comparison each rests on.
COURSE_CONCLUSIONS: tuple[tuple[str, str, str, str], ...] = (
    ("dropout helps most", "II", "III", "largest validation gain"),
    ("batch norm speeds training", "I", "III", "early validation gain"),
    ("L2 alone does not help", "II", "IV", "no validation gain"),
    ("an extra unit adds a little", "V", "VI", "validation gain"),
    ("wider layers overfit more", "V", "VII", "gap gain"),
)


def check_course_conclusions(rows: pd.DataFrame,
                             histories: dict[str, dict[str, list[float]]] | None = None) -> pd.DataFrame:
    """Each of the course's conclusions against a table of runs: the number, its noise, and what it says.

    ``ours`` is the change when the switch is turned on (validation accuracy, the gap for overfitting, or the
    mean gain over epochs 1-3 for batch norm); ``says`` is ``agrees`` / ``disagrees`` beyond two standard errors,
    ``within noise`` or ``not measured yet``.
    """
    contrasts = contrast_table(rows, histories).set_index(["from", "to"]) if not rows.empty else pd.DataFrame()
    entries = []
    for conclusion, baseline, variant, measure in COURSE_CONCLUSIONS:
        entry = {"the course's conclusion": conclusion, "comparison": f"{baseline} -> {variant}",
                 "measured as": measure, "ours": np.nan, "noise (2 SE)": np.nan, "says": NOT_MEASURED_YET}
        if (baseline, variant) in contrasts.index:
            entry.update(_conclusion_figures(contrasts, (baseline, variant), measure, histories or {}))
        entries.append(entry)
    return pd.DataFrame(entries).set_index("the course's conclusion")


NOT_MEASURED_YET = reference.NOT_MEASURED  # one wording for every unmeasured figure


def _conclusion_figures(contrasts: pd.DataFrame, pair: tuple[str, str], measure: str,
                        histories: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """The number a conclusion rests on, its noise, and whether it agrees (see :func:`check_course_conclusions`)."""
    row = contrasts.loc[pair]
    if measure == "gap gain":
        change, noise = float(row["gap change"]), float(row["gap noise (2 SE)"])
    elif measure == "early validation gain":
        early = early_learning_table(histories, baseline=pair[0], variant=pair[1])
        if early.empty:
            return {"says": "not measured yet (no learning curves)"}
        change, noise = float(early["difference"].mean()), float(early["noise (2 SE)"].mean())
    else:
        change, noise = float(row["val change"]), float(row["noise (2 SE)"])
    if measure == "no validation gain":
        says = "disagrees: a gain beyond noise" if change > noise else "agrees: no gain beyond noise"
    elif abs(change) <= noise:
        says = "within noise"
    else:
        says = "agrees" if change > 0 else "disagrees"
        if measure == "largest validation gain" and change > 0:
            largest = contrasts["val change"].astype(float).idxmax()
            if largest != pair:
                says = f"helps, but {largest[0]} -> {largest[1]} gains more"
            else:
                says += f" (the largest of the {len(contrasts)} comparisons measured)"
    return {"ours": change, "noise (2 SE)": noise, "says": says}


def provenance_table(reference_rows: pd.DataFrame) -> pd.DataFrame:
    """Where and how each reference row was measured: hardware, precision, time, speed, data, versions."""
    columns = ["epochs", "train_images", "precision", "hardware", "seconds", "images_per_second", "data_source",
               "tensorflow", "keras", "timestamp", "timing_note"]
    present = [column for column in columns if column in reference_rows.columns]
    table = reference_rows.set_index("experiment")[present].copy()
    if "seconds" in table.columns:
        table["minutes"] = (table.pop("seconds").astype(float) / 60).round(1)
    return table


SMOKE_TEST_READING = "smoke test: not read"


def key_numbers(tables: dict[str, pd.DataFrame],
                histories: dict[str, dict[str, dict[str, list[float]]]] | None = None,
                smoke_tests: Sequence[str] = ()) -> pd.DataFrame:
    """A few headline figures for the course and each table of runs (NaN where a table is empty).

    ``histories`` maps a table's label to its learning curves (for the noise). Tables in ``smoke_tests`` get
    their accuracy but no readings: a smoke test's differences are noise.
    """
    course_gaps = {name: experiment.course_train_accuracy - experiment.course_val_accuracy
                   for name, experiment in EXPERIMENTS.items()}
    course_best = max(EXPERIMENTS.values(), key=lambda experiment: experiment.course_val_accuracy)
    columns = {"course": {"experiments measured": f"{len(EXPERIMENTS)} of {len(EXPERIMENTS)}",
                          "best validation accuracy": course_best.course_val_accuracy,
                          "most overfitting experiment": max(course_gaps, key=course_gaps.get),
                          "validation changes holding": "reported, not tested",
                          "overfitting changes holding": "reported, not tested"}}
    for label, rows in tables.items():
        if rows is None or rows.empty:
            columns[label] = {}
            continue
        comparison = comparison_table(rows)
        contrasts = contrast_table(rows, (histories or {}).get(label))
        columns[label] = {"experiments measured": f"{len(comparison)} of {len(EXPERIMENTS)}",
                          "best validation accuracy": float(comparison["ours val"].max()),
                          "most overfitting experiment": str(comparison["ours gap"].idxmax())
                          + ("" if len(comparison) == len(EXPERIMENTS) else f" (of the {len(comparison)} measured)")}
        for row, column in (("validation changes holding", "verdict"), ("overfitting changes holding", "gap verdict")):
            columns[label][row] = (f"{int((contrasts[column] == 'holds').sum())} of {len(contrasts)}"
                                   if len(contrasts) else "none run")
        if label in smoke_tests:
            columns[label].update(dict.fromkeys(list(columns[label])[2:], SMOKE_TEST_READING))
    return pd.DataFrame(columns)


def plot_comparison(table: pd.DataFrame, validation_label: str = "val"):
    """Grouped bars per experiment: the course's train and validation accuracy, the reference run's, this run's.

    ``table`` comes from :func:`side_by_side_table` (or :func:`comparison_table`, drawn as this run).
    """
    import matplotlib.pyplot as plt

    table = table.rename(columns={"ours train": "this run train", "ours val": "this run val"})
    sources = list(dict.fromkeys(column.rsplit(" ", 1)[0] for column in table.columns
                                 if column.endswith((" train", " val"))))
    styles = {"course": ("//", 0.45, None)}
    reference_alphas = iter((0.55, 0.3, 0.75))
    bars = []
    for source in sources:
        hatch, alpha, edge = styles.get(source) or ((None, 1.0, None) if source == "this run"
                                                    else (None, next(reference_alphas, 0.5), "black"))
        for part in ("train", "val"):
            column = f"{source} {part}"
            if column in table.columns and table[column].notna().any():
                bars.append((source, part, hatch, alpha, edge))
    positions = np.arange(len(table))
    width = 0.8 / max(len(bars), 1)
    figure, axis = plt.subplots(figsize=(max(6.0, 1.4 * len(table) + 2), 4.2), layout="constrained")
    for index, (source, part, hatch, alpha, edge) in enumerate(bars):
        values = table[f"{source} {part}"].astype(float)
        label = f"{source} {'train' if part == 'train' else validation_label}"
        if source == "course" and part == "val":
            label = "course val (its test set)"
        axis.bar(positions + (index - (len(bars) - 1) / 2) * width, values.fillna(0), width, label=label,
                 color="tab:blue" if part == "train" else "tab:orange", alpha=alpha, hatch=hatch,
                 edgecolor=edge, linewidth=0.5)
    axis.set_xticks(positions, table.index)
    axis.set_xlabel("experiment")
    axis.set_ylabel("accuracy")
    axis.set_ylim(0, 1)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.15))
    axis.set_title("CIFAR-10 experiments: the course, the reference runs and this run")
    return figure


def plot_contrast_curves(histories: dict[str, dict[str, list[float]]], title: str = ""):
    """Learning curves read the way the course reads its table: one panel per one-switch comparison.

    Validation solid, training dashed, so the gap and the speed of learning show; a panel whose experiments are
    not both in ``histories`` says so.
    """
    import matplotlib.pyplot as plt

    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colours = {name: palette[index % len(palette)] for index, name in enumerate(EXPERIMENTS)}  # one per experiment
    figure, axes = plt.subplots(2, 3, figsize=(15, 7.5), sharey=True, layout="constrained")
    for axis, (question, baseline, variant) in zip(axes.flat, CONTRASTS):
        missing = [name for name in (baseline, variant) if name not in histories]
        axis.set_title(f"{question}: {baseline} vs {variant}", fontsize=10)
        if missing:
            axis.text(0.5, 0.5, f"{', '.join(missing)}: {NOT_MEASURED_YET}", ha="center", va="center",
                      transform=axis.transAxes, color="grey")
            axis.set_xticks([])
        for name in (baseline, variant):
            colour, history = colours[name], histories.get(name)
            if not history:
                continue
            marker = "o" if len(history["val_accuracy"]) <= 3 else None  # a single epoch is a point, not a line
            epochs = np.arange(1, len(history["val_accuracy"]) + 1)
            axis.plot(epochs, history["accuracy"], linestyle="--", marker=marker, color=colour, label=f"{name} train")
            axis.plot(epochs, history["val_accuracy"], marker=marker, color=colour, label=f"{name} validation")
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        if not missing:
            axis.legend(fontsize=8, loc="lower right")
    for axis in axes[:, 0]:
        axis.set_ylabel("accuracy")
    figure.suptitle(title)
    return figure

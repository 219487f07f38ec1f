"""ResNet50 transfer learning on the flowers: backbone, weights, head, freezing, reports (notebook 05).

The course reuses an ImageNet-trained ResNet50 for five flower classes: (1) *feature extraction* trains
only a new head on a frozen backbone; (2) *fine-tuning* keeps the first 140 layers frozen and trains the
rest with a small learning rate, starting from experiment 1's head.

Pretrained weights are not always available (offline, no cached copy), so :func:`load_backbone` always
returns a usable model *and* a :class:`WeightsChoice` saying which weights were really loaded; a random-init
fallback is labelled :data:`RANDOM_INIT_LABEL` in every row and table, never presented as transfer learning.

Batch norm is the trap of fine-tuning: in training mode a BN layer normalises with the current batch and
overwrites the ImageNet moving statistics. Calling the backbone with ``training=False`` is not enough on
Keras 3, where ``fit()`` overrides it (keras-team/keras#20285; ``tests/test_transfer.py`` shows it), but a
BN layer whose ``trainable`` is False always runs in inference mode. So notebook 05 keeps every backbone BN
layer non-trainable, and :func:`build_transfer_model` still passes ``training=False`` (it works in tf.keras 2).
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from utils import data, runtime

RESULTS_TABLE = "transfer_learning"
FLOWER_CLASS_COUNT = 5
# The course freezes "the first 140 layers" of ResNet50 in experiment 2.
COURSE_FROZEN_LAYER_COUNT = 140
# Adam's usual rate for a new head, and 100 times smaller for fine-tuning (pretrained weights move a little).
FEATURE_EXTRACTION_LEARNING_RATE = 1e-3
FINE_TUNING_LEARNING_RATE = 1e-5

WEIGHTS_ENVIRONMENT_VARIABLE = "CNN_RESNET50_WEIGHTS"
RANDOM_INIT_LABEL = "random init (no pretrained weights)"
BANNER_WIDTH = 100  # characters per line of WeightsChoice.banner(), its border included
IMAGENET_LABEL = "imagenet"
IMAGENET_WEIGHTS_FILE = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
IMAGENET_WEIGHTS_URL = (
    "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" + IMAGENET_WEIGHTS_FILE
)
IMAGENET_WEIGHTS_MD5 = "4d473c1dd8becc155b73f8504c6f6626"
WEIGHTS_FILE_SUFFIXES = (".weights.h5", ".h5")
POOLING_CHOICES = ("avg", "max")

# Facts of Keras's ResNet50 without its classifier (``include_top=False``), checked in notebook 05.
RESNET50_NOTOP_LAYERS = 175
RESNET50_NOTOP_PARAMETERS = 23_587_712
RESNET50_FEATURES = 2048
# The course's own figures for its flowers experiment ("about 4,000 images", "about 20 minutes on a GPU").
COURSE_FLOWER_PHOTOS_ABOUT = 4_000
COURSE_GPU_MINUTES_ABOUT = 20
# How many standard errors apart two test accuracies must be before one experiment "wins".
SIGNIFICANT_STANDARD_ERRORS = 2.0


def experiment_name(number: int, frozen_layer_count: int = COURSE_FROZEN_LAYER_COUNT) -> str:
    """The name of experiment 1 or 2 as it appears in the results table."""
    if number == 1:
        return "1 feature extraction (backbone frozen)"
    if number == 2:
        return f"2 fine-tuning (first {frozen_layer_count} layers frozen)"
    raise ValueError(f"The course has experiments 1 and 2, not {number!r}.")


# --------------------------------------------------------------------------- weights


@dataclass(frozen=True)
class WeightsChoice:
    """Which weights the backbone really holds, and the story of how that came about.

    ``requested``: ``"imagenet"`` or ``None``; ``label`` goes into result tables (``"imagenet"``,
    ``"pretrained (local file NAME)"`` or :data:`RANDOM_INIT_LABEL`); ``attempts``: one line per source tried.
    """

    requested: str | None
    label: str
    file: str | None = None
    attempts: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_pretrained(self) -> bool:
        """True when pretrained weights were loaded (from the cache, a download or a local file)."""
        return self.label != RANDOM_INIT_LABEL

    def banner(self) -> str:
        """A boxed message for the top of the notebook: what was loaded, or loudly, what was not."""
        if self.is_pretrained:
            lines = [f"Pretrained weights loaded: {self.label}", f"file: {self.file}"]
        else:
            lines = [
                "NO PRETRAINED WEIGHTS: ResNet50 starts from RANDOM initialisation.",
                f"Every result below is labelled '{RANDOM_INIT_LABEL}'.",
                "These numbers are NOT transfer learning and say nothing about it.",
                "Why:",
                *[f"  - {attempt}" for attempt in self.attempts],
                "Fix: run online once (Keras caches the file in ~/.keras/models), or set",
                f"  {WEIGHTS_ENVIRONMENT_VARIABLE}=/path/to/{IMAGENET_WEIGHTS_FILE}",
                "  (or the notebook parameter RESNET50_WEIGHTS_FILE) and rerun.",
            ]
        wrapped = [piece for line in lines for piece in _wrap_banner_line(line, BANNER_WIDTH - 4)]
        width = max(len(line) for line in wrapped) + 4
        border = "#" * width
        return "\n".join([border, *[f"# {line:<{width - 4}} #" for line in wrapped], border])


def _wrap_banner_line(line: str, width: int) -> list[str]:
    """``line`` broken into pieces of at most ``width`` characters, continuations indented under its text.

    The banner quotes paths and error messages of any length; unwrapped, the box would outgrow a notebook view.
    """
    indent = " " * (len(line) - len(line.lstrip(" -")))
    return textwrap.wrap(line, width, subsequent_indent=indent, break_on_hyphens=False) or [""]


def keras_home() -> Path:
    """Keras's home folder as the environment names it now: ``$KERAS_HOME``, else ``~/.keras``.

    Keras reads ``KERAS_HOME`` once, when it is imported; the suite reads it at each call and hands it to
    ``get_file`` as ``cache_dir``, so the file a download writes is the file the next run finds.
    """
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()


def folder_label(path: Path) -> str:
    """``path`` as any reader's machine names it: the home folder as ``~``, Keras's fallback as the temp folder's.

    A banner printed this way stays aligned, and a published copy names no folder of the machine that ran it.
    """
    home, text = str(Path.home()), str(path)
    if text == home or text.startswith(home + "/"):
        return "~" + text[len(home):]
    return "Keras's temp-folder fallback" if text.startswith("/tmp/.keras") else text


def keras_cache_candidates() -> list[Path]:
    """Where Keras caches the weights: ``keras_home()/models``, or ``/tmp/.keras/models`` if home is not writable."""
    return [keras_home() / "models" / IMAGENET_WEIGHTS_FILE, Path("/tmp/.keras/models") / IMAGENET_WEIGHTS_FILE]


def find_cached_imagenet_weights() -> Path | None:
    """The ImageNet no-top ResNet50 weights already in Keras's cache, or None."""
    return next((path for path in keras_cache_candidates() if path.is_file()), None)


def download_imagenet_weights() -> Path:
    """Download the ImageNet no-top ResNet50 weights into Keras's cache (checksum-verified).

    A copy already in the cache with the right md5 is returned without a download; one with another md5 is
    downloaded again, and Keras deletes it if that download fails.
    """
    import keras

    return Path(
        keras.utils.get_file(IMAGENET_WEIGHTS_FILE, IMAGENET_WEIGHTS_URL, cache_subdir="models",
                             file_hash=IMAGENET_WEIGHTS_MD5, cache_dir=str(keras_home()))
    )


def build_resnet50_backbone(image_size: int, weights_file: str | Path | None = None) -> Any:
    """ResNet50 without its ImageNet classifier for ``image_size`` x ``image_size`` RGB input.

    Random weights, then ``weights_file`` (a ``.h5`` or ``.weights.h5`` no-top file) if given; Keras accepts
    inputs from 32x32 up (ImageNet training used 224x224).
    """
    import keras

    if int(image_size) < 32:
        raise ValueError(
            f"ResNet50 needs images of at least 32x32 pixels, got image_size={image_size}; "
            "use 32 or more (224 is the size it was trained at)."
        )
    backbone = keras.applications.ResNet50(
        include_top=False, weights=None, input_shape=(int(image_size), int(image_size), 3)
    )
    if weights_file is not None:
        backbone.load_weights(str(weights_file))
    return backbone


def _try_weights_file(image_size: int, path: Path, what: str) -> tuple[Any | None, str]:
    """Build a backbone and load ``path`` into it; returns (model or None, one line on what happened)."""
    if not path.is_file():
        return None, f"{what} {path} does not exist"
    if not path.name.endswith(WEIGHTS_FILE_SUFFIXES):
        return None, f"{what} {path} is not a .h5 or .weights.h5 file"
    try:
        return build_resnet50_backbone(image_size, path), f"{what} {path} loaded"
    except Exception as error:  # a wrong or damaged file can fail in many ways; all mean "not loaded"
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return None, f"{what} {path} could not be loaded ({type(error).__name__}: {message[:160]})"


def pretrained_weights_at_hand(weights: str | None, local_weights_file: str | Path | None = None) -> bool:
    """Whether pretrained weights can be loaded: a local file, Keras's cached copy, or one downloaded now.

    Called before anything is built, so the notebook can size its ResNet50 runs; a download (not tried with
    ``CNN_OFFLINE=1``) lands in Keras's cache, where :func:`load_backbone` finds it. Its banner says what loaded.
    """
    if weights is None:
        return False
    local = local_weights_file or os.environ.get(WEIGHTS_ENVIRONMENT_VARIABLE)
    if local and Path(local).expanduser().is_file():
        return True
    if find_cached_imagenet_weights() is not None:
        return True
    if data.offline_requested():
        return False
    try:
        download_imagenet_weights()
    except Exception:  # network errors come in many types; all mean "not at hand"
        return False
    return True


def load_backbone(
    image_size: int,
    weights: str | None = "imagenet",
    local_weights_file: str | Path | None = None,
) -> tuple[Any, WeightsChoice]:
    """The ResNet50 backbone with the best weights available, and a record of which those are.

    With ``weights="imagenet"`` it tries ``local_weights_file`` (else ``CNN_RESNET50_WEIGHTS``), Keras's cache,
    then a download (not with ``CNN_OFFLINE=1``); ``weights=None`` loads nothing. If none works the backbone
    keeps random weights labelled :data:`RANDOM_INIT_LABEL`; nothing is raised, and the banner says so.
    """
    if weights not in ("imagenet", None):
        raise ValueError(
            f"weights must be 'imagenet' or None, got {weights!r}. To use a weights file, pass "
            f"local_weights_file=... or set {WEIGHTS_ENVIRONMENT_VARIABLE} to its path."
        )
    if weights is None:
        note = "random initialisation was asked for (weights=None)"
        if local_weights_file or os.environ.get(WEIGHTS_ENVIRONMENT_VARIABLE):
            note += "; the local weights file named was therefore not loaded"
        return build_resnet50_backbone(image_size), WeightsChoice(None, RANDOM_INIT_LABEL, None, (note,))
    attempts: list[str] = []
    local = local_weights_file or os.environ.get(WEIGHTS_ENVIRONMENT_VARIABLE) or None
    if local:
        what = "local weights file" if local_weights_file else f"{WEIGHTS_ENVIRONMENT_VARIABLE} file"
        path = Path(local).expanduser()
        backbone, outcome = _try_weights_file(image_size, path, what)
        attempts.append(outcome)
        if backbone is not None:
            return backbone, WeightsChoice(weights, f"pretrained (local file {path.name})", str(path), tuple(attempts))
    cached = find_cached_imagenet_weights()
    if cached is None and data.offline_requested():
        attempts.append(
            f"no cached copy in {', '.join(folder_label(p.parent) for p in keras_cache_candidates())} "
            "and downloads are switched off (CNN_OFFLINE=1)"
        )
    elif cached is None:
        try:
            cached = download_imagenet_weights()
        except Exception as error:  # network errors come in many types; all mean "not downloaded"
            attempts.append(f"downloading {IMAGENET_WEIGHTS_URL} failed ({type(error).__name__}: {error})")
    if cached is not None:
        backbone, outcome = _try_weights_file(image_size, Path(cached), "cached ImageNet weights")
        attempts.append(outcome)
        if backbone is not None:
            return backbone, WeightsChoice(weights, IMAGENET_LABEL, str(cached), tuple(attempts))
    return build_resnet50_backbone(image_size), WeightsChoice(weights, RANDOM_INIT_LABEL, None, tuple(attempts))


def label_with_weights(text: str, choice: WeightsChoice) -> str:
    """``text`` with the random-init warning appended when no pretrained weights were loaded."""
    return text if choice.is_pretrained else f"{text} - {RANDOM_INIT_LABEL}"


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class HeadConfig:
    """The new classifier on top of the backbone, with the course's suggested variations as switches.

    The course's head is global average pooling, one dense layer and a softmax; its variations are
    ``pooling="max"``, an extra dense layer (``extra_dense_units`` > 0) and another learning rate.
    """

    pooling: str = "avg"
    dense_units: int = 256
    extra_dense_units: int = 0
    dropout_rate: float = 0.5
    num_classes: int = FLOWER_CLASS_COUNT

    def __post_init__(self) -> None:
        if self.pooling not in POOLING_CHOICES:
            raise ValueError(f"pooling must be one of {POOLING_CHOICES}, got {self.pooling!r}; "
                             "'avg' is the course's choice, 'max' its suggested variation.")
        if self.dense_units <= 0 or self.extra_dense_units < 0 or self.num_classes < 2:
            raise ValueError(f"Invalid head {self}: dense_units must be positive, extra_dense_units 0 "
                             "(none) or positive, and num_classes at least 2.")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"dropout_rate must be in [0, 1), got {self.dropout_rate}.")


def build_transfer_model(backbone: Any, head: HeadConfig = HeadConfig()) -> Any:
    """Image -> backbone (inference mode) -> pooling -> [extra dense] -> dense -> dropout -> softmax.

    ``training=False`` alone does not keep BN in inference mode on Keras 3 (see the module docstring); the
    softmax is float32 so mixed precision stays stable.
    """
    import keras
    from keras import layers

    inputs = keras.Input(shape=backbone.input_shape[1:], name="image")
    features = backbone(inputs, training=False)
    pooling = layers.GlobalAveragePooling2D if head.pooling == "avg" else layers.GlobalMaxPooling2D
    x = pooling(name=f"global_{head.pooling}_pool")(features)
    if head.extra_dense_units:
        x = layers.Dense(head.extra_dense_units, activation="relu", name="extra_dense")(x)
    x = layers.Dense(head.dense_units, activation="relu", name="head_dense")(x)
    x = layers.Dropout(head.dropout_rate, name="head_dropout")(x)
    outputs = layers.Dense(head.num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=f"resnet50_transfer_{head.pooling}")


def compile_transfer_model(model: Any, learning_rate: float) -> Any:
    """Adam at ``learning_rate``, categorical cross-entropy (one-hot labels), accuracy.

    Compile again after every change of ``trainable``: Keras fixes the trained weights at compile time.
    """
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
                  loss="categorical_crossentropy", metrics=["accuracy"])
    return model


# --------------------------------------------------------------------------- reports


def parameter_count(weights: Sequence[Any]) -> int:
    """Number of scalars in a list of weight variables."""
    return int(sum(int(np.prod(weight.shape)) for weight in weights))


def trainability(layer_or_model: Any) -> dict[str, int]:
    """Layers, weight tensors and parameters that are trainable vs frozen in a model (or the backbone).

    Layers count by their ``trainable`` flag (weightless ones too); "frozen" weights include BN's moving statistics.
    """
    layers = list(getattr(layer_or_model, "layers", [layer_or_model]))
    return _trainability(layers, layer_or_model.trainable_weights, layer_or_model.non_trainable_weights)


def _trainability(layers: Sequence[Any], trainable_weights: Sequence[Any], frozen_weights: Sequence[Any],
                  ) -> dict[str, int]:
    """Layers, weight tensors and parameters that train and that are frozen, counted."""
    trainable_layers = sum(1 for layer in layers if layer.trainable)
    return {
        "layers": len(layers),
        "layers_trainable": trainable_layers,
        "layers_frozen": len(layers) - trainable_layers,
        "weights_trainable": len(trainable_weights),
        "weights_frozen": len(frozen_weights),
        "params_trainable": parameter_count(trainable_weights),
        "params_frozen": parameter_count(frozen_weights),
    }


def trainability_table(model: Any, backbone: Any) -> pd.DataFrame:
    """One row each for the backbone, the new head and the whole model (see :func:`trainability`)."""
    head_layers = [layer for layer in model.layers if layer is not backbone and layer.weights]
    head = _trainability(head_layers, [weight for layer in head_layers for weight in layer.trainable_weights],
                         [weight for layer in head_layers for weight in layer.non_trainable_weights])
    whole = trainability(model)
    whole["layers"] = len(backbone.layers) + len(head_layers)
    whole["layers_trainable"] = trainability(backbone)["layers_trainable"] + head["layers_trainable"]
    whole["layers_frozen"] = whole["layers"] - whole["layers_trainable"]
    table = pd.DataFrame([trainability(backbone), head, whole], index=["backbone (ResNet50)", "new head", "whole model"])
    table.index.name = "part"
    return table


def frozen_boundary(backbone: Any, frozen_layer_count: int = COURSE_FROZEN_LAYER_COUNT,
                    before: int = 3, after: int = 4) -> pd.DataFrame:
    """The layers either side of the freezing boundary, each with its role in fine-tuning."""
    import keras

    start, stop = max(frozen_layer_count - before, 0), min(frozen_layer_count + after, len(backbone.layers))
    rows = []
    for index, layer in enumerate(backbone.layers[start:stop], start=start):
        if index < frozen_layer_count:
            role = f"frozen (one of the first {frozen_layer_count})"
        elif isinstance(layer, keras.layers.BatchNormalization) and not layer.trainable:
            role = "batch normalisation, kept frozen (inference mode)"
        elif not layer.weights:
            role = "no weights: nothing to train"
        else:
            role = "fine-tuned" if layer.trainable else "frozen"
        rows.append({"index": index, "layer": layer.name, "type": type(layer).__name__,
                     "trainable": layer.trainable, "role": role})
    return pd.DataFrame(rows).set_index("index")


def resnet_stage(layer_name: str) -> str:
    """The ResNet50 stage of a layer from Keras's names (``conv1``/``pool1``: 1, ``convN``: N, else "input")."""
    prefix = layer_name.split("_", 1)[0]
    if prefix in {"conv1", "pool1"}:
        return "stage 1"
    if len(prefix) == 5 and prefix.startswith("conv") and prefix[4].isdigit():
        return f"stage {prefix[4]}"
    return "input"


def trainable_by_stage(backbone: Any) -> pd.DataFrame:
    """Per ResNet50 stage: layers, layers holding weights, how many of those train, trainable parameters.

    A layer trains only when it has a trainable weight: an ``Add`` flagged trainable has nothing to learn.
    """
    rows: dict[str, dict[str, int]] = {}
    for layer in backbone.layers:
        row = rows.setdefault(resnet_stage(layer.name), {"layers": 0, "layers_with_weights": 0,
                                                          "layers_training": 0, "params_trainable": 0})
        row["layers"] += 1
        row["layers_with_weights"] += int(bool(layer.weights))
        row["layers_training"] += int(bool(layer.trainable_weights))
        row["params_trainable"] += parameter_count(layer.trainable_weights)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "stage"
    return table


def stages_that_train(backbone: Any) -> list[str]:
    """The stages of a (partly frozen) ResNet50 in which at least one weight trains."""
    table = trainable_by_stage(backbone)
    return list(table.index[table["params_trainable"] > 0])


def batch_norm_layers(backbone: Any) -> list[Any]:
    """The BatchNormalization layers inside the backbone."""
    import keras

    return [layer for layer in backbone.layers if isinstance(layer, keras.layers.BatchNormalization)]


# --------------------------------------------------------------------------- data


def class_balance(splits: data.FlowerSplits) -> pd.DataFrame:
    """Photos per class in each part, with each class's share of the part in percent."""
    table = pd.DataFrame({name: np.bincount(labels, minlength=len(splits.class_names))
                          for name, (_, labels) in splits.parts.items()}, index=splits.class_names)
    shares = (100 * table / table.sum()).round(1).add_suffix(" %")
    table.index.name = "class"
    return pd.concat([table, shares], axis=1)


def make_flower_pipelines(splits: data.FlowerSplits, image_size: int, batch_size: int, augmentation: Any,
                          seed: int = runtime.DEFAULT_SEED) -> dict[str, Any]:
    """tf.data pipelines with ResNet50's preprocessing: ``train`` (augmented, shuffled) and three plain ones.

    ``train_eval``, ``validation`` and ``test`` are unshuffled and unaugmented; ``train_eval`` is not cached: at
    224x224 a second in-memory copy would cost gigabytes for two reads.
    """
    import keras

    num_classes = len(splits.class_names)
    preprocess = keras.applications.resnet50.preprocess_input

    def pipeline(part: str, training: bool, cache: bool = True) -> Any:
        paths, labels = splits.parts[part]
        return data.make_file_pipeline(paths, labels, image_size, batch_size, num_classes=num_classes,
                                       training=training, preprocess=preprocess,
                                       augmentation=augmentation if training else None, cache=cache, seed=seed)

    return {"train": pipeline("train", True), "train_eval": pipeline("train", False, cache=False),
            "validation": pipeline("validation", False), "test": pipeline("test", False)}


def probe_pipeline(splits: data.FlowerSplits, image_size: int, batch_size: int, augmentation: Any,
                   batches: int = 16, seed: int = runtime.DEFAULT_SEED) -> Any:
    """A training pipeline over the first ``batches`` batches of training photos, for timing a step.

    The real one shuffles the whole decoded training set, so its first batch waits for every photo; pass the
    real pipeline's ``batches_per_epoch`` to :func:`utils.runtime.estimate_training_minutes`.
    """
    import keras

    paths, labels = splits.parts["train"]
    count = min(len(labels), batches * batch_size)
    return data.make_file_pipeline(list(paths)[:count], np.asarray(labels)[:count], image_size, batch_size,
                                   num_classes=len(splits.class_names), training=True,
                                   preprocess=keras.applications.resnet50.preprocess_input,
                                   augmentation=augmentation, cache=False, seed=seed)


# --------------------------------------------------------------------------- training records


def run_experiment(number: int, model: Any, pipelines: dict[str, Any], *, epochs: int, learning_rate: float,
                   choice: WeightsChoice, settings: dict[str, Any], strategy: Any = None, after: Any = None,
                   frozen_layer_count: int = COURSE_FROZEN_LAYER_COUNT) -> Any:
    """Compile ``model`` with Adam, fit it and measure its accuracies: experiment 1 or 2, through the one runner.

    ``model`` is the notebook's own, frozen by hand, so the session is kept; the trained model comes back also
    when the run is reused. ``settings`` identify the data and head, ``choice`` the weights really loaded (its
    label is in the key and name); experiment 2 passes experiment 1's record as ``after``.
    """
    from utils import recording

    evaluation = {"train": pipelines["train_eval"], "val": pipelines["validation"], "test": pipelines["test"]}

    def fit(network: Any, folder: Any, resuming: bool) -> dict[int, dict[str, float]]:
        return recording.fit_resumably(network, pipelines["train"], validation=pipelines["validation"],
                                       folder=folder, epochs=epochs, verbose=2)

    def evaluate(network: Any, epoch_log: dict[int, dict[str, float]]) -> dict[str, Any]:
        accuracies = evaluate_accuracies(network, evaluation)
        return {"trainable_params": parameter_count(network.trainable_weights),
                **{f"{name}_accuracy": round(value, 4) for name, value in accuracies.items()},
                "seconds": round(recording.epoch_log_totals(epoch_log)["seconds"], 1)}

    name = label_with_weights(experiment_name(number, frozen_layer_count), choice)
    key = {"experiment": name, "weights": choice.label, **settings, "epochs": epochs, "learning_rate": learning_rate,
           "frozen_layer_count": frozen_layer_count, "continues_from": after.folder.name if after else "none"}
    return recording.run(recording.RunSpec(
        table=RESULTS_TABLE, name=name, settings=key, seed=int(settings.get("seed", runtime.DEFAULT_SEED)),
        strategy=strategy, build=lambda: compile_transfer_model(model, learning_rate), fit=fit, evaluate=evaluate,
        readable=("profile", "image_size", "epochs"), keep_model=True, fresh_session=False))


def evaluate_accuracies(model: Any, pipelines: dict[str, Any]) -> dict[str, float]:
    """Accuracy on each named pipeline (use augmentation-free pipelines, e.g. train/val/test)."""
    return {name: float(model.evaluate(pipeline, verbose=0, return_dict=True)["accuracy"])
            for name, pipeline in pipelines.items()}


def comparison_table(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The experiments side by side (the columns a reader compares), weights label kept visible."""
    columns = ["experiment", "weights", "epochs", "learning_rate", "trainable_params",
               "train_accuracy", "val_accuracy", "test_accuracy", "seconds"]
    return pd.DataFrame(list(rows))[columns].set_index("experiment")


def accuracy_noise(accuracy_1: float, accuracy_2: float, test_images: int) -> float:
    """The standard error of the difference of two test accuracies measured on ``test_images`` images.

    Adds the two variances p (1 - p) / n as if independent: slightly cautious, as both use the same images.
    """
    if test_images <= 0:
        raise ValueError(f"test_images must be positive, got {test_images}.")
    variance = (accuracy_1 * (1 - accuracy_1) + accuracy_2 * (1 - accuracy_2)) / test_images
    return float(np.sqrt(variance))


def compare_experiments(rows: Sequence[dict[str, Any]], choice: WeightsChoice, test_images: int,
                        majority_share: float) -> str:
    """Which experiment has the higher test accuracy, and whether that difference means anything.

    A winner is named only beyond :data:`SIGNIFICANT_STANDARD_ERRORS` standard errors and above
    ``majority_share``, the score of always naming the largest class.
    """
    first, second = rows[0], rows[1]
    accuracy_1, accuracy_2 = first["test_accuracy"], second["test_accuracy"]
    difference = accuracy_2 - accuracy_1
    images_apart = round(abs(difference) * test_images)
    margin = SIGNIFICANT_STANDARD_ERRORS * accuracy_noise(accuracy_1, accuracy_2, test_images)
    winner, loser = (second, first) if difference > 0 else (first, second)
    measured = (f"test accuracy {accuracy_1:.1%} (experiment 1) vs {accuracy_2:.1%} (experiment 2): "
                f"{100 * abs(difference):.1f} percentage points, {images_apart} of {test_images} test images")
    if winner["test_accuracy"] <= majority_share:
        verdict = (f"No winner: {measured}; neither beats the {majority_share:.1%} of always naming "
                   "the largest class.")
    elif abs(difference) <= margin:
        verdict = (f"No clear winner: {measured}, within the noise of this test set "
                   f"({SIGNIFICANT_STANDARD_ERRORS:g} standard errors = {100 * margin:.1f} points).")
    else:
        verdict = (f"Experiment {winner['experiment'][0]} wins: {measured}, beyond the noise of this test set "
                   f"({SIGNIFICANT_STANDARD_ERRORS:g} standard errors = {100 * margin:.1f} points) and above "
                   f"the {majority_share:.1%} majority-class floor.")
    budget = (f" Fine-tuning trained {second['trainable_params']:,} parameters against "
              f"{first['trainable_params']:,} and took {second['seconds']:.0f} s against {first['seconds']:.0f} s.")
    caveat = "" if choice.is_pretrained else (
        f" Weights: {RANDOM_INIT_LABEL}; this compares two ways of training a randomly initialised "
        "network, not transfer learning.")
    return verdict + budget + caveat


def beats_floor(accuracy: float, majority_share: float, test_images: int) -> bool:
    """True when a test accuracy beats always naming the largest class by more than two standard errors."""
    noise = SIGNIFICANT_STANDARD_ERRORS * np.sqrt(majority_share * (1 - majority_share) / test_images)
    return accuracy - majority_share > noise


def readability_note(readable: bool, weights_label: str) -> str:
    """One line before the cells that read a model's mistakes: go ahead, or why they cannot be read."""
    if readable:
        return f"the model beats the majority floor beyond noise ({weights_label}): its mistakes can be read"
    return (f"CONTROL RUN ({weights_label}): the model does not beat always naming the largest class beyond noise, "
            "so its per-class accuracy and mistakes are noise; the cells below show them but draw nothing from them")


def joined_history(first: Any, second: Any) -> tuple[dict[str, list[float]], int]:
    """Both runs' curves end to end, and how many epochs came before fine-tuning started.

    Pass the count to ``plotting.plot_learning_curves(..., mark_epochs={"fine-tuning starts": count})``.
    """
    keys = [key for key in first.history if key in second.history]
    return {key: first.history[key] + second.history[key] for key in keys}, len(first.history["loss"])


def predict_classes(model: Any, pipeline: Any) -> np.ndarray:
    """The most probable class for every image of an (unshuffled) pipeline, in order.

    Batch by batch, not ``model.predict``: for one pass over a few hundred photos, tracing ResNet50's predict
    graph takes longer than running it eagerly.
    """
    import keras

    batches = [keras.ops.convert_to_numpy(model(images, training=False)) for images, _ in pipeline]
    return np.argmax(np.concatenate(batches), axis=1)


def per_class_accuracy(true_labels: np.ndarray, predicted_labels: np.ndarray,
                       class_names: Sequence[str]) -> pd.DataFrame:
    """Test images, correct predictions and accuracy for every class."""
    true_labels, predicted_labels = np.asarray(true_labels), np.asarray(predicted_labels)
    rows = []
    for index, name in enumerate(class_names):
        members = true_labels == index
        correct = int(np.sum(predicted_labels[members] == index))
        rows.append({"class": name, "images": int(members.sum()), "correct": correct,
                     "accuracy": correct / members.sum() if members.any() else float("nan")})
    return pd.DataFrame(rows).set_index("class")


def misclassified(paths: Sequence[str], true_labels: np.ndarray, predicted_labels: np.ndarray,
                  class_names: Sequence[str], limit: int = 12) -> tuple[list[str], list[str]]:
    """Paths and one-line "predicted (true: ...)" captions (clear of the image above) of up to ``limit`` errors."""
    wrong = np.flatnonzero(np.asarray(true_labels) != np.asarray(predicted_labels))[:limit]
    captions = [f"{class_names[predicted_labels[i]]} (true: {class_names[true_labels[i]]})" for i in wrong]
    return [paths[i] for i in wrong], captions

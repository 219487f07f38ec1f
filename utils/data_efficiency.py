"""Data-efficiency curves: what a pretrained backbone buys at each number of labelled images (notebook 05).

Offline there are no ImageNet weights, so notebook 05 pretrains a stand-in itself: notebook 08's small network,
trained on CIFAR-10's first five classes (the *source*). It then measures, for two *targets*, test accuracy
against labelled training images per class, in four arms (:data:`ARMS`):

- ``frozen pretrained``: the source network's features, frozen, and a new linear head (experiment 1's recipe);
- ``fine-tuned``: that network and head trained further, batch norm kept frozen (experiment 2's recipe);
- ``from scratch``: the same network, randomly initialised, trained on the target alone;
- ``frozen random init``: the control, a new head on a random network's frozen features.

The *near* target is CIFAR-10's other five classes (same kind of photos, same size); the *far* target is the
flowers, shrunk to the network's 32 pixels. Every point is one run of :func:`utils.recording.run`. This module
holds the bookkeeping; the freezing and the fine-tuning model are written out in the notebook.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import pandas as pd

from utils import data, fast_cifar, recording, reference
from utils.transfer import SIGNIFICANT_STANDARD_ERRORS

CURVE_TABLE = "transfer_curve"
PRETRAINING_TABLE = "transfer_pretraining"
SOURCE_CLASSES = (0, 1, 2, 3, 4)  # airplane, automobile, bird, cat, deer; the targets' near half is the rest
FEATURE_LAYER = "global_max_pool"  # notebook 08's network: one number per channel of its last block
ARMS = ("frozen pretrained", "fine-tuned", "from scratch", "frozen random init")
PRETRAINED_ARMS = ARMS[:2]
ALL_IMAGES = 0  # ``per_class`` of a point trained on the whole training part
HEAD_LEARNING_RATE = 1e-2  # Adam on standardised features: a linear head converges in a few hundred steps
HEAD_STEPS = 600
FINE_TUNING_RATE_FACTOR = 0.05  # fine-tuning's peak rate, a share of from scratch's (0.1 diverged on the flowers)
BATCH_SIZE = 64  # small sets: a batch of 512 would be the whole set at 10 images per class
LEAST_IMAGES_PER_EPOCH = 1024  # small sets are repeated (each copy augmented anew) to fill an epoch


class Target(data.ImageDataset):
    """A target task: an :class:`~utils.data.ImageDataset` (uint8, 32x32 for the small network) with its floor."""

    @property
    def majority_share(self) -> float:
        """Test accuracy of always naming the largest test class: the floor every arm must beat."""
        return float(np.bincount(self.y_test).max() / len(self.y_test))


def split_cifar(dataset: data.ImageDataset, validation_images: int, seed: int,
                train_limit: int | None = None) -> tuple[data.Splits, Target]:
    """The source task (the first five classes, ``validation_images`` held out) and the near target (the rest)."""
    source_train = np.isin(dataset.y_train, SOURCE_CLASSES)
    source_test = np.isin(dataset.y_test, SOURCE_CLASSES)
    x_train, y_train, x_validation, y_validation = data.stratified_split(
        dataset.x_train[source_train], dataset.y_train[source_train], validation_images, seed)
    x_train, y_train = data.stratified_subsample(x_train, y_train, train_limit, seed)
    source_names = [dataset.class_names[index] for index in SOURCE_CLASSES]
    source = data.Splits(x_train, y_train, x_validation, y_validation, dataset.x_test[source_test],
                         dataset.y_test[source_test], "holdout", data.VALIDATION_PROTOCOLS["holdout"],
                         source_names, dataset.source)
    target_names = [name for index, name in enumerate(dataset.class_names) if index not in SOURCE_CLASSES]
    relabel = np.full(len(dataset.class_names), -1)
    relabel[[index for index in range(len(dataset.class_names)) if index not in SOURCE_CLASSES]] = np.arange(
        len(target_names))
    near = Target("near: CIFAR-10's other five classes", dataset.x_train[~source_train],
                  relabel[dataset.y_train[~source_train]], dataset.x_test[~source_test],
                  relabel[dataset.y_test[~source_test]], target_names, dataset.source)
    return source, near


def flowers_target(splits: data.FlowerSplits, image_size: int) -> Target:
    """The far target: the flower photos' training and test parts, shrunk to ``image_size`` (antialiased)."""
    import tensorflow as tf

    def shrink(part: str) -> tuple[np.ndarray, np.ndarray]:
        paths, labels = splits.parts[part]
        photos = tf.image.resize(data.read_images(paths), (image_size, image_size), antialias=True)
        return np.clip(np.round(photos.numpy()), 0, 255).astype(np.uint8), np.asarray(labels)

    (x_train, y_train), (x_test, y_test) = shrink("train"), shrink("test")
    return Target(f"far: the flowers at {image_size} px", x_train, y_train, x_test, y_test,
                  list(splits.class_names), splits.source)


def per_class_subset(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """Indices of ``per_class`` training images of every class (all of them for :data:`ALL_IMAGES`), seeded."""
    generator = np.random.default_rng([seed, per_class])
    if per_class == ALL_IMAGES:
        return generator.permutation(len(labels))
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < per_class:
            raise ValueError(f"Class {label} has {len(members)} training images, fewer than per_class={per_class}; "
                             "choose smaller counts in CURVE_PER_CLASS.")
        chosen.append(generator.choice(members, per_class, replace=False))
    return generator.permutation(np.concatenate(chosen))


def images_seen(train_images: int, least: int, most: int, per_image: int = 40) -> int:
    """Training images a fine-tuning or from-scratch run sees: 40 passes, but at least ``least``, at most ``most``."""
    return int(min(max(per_image * train_images, least), most))


def repeated(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """A small set repeated to fill :data:`LEAST_IMAGES_PER_EPOCH` (each copy is augmented anew), and the copies."""
    copies = max(1, math.ceil(LEAST_IMAGES_PER_EPOCH / len(labels)))
    return np.concatenate([images] * copies), np.concatenate([labels] * copies), copies


def feature_extractor(network: Any) -> Any:
    """The network up to :data:`FEATURE_LAYER`: the input to its classifier, one number per channel."""
    import keras

    return keras.Model(network.input, network.get_layer(FEATURE_LAYER).output, name="features")


def outputs_of(model: Any, inputs: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """A model's outputs for uint8 images (scaled to [0, 1] as it was trained) or float features, as float32.

    Called batch by batch rather than through ``predict``, which traces a new function for every new model.
    """
    import keras

    scaled = inputs.astype(np.float32) / 255.0 if inputs.dtype == np.uint8 else inputs
    return np.concatenate([keras.ops.convert_to_numpy(model(scaled[start:start + batch_size], training=False))
                           for start in range(0, len(scaled), batch_size)]).astype(np.float32)


def features_of(extractor: Any, images: np.ndarray) -> np.ndarray:
    """Features of uint8 images from a :func:`feature_extractor`."""
    return outputs_of(extractor, images)


def linear_head(feature_count: int, num_classes: int) -> Any:
    """A new classifier for frozen features: standardise them, then one dense layer and a float32 softmax."""
    import keras

    return keras.Sequential([
        keras.Input((feature_count,)),
        keras.layers.Normalization(name="standardise"),
        keras.layers.Dense(num_classes, name="logits"),
        keras.layers.Activation("softmax", dtype="float32", name="softmax"),
    ], name="head")


def fit_head(head: Any, features: np.ndarray, labels: np.ndarray, folder: Any, seed: int) -> recording.EpochLog:
    """Standardise on the training features, compile with Adam and train :data:`HEAD_STEPS` steps."""
    import keras

    head.get_layer("standardise").adapt(features)
    head.compile(keras.optimizers.Adam(HEAD_LEARNING_RATE), "sparse_categorical_crossentropy", metrics=["accuracy"])
    import tensorflow as tf

    features, labels, _ = repeated(features, labels)
    order = np.random.default_rng(seed).permutation(len(labels))
    steps_per_epoch = math.ceil(len(labels) / BATCH_SIZE)
    batches = tf.data.Dataset.from_tensor_slices((features[order], labels[order])).batch(BATCH_SIZE)
    return recording.fit_resumably(head, batches, folder=folder, epochs=max(1, math.ceil(HEAD_STEPS / steps_per_epoch)),
                                   verbose=0)


def fit_network(model: Any, images: np.ndarray, labels: np.ndarray, recipe: fast_cifar.Recipe, seen: int,
                folder: Any, seed: int, num_classes: int) -> recording.EpochLog:
    """Compile ``model`` with ``recipe`` (schedule over the whole run) and train it on about ``seen`` images.

    Augmentation (flips, shifts) and label smoothing as in notebook 08; small sets are repeated, each copy
    augmented anew, so an epoch is never a single step.
    """
    images, labels, _ = repeated(images, labels)
    epochs = max(1, round(seen / len(labels)))
    recipe = recipe.changed(epochs=epochs, batch_size=BATCH_SIZE)
    batches = fast_cifar.EpochBatches(images, labels, recipe, num_classes, seed)
    fast_cifar.compile_recipe(model, recipe, len(batches))
    return recording.fit_resumably(model, batches.dataset, folder=folder, epochs=epochs, verbose=0,
                                   callbacks=[fast_cifar.epoch_augmenter(batches)])


def target_recipe(recipe: fast_cifar.Recipe) -> fast_cifar.Recipe:
    """Notebook 08's recipe for the curve's small sets: batch :data:`BATCH_SIZE`, learning rates scaled to it.

    Lookahead is left out: it averages over hundreds of steps, and a run at 10 images per class has few.
    """
    return recipe.changed(batch_size=BATCH_SIZE, learning_rate=fast_cifar.keras_learning_rate(BATCH_SIZE),
                          weight_decay=fast_cifar.keras_weight_decay(BATCH_SIZE), lookahead=False)


def accuracy(model: Any, inputs: np.ndarray, labels: np.ndarray) -> float:
    """Test accuracy of a model on images (uint8) or features (float32)."""
    return round(float(np.mean(np.argmax(outputs_of(model, inputs), axis=1) == labels)), 4)


def record_point(target: Target, arm: str, per_class: int, seed: int, settings: dict[str, Any],
                 build: Callable[[], Any], fit: Callable[[Any, Any], recording.EpochLog],
                 test_inputs: np.ndarray, train_images: int, keep_model: bool = False) -> recording.Record:
    """One point of a curve through the suite's runner: built, trained, tested once, recorded (or reused).

    ``settings`` hold what else identifies the run (profile, precision, pretraining, budget, data fingerprint).
    """
    if arm not in ARMS:
        raise ValueError(f"Unknown arm {arm!r}; choose one of {ARMS}.")

    def evaluate(model: Any, epoch_log: recording.EpochLog) -> dict[str, Any]:
        seconds = recording.epoch_log_totals(epoch_log)["train_seconds"]
        return {"test_accuracy": accuracy(model, test_inputs, target.y_test), "test_images": len(target.y_test),
                "train_images": train_images, "target_classes": len(target.class_names), "majority_share": round(target.majority_share, 4),
                "train_seconds": round(seconds, 2), "epochs_done": len(epoch_log)}

    key = {"target": target.name, "arm": arm, "per_class": per_class, "seed": seed, "data_source": target.source,
           **settings}
    return recording.run(recording.RunSpec(
        table=CURVE_TABLE, name=f"{arm}, {per_class or 'all'} per class", settings=key, seed=seed,
        build=build, fit=lambda model, folder, resuming: fit(model, folder), evaluate=evaluate,
        readable=("arm", "per_class", "seed"), keep_model=keep_model))


# --- Reading the curves ------------------------------------------------------------------------------------------


def per_class_label(per_class: Any) -> str:
    """How tables name a count: ``10`` or ``all``."""
    return "all" if int(per_class) == ALL_IMAGES else str(int(per_class))


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean, spread (standard deviation) and seed count of test accuracy per target, arm and count."""
    rows = rows.assign(images_per_class=rows["train_images"].astype(float) / rows["target_classes"].astype(float))
    summary = rows.groupby(["target", "arm", "per_class"], sort=False).agg(
        mean=("test_accuracy", "mean"), spread=("test_accuracy", "std"), seeds=("test_accuracy", "size"),
        images_per_class=("images_per_class", "mean"), test_images=("test_images", "first"),
        majority_share=("majority_share", "first")).reset_index()
    summary["spread"] = summary["spread"].fillna(0.0)
    return summary


def standard_error(summary: pd.DataFrame) -> pd.Series:
    """Standard error of each mean: the seeds' spread over their count, plus the test set's binomial noise.

    Every seed is scored on the same test images, so their sampling noise does not average out over seeds.
    """
    binomial = summary["mean"] * (1 - summary["mean"]) / summary["test_images"]
    return np.sqrt(summary["spread"] ** 2 / summary["seeds"] + binomial)


def _gap(arms: pd.DataFrame, better: str, worse: str) -> tuple[float, float]:
    """Difference of two arms' means and two standard errors of that difference."""
    gap = arms.loc[better, "mean"] - arms.loc[worse, "mean"]
    noise = SIGNIFICANT_STANDARD_ERRORS * math.hypot(arms.loc[better, "standard_error"], arms.loc[worse, "standard_error"])
    return float(gap), float(noise)


def pretraining_gain(summary: pd.DataFrame) -> pd.DataFrame:
    """Per target and count: the better pretrained arm against training from scratch, with the noise of the gap.

    Also the frozen pretrained features against the control's random ones: whether pretraining taught the
    features anything this target can use.
    """
    summary = summary.assign(standard_error=standard_error(summary))
    rows = []
    for (target, per_class), group in summary.groupby(["target", "per_class"], sort=False):
        arms = group.set_index("arm")
        if "from scratch" not in arms.index or not any(arm in arms.index for arm in PRETRAINED_ARMS):
            continue
        best = max((arm for arm in PRETRAINED_ARMS if arm in arms.index), key=lambda arm: arms.loc[arm, "mean"])
        gain, noise = _gap(arms, best, "from scratch")
        row = {"target": target, "per_class": per_class_label(per_class), "best pretrained arm": best,
               "pretrained": arms.loc[best, "mean"], "from scratch": arms.loc["from scratch", "mean"],
               "gain": gain, "noise (2 SE)": noise, "seeds": int(arms.loc[best, "seeds"]),
               "pretraining pays": bool(gain > noise)}
        if {"frozen pretrained", "frozen random init"} <= set(arms.index):
            features_gain, features_noise = _gap(arms, "frozen pretrained", "frozen random init")
            row.update({"frozen: pretrained - random features": features_gain,
                        "features beat random": bool(features_gain > features_noise)})
        rows.append(row)
    return pd.DataFrame(rows)


def where_pretraining_stops_paying(gains: pd.DataFrame, target: str) -> str:
    """One sentence, from the gains, on the counts at which pretraining beats training from scratch."""
    rows = gains[gains["target"] == target]
    if rows.empty:
        return f"{target}: no point with both a pretrained arm and the from-scratch arm was measured."
    paying = rows[rows["pretraining pays"]]["per_class"].tolist()
    if not paying:
        sentence = (f"{target}: pretraining does not beat training from scratch beyond noise at any count measured "
                    f"({', '.join(rows['per_class'])} per class).")
    else:
        not_paying = rows[~rows["pretraining pays"]]["per_class"].tolist()
        tail = f"; not beyond noise at {', '.join(not_paying)}" if not_paying else "; beyond noise at every count measured"
        sentence = f"{target}: pretraining pays at {', '.join(paying)} images per class{tail}."
    hurting = rows[rows["gain"] < -rows["noise (2 SE)"]]["per_class"].tolist()
    if hurting:
        sentence += f" Training from scratch beats it beyond noise at {', '.join(hurting)} per class."
    if "features beat random" in rows and not rows["features beat random"].fillna(False).astype(bool).any():
        sentence += " Its frozen features never beat a random network's beyond noise."
    return sentence


def read_reference_curve(profile: str) -> reference.ReferenceTable:
    """The shipped curve rows of a profile (``results/reference/transfer_curve_<profile>.csv``), or the reason not."""
    return reference.read_reference(f"{CURVE_TABLE}_{profile}", required=(
        "target", "arm", "per_class", "seed", "test_accuracy", "train_images", "target_classes", "test_images",
        "majority_share", "train_seconds", "precision", "hardware", "tensorflow", "keras"))


def _spaced(ticks: pd.DataFrame, least_ratio: float = 1.3) -> pd.DataFrame:
    """The tick rows left after dropping any within ``least_ratio`` of the previous one kept (labels would overlap)."""
    kept: list[int] = []
    for position, count in enumerate(ticks["images_per_class"]):
        if not kept or count >= least_ratio * ticks["images_per_class"].iloc[kept[-1]]:
            kept.append(position)
    return ticks.iloc[kept]


def plot_curves(summary: pd.DataFrame, reference_summary: pd.DataFrame | None = None, title: str = "") -> Any:
    """Test accuracy against labelled images per class, one panel per target, error bars of one spread.

    Shipped reference points are drawn hollow beside this run's; the dashed line is the majority-class floor.
    """
    import matplotlib.pyplot as plt

    targets = list(dict.fromkeys(summary["target"]))
    figure, axes = plt.subplots(1, len(targets), figsize=(6.2 * len(targets), 4.4), squeeze=False,
                                layout="constrained")
    colours = dict(zip(ARMS, ("tab:blue", "tab:orange", "tab:green", "tab:grey")))
    for ax, target in zip(axes[0], targets):
        for table, hollow in ((reference_summary, True), (summary, False)):  # this run on top, in full
            if table is None or table.empty:
                continue
            for arm, points in table[table["target"] == target].groupby("arm", sort=False):
                points = points.sort_values("images_per_class")
                ax.errorbar(points["images_per_class"], points["mean"], yerr=points["spread"], capsize=3,
                            marker="o", markersize=9 if hollow else 5, color=colours[arm],
                            linestyle=":" if hollow else "-",
                            markerfacecolor="white" if hollow else colours[arm],
                            label=f"{arm} ({'reference run' if hollow else 'this run'})")
        floor = summary.loc[summary["target"] == target, "majority_share"].iloc[0]
        ax.axhline(floor, color="black", linestyle="--", linewidth=1, label="majority-class floor")
        shown = pd.concat([table for table in (summary, reference_summary) if table is not None])
        ticks = _spaced(shown[shown["target"] == target].drop_duplicates("images_per_class")
                        .sort_values("images_per_class"))
        ax.set_xscale("log")
        ax.set_xticks(ticks["images_per_class"], [f"all ({count:.0f})" if per_class == ALL_IMAGES else f"{count:.0f}"
                                                  for count, per_class in zip(ticks["images_per_class"], ticks["per_class"])])
        ax.minorticks_off()
        ax.set(title=f"{target} (floor {floor:.0%})", xlabel="labelled training images per class (log scale)",
               ylabel="test accuracy")
        ax.yaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0, decimals=0))
        ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncol=3, fontsize=8)
    if title:
        figure.suptitle(title)
    return figure


def curve_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary as a reader compares it: a row per target and count, ``mean ± spread`` per arm."""
    cells = summary.assign(
        count=summary["per_class"].map(per_class_label),
        value=[f"{mean:.1%} ± {spread:.1%}" for mean, spread in zip(summary["mean"], summary["spread"])])
    table = cells.pivot_table(index=["target", "count"], columns="arm", values="value", aggfunc="first", sort=False)
    return table[[arm for arm in ARMS if arm in table.columns]]


def describe_reference(rows: pd.DataFrame) -> str:
    """Where and how the reference rows were measured: hardware, precision, versions, seeds and time."""
    def joined(column: str) -> str:
        return ", ".join(str(value) for value in dict.fromkeys(rows[column]))

    return (f"reference run: {len(rows)} points, seeds {joined('seed')}, on {joined('hardware')} in "
            f"{joined('precision')}, TensorFlow {joined('tensorflow')} / Keras {joined('keras')}; "
            f"{rows['train_seconds'].sum() / 60:.1f} min of training")


# Others' figures on the same five flower classes, for context only (not measured by this suite).
PUBLISHED_FLOWERS = (
    ("ImageNet Xception, head only (handson-ml3, 224 px)", 0.85),
    ("ImageNet Xception, fine-tuned (handson-ml3, 224 px)", 0.91),
)


def course_experiments_offline(summary: pd.DataFrame, reference_summary: pd.DataFrame | None) -> pd.DataFrame:
    """Experiments 1 and 2 on all the flower photos (this run, the reference run), then others' published figures."""
    def cell(table: pd.DataFrame | None, arm: str) -> str:
        if table is None:
            return reference.NOT_MEASURED
        chosen = table[(table["arm"] == arm) & (table["per_class"] == ALL_IMAGES)
                       & table["target"].str.startswith("far")]
        if chosen.empty:
            return reference.NOT_MEASURED
        seeds = int(chosen["seeds"].iloc[0])
        return f"{chosen['mean'].iloc[0]:.1%} ± {chosen['spread'].iloc[0]:.1%} ({seeds} seed{'s' if seeds > 1 else ''})"

    rows = [{"experiment": name, "this run": cell(summary, arm), "reference run": cell(reference_summary, arm)}
            for name, arm in (("1 frozen, new head (stand-in, 32 px)", "frozen pretrained"),
                              ("2 fine-tuned (stand-in, 32 px)", "fine-tuned"),
                              ("control: from scratch (32 px)", "from scratch"),
                              ("control: random network, frozen (32 px)", "frozen random init"))]
    rows += [{"experiment": name, "this run": "not measured here", "reference run": f"{value:.0%} (published)"}
             for name, value in PUBLISHED_FLOWERS]
    return pd.DataFrame(rows).set_index("experiment")

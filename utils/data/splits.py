"""Splitting datasets: stratified and seeded, with the validation protocol spelled out.

``make_splits`` carves train / validation / test arrays out of an :class:`ImageDataset`; ``split_flowers``
does the same for a :class:`FileDataset`'s paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from utils import runtime
from utils.data.records import ImageDataset


def stratified_split(
    images: np.ndarray, labels: np.ndarray, second_size: float, seed: int = runtime.DEFAULT_SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split into two parts with the same class proportions; the second has ``second_size`` items (or that share)."""
    labels = np.asarray(labels)
    count = int(round(second_size * len(labels))) if isinstance(second_size, float) else int(second_size)
    if not 0 < count < len(labels):
        raise ValueError(f"Cannot take {count} of {len(labels)} items as the second part of a split.")
    generator = np.random.default_rng(seed)
    second: list[np.ndarray] = []
    classes, class_counts = np.unique(labels, return_counts=True)
    quotas = np.floor(class_counts * count / len(labels)).astype(int)
    for position in np.argsort(-(class_counts * count / len(labels) - quotas))[: count - quotas.sum()]:
        quotas[position] += 1
    for class_value, quota in zip(classes, quotas):
        members = np.flatnonzero(labels == class_value)
        second.append(generator.choice(members, size=quota, replace=False))
    second_indices = np.sort(np.concatenate(second))
    first_indices = np.setdiff1d(np.arange(len(labels)), second_indices)
    generator.shuffle(first_indices)
    generator.shuffle(second_indices)
    return images[first_indices], labels[first_indices], images[second_indices], labels[second_indices]


def stratified_subsample(
    images: np.ndarray, labels: np.ndarray, count: int | None, seed: int = runtime.DEFAULT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """At most ``count`` items with the class proportions kept (all of them when ``count`` is None)."""
    if count is None or count >= len(labels):
        return images, labels
    _, _, chosen_images, chosen_labels = stratified_split(images, labels, count, seed)
    return chosen_images, chosen_labels


@dataclass
class Splits:
    """Training, validation and test parts, with the validation protocol spelled out."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_validation: np.ndarray
    y_validation: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    protocol: str
    validation_label: str
    class_names: list[str]
    source: str

    def describe(self) -> str:
        """The size of each part, then the protocol and the data source on a second line, for printing."""
        return (f"train {len(self.y_train):,} | {self.validation_label} {len(self.y_validation):,} | "
                f"test {len(self.y_test):,}\n  (protocol: {self.protocol}; data: {self.source})")


VALIDATION_PROTOCOLS = {
    "holdout": "validation (held out of training)",
    "course": "test set used as validation (course protocol)",
}


def make_splits(
    dataset: ImageDataset,
    protocol: str = "holdout",
    validation_size: float = 5_000,
    seed: int = runtime.DEFAULT_SEED,
    train_limit: int | None = None,
    test_limit: int | None = None,
) -> Splits:
    """Carve the validation part and optionally shrink the parts (stratified, seeded).

    ``holdout`` holds ``validation_size`` images out of training, so the test set stays unseen until the end;
    ``course`` validates on the test set as the original notebooks did, and labels it that way.
    """
    if protocol not in VALIDATION_PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}; choose one of {sorted(VALIDATION_PROTOCOLS)}.")
    x_test, y_test = stratified_subsample(dataset.x_test, dataset.y_test, test_limit, seed)
    if protocol == "holdout":
        x_train, y_train, x_validation, y_validation = stratified_split(
            dataset.x_train, dataset.y_train, validation_size, seed)
    else:
        x_train, y_train, x_validation, y_validation = dataset.x_train, dataset.y_train, x_test, y_test
    x_train, y_train = stratified_subsample(x_train, y_train, train_limit, seed)
    return Splits(x_train, y_train, x_validation, y_validation, x_test, y_test, protocol,
                  VALIDATION_PROTOCOLS[protocol], dataset.class_names, dataset.source)


@dataclass
class FlowerSplits:
    """File paths and labels of the training, validation and test parts (stratified, seeded)."""

    parts: dict[str, tuple[np.ndarray, np.ndarray]]
    class_names: list[str]
    source: str
    seed: int

    def describe(self) -> str:
        """One line with the size of each part and where the photos came from."""
        sizes = " | ".join(f"{name} {len(labels):,}" for name, (_, labels) in self.parts.items())
        return f"{sizes}   (stratified, seed {self.seed}; data: {self.source})"


def split_flowers(paths: Sequence[str], labels: np.ndarray, class_names: Sequence[str], source: str,
                  validation_fraction: float = 0.15, test_fraction: float = 0.15, limit: int | None = None,
                  seed: int = runtime.DEFAULT_SEED) -> FlowerSplits:
    """Stratified train / validation / test split of the photo files (at most ``limit`` of them, for quick runs)."""
    if not 0 < validation_fraction < 1 or not 0 < test_fraction < 1 or validation_fraction + test_fraction >= 1:
        raise ValueError(f"validation_fraction ({validation_fraction}) and test_fraction ({test_fraction}) must "
                         "each be between 0 and 1 and leave some photos for training, e.g. 0.15 and 0.15.")
    all_paths, all_labels = stratified_subsample(np.asarray(paths), np.asarray(labels), limit, seed)
    rest_paths, rest_labels, test_paths, test_labels = stratified_split(all_paths, all_labels, test_fraction, seed)
    validation_share = validation_fraction / (1 - test_fraction)
    train_paths, train_labels, validation_paths, validation_labels = stratified_split(
        rest_paths, rest_labels, validation_share, seed)
    parts = {"train": (train_paths, train_labels), "validation": (validation_paths, validation_labels),
             "test": (test_paths, test_labels)}
    return FlowerSplits(parts, list(class_names), source, seed)

"""What the loaders return, and the errors they raise.

:class:`ImageDataset` holds decoded uint8 arrays, :class:`FileDataset` file paths; both carry their
provenance and skipped files, so ``describe()`` shows where the data came from and what was left out.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

import numpy as np

MNIST_CLASS_NAMES = [str(digit) for digit in range(10)]
FASHION_MNIST_CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
CIFAR10_CLASS_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]
FLOWER_CLASS_NAMES = ["daisy", "dandelion", "rose", "sunflower", "tulip"]
SKIPPED_FILES_SHOWN = 10


class DatasetNotFoundError(FileNotFoundError):
    """Raised when a dataset is neither on disk nor downloadable; the message says how to fix it."""


class DataFormatError(ValueError):
    """Raised when a data file exists but has the wrong shape, size or content."""


class ImageDecodeError(RuntimeError):
    """Raised instead of TensorFlow's traceback when an image file cannot be decoded inside a pipeline."""


@dataclass(frozen=True)
class SkippedFile:
    """A file a loader left out, and why (for example "image file is truncated")."""

    path: str
    reason: str


@dataclass(kw_only=True)
class _Provenance:
    """Where a dataset came from and what was skipped: shared by the in-memory and on-disk records.

    ``notes`` and ``skipped`` are keyword-only, so they follow each record's own fields (``name``, ``source``).
    """

    notes: list[str] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)

    @property
    def is_synthetic(self) -> bool:
        """True when the data was generated rather than read."""
        return "synthetic" in self.source

    def _describe(self, headline: str) -> str:
        lines = [f"{self.name}: {headline}", f"source: {self.source}"]
        # Notes are long sentences: wrapped, they stay readable in a notebook's output.
        lines += [textwrap.fill(f"note: {note}", width=110, subsequent_indent="      ") for note in self.notes]
        if self.skipped:
            lines.append(f"skipped {len(self.skipped)} file(s) that are not complete, decodable images:")
            lines += [f"  {item.path}: {item.reason}" for item in self.skipped[:SKIPPED_FILES_SHOWN]]
            if len(self.skipped) > SKIPPED_FILES_SHOWN:
                lines.append(f"  ... and {len(self.skipped) - SKIPPED_FILES_SHOWN} more (all of them in .skipped)")
        return "\n".join(lines)


@dataclass
class ImageDataset(_Provenance):
    """A dataset held in memory as uint8 image arrays and integer labels."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str]
    source: str

    def describe(self) -> str:
        """A few lines saying what was loaded, from where, and which files were skipped (print it)."""
        return self._describe(f"{len(self.x_train):,} training and {len(self.x_test):,} test images "
                              f"of shape {self.x_train.shape[1:]}, {len(self.class_names)} classes")


@dataclass
class FileDataset(_Provenance):
    """A dataset of image files on disk with one integer label each (decoded later by tf.data)."""

    name: str
    paths: list[str]
    labels: np.ndarray
    class_names: list[str]
    source: str

    def describe(self) -> str:
        """A few lines saying what was found, from where, and which files were skipped."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        per_class = ", ".join(f"{name} {count:,}" for name, count in zip(self.class_names, counts))
        return self._describe(f"{len(self.paths):,} images ({per_class})")

"""Where datasets come from: the environment switches, the folders searched, and downloads.

``CNN_DATA_DIR`` then the cache folder (``CNN_CACHE_DIR``, default ``data/``) are searched, then the
original files downloaded unless ``CNN_OFFLINE=1``; ``CNN_DATA=synthetic`` generates every dataset.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path

from utils import runtime
from utils.data.records import DatasetNotFoundError

KERAS_DATASETS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
MNIST_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
FLOWERS_URL = "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"


def synthetic_requested() -> bool:
    """True when ``CNN_DATA=synthetic`` asks for generated data instead of real data."""
    return os.environ.get("CNN_DATA", "").strip().lower() == "synthetic"


def offline_requested() -> bool:
    """True when ``CNN_OFFLINE=1`` forbids download attempts (datasets and pretrained weights alike)."""
    return os.environ.get("CNN_OFFLINE", "").strip().lower() in {"1", "true", "yes"}


def search_roots() -> list[Path]:
    """Folders searched for datasets, in order: ``CNN_DATA_DIR`` then the cache folder."""
    return list(dict.fromkeys([runtime.data_dir(), runtime.cache_dir()]))  # once, when both are the same folder


def not_found(dataset: str, looked_at: Sequence[str], download_problem: str) -> DatasetNotFoundError:
    places = "; ".join(looked_at)
    return DatasetNotFoundError(
        f"{dataset} was not found. Looked for: {places}. {download_problem} "
        f"To fix this, either put the dataset in one of those places (set CNN_DATA_DIR to the "
        f"folder that holds it, e.g. CNN_DATA_DIR=/path/to/datasets), or connect to the internet "
        f"and unset CNN_OFFLINE so it can be downloaded into {runtime.cache_dir()}, or set "
        f"CNN_DATA=synthetic to run on small generated data (labelled synthetic)."
    )


def download(file_name: str, url: str, sha256: str | None = None, extract: bool = False) -> Path:
    """Download ``url`` into the cache folder (with Keras's progress bar) and return the path.

    Offline or failing, it raises ``ConnectionError`` with the reason; loaders make it a :class:`DatasetNotFoundError`.
    """
    if offline_requested():
        raise ConnectionError("Downloads are switched off (CNN_OFFLINE=1).")
    import keras

    try:
        path = keras.utils.get_file(
            fname=file_name, origin=url, file_hash=sha256,
            cache_dir=str(runtime.cache_dir()), cache_subdir="downloads",
        )
    except Exception as error:  # network errors come in many types; all mean "not downloaded"
        raise ConnectionError(f"Downloading {url} failed ({type(error).__name__}: {error}).") from error
    path = Path(path)
    if extract:
        target = path.parent / (file_name.split(".")[0] + "_extracted")
        if not target.exists():
            extract_archive(path, target)
        return target
    return path


def extract_archive(archive: Path, target: Path) -> Path:
    """Extract a tar archive with Python's ``data`` filter (no absolute paths, links or devices)."""
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive) as bundle:
        bundle.extractall(target, filter="data")
    return target


def md5_of(path: Path) -> str:
    """MD5 hex digest of a file, read in chunks."""
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


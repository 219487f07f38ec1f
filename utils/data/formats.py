"""Readers for the datasets' original file formats: IDX (MNIST family), Keras ``.npz``, CIFAR-10 pickles.

Each checks sizes, shapes and checksums and raises :class:`DataFormatError` naming the file and the fix: a
truncated download otherwise surfaces much later as a confusing shape error.
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np

from utils.data.records import CIFAR10_CLASS_NAMES, DataFormatError, ImageDataset
from utils.data.sources import md5_of

# Published MD5s of the official CIFAR-10 batches: a pickle is unpickled only if it matches (unpickling runs code).
CIFAR10_BATCH_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
IDX_DATA_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, into a NumPy array.

    The payload must hold exactly the elements the header declares, else :class:`DataFormatError` says why.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as error:
        raise DataFormatError(f"{path} could not be read ({error}); download it again.") from error
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DATA_TYPES:
        raise DataFormatError(f"{path} is not an IDX file (bad magic number); download it again.")
    dimension_count = raw[3]
    header_size = 4 + 4 * dimension_count
    shape = struct.unpack(f">{dimension_count}I", raw[4:header_size])
    data_type = np.dtype(IDX_DATA_TYPES[raw[2]])
    expected = int(np.prod(shape)) * data_type.itemsize
    if len(raw) - header_size != expected:
        raise DataFormatError(
            f"{path} declares shape {shape} ({expected:,} bytes) but holds "
            f"{len(raw) - header_size:,} bytes: the file is truncated or corrupt; download it again."
        )
    return np.frombuffer(raw, dtype=data_type, offset=header_size).reshape(shape)


def find_idx_pair(folder: Path, split: str) -> tuple[Path, Path] | None:
    """The images and labels IDX files of ``split`` ("train" or "test") in ``folder``, gzipped or not."""
    prefix = "train" if split == "train" else "t10k"
    for suffix in (".gz", ""):
        images = folder / f"{prefix}-images-idx3-ubyte{suffix}"
        labels = folder / f"{prefix}-labels-idx1-ubyte{suffix}"
        if images.exists() and labels.exists():
            return images, labels
    return None


def read_idx_split(pair: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray]:
    """Read one split's images and labels and check that they belong together."""
    images, labels = read_idx(pair[0]), read_idx(pair[1]).astype(np.int64)
    check_images_and_labels(images, labels, f"{pair[0]} / {pair[1]}", image_shape=(28, 28))
    return images, labels


def check_images_and_labels(
    images: np.ndarray, labels: np.ndarray, where: str, image_shape: tuple[int, ...] | None = None
) -> None:
    """Raise :class:`DataFormatError` when image and label counts or image shapes are wrong."""
    if len(images) != len(labels):
        raise DataFormatError(
            f"{where}: {len(images):,} images but {len(labels):,} labels; the files do not belong "
            f"together. Re-download or re-copy both."
        )
    if image_shape is not None and tuple(images.shape[1:]) != tuple(image_shape):
        raise DataFormatError(
            f"{where}: images have shape {images.shape[1:]}, expected {image_shape}. "
            f"This is not the dataset the loader expects; check the folder."
        )


def dataset_from_npz(name: str, path: Path, class_names: list[str]) -> ImageDataset:
    """Read a Keras-style ``.npz`` (``x_train``, ``y_train``, ``x_test``, ``y_test``), checking each part."""
    with np.load(path, allow_pickle=False) as arrays:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(arrays.files)
        if missing:
            raise DataFormatError(f"{path} lacks the arrays {sorted(missing)}; it is not a Keras {name}.npz.")
        x_train, y_train = arrays["x_train"], arrays["y_train"].astype(np.int64).reshape(-1)
        x_test, y_test = arrays["x_test"], arrays["y_test"].astype(np.int64).reshape(-1)
    check_images_and_labels(x_train, y_train, str(path))
    check_images_and_labels(x_test, y_test, str(path))
    return ImageDataset(name, x_train, y_train, x_test, y_test, class_names, f"{path}")


def read_cifar10_batches(folder: Path, trust_unverified: bool = False) -> ImageDataset:
    """Read the official pickled ``cifar-10-batches-py`` folder.

    A batch is unpickled only if its MD5 matches (or ``trust_unverified=True`` / ``CNN_TRUST_PICKLES=1``):
    unpickling a file from an unknown source can run arbitrary code.
    """
    trust = trust_unverified or os.environ.get("CNN_TRUST_PICKLES") == "1"
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for batch_name, expected_md5 in CIFAR10_BATCH_MD5.items():
        path = folder / batch_name
        if not path.exists():
            raise DataFormatError(f"{path} is missing; the cifar-10-batches-py folder is incomplete. Re-download it.")
        if not trust and md5_of(path) != expected_md5:
            raise DataFormatError(
                f"{path} does not match the official CIFAR-10 checksum, so it was not unpickled "
                f"(unpickling untrusted files can run code). Re-download it, or if you made this "
                f"file yourself and trust it, pass trust_unverified=True or set CNN_TRUST_PICKLES=1."
            )
        with path.open("rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
        check_images_and_labels(images, labels, str(path))
        parts[batch_name] = (images, labels)
    train_names = [name for name in CIFAR10_BATCH_MD5 if name.startswith("data_batch")]
    x_train = np.concatenate([parts[name][0] for name in train_names])
    y_train = np.concatenate([parts[name][1] for name in train_names])
    x_test, y_test = parts["test_batch"]
    return ImageDataset("cifar10", x_train, y_train, x_test, y_test, list(CIFAR10_CLASS_NAMES),
                        f"pickled batches in {folder}")



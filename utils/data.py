"""Datasets for the notebooks: local copies first, then the standard download.

Every loader looks in the data folder (``CNN_DATA_DIR``, default ``data/``) for
the dataset in its original distribution format *and* in the plain image-folder
layout of the offline copies beside this project, then (unless ``CNN_OFFLINE=1``)
downloads the original files into the cache folder.  When nothing works the
loader raises :class:`DatasetNotFoundError`, one paragraph naming every place it
looked and how to fix it.

Arrays come back as ``uint8`` images and ``int64`` labels in an
:class:`ImageDataset`; the flowers come back as file paths (:class:`FileDataset`)
because photos are decoded on the fly by a tf.data pipeline.  Decoded image
folders are cached as ``.npz`` keyed by a fingerprint of the files, so the
second load is fast.

``CNN_DATA=synthetic`` replaces every dataset by a small generated one of the
right shapes and class count (for tests on machines with neither data nor
internet); its ``source`` says "synthetic" so no output can pass it off as real.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
import tarfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from utils import runtime

MNIST_CLASS_NAMES = [str(digit) for digit in range(10)]
FASHION_MNIST_CLASS_NAMES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
CIFAR10_CLASS_NAMES = [
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif"}

KERAS_DATASETS_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
MNIST_NPZ_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
FLOWERS_URL = "https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz"
# Published MD5 checksums of the official pickled CIFAR-10 batches; a pickle is
# only unpickled when it matches, because unpickling runs arbitrary code.
CIFAR10_BATCH_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
IDX_DATA_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CACHE_FORMAT_VERSION = "1"


class DatasetNotFoundError(FileNotFoundError):
    """Raised when a dataset is neither on disk nor downloadable; the message says how to fix it."""


class DataFormatError(ValueError):
    """Raised when a data file exists but has the wrong shape, size or content."""


class _Provenance:
    """Where a dataset came from: shared by the in-memory and on-disk dataset records."""

    name: str
    source: str
    notes: list[str]

    @property
    def is_synthetic(self) -> bool:
        """True when the data was generated rather than read."""
        return "synthetic" in self.source

    def _describe(self, headline: str) -> str:
        lines = [f"{self.name}: {headline}", f"source: {self.source}"]
        return "\n".join(lines + [f"note: {note}" for note in self.notes])


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
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """A few lines saying what was loaded and from where (print it in notebooks)."""
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
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        """A few lines saying what was found and from where."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        per_class = ", ".join(f"{name} {count:,}" for name, count in zip(self.class_names, counts))
        return self._describe(f"{len(self.paths):,} images ({per_class})")


# --------------------------------------------------------------------------- helpers


def synthetic_requested() -> bool:
    """True when ``CNN_DATA=synthetic`` asks for generated data instead of real data."""
    return os.environ.get("CNN_DATA", "").strip().lower() == "synthetic"


def offline_requested() -> bool:
    """True when ``CNN_OFFLINE=1`` forbids download attempts."""
    return os.environ.get("CNN_OFFLINE", "").strip().lower() in {"1", "true", "yes"}


def search_roots() -> list[Path]:
    """Folders searched for datasets, in order: ``CNN_DATA_DIR`` then the cache folder."""
    roots = [runtime.data_dir(), runtime.cache_dir()]
    unique: list[Path] = []
    for root in roots:
        if root not in unique:
            unique.append(root)
    return unique


def _not_found(dataset: str, looked_at: Sequence[str], download_problem: str) -> DatasetNotFoundError:
    places = "; ".join(looked_at)
    return DatasetNotFoundError(
        f"{dataset} was not found. Looked for: {places}. {download_problem} "
        f"To fix this, either put the dataset in one of those places (set CNN_DATA_DIR to the "
        f"folder that holds it, e.g. CNN_DATA_DIR=../shared/data), or connect to the internet "
        f"and unset CNN_OFFLINE so it can be downloaded into {runtime.cache_dir()}, or set "
        f"CNN_DATA=synthetic to run on small generated data (labelled synthetic)."
    )


def download(file_name: str, url: str, sha256: str | None = None, extract: bool = False) -> Path:
    """Download ``url`` into the cache folder (with Keras's progress bar) and return the path.

    Raises ``ConnectionError`` with the reason when offline or the transfer fails,
    so loaders can turn it into one clear :class:`DatasetNotFoundError`.
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


# --------------------------------------------------------------------------- IDX (MNIST family)


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not, into a NumPy array.

    The header gives the element type and the size of each dimension; the
    payload must hold exactly that many elements, otherwise the file is
    truncated or not an IDX file and :class:`DataFormatError` says which.
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


def _find_idx_pair(folder: Path, split: str) -> tuple[Path, Path] | None:
    prefix = "train" if split == "train" else "t10k"
    for suffix in (".gz", ""):
        images = folder / f"{prefix}-images-idx3-ubyte{suffix}"
        labels = folder / f"{prefix}-labels-idx1-ubyte{suffix}"
        if images.exists() and labels.exists():
            return images, labels
    return None


def _read_idx_split(pair: tuple[Path, Path]) -> tuple[np.ndarray, np.ndarray]:
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


def _load_mnist_like(
    name: str, folders: Iterable[Path], npz_names: Sequence[str], class_names: list[str],
    allow_test_split_only: bool, download_and_read: Callable[[], ImageDataset],
) -> ImageDataset:
    looked_at: list[str] = []
    test_only: tuple[np.ndarray, np.ndarray, Path] | None = None
    for folder in folders:
        for npz_name in npz_names:
            candidate = folder / npz_name
            looked_at.append(str(candidate))
            if candidate.exists():
                return _dataset_from_npz(name, candidate, class_names)
        looked_at.append(f"{folder}/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte[.gz]")
        train_pair, test_pair = _find_idx_pair(folder, "train"), _find_idx_pair(folder, "test")
        if train_pair and test_pair:
            x_train, y_train = _read_idx_split(train_pair)
            x_test, y_test = _read_idx_split(test_pair)
            return ImageDataset(name, x_train, y_train, x_test, y_test, class_names, f"IDX files in {folder}")
        if test_pair and test_only is None:
            test_only = (*_read_idx_split(test_pair), folder)
    try:
        return download_and_read()
    except ConnectionError as problem:
        if test_only is not None and allow_test_split_only:
            return _resplit_test_only(name, *test_only, class_names, str(problem))
        hint = ""
        if test_only is not None:
            hint = (f"Only the test split was found (in {test_only[2]}); pass "
                    f"allow_test_split_only=True to split it into training and test parts.")
        raise _not_found(name, looked_at, f"{problem} {hint}".strip()) from None


def _dataset_from_npz(name: str, path: Path, class_names: list[str]) -> ImageDataset:
    with np.load(path, allow_pickle=False) as arrays:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(arrays.files)
        if missing:
            raise DataFormatError(f"{path} lacks the arrays {sorted(missing)}; it is not a Keras {name}.npz.")
        x_train, y_train = arrays["x_train"], arrays["y_train"].astype(np.int64).reshape(-1)
        x_test, y_test = arrays["x_test"], arrays["y_test"].astype(np.int64).reshape(-1)
    check_images_and_labels(x_train, y_train, str(path))
    check_images_and_labels(x_test, y_test, str(path))
    return ImageDataset(name, x_train, y_train, x_test, y_test, class_names, f"{path}")


def _resplit_test_only(
    name: str, images: np.ndarray, labels: np.ndarray, folder: Path, class_names: list[str], problem: str,
    train_count: int = 8_000, seed: int = 0,
) -> ImageDataset:
    x_train, y_train, x_test, y_test = stratified_split(images, labels, len(images) - train_count, seed=seed)
    note = (f"only the official test split ({len(images):,} images) is available here ({problem.strip()}); "
            f"it was split (stratified, seed {seed}) into {len(x_train):,} training and {len(x_test):,} "
            f"test images, so results are not comparable with the 60,000-image training set.")
    return ImageDataset(name, x_train, y_train, x_test, y_test, class_names,
                        f"IDX test split in {folder}, re-split", [note])


def load_mnist(allow_test_split_only: bool = False) -> ImageDataset:
    """MNIST digits, 28x28 grayscale, 60,000 training and 10,000 test images.

    Looks for Keras's ``mnist.npz`` or the four IDX files (``mnist/`` or the data
    folder itself), then downloads ``mnist.npz``.  Where only the official test
    split exists and ``allow_test_split_only`` is true, it is split 8,000 / 2,000
    and the dataset's ``notes`` say so.
    """
    if synthetic_requested():
        return synthetic_image_dataset("mnist", (28, 28), MNIST_CLASS_NAMES)
    folders = [folder for root in search_roots() for folder in (root / "mnist", root)]
    return _load_mnist_like(
        "mnist", folders, ["mnist.npz"], MNIST_CLASS_NAMES, allow_test_split_only,
        lambda: _dataset_from_npz(
            "mnist", download("mnist.npz", KERAS_DATASETS_URL + "mnist.npz", MNIST_NPZ_SHA256), MNIST_CLASS_NAMES),
    )


def _download_fashion_mnist() -> ImageDataset:
    names = ["train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"]
    folder = [download(name, KERAS_DATASETS_URL + "fashion-mnist/" + name) for name in names][0].parent
    x_train, y_train = _read_idx_split(_find_idx_pair(folder, "train"))
    x_test, y_test = _read_idx_split(_find_idx_pair(folder, "test"))
    return ImageDataset("fashion_mnist", x_train, y_train, x_test, y_test, FASHION_MNIST_CLASS_NAMES,
                        f"downloaded IDX files in {folder}")


def load_fashion_mnist() -> ImageDataset:
    """Fashion-MNIST: 28x28 grayscale clothing images, a drop-in stand-in for MNIST."""
    if synthetic_requested():
        return synthetic_image_dataset("fashion_mnist", (28, 28), FASHION_MNIST_CLASS_NAMES)
    folders = [root / name for root in search_roots() for name in ("fashion-mnist", "fashion_mnist")]
    return _load_mnist_like("fashion_mnist", folders, ["fashion_mnist.npz"], FASHION_MNIST_CLASS_NAMES,
                            False, _download_fashion_mnist)


# --------------------------------------------------------------------------- CIFAR-10


def read_cifar10_batches(folder: Path, trust_unverified: bool = False) -> ImageDataset:
    """Read the official pickled ``cifar-10-batches-py`` folder.

    Each batch is unpickled only if its MD5 matches the published checksum (or the
    caller passes ``trust_unverified=True`` / sets ``CNN_TRUST_PICKLES=1``),
    because a pickle from an unknown source can run arbitrary code when loaded.
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


def list_image_folder(folder: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """Files of a ``<folder>/<class>/<image>`` tree, their class indices and the sorted class names.

    One ``os.scandir`` per class folder (no per-file ``stat``), so listing the
    60,000 CIFAR-10 files takes a fraction of a second.
    """
    class_names = sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())
    paths: list[Path] = []
    labels: list[int] = []
    for index, class_name in enumerate(class_names):
        names = sorted(entry.name for entry in os.scandir(folder / class_name)
                       if entry.is_file() and not entry.name.startswith("."))
        class_folder = folder / class_name
        paths.extend(class_folder / name for name in names)
        labels.extend([index] * len(names))
    return paths, np.asarray(labels, dtype=np.int64), class_names


def fingerprint_files(paths: Sequence[Path], root: Path) -> str:
    """A short hash of the files' names relative to ``root``: changes when files are added, removed or renamed.

    Sizes and contents are not read (that would cost a ``stat`` per file); after
    replacing images in place under the same names, delete ``data/*-<fingerprint>.npz``.
    """
    digest = hashlib.sha1(CACHE_FORMAT_VERSION.encode())
    prefix = len(str(root)) + 1
    digest.update("\n".join(str(path)[prefix:] for path in paths).encode())
    return digest.hexdigest()[:16]


def _decode_image(path: Path) -> np.ndarray | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return None


def decode_image_files(
    paths: Sequence[Path], image_shape: tuple[int, int, int], description: str = "decoding"
) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Decode image files into one uint8 array, skipping (and returning) unreadable ones.

    Returns ``(images, kept_indices, skipped_paths)``.  An image that decodes but
    has another shape raises :class:`DataFormatError` naming it, since that means
    the folder holds a different dataset, not one bad file.
    """
    from tqdm.auto import tqdm

    images = np.empty((len(paths), *image_shape), dtype=np.uint8)
    kept: list[int] = []
    skipped: list[Path] = []
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        decoded = pool.map(_decode_image, paths, chunksize=256)
        for index, (path, array) in enumerate(tqdm(zip(paths, decoded), total=len(paths), desc=description,
                                                   mininterval=2.0)):
            if array is None:
                skipped.append(path)
                continue
            if array.shape != image_shape:
                raise DataFormatError(
                    f"{path} has shape {array.shape}, expected {image_shape}. The folder seems to hold "
                    f"different images; point CNN_DATA_DIR at the right dataset."
                )
            images[len(kept)] = array
            kept.append(index)
    return images[: len(kept)], np.asarray(kept, dtype=np.int64), skipped


def _skipped_note(skipped: Sequence[Path], total: int) -> list[str]:
    if not skipped:
        return []
    shown = ", ".join(str(path) for path in skipped[:5])
    more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    return [f"skipped {len(skipped)} of {total:,} files that are not readable images: {shown}{more}"]


def read_cifar10_image_folders(folder: Path) -> ImageDataset:
    """Read ``<folder>/train/<class>/*.jpg`` and ``<folder>/test/<class>/*.jpg`` (cached as .npz)."""
    train_paths, train_labels, class_names = list_image_folder(folder / "train")
    test_paths, test_labels, test_class_names = list_image_folder(folder / "test")
    if class_names != test_class_names:
        raise DataFormatError(f"{folder}: train classes {class_names} differ from test classes {test_class_names}.")
    fingerprint = fingerprint_files(train_paths + test_paths, folder)
    cache_file = runtime.cache_dir() / f"cifar10-{fingerprint}.npz"
    source = f"JPEG image folders in {folder}"
    if cache_file.exists():
        with np.load(cache_file, allow_pickle=False) as cached:
            notes = [str(note) for note in cached["notes"]]
            return ImageDataset("cifar10", cached["x_train"], cached["y_train"], cached["x_test"],
                                cached["y_test"], class_names, f"{source} (decoded cache {cache_file.name})", notes)
    x_train, kept_train, skipped_train = decode_image_files(train_paths, (32, 32, 3), "CIFAR-10 train")
    x_test, kept_test, skipped_test = decode_image_files(test_paths, (32, 32, 3), "CIFAR-10 test")
    notes = _skipped_note(skipped_train + skipped_test, len(train_paths) + len(test_paths))
    dataset = ImageDataset("cifar10", x_train, train_labels[kept_train], x_test, test_labels[kept_test],
                           class_names, source, notes)
    temporary = cache_file.with_name(cache_file.stem + ".partial.npz")
    np.savez(temporary, x_train=dataset.x_train, y_train=dataset.y_train, x_test=dataset.x_test,
             y_test=dataset.y_test, notes=np.asarray(notes, dtype=str))
    os.replace(temporary, cache_file)
    return dataset


def load_cifar10(trust_unverified_pickles: bool = False) -> ImageDataset:
    """CIFAR-10: 50,000 training and 10,000 test colour images of 32x32 pixels, 10 classes.

    Looks for ``cifar-10-batches-py/`` (the official pickles, checksum-verified)
    and for ``cifar10/{train,test}/<class>/*.jpg`` image folders, then downloads
    the official archive.
    """
    if synthetic_requested():
        return synthetic_image_dataset("cifar10", (32, 32, 3), CIFAR10_CLASS_NAMES)
    looked_at: list[str] = []
    for root in search_roots():
        batches = root / "cifar-10-batches-py"
        folders = root / "cifar10"
        looked_at += [f"{batches}/", f"{folders}/{{train,test}}/<class>/*.jpg"]
        if batches.is_dir():
            return read_cifar10_batches(batches, trust_unverified_pickles)
        if (folders / "train").is_dir() and (folders / "test").is_dir():
            return read_cifar10_image_folders(folders)
    try:
        extracted = download("cifar-10-python.tar.gz", CIFAR10_URL, CIFAR10_ARCHIVE_SHA256, extract=True)
    except ConnectionError as problem:
        raise _not_found("CIFAR-10", looked_at, str(problem)) from None
    return read_cifar10_batches(extracted / "cifar-10-batches-py", trust_unverified=True)


# --------------------------------------------------------------------------- flowers


def verify_image_files(paths: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """Split files into readable images and the rest, by opening each header with Pillow."""
    from PIL import Image, UnidentifiedImageError

    good: list[Path] = []
    bad: list[Path] = []
    for path in paths:
        try:
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise UnidentifiedImageError(path.name)
            with Image.open(path) as image:
                image.verify()
            good.append(path)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            bad.append(path)
    return good, bad


def read_flower_folder(folder: Path) -> FileDataset:
    """List a ``<folder>/<class>/*.jpg`` tree of photos, skipping (and counting) unreadable files."""
    paths, labels, class_names = list_image_folder(folder)
    good, bad = verify_image_files(paths)
    bad_set = set(bad)
    kept_labels = np.asarray([label for path, label in zip(paths, labels) if path not in bad_set], dtype=np.int64)
    if not good:
        raise DataFormatError(f"{folder} holds no readable images; check the folder or re-download it.")
    return FileDataset("flowers", [str(path) for path in good], kept_labels, class_names,
                       f"image folders in {folder}", _skipped_note(bad, len(paths)))


def load_flowers() -> FileDataset:
    """The 5-class flowers photos (daisy, dandelion, rose, sunflower, tulip) as files and labels.

    Looks for ``flowers/<class>/*.jpg`` and TensorFlow's ``flower_photos/<class>/*.jpg``,
    then downloads TensorFlow's ``flower_photos.tgz``.
    """
    if synthetic_requested():
        return synthetic_flowers()
    looked_at: list[str] = []
    for root in search_roots():
        for name in ("flowers", "flower_photos"):
            folder = root / name
            looked_at.append(f"{folder}/<class>/*.jpg")
            if folder.is_dir() and any(entry.is_dir() for entry in folder.iterdir()):
                return read_flower_folder(folder)
    try:
        extracted = download("flower_photos.tgz", FLOWERS_URL, extract=True)
    except ConnectionError as problem:
        raise _not_found("The flowers dataset", looked_at, str(problem)) from None
    return read_flower_folder(extracted / "flower_photos")


# --------------------------------------------------------------------------- synthetic data

SYNTHETIC_TRAIN_PER_CLASS = 200
SYNTHETIC_TEST_PER_CLASS = 50
FLOWER_CLASS_NAMES = ["daisy", "dandelion", "rose", "sunflower", "tulip"]


def synthetic_images(
    image_shape: tuple[int, ...], class_count: int, per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Generated images whose class is learnable: a smooth per-class template plus noise."""
    generator = np.random.default_rng(seed)
    template_generator = np.random.default_rng(1234)
    coarse_shape = (4, 4, *image_shape[2:])
    templates = template_generator.uniform(0, 255, size=(class_count, *coarse_shape))
    repeat = (image_shape[0] // 4, image_shape[1] // 4)
    templates = templates.repeat(repeat[0], axis=1).repeat(repeat[1], axis=2)
    labels = np.repeat(np.arange(class_count, dtype=np.int64), per_class)
    generator.shuffle(labels)
    noise = generator.normal(0, 40, size=(len(labels), *image_shape))
    images = np.clip(templates[labels] + noise, 0, 255).astype(np.uint8)
    return images, labels


def synthetic_image_dataset(name: str, image_shape: tuple[int, ...], class_names: list[str]) -> ImageDataset:
    """A small generated stand-in for ``name`` with the real shapes and classes (labelled synthetic)."""
    x_train, y_train = synthetic_images(image_shape, len(class_names), SYNTHETIC_TRAIN_PER_CLASS, seed=1)
    x_test, y_test = synthetic_images(image_shape, len(class_names), SYNTHETIC_TEST_PER_CLASS, seed=2)
    return ImageDataset(name, x_train, y_train, x_test, y_test, list(class_names),
                        "synthetic (generated because CNN_DATA=synthetic; not real images)")


def synthetic_flowers(per_class: int = 40, size: int = 64) -> FileDataset:
    """Generated JPEG files in the flowers layout (written once to the cache folder), labelled synthetic."""
    from PIL import Image

    folder = runtime.cache_dir() / "synthetic_flowers"
    images, labels = synthetic_images((size, size, 3), len(FLOWER_CLASS_NAMES), per_class, seed=3)
    for index, (image, label) in enumerate(zip(images, labels)):
        path = folder / FLOWER_CLASS_NAMES[label] / f"{index:05d}.jpg"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image).save(path, quality=95)
    dataset = read_flower_folder(folder)
    dataset.source = f"synthetic (generated JPEGs in {folder} because CNN_DATA=synthetic; not real photos)"
    return dataset


# --------------------------------------------------------------------------- splits


def stratified_split(
    images: np.ndarray, labels: np.ndarray, second_size: float, seed: int = runtime.DEFAULT_SEED
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split into two parts with the same class proportions; the second part has ``second_size`` items.

    ``second_size`` may be a count or a fraction.  Returns
    ``(first_images, first_labels, second_images, second_labels)``.
    """
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
        """One line per part, for printing."""
        return (f"train {len(self.y_train):,} | {self.validation_label} {len(self.y_validation):,} | "
                f"test {len(self.y_test):,}   (protocol: {self.protocol}; data: {self.source})")


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

    ``holdout`` holds ``validation_size`` images out of training (the honest
    protocol: the test set stays unseen until the end).  ``course`` validates on
    the test set as the original notebooks did, and labels it that way.
    ``train_limit`` and ``test_limit`` shrink the parts for quick runs.
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


# --------------------------------------------------------------------------- tf.data pipelines


def _cache_shuffle_batch(dataset: Any, size: int, batch_size: int, cache: bool, training: bool, seed: int) -> Any:
    """The steps both pipelines share, in this order: cache, shuffle (training only, whole set), batch.

    Caching before shuffling keeps the cache a plain copy of the data while each
    epoch still sees a new order; shuffling the whole set (``size`` examples)
    avoids the partial shuffle a small buffer gives on class-sorted data.
    """
    if cache:
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size)


def make_pipeline(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    num_classes: int | None = None,
    training: bool = False,
    augmentation: Callable[..., Any] | None = None,
    cache: bool = True,
    seed: int = runtime.DEFAULT_SEED,
    scale: bool = True,
) -> Any:
    """A tf.data pipeline from uint8 arrays: cache, shuffle (training), batch, scale, prefetch.

    Images stay uint8 until after batching (small cache, vectorised conversion);
    ``scale`` divides by 255 to give floats in [0, 1]; ``num_classes`` one-hot
    encodes the labels (for categorical cross-entropy); ``augmentation`` (a
    Keras layer or callable on a batch) runs for training pipelines only.
    Grayscale ``(N, H, W)`` arrays get a channel axis.
    """
    import tensorflow as tf

    if len(images) != len(labels):
        raise DataFormatError(f"make_pipeline: {len(images):,} images but {len(labels):,} labels.")
    if images.ndim == 3:
        images = images[..., np.newaxis]
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = _cache_shuffle_batch(dataset, len(labels), batch_size, cache=cache, training=training, seed=seed)

    def prepare(batch_images: Any, batch_labels: Any) -> tuple[Any, Any]:
        batch_images = tf.cast(batch_images, tf.float32)
        if scale:
            batch_images = batch_images / 255.0
        if training and augmentation is not None:
            batch_images = augmentation(batch_images, training=True)
        if num_classes:
            batch_labels = tf.one_hot(batch_labels, num_classes)
        return batch_images, batch_labels

    return dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def make_file_pipeline(
    paths: Sequence[str],
    labels: np.ndarray,
    image_size: int | tuple[int, int],
    batch_size: int,
    num_classes: int | None = None,
    training: bool = False,
    preprocess: Callable[[Any], Any] | None = None,
    augmentation: Callable[..., Any] | None = None,
    cache: bool = True,
    seed: int = runtime.DEFAULT_SEED,
) -> Any:
    """A tf.data pipeline from image files: decode, resize, cache, shuffle, batch, augment, preprocess.

    Pixels leave the decoder as floats in [0, 255]; ``preprocess`` (for example
    ``keras.applications.resnet50.preprocess_input``) turns them into what the
    model expects, and defaults to dividing by 255.  Resized images are cached
    in memory so later epochs skip the JPEG decoding.
    """
    import tensorflow as tf

    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(paths) != len(labels):
        raise DataFormatError(f"make_file_pipeline: {len(paths):,} files but {len(labels):,} labels.")

    def load(path: Any, label: Any) -> tuple[Any, Any]:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), size)
        return image, label

    dataset = tf.data.Dataset.from_tensor_slices((list(paths), np.asarray(labels)))
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = _cache_shuffle_batch(dataset, len(labels), batch_size, cache=cache, training=training, seed=seed)

    def prepare(batch_images: Any, batch_labels: Any) -> tuple[Any, Any]:
        if training and augmentation is not None:
            batch_images = augmentation(batch_images, training=True)
        batch_images = preprocess(batch_images) if preprocess is not None else batch_images / 255.0
        if num_classes:
            batch_labels = tf.one_hot(batch_labels, num_classes)
        return batch_images, batch_labels

    return dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def default_augmentation(seed: int = runtime.DEFAULT_SEED) -> Any:
    """Random flip, small rotation and zoom: the usual on-the-fly augmentation for photos."""
    import keras

    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(0.1, seed=seed),
            keras.layers.RandomZoom(0.1, seed=seed),
        ],
        name="augmentation",
    )

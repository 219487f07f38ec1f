"""The dataset loaders the notebooks call: MNIST, Fashion-MNIST, CIFAR-10, the flowers and your own folders.

Each looks in the data folders for the original format and the image-folder layout, then downloads (unless
``CNN_OFFLINE=1``); failing that it raises one :class:`DatasetNotFoundError` naming every place it looked.
Image folders go through the full-decode check; every file left out is listed by ``describe()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from utils.data.formats import dataset_from_npz, find_idx_pair, read_cifar10_batches, read_idx_split
from utils.data.image_files import read_cifar10_image_folders, read_image_folder
from utils.data.records import (
    FASHION_MNIST_CLASS_NAMES, MNIST_CLASS_NAMES, CIFAR10_CLASS_NAMES, FileDataset, ImageDataset,
)
from utils.data.sources import (
    CIFAR10_ARCHIVE_SHA256, CIFAR10_URL, FLOWERS_URL, KERAS_DATASETS_URL, MNIST_NPZ_SHA256, download, not_found,
    search_roots, synthetic_requested,
)
from utils.data.splits import stratified_split
from utils.data.synthetic import synthetic_flowers, synthetic_image_dataset


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
                return dataset_from_npz(name, candidate, class_names)
        looked_at.append(f"{folder}/{{train,t10k}}-{{images-idx3,labels-idx1}}-ubyte[.gz]")
        train_pair, test_pair = find_idx_pair(folder, "train"), find_idx_pair(folder, "test")
        if train_pair and test_pair:
            x_train, y_train = read_idx_split(train_pair)
            x_test, y_test = read_idx_split(test_pair)
            return ImageDataset(name, x_train, y_train, x_test, y_test, class_names, f"IDX files in {folder}")
        if test_pair and test_only is None:
            test_only = (*read_idx_split(test_pair), folder)
    try:
        return download_and_read()
    except ConnectionError as problem:
        if test_only is not None and allow_test_split_only:
            return _resplit_test_only(name, *test_only, class_names, str(problem))
        hint = ""
        if test_only is not None:
            hint = (f"Only the test split was found (in {test_only[2]}); pass "
                    f"allow_test_split_only=True to split it into training and test parts.")
        raise not_found(name, looked_at, f"{problem} {hint}".strip()) from None


def _resplit_test_only(
    name: str, images: np.ndarray, labels: np.ndarray, folder: Path, class_names: list[str], problem: str,
    train_count: int = 8_000, seed: int = 0,
) -> ImageDataset:
    x_train, y_train, x_test, y_test = stratified_split(images, labels, len(images) - train_count, seed=seed)
    note = (f"only the official test split ({len(images):,} images) is available here ({problem.strip()}); "
            f"it was split (stratified, seed {seed}) into {len(x_train):,} training and {len(x_test):,} "
            f"test images, so results are not comparable with the 60,000-image training set.")
    return ImageDataset(name, x_train, y_train, x_test, y_test, class_names,
                        f"IDX test split in {folder}, re-split", notes=[note])


def load_mnist(allow_test_split_only: bool = False) -> ImageDataset:
    """MNIST digits, 28x28 grayscale, 60,000 training and 10,000 test images.

    Looks for Keras's ``mnist.npz`` or the four IDX files, then downloads ``mnist.npz``. With only the test split
    and ``allow_test_split_only``, that is split 8,000 / 2,000 and the ``notes`` say so.
    """
    if synthetic_requested():
        return synthetic_image_dataset("mnist", (28, 28), MNIST_CLASS_NAMES)
    folders = [folder for root in search_roots() for folder in (root / "mnist", root)]
    return _load_mnist_like(
        "mnist", folders, ["mnist.npz"], MNIST_CLASS_NAMES, allow_test_split_only,
        lambda: dataset_from_npz(
            "mnist", download("mnist.npz", KERAS_DATASETS_URL + "mnist.npz", MNIST_NPZ_SHA256), MNIST_CLASS_NAMES),
    )


def _download_fashion_mnist() -> ImageDataset:
    names = ["train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"]
    folder = [download(name, KERAS_DATASETS_URL + "fashion-mnist/" + name) for name in names][0].parent
    x_train, y_train = read_idx_split(find_idx_pair(folder, "train"))
    x_test, y_test = read_idx_split(find_idx_pair(folder, "test"))
    return ImageDataset("fashion_mnist", x_train, y_train, x_test, y_test, FASHION_MNIST_CLASS_NAMES,
                        f"downloaded IDX files in {folder}")


def load_fashion_mnist() -> ImageDataset:
    """Fashion-MNIST: 28x28 grayscale clothing images, a drop-in stand-in for MNIST."""
    if synthetic_requested():
        return synthetic_image_dataset("fashion_mnist", (28, 28), FASHION_MNIST_CLASS_NAMES)
    folders = [root / name for root in search_roots() for name in ("fashion-mnist", "fashion_mnist")]
    return _load_mnist_like("fashion_mnist", folders, ["fashion_mnist.npz"], FASHION_MNIST_CLASS_NAMES,
                            False, _download_fashion_mnist)


def load_cifar10(trust_unverified_pickles: bool = False) -> ImageDataset:
    """CIFAR-10: 50,000 training and 10,000 test colour images of 32x32 pixels, 10 classes.

    Looks for ``cifar-10-batches-py/`` (checksum-verified pickles) and ``cifar10/{train,test}/<class>/*.jpg``,
    then downloads the official archive.
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
        raise not_found("CIFAR-10", looked_at, str(problem)) from None
    return read_cifar10_batches(extracted / "cifar-10-batches-py", trust_unverified=True)


def load_image_folder(folder: str | Path, name: str | None = None) -> FileDataset:
    """Any ``<folder>/<class>/<image>`` tree of your own, as files and labels; incomplete images skipped and listed."""
    return read_image_folder(Path(folder).expanduser(), name)


def load_flowers() -> FileDataset:
    """The 5-class flowers photos (daisy, dandelion, rose, sunflower, tulip) as files and labels.

    Looks for ``flowers/`` and TensorFlow's ``flower_photos/``, then downloads ``flower_photos.tgz``.
    """
    if synthetic_requested():
        return synthetic_flowers()
    looked_at: list[str] = []
    for root in search_roots():
        for name in ("flowers", "flower_photos"):
            folder = root / name
            looked_at.append(f"{folder}/<class>/*.jpg")
            if folder.is_dir() and any(entry.is_dir() for entry in folder.iterdir()):
                return read_image_folder(folder, "flowers")
    try:
        extracted = download("flower_photos.tgz", FLOWERS_URL, extract=True)
    except ConnectionError as problem:
        raise not_found("The flowers dataset", looked_at, str(problem)) from None
    return read_image_folder(extracted / "flower_photos", "flowers")

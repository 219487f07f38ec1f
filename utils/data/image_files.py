"""Folders of image files: listing, the full-decode check, decoding into arrays, and reading for display.

Every image-folder loader passes its files through :func:`check_image_files` or :func:`decode_image_files`.
A file counts as an image only when it decodes *completely*: a JPEG cut short opens fine and fails only when
its pixels are read, which inside tf.data stops training with a traceback a learner cannot act on. Failing
files are skipped and reported with the reason. The check runs in threads (Pillow releases the GIL) and its
verdicts are cached by the files' names, sizes and modification times.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from utils import runtime
from utils.data.records import DataFormatError, FileDataset, ImageDataset, SkippedFile

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"}
# Formats that both Pillow (our check) and tf.io.decode_image (the pipelines) read.
DECODABLE_FORMATS = {"JPEG", "PNG", "BMP", "GIF", "WEBP"}
CACHE_FORMAT_VERSION = "1"
CHECK_CACHE_VERSION = "1"


def worker_count() -> int:
    """Threads used to decode: all cores up to four (more gives little on the disks we use)."""
    return max(1, min(4, os.cpu_count() or 1))


def list_image_folder(folder: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """Files of a ``<folder>/<class>/<image>`` tree, their class indices and sorted class names (no per-file stat)."""
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

    Sizes and contents are not read; after replacing images in place, delete ``data/*-<fingerprint>.npz``.
    """
    digest = hashlib.sha1(CACHE_FORMAT_VERSION.encode())
    prefix = len(str(root)) + 1
    digest.update("\n".join(str(path)[prefix:] for path in paths).encode())
    return digest.hexdigest()[:16]


def fingerprint_file_contents(paths: Sequence[Path]) -> str:
    """A short hash of the files' absolute names, sizes and modification times.

    It changes whenever a file is added, removed or rewritten in place, so cached verdicts never cover other files.
    """
    digest = hashlib.sha1(CHECK_CACHE_VERSION.encode())
    for path in paths:
        status = path.stat()
        digest.update(f"{path}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _open_completely(path: Path) -> tuple[np.ndarray | None, str]:
    """Decode every pixel of ``path``; return ``(RGB array, "")`` or ``(None, reason)``."""
    from PIL import Image, UnidentifiedImageError

    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return None, f"extension {path.suffix or '(none)'!r} is not one of {sorted(IMAGE_SUFFIXES)}"
    try:
        if path.stat().st_size == 0:
            return None, "empty file (0 bytes)"
        with Image.open(path) as image:
            image_format = image.format
            image.load()  # reads the whole body: a cut-short file fails here, not at Image.open
            if image_format not in DECODABLE_FORMATS:
                return None, f"{image_format} image, which TensorFlow's image decoder cannot read"
            return np.asarray(image.convert("RGB"), dtype=np.uint8), ""
    except UnidentifiedImageError:
        return None, "not an image (no known image format inside)"
    except (OSError, ValueError, SyntaxError) as error:
        return None, f"cut short or corrupt, not a complete image ({error})"


def image_file_problem(path: str | Path) -> str:
    """Why ``path`` is not a complete, decodable image, or ``""`` when it is one."""
    return _open_completely(Path(path))[1]


def _check_uncached(paths: Sequence[Path]) -> list[SkippedFile]:
    with ThreadPoolExecutor(max_workers=worker_count()) as pool:
        problems = list(pool.map(image_file_problem, paths, chunksize=64))
    return [SkippedFile(str(path), problem) for path, problem in zip(paths, problems) if problem]


def check_image_files(paths: Sequence[Path]) -> list[SkippedFile]:
    """The files among ``paths`` that are not complete, decodable images, each with the reason (verdicts cached)."""
    paths = [Path(path) for path in paths]
    if not paths:
        return []
    cache_file = runtime.cache_dir() / f"image-check-{fingerprint_file_contents(paths)}.json"
    if cache_file.exists():
        recorded = json.loads(cache_file.read_text())
        return [SkippedFile(item["path"], item["reason"]) for item in recorded["skipped"]]
    skipped = _check_uncached(paths)
    record = {"files": len(paths), "skipped": [{"path": item.path, "reason": item.reason} for item in skipped]}
    temporary = cache_file.with_suffix(".partial")
    temporary.write_text(json.dumps(record, indent=1))
    os.replace(temporary, cache_file)
    return skipped


def skipped_note(skipped: Sequence[SkippedFile], total: int) -> list[str]:
    """A one-line note for a dataset's ``notes``: how many files were skipped, and the first few."""
    if not skipped:
        return []
    shown = ", ".join(item.path for item in skipped[:5])
    more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    return [f"skipped {len(skipped)} of {total:,} files that are not complete, decodable images: {shown}{more}"]


def read_image_folder(folder: Path, name: str | None = None) -> FileDataset:
    """A ``<folder>/<class>/<image>`` tree as a :class:`FileDataset`; incomplete files listed in ``skipped``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataFormatError(f"{folder} is not a folder. Pass a folder holding one sub-folder of images per class.")
    paths, labels, class_names = list_image_folder(folder)
    if not class_names:
        raise DataFormatError(f"{folder} has no class sub-folders. Put the images in {folder}/<class name>/ and retry.")
    skipped = check_image_files(paths)
    bad = {item.path for item in skipped}
    kept = [index for index, path in enumerate(paths) if str(path) not in bad]
    if not kept:
        raise DataFormatError(f"{folder} holds no complete, decodable images ({len(paths)} files checked); "
                              f"check the folder or copy the dataset again.")
    # The source names the data, not the machine: it is recorded in result rows that others read.
    source = f"{folder.name} image folders, fingerprint {fingerprint_files(paths, folder)}"
    return FileDataset(name or folder.name, [str(paths[index]) for index in kept], labels[kept], class_names,
                       source, notes=skipped_note(skipped, len(paths)), skipped=skipped)


def decode_image_files(
    paths: Sequence[Path], image_shape: tuple[int, int, int], description: str = "decoding"
) -> tuple[np.ndarray, np.ndarray, list[SkippedFile]]:
    """Decode image files into one uint8 array, skipping (and returning) the ones that do not decode.

    Returns ``(images, kept_indices, skipped)``. A decodable image of another shape raises
    :class:`DataFormatError`: the folder holds a different dataset, not one bad file.
    """
    from tqdm.auto import tqdm

    images = np.empty((len(paths), *image_shape), dtype=np.uint8)
    kept: list[int] = []
    skipped: list[SkippedFile] = []
    with ThreadPoolExecutor(max_workers=worker_count()) as pool:
        decoded = pool.map(_open_completely, paths, chunksize=256)
        progress = tqdm(zip(paths, decoded), total=len(paths), desc=description, mininterval=2.0,
                        disable=runtime.running_headless())
        for index, (path, (array, problem)) in enumerate(progress):
            if array is None:
                skipped.append(SkippedFile(str(path), problem))
                continue
            if array.shape != image_shape:
                raise DataFormatError(
                    f"{path} has shape {array.shape}, expected {image_shape}. The folder seems to hold "
                    f"different images; point CNN_DATA_DIR at the right dataset."
                )
            images[len(kept)] = array
            kept.append(index)
    return images[: len(kept)], np.asarray(kept, dtype=np.int64), skipped


def _cifar10_from_cache(cache_file: Path, class_names: list[str], source: str) -> ImageDataset:
    with np.load(cache_file, allow_pickle=False) as cached:
        notes = [str(note) for note in cached["notes"]]
        skipped = []
        if "skipped_paths" in cached.files:  # caches written before skipped files were kept have none
            skipped = [SkippedFile(str(path), str(reason))
                       for path, reason in zip(cached["skipped_paths"], cached["skipped_reasons"])]
        return ImageDataset("cifar10", cached["x_train"], cached["y_train"], cached["x_test"], cached["y_test"],
                            class_names, source, notes=notes, skipped=skipped)


def _save_cifar10_cache(dataset: ImageDataset, cache_file: Path) -> None:
    temporary = cache_file.with_name(cache_file.stem + ".partial.npz")
    np.savez(temporary, x_train=dataset.x_train, y_train=dataset.y_train, x_test=dataset.x_test,
             y_test=dataset.y_test, notes=np.asarray(dataset.notes, dtype=str),
             skipped_paths=np.asarray([item.path for item in dataset.skipped], dtype=str),
             skipped_reasons=np.asarray([item.reason for item in dataset.skipped], dtype=str))
    os.replace(temporary, cache_file)


def read_cifar10_image_folders(folder: Path) -> ImageDataset:
    """Read ``<folder>/train/<class>/*.jpg`` and ``<folder>/test/<class>/*.jpg`` (cached as .npz).

    Decoding is the full-decode check here: failing files are skipped and listed in ``skipped`` (and the cache).
    """
    train_paths, train_labels, class_names = list_image_folder(folder / "train")
    test_paths, test_labels, test_class_names = list_image_folder(folder / "test")
    if class_names != test_class_names:
        raise DataFormatError(f"{folder}: train classes {class_names} differ from test classes {test_class_names}.")
    cache_file = runtime.cache_dir() / f"cifar10-{fingerprint_files(train_paths + test_paths, folder)}.npz"
    # The same words whether the cache was just written or read: result rows compare it, and share it.
    source = f"CIFAR-10, JPEG image folders, decoded cache {cache_file.stem}"
    if cache_file.exists():
        return _cifar10_from_cache(cache_file, class_names, source)
    x_train, kept_train, skipped_train = decode_image_files(train_paths, (32, 32, 3), "CIFAR-10 train")
    x_test, kept_test, skipped_test = decode_image_files(test_paths, (32, 32, 3), "CIFAR-10 test")
    skipped = skipped_train + skipped_test
    notes = skipped_note(skipped, len(train_paths) + len(test_paths))
    dataset = ImageDataset("cifar10", x_train, train_labels[kept_train], x_test, test_labels[kept_test],
                           class_names, source, notes=notes, skipped=skipped)
    _save_cifar10_cache(dataset, cache_file)
    return dataset


def read_images(paths: Sequence[str], size: int = 128) -> np.ndarray:
    """Photos from disk as a uint8 array, resized to ``size`` x ``size`` for display."""
    from PIL import Image

    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append(np.asarray(image.convert("RGB").resize((size, size)), dtype=np.uint8))
    return np.stack(images) if images else np.zeros((0, size, size, 3), dtype=np.uint8)

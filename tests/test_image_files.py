"""Bad image files never reach a dataset, and a file that goes bad later is named in one paragraph.

Every folder loader (flowers, CIFAR-10 as image folders, a folder of your own)
meets the same four kinds of bad file: a JPEG with a valid header whose body is
cut short, an empty file, a text file named .jpg, and a real JPEG with a
non-image extension.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import nbformat
import numpy as np
import pytest
from PIL import Image

from tools import run
from utils import data

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BAD_FILE_NAMES = {"cut_short.jpg", "empty.jpg", "notes.jpg", "photo.txt"}


def jpeg_bytes(size: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def write_class_folders(folder: Path, classes: list[str], per_class: int, size: int) -> None:
    for label, class_name in enumerate(classes):
        (folder / class_name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            (folder / class_name / f"{index:04d}.jpg").write_bytes(jpeg_bytes(size, seed=10 * label + index))


def add_bad_files(class_folder: Path, size: int) -> None:
    """The four kinds of bad file, in one class folder."""
    whole = jpeg_bytes(size, seed=99)
    (class_folder / "cut_short.jpg").write_bytes(whole[: len(whole) // 2])  # header intact, body cut
    (class_folder / "empty.jpg").write_bytes(b"")
    (class_folder / "notes.jpg").write_text("these are notes, not a photo\n")
    (class_folder / "photo.txt").write_bytes(whole)  # a real JPEG behind the wrong extension


def load_flowers_folder(data_folder: Path) -> data.FileDataset:
    write_class_folders(data_folder / "flowers", ["daisy", "rose"], 3, 24)
    add_bad_files(data_folder / "flowers" / "rose", 24)
    return data.load_flowers()


def load_own_folder(data_folder: Path) -> data.FileDataset:
    write_class_folders(data_folder / "mine", ["cats", "dogs"], 3, 24)
    add_bad_files(data_folder / "mine" / "dogs", 24)
    return data.load_image_folder(data_folder / "mine")


def load_cifar_folders(data_folder: Path) -> data.ImageDataset:
    for split, count in (("train", 3), ("test", 3)):
        write_class_folders(data_folder / "cifar10" / split, ["cat", "dog"], count, 32)
    add_bad_files(data_folder / "cifar10" / "train" / "dog", 32)
    return data.load_cifar10()


FOLDER_LOADERS: dict[str, Callable[[Path], data.FileDataset | data.ImageDataset]] = {
    "flowers": load_flowers_folder, "own folder": load_own_folder, "cifar10 folders": load_cifar_folders}


@pytest.mark.parametrize("load", FOLDER_LOADERS.values(), ids=FOLDER_LOADERS.keys())
def test_every_folder_loader_skips_and_lists_bad_files(load: Callable, data_folder: Path) -> None:
    dataset = load(data_folder)
    assert {Path(item.path).name for item in dataset.skipped} == BAD_FILE_NAMES
    reasons = {Path(item.path).name: item.reason for item in dataset.skipped}
    assert "truncated" in reasons["cut_short.jpg"].lower() and "0 bytes" in reasons["empty.jpg"]
    assert "not an image" in reasons["notes.jpg"] and "extension '.txt'" in reasons["photo.txt"]
    kept = dataset.paths if isinstance(dataset, data.FileDataset) else dataset.y_train
    assert len(kept) == 6, "all six good images are kept"
    described = dataset.describe()
    assert "skipped 4 file(s)" in described and all(name in described for name in BAD_FILE_NAMES)
    assert "skipped 4 of" in dataset.notes[0]


def test_file_datasets_hold_only_files_tensorflow_decodes(data_folder: Path) -> None:
    import tensorflow as tf

    flowers = load_flowers_folder(data_folder)
    for path in flowers.paths:
        tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)


def test_check_is_cached_until_a_file_changes(data_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_own_folder(data_folder)
    original_check = data.image_files._check_uncached

    def must_not_run(paths):
        raise AssertionError("the second load of unchanged files decoded them again")

    monkeypatch.setattr(data.image_files, "_check_uncached", must_not_run)
    again = data.load_image_folder(data_folder / "mine")
    assert again.skipped == first.skipped and again.paths == first.paths
    monkeypatch.setattr(data.image_files, "_check_uncached", original_check)
    good = Path(first.paths[0])
    good.write_bytes(good.read_bytes()[:200])  # cut short in place: new size, so a new fingerprint
    changed = data.load_image_folder(data_folder / "mine")
    assert str(good) in {item.path for item in changed.skipped} and str(good) not in changed.paths


def test_cifar_folder_cache_keeps_the_skipped_list(data_folder: Path) -> None:
    first = load_cifar_folders(data_folder)
    again = data.load_cifar10()
    assert "decoded cache" in again.source and again.skipped == first.skipped


def test_folder_without_good_images_is_a_clear_error(data_folder: Path) -> None:
    (data_folder / "mine" / "cats").mkdir(parents=True)
    add_bad_files(data_folder / "mine" / "cats", 16)
    with pytest.raises(data.DataFormatError, match="no complete, decodable images"):
        data.load_image_folder(data_folder / "mine")


def test_file_that_breaks_after_loading_is_named_in_one_paragraph(data_folder: Path) -> None:
    flowers = load_flowers_folder(data_folder)
    victim = Path(flowers.paths[1])
    pipeline = data.make_file_pipeline(flowers.paths, flowers.labels, 16, batch_size=2, cache=False)
    victim.write_bytes(victim.read_bytes()[:300])
    with pytest.raises(Exception) as caught:
        for _ in pipeline:
            pass
    explained = data.explain_decode_failure(caught.value)
    assert isinstance(explained, data.ImageDecodeError)
    message = str(explained)
    assert str(victim) in message and "To fix it, delete or replace the file" in message
    assert "\n" not in message, "one paragraph"


def test_other_errors_are_not_explained() -> None:
    assert data.explain_decode_failure(KeyError("not about images")) is None
    assert data.explain_decode_failure(ValueError("jpeg::Uncompress failed")) is None  # not TensorFlow's error


def test_notebook_shows_the_paragraph_instead_of_a_traceback(data_folder: Path, tmp_path: Path) -> None:
    write_class_folders(data_folder / "mine", ["a", "b"], 2, 16)
    victim = data_folder / "mine" / "b" / "0001.jpg"
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in (
        f"import sys\nsys.path.insert(0, {str(PROJECT_ROOT)!r})\nfrom pathlib import Path\n"
        "from utils import data, runtime\nruntime.import_tensorflow()",
        f"dataset = data.load_image_folder({str(data_folder / 'mine')!r})\n"
        "pipeline = data.make_file_pipeline(dataset.paths, dataset.labels, 8, batch_size=2, cache=False)\n"
        f"victim = Path({str(victim)!r})\nvictim.write_bytes(victim.read_bytes()[:200])",
        "for batch in pipeline:\n    pass",
    )]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    source = tmp_path / "16_decode.ipynb"
    nbformat.write(notebook, source)
    outcome = run.execute_notebook(source, tmp_path / "out", "quick", timeout_seconds=300,
                                   extra_environment={"CNN_DATA_DIR": str(data_folder),
                                                      "CNN_CACHE_DIR": str(tmp_path / "cache")})
    assert outcome.status == "error" and "cell 2" in outcome.detail
    [error] = nbformat.read(tmp_path / "out" / source.name, as_version=4).cells[2].outputs
    shown = "\n".join(error["traceback"])
    assert shown.startswith("ImageDecodeError: ") and str(victim) in shown
    assert "Traceback" not in shown and "[[{{node" not in shown

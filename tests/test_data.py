"""Loaders on tiny fixture files written by the tests, splits and pipelines."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from utils import data


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` (uint8) as a gzipped IDX file."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())
    return path


def write_mnist_idx(folder: Path, splits=("train", "t10k"), count: int = 30) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(0)
    for split in splits:
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", generator.integers(0, 256, (count, 28, 28)))
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", np.arange(count) % 10)


def write_image_folder(folder: Path, classes: list[str], per_class: int, size: int) -> None:
    generator = np.random.default_rng(1)
    for class_name in classes:
        (folder / class_name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            pixels = generator.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / class_name / f"{index:04d}.png")


# ----------------------------------------------------------------- IDX and MNIST


def test_read_idx_round_trip(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(data.read_idx(write_idx(tmp_path / "a.gz", array)), array)


def test_read_idx_truncated_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 10) + b"\x00" * 4)
    with pytest.raises(data.DataFormatError, match="bad-idx3-ubyte.*truncated"):
        data.read_idx(path)


def test_read_idx_rejects_non_idx(tmp_path: Path) -> None:
    path = tmp_path / "x.idx"
    path.write_bytes(b"hello world")
    with pytest.raises(data.DataFormatError, match="not an IDX file"):
        data.read_idx(path)


def test_load_mnist_from_idx_files(data_folder: Path) -> None:
    write_mnist_idx(data_folder / "mnist")
    dataset = data.load_mnist()
    assert dataset.x_train.shape == (30, 28, 28) and dataset.x_train.dtype == np.uint8
    assert dataset.y_test.dtype == np.int64 and dataset.class_names[3] == "3"
    assert "IDX files" in dataset.source and not dataset.is_synthetic


def test_load_mnist_from_keras_npz(data_folder: Path) -> None:
    arrays = {key: np.zeros((5, 28, 28), np.uint8) for key in ("x_train", "x_test")}
    arrays.update(y_train=np.arange(5), y_test=np.arange(5))
    np.savez(data_folder / "mnist.npz", **arrays)
    dataset = data.load_mnist()
    assert len(dataset.y_train) == 5 and "mnist.npz" in dataset.source


def test_mismatched_labels_are_a_clear_error(data_folder: Path) -> None:
    folder = data_folder / "mnist"
    write_mnist_idx(folder)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(7) % 10)
    with pytest.raises(data.DataFormatError, match="30 images but 7 labels"):
        data.load_mnist()


def test_test_split_only_is_resplit_when_allowed(data_folder: Path) -> None:
    write_mnist_idx(data_folder / "mnist", splits=("t10k",), count=10_000)
    with pytest.raises(data.DatasetNotFoundError, match="allow_test_split_only=True"):
        data.load_mnist()
    dataset = data.load_mnist(allow_test_split_only=True)
    assert (len(dataset.y_train), len(dataset.y_test)) == (8_000, 2_000)
    assert "re-split" in dataset.source and "not comparable" in dataset.notes[0]


def test_offline_and_missing_names_every_place(data_folder: Path) -> None:
    with pytest.raises(data.DatasetNotFoundError) as caught:
        data.load_cifar10()
    message = str(caught.value)
    assert str(data_folder / "cifar-10-batches-py") in message
    assert "CNN_OFFLINE" in message and "CNN_DATA_DIR" in message and "synthetic" in message


def test_failed_download_becomes_one_clear_error(data_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import keras

    monkeypatch.delenv("CNN_OFFLINE")

    def refuse(*arguments, **keywords):
        raise OSError("network is unreachable")

    monkeypatch.setattr(keras.utils, "get_file", refuse)
    with pytest.raises(data.DatasetNotFoundError, match="network is unreachable"):
        data.load_fashion_mnist()


def test_download_goes_to_cache_folder(data_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import keras

    monkeypatch.delenv("CNN_OFFLINE")
    seen = {}

    def fake_get_file(fname, origin, file_hash=None, cache_dir=None, cache_subdir=None):
        seen.update(origin=origin, cache_dir=cache_dir)
        target = Path(cache_dir) / cache_subdir / fname
        target.parent.mkdir(parents=True, exist_ok=True)
        arrays = {key: np.zeros((4, 28, 28), np.uint8) for key in ("x_train", "x_test")}
        np.savez(target, y_train=np.arange(4), y_test=np.arange(4), **arrays)
        return str(target)

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    dataset = data.load_mnist()
    assert seen["origin"].endswith("mnist.npz") and Path(seen["cache_dir"]).name == "cache"
    assert len(dataset.y_train) == 4


# ----------------------------------------------------------------- CIFAR-10


def write_cifar_batches(folder: Path, count: int = 6) -> None:
    folder.mkdir(parents=True)
    for index, name in enumerate(data.CIFAR10_BATCH_MD5):
        batch = {b"data": np.full((count, 3072), index, np.uint8), b"labels": list(np.arange(count) % 10)}
        (folder / name).write_bytes(pickle.dumps(batch))


def test_unverified_pickles_are_refused(data_folder: Path) -> None:
    write_cifar_batches(data_folder / "cifar-10-batches-py")
    with pytest.raises(data.DataFormatError, match="checksum"):
        data.load_cifar10()


def test_trusted_pickles_load_in_channels_last(data_folder: Path) -> None:
    write_cifar_batches(data_folder / "cifar-10-batches-py")
    dataset = data.load_cifar10(trust_unverified_pickles=True)
    assert dataset.x_train.shape == (30, 32, 32, 3) and dataset.x_test.shape == (6, 32, 32, 3)
    assert dataset.x_test[0, 0, 0, 0] == 5 and dataset.class_names[0] == "airplane"


def test_checksum_match_allows_unpickling(data_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = data_folder / "cifar-10-batches-py"
    write_cifar_batches(folder)
    checksums = {name: hashlib.md5((folder / name).read_bytes()).hexdigest() for name in data.CIFAR10_BATCH_MD5}
    monkeypatch.setattr(data.formats, "CIFAR10_BATCH_MD5", checksums)
    assert len(data.load_cifar10().y_train) == 30


def test_cifar_image_folders_skip_corrupt_files_and_cache(data_folder: Path) -> None:
    classes = ["cat", "dog"]
    write_image_folder(data_folder / "cifar10" / "train", classes, 3, 32)
    write_image_folder(data_folder / "cifar10" / "test", classes, 2, 32)
    (data_folder / "cifar10" / "train" / "cat" / "broken.jpg").write_bytes(b"not a jpeg")
    dataset = data.load_cifar10()
    assert dataset.x_train.shape == (6, 32, 32, 3) and list(dataset.y_train) == [0, 0, 0, 1, 1, 1]
    assert "skipped 1 of 11" in dataset.notes[0] and "broken.jpg" in dataset.notes[0]
    again = data.load_cifar10()
    assert "decoded cache" in again.source and again.notes == dataset.notes
    np.testing.assert_array_equal(again.x_train, dataset.x_train)


def test_cifar_image_of_wrong_size_is_named(data_folder: Path) -> None:
    write_image_folder(data_folder / "cifar10" / "train", ["cat"], 1, 32)
    write_image_folder(data_folder / "cifar10" / "test", ["cat"], 1, 40)
    with pytest.raises(data.DataFormatError, match=r"0000.png has shape \(40, 40, 3\)"):
        data.load_cifar10()


def test_archive_extraction_refuses_escaping_paths(tmp_path: Path) -> None:
    archive = tmp_path / "evil.tar.gz"
    payload = tmp_path / "payload.txt"
    payload.write_text("x")
    with tarfile.open(archive, "w:gz") as bundle:
        bundle.add(payload, arcname="../escaped.txt")
    with pytest.raises(tarfile.TarError):
        data.extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


# ----------------------------------------------------------------- flowers


def test_flowers_in_tensorflow_layout_with_a_corrupt_file(data_folder: Path) -> None:
    write_image_folder(data_folder / "flower_photos", ["daisy", "roses"], 3, 20)
    (data_folder / "flower_photos" / "LICENSE.txt").write_text("licence")
    (data_folder / "flower_photos" / "roses" / "bad.jpg").write_bytes(b"\x00" * 10)
    flowers = data.load_flowers()
    assert flowers.class_names == ["daisy", "roses"] and len(flowers.paths) == 6
    assert list(np.bincount(flowers.labels)) == [3, 3]
    assert "skipped 1 of 7" in flowers.notes[0]


def test_file_pipeline_decodes_resizes_and_one_hot_encodes(data_folder: Path) -> None:
    write_image_folder(data_folder / "flowers", ["a", "b"], 2, 20)
    flowers = data.load_flowers()
    pipeline = data.make_file_pipeline(flowers.paths, flowers.labels, 16, batch_size=3, num_classes=2,
                                       training=True, augmentation=data.default_augmentation())
    images, labels = next(iter(pipeline))
    assert images.shape == (3, 16, 16, 3) and labels.shape == (3, 2)
    assert 0.0 <= float(images.numpy().min()) and float(images.numpy().max()) <= 1.0


# ----------------------------------------------------------------- synthetic data


def test_synthetic_mode_is_labelled(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CNN_DATA", "synthetic")
    monkeypatch.setenv("CNN_CACHE_DIR", str(tmp_path))
    cifar = data.load_cifar10()
    assert cifar.is_synthetic and "synthetic" in cifar.describe()
    assert cifar.x_train.shape[1:] == (32, 32, 3) and len(cifar.class_names) == 10
    assert data.load_fashion_mnist().x_test.shape[1:] == (28, 28)
    flowers = data.load_flowers()
    assert flowers.is_synthetic and len(flowers.class_names) == 5


def test_synthetic_classes_are_learnable() -> None:
    images, labels = data.synthetic_images((8, 8), 3, 50, seed=0)
    means = np.stack([images[labels == value].mean(axis=0) for value in range(3)])
    nearest = np.argmin(((images[:, None].astype(float) - means[None]) ** 2).sum(axis=(2, 3)), axis=1)
    assert (nearest == labels).mean() > 0.9


# ----------------------------------------------------------------- splits and pipelines


def test_stratified_split_keeps_proportions_and_disjoint() -> None:
    labels = np.repeat([0, 1, 2], [60, 30, 10])
    images = np.arange(100)
    first_images, first_labels, second_images, second_labels = data.stratified_split(images, labels, 20, seed=1)
    assert list(np.bincount(second_labels)) == [12, 6, 2]
    assert len(set(first_images) & set(second_images)) == 0 and len(first_images) == 80


def test_stratified_split_is_seeded() -> None:
    labels = np.arange(50) % 5
    first = data.stratified_split(np.arange(50), labels, 0.2, seed=3)[2]
    again = data.stratified_split(np.arange(50), labels, 0.2, seed=3)[2]
    other = data.stratified_split(np.arange(50), labels, 0.2, seed=4)[2]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(np.sort(first), np.sort(other))


def test_impossible_split_is_refused() -> None:
    with pytest.raises(ValueError, match="Cannot take 10 of 10"):
        data.stratified_split(np.arange(10), np.arange(10) % 2, 10)


def make_dataset(train: int = 100, test: int = 40) -> data.ImageDataset:
    return data.ImageDataset("toy", np.zeros((train, 4, 4, 3), np.uint8), np.arange(train) % 10,
                             np.ones((test, 4, 4, 3), np.uint8), np.arange(test) % 10,
                             [str(i) for i in range(10)], "test fixture")


def test_holdout_protocol_keeps_test_unseen() -> None:
    splits = data.make_splits(make_dataset(), "holdout", validation_size=20, train_limit=50, test_limit=30)
    assert (len(splits.y_train), len(splits.y_validation), len(splits.y_test)) == (50, 20, 30)
    assert splits.x_validation.max() == 0 and "held out" in splits.validation_label


def test_course_protocol_validates_on_test_set() -> None:
    splits = data.make_splits(make_dataset(), "course")
    assert splits.x_validation is splits.x_test and "course protocol" in splits.validation_label
    with pytest.raises(ValueError, match="Unknown protocol"):
        data.make_splits(make_dataset(), "sneaky")


def test_array_pipeline_scales_batches_and_one_hot_encodes() -> None:
    images = np.full((10, 28, 28), 255, np.uint8)
    pipeline = data.make_pipeline(images, np.arange(10) % 3, batch_size=4, num_classes=3, training=True)
    batches = list(pipeline)
    assert [batch[0].shape[0] for batch in batches] == [4, 4, 2]
    assert batches[0][0].shape == (4, 28, 28, 1) and float(batches[0][0].numpy().max()) == 1.0
    assert batches[0][1].shape == (4, 3)


def test_array_pipeline_shuffles_training_only() -> None:
    labels = np.arange(64)
    images = np.zeros((64, 2, 2, 1), np.uint8)
    training_order = np.concatenate([b[1].numpy() for b in data.make_pipeline(images, labels, 8, training=True)])
    evaluation_order = np.concatenate([b[1].numpy() for b in data.make_pipeline(images, labels, 8)])
    np.testing.assert_array_equal(evaluation_order, labels)
    assert not np.array_equal(training_order, labels) and sorted(training_order) == list(labels)


def test_pipeline_rejects_mismatched_lengths() -> None:
    with pytest.raises(data.DataFormatError, match="5 images but 4 labels"):
        data.make_pipeline(np.zeros((5, 2, 2)), np.zeros(4), 2)


def test_split_flowers_is_stratified_disjoint_and_limited() -> None:
    paths = np.asarray([f"photo_{index}.jpg" for index in range(200)])
    labels = np.repeat(np.arange(4), 50)
    splits = data.split_flowers(paths, labels, ["a", "b", "c", "d"], "test", limit=100, seed=3)
    sizes = {name: len(part_labels) for name, (_, part_labels) in splits.parts.items()}
    assert sizes == {"train": 70, "validation": 15, "test": 15}
    every_path = np.concatenate([part_paths for part_paths, _ in splits.parts.values()])
    assert len(set(every_path)) == 100
    assert sorted(np.bincount(splits.parts["train"][1])) == [17, 17, 18, 18]  # 70 photos over 4 equal classes
    with pytest.raises(ValueError, match="leave some photos for training"):
        data.split_flowers(paths, labels, ["a", "b", "c", "d"], "test", validation_fraction=0.5, test_fraction=0.5)

"""Small generated stand-ins for the datasets (``CNN_DATA=synthetic``), always labelled "synthetic".

For tests and machines with neither data nor internet: real shapes and class counts, learnable classes,
but a ``source`` saying synthetic so nothing made from them passes for a real result.
"""

from __future__ import annotations

import numpy as np

from utils import runtime
from utils.data.image_files import read_image_folder
from utils.data.records import FLOWER_CLASS_NAMES, FileDataset, ImageDataset

SYNTHETIC_TRAIN_PER_CLASS = 200
SYNTHETIC_TEST_PER_CLASS = 50


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
    dataset = read_image_folder(folder, "flowers")
    dataset.source = f"synthetic (generated JPEGs in {folder} because CNN_DATA=synthetic; not real photos)"
    return dataset



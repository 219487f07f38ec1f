"""Image helpers for notebooks 00 and 01: the sample photo, channel order, grayscale and the 0-1 range.

An image is an ``H x W`` or ``H x W x 3`` array of 8-bit intensities. These helpers keep that view explicit:
dtypes follow the input (uint8 stays uint8) and no scaling step is hidden, because the usual image bugs are
a wrong channel order, a wrong value range or a silent dtype change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

# Luma weights of ITU-R BT.601, the ones OpenCV and PIL use for RGB -> gray.
BT601_WEIGHTS = (0.299, 0.587, 0.114)
CHANNEL_NAMES = ("R", "G", "B")


def load_sample_photo() -> np.ndarray:
    """Chelsea the cat, a 300 x 451 RGB photo (uint8) shipped inside scikit-image: a real photo, offline."""
    from skimage import data as skimage_data

    return skimage_data.chelsea()


def _require_colour(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"Expected a colour image of shape H x W x 3, got {image.shape}. "
            "A grayscale image has no channel order to change or to convert."
        )
    return image


def read_image_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 ``H x W x 3`` in RGB order (what PIL and Keras do)."""
    from PIL import Image

    with Image.open(path) as opened:
        return np.asarray(opened.convert("RGB"))


def read_image_like_opencv(path: str | Path) -> np.ndarray:
    """Read an image file the way ``cv2.imread`` does: uint8 ``H x W x 3`` in **BGR** order.

    No OpenCV needed; shown directly with Matplotlib it gives the classic blue-faced result.
    """
    return read_image_rgb(path)[..., ::-1].copy()  # OpenCV's channel order; notebook 00 teaches the reversal


def to_grayscale(image: np.ndarray, weights: Sequence[float] = BT601_WEIGHTS) -> np.ndarray:
    """Weighted sum of R, G and B: one channel of brightness (green counts most: our eyes favour it).

    uint8 in gives uint8 out (rounded); float gives float.
    """
    image = _require_colour(image)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (3,) or not np.isclose(weights.sum(), 1.0):
        raise ValueError(f"weights must be three numbers that add up to 1, got {tuple(weights)}.")
    gray = image.astype(np.float64) @ weights
    if image.dtype == np.uint8:
        return np.clip(np.rint(gray), 0, 255).astype(np.uint8)
    return gray


def normalise_to_unit_range(image: np.ndarray) -> np.ndarray:
    """Scale integer intensities to float32 in [0, 1] (uint8: divide by 255).

    0-255 inputs make the first layer's outputs and gradients hundreds of times larger. A float array above 1
    raises: it was most likely cast to float without being divided.
    """
    image = np.asarray(image)
    if np.issubdtype(image.dtype, np.integer):
        if image.min(initial=0) < 0:
            raise ValueError("Intensities cannot be negative; this is not an image of 0-255 values.")
        return (image / np.iinfo(image.dtype).max).astype(np.float32)
    if image.size and (image.min() < 0 or image.max() > 1):
        raise ValueError(
            f"This float image ranges from {image.min():g} to {image.max():g}, not 0-1. It was "
            "probably cast with .astype(float) without dividing; pass the uint8 array instead."
        )
    return image.astype(np.float32)

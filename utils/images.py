"""Image helpers for notebooks 00 and 01: sample photo, channel order, grayscale, resize, plots.

An image is an ``H x W`` or ``H x W x 3`` array of 8-bit intensities. These helpers keep that view explicit:
dtypes follow the input (uint8 stays uint8) and no scaling step is hidden, because the usual image bugs are
a wrong channel order, a wrong value range or a silent dtype change.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

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


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Save a uint8 RGB or grayscale array as an image file (format from the extension)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(path)
    return path


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


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to ``(height, width)`` with smoothing, keeping the value range and dtype.

    Shrinking averages neighbours (anti-aliasing), so a digit's thin strokes survive the 28 -> 18 reduction.
    """
    from skimage.transform import resize

    image = np.asarray(image)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be (height, width) with positive values, got {size!r}.")
    resized = resize(image.astype(np.float64), (*size, *image.shape[2:]), anti_aliasing=True,
                     preserve_range=True, order=1)
    if np.issubdtype(image.dtype, np.integer):
        limits = np.iinfo(image.dtype)
        return np.clip(np.rint(resized), limits.min, limits.max).astype(image.dtype)
    return resized.astype(image.dtype)


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


def describe_array(image: np.ndarray) -> dict[str, Any]:
    """Shape, dtype, value range and channel count of an image array, for printing."""
    image = np.asarray(image)
    return {
        "shape": image.shape,
        "dtype": str(image.dtype),
        "min": image.min().item(),
        "max": image.max().item(),
        "channels": 1 if image.ndim == 2 else image.shape[2],
    }


def matrix_text(matrix: np.ndarray) -> str:
    """A 2D array as aligned text, one row per line: a digit's shape shows in its numbers."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"matrix_text prints 2D arrays, got shape {matrix.shape}; pick one channel.")
    cells = [[f"{value:g}" for value in row] for row in matrix.tolist()]
    width = max(len(cell) for row in cells for cell in row)
    return "\n".join(" ".join(cell.rjust(width) for cell in row) for row in cells)


def single_channel_views(image: np.ndarray) -> list[np.ndarray]:
    """Three copies of a colour image, each keeping only one channel: where the photo is red, green and blue."""
    image = _require_colour(image)
    views = []
    for channel in range(3):
        view = np.zeros_like(image)
        view[..., channel] = image[..., channel]
        views.append(view)
    return views


# --- Figures (display code) -----------------------------------------------------------


def show_matrices(
    matrices: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    panel_size: float = 2.8,
    value_format: str = "{:g}",
    shared_scale: bool = False,
) -> Any:
    """Small matrices drawn as shaded grids with every number written in its cell.

    For hand-sized examples where the reader checks the arithmetic. ``shared_scale=True`` shades every panel
    alike. Non-negative matrices use the suite's grey convention (0 black, the largest white); signed ones a
    diverging scale centred on 0. A thin frame keeps white border cells visible.
    """
    import matplotlib.pyplot as plt

    from utils.plotting import frame

    figure, axes = plt.subplots(1, len(matrices), figsize=(panel_size * len(matrices), panel_size),
                                squeeze=False, layout="constrained")
    everything = np.concatenate([np.asarray(matrix, dtype=np.float64).ravel() for matrix in matrices])
    for index, (axis, matrix) in enumerate(zip(axes.flat, matrices)):
        matrix = np.asarray(matrix, dtype=np.float64)
        scale_from = everything if shared_scale else matrix
        limit = float(np.max(np.abs(scale_from))) or 1.0
        signed = scale_from.min() < 0
        axis.imshow(matrix, cmap="RdBu_r" if signed else "gray", vmin=-limit if signed else 0.0, vmax=limit)
        for (row, column), value in np.ndenumerate(matrix):
            axis.text(column, row, value_format.format(value), ha="center", va="center", fontsize=9,
                      color=_text_colour(value, limit, signed))
        frame(axis)
        if titles is not None:
            axis.set_title(titles[index], fontsize=10)
    return figure


def _text_colour(value: float, limit: float, signed: bool) -> str:
    """Black or white, whichever reads on the cell's shade (grey: dark cells get white text)."""
    if signed:
        return "white" if abs(value) > 0.6 * limit else "black"
    return "white" if value < 0.5 * limit else "black"

"""Tests for utils.images (channel order, grayscale, normalisation) and the image code notebooks 00 and 01 write."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from page_code import page_definitions, show_matrices
from utils import images

RANDOM = np.random.default_rng(3)


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return images.load_sample_photo()


def test_sample_photo_is_a_uint8_rgb_cat(photo):
    assert photo.shape == (300, 451, 3)
    assert photo.dtype == np.uint8
    # A tabby cat on a warm background: on average more red than blue.
    assert photo[..., 0].mean() > photo[..., 2].mean()


def test_reading_like_opencv_gives_bgr(tmp_path, photo):
    from PIL import Image

    path = tmp_path / "cat.png"
    Image.fromarray(photo).save(path)
    np.testing.assert_array_equal(images.read_image_rgb(path), photo)
    np.testing.assert_array_equal(images.read_image_like_opencv(path), photo[..., ::-1])


def test_grayscale_uses_luma_weights(photo):
    pixel = np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]]], dtype=np.uint8)
    np.testing.assert_array_equal(images.to_grayscale(pixel), [[76, 150, 29, 255]])
    gray = images.to_grayscale(photo)
    assert gray.shape == photo.shape[:2] and gray.dtype == np.uint8
    from skimage.color import rgb2gray

    skimage_weights = (0.2125, 0.7154, 0.0721)
    np.testing.assert_allclose(images.to_grayscale(photo / 255.0, skimage_weights), rgb2gray(photo), atol=1e-6)
    with pytest.raises(ValueError, match="add up to 1"):
        images.to_grayscale(photo, (1, 1, 1))


def test_normalise_to_unit_range():
    pixels = np.array([0, 51, 255], dtype=np.uint8)
    scaled = images.normalise_to_unit_range(pixels)
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, [0, 0.2, 1])
    np.testing.assert_allclose(images.normalise_to_unit_range(np.array([0, 65535], np.uint16)), [0, 1])
    np.testing.assert_allclose(images.normalise_to_unit_range(np.array([0.5])), [0.5])
    with pytest.raises(ValueError, match="without dividing"):
        images.normalise_to_unit_range(pixels.astype(np.float32))
    with pytest.raises(ValueError, match="negative"):
        images.normalise_to_unit_range(np.array([-1, 3]))


def test_notebook_00_describes_arrays_and_prints_matrices():
    page = page_definitions("00", ["describe_array", "matrix_text"], Any=object)
    array = np.array([[0, 255], [7, 18]], dtype=np.uint8)
    assert page["describe_array"](array) == {"shape": (2, 2), "dtype": "uint8", "min": 0, "max": 255, "channels": 1}
    assert page["matrix_text"](array) == "  0 255\n  7  18"
    assert page["describe_array"](np.zeros((4, 4, 3)))["channels"] == 3


def test_matrix_figures_write_every_number_and_share_scales_on_request():
    import matplotlib.pyplot as plt

    figure = show_matrices([np.eye(3), 2 * np.eye(2)], ["a", "b"])
    assert len(figure.axes) == 2 and len(figure.axes[0].texts) == 9
    assert figure.axes[0].images[0].get_clim() == (0, 1)
    plt.close(figure)
    figure = show_matrices([np.eye(3), 2 * np.eye(2)], ["a", "b"], shared_scale=True)
    assert figure.axes[0].images[0].get_clim() == (0, 2)
    plt.close(figure)

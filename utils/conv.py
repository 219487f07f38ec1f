"""A small NumPy reference for what a convolution layer and a pooling layer compute (notebook 01).

Notebook 01 builds a CNN's first layers by hand with these functions and checks them against Keras
(``keras_conv2d``, ``keras_pool2d`` run the real layers with the same weights); readability beats speed.

What libraries call *convolution* is, strictly, *cross-correlation* (no filter flip): ``correlate2d`` is
that, ``convolve2d`` the textbook convolution. Learned filters make it moot, but it matters when you copy a
filter from an image-processing book. Sizes follow ``floor((n + 2p - k) / s) + 1``; ``"same"`` padding
copies Keras exactly, including its asymmetry (an odd total puts the extra pixel at the bottom or right).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

Padding = int | tuple[int, int] | tuple[tuple[int, int], tuple[int, int]] | str
PAD_MODES = ("zero", "edge")
POOL_MODES = ("max", "average")


# --- Sizes and padding ----------------------------------------------------------------


def as_pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """Turn ``3`` or ``(3, 3)`` into ``(3, 3)``, rejecting anything that is not a positive size (also for anatomy)."""
    pair = (value, value) if np.isscalar(value) else tuple(value)
    if len(pair) != 2 or any(int(item) != item or item < 1 for item in pair):
        raise ValueError(
            f"{name} must be a positive whole number or a pair of them, got {value!r}. "
            f"Pass for example {name}=3 or {name}=(3, 3)."
        )
    return int(pair[0]), int(pair[1])


def output_size(
    input_size: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    require_exact: bool = False,
) -> int:
    """Length of a convolution or pooling output along one axis: ``floor((n + 2p - k) / s) + 1``.

    With ``require_exact=True`` windows that do not tile the padded input exactly (some pixels never looked at)
    raise ``ValueError`` instead of silently dropping them, as in the course's 4x4 image, 3x3 filter, stride 2.
    """
    for name, value, smallest in (("input_size", input_size, 1), ("kernel_size", kernel_size, 1),
                                  ("stride", stride, 1), ("padding", padding, 0)):
        if int(value) != value or value < smallest:
            raise ValueError(
                f"{name} must be a whole number >= {smallest}, got {value!r}; "
                "sizes, strides and paddings count pixels."
            )
    span = input_size + 2 * padding - kernel_size
    if span < 0:
        raise ValueError(
            f"A {kernel_size}-pixel filter does not fit in a {input_size}-pixel input with "
            f"padding {padding}: use a smaller filter or pad by at least "
            f"{math.ceil((kernel_size - input_size) / 2)} pixels per side."
        )
    if require_exact and span % stride != 0:
        covered = (span // stride) * stride + kernel_size
        raise ValueError(
            f"Input {input_size} + 2*{padding} padding with filter {kernel_size} and stride "
            f"{stride} does not tile exactly: (n + 2p - k) / s = {span}/{stride} is not a whole "
            f"number, so the windows cover only {covered} of the {input_size + 2 * padding} "
            "padded pixels and the rest are never seen. Choose a stride that divides "
            f"n + 2p - k = {span}, change the padding, or use padding='same'."
        )
    return span // stride + 1


def same_padding(input_size: int, kernel_size: int, stride: int = 1) -> tuple[int, int]:
    """Padding (before, after) that Keras/TensorFlow's ``padding="same"`` adds along one axis.

    "same" keeps ``ceil(n / s)`` outputs; an odd total puts the extra pixel *after*, which is why symmetric hand
    padding disagrees with Keras at stride 2.
    """
    outputs = math.ceil(input_size / stride)
    total = max((outputs - 1) * stride + kernel_size - input_size, 0)
    return total // 2, total - total // 2


def resolve_padding(
    padding: Padding, image_shape: tuple[int, int], kernel_shape: tuple[int, int],
    strides: tuple[int, int],
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Turn any accepted padding spelling into ``((top, bottom), (left, right))`` pixel counts.

    Accepted: ``"valid"``, ``"same"`` (Keras's rule), pixels for every side, ``(rows, columns)`` or explicit pairs.
    """
    if isinstance(padding, str):
        if padding.lower() == "valid":
            return (0, 0), (0, 0)
        if padding.lower() == "same":
            return (same_padding(image_shape[0], kernel_shape[0], strides[0]),
                    same_padding(image_shape[1], kernel_shape[1], strides[1]))
        raise ValueError(f"padding must be 'valid', 'same' or a number of pixels, got {padding!r}.")
    array = np.asarray(padding)
    shapes = {(): lambda: ((array.item(),) * 2,) * 2,
              (2,): lambda: ((array[0],) * 2, (array[1],) * 2),
              (2, 2): lambda: (tuple(array[0]), tuple(array[1]))}
    if array.shape not in shapes or not np.issubdtype(array.dtype, np.integer) or np.any(array < 0):
        raise ValueError(
            f"padding {padding!r} is not understood. Use 'valid', 'same', a whole number of "
            "pixels such as 1, a pair (rows, columns) or ((top, bottom), (left, right))."
        )
    (top, bottom), (left, right) = shapes[array.shape]()
    return (int(top), int(bottom)), (int(left), int(right))


def pad_image(
    image: np.ndarray,
    widths: int | tuple[tuple[int, int], tuple[int, int]],
    mode: str = "zero",
    fill_value: float = 0.0,
) -> np.ndarray:
    """Pad the two spatial axes of an ``H x W`` or ``H x W x C`` array.

    ``mode="zero"`` fills with ``fill_value`` (as Keras); ``mode="edge"`` repeats the border pixels, the
    course's other option, which avoids zero padding's dark frame.
    """
    if mode not in PAD_MODES:
        raise ValueError(f"mode must be one of {PAD_MODES}, got {mode!r}.")
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(
            f"Expected an H x W or H x W x C image, got shape {image.shape}. "
            "Drop the batch axis first (image[0])."
        )
    if np.isscalar(widths):
        widths = ((int(widths),) * 2,) * 2
    pad_widths = [tuple(widths[0]), tuple(widths[1])] + [(0, 0)] * (image.ndim - 2)
    if mode == "edge":
        return np.pad(image, pad_widths, mode="edge")
    return np.pad(image, pad_widths, mode="constant", constant_values=fill_value)


def windows(image: np.ndarray, kernel_shape: tuple[int, int], strides: tuple[int, int]) -> np.ndarray:
    """Every ``kh x kw`` window of an (already padded) image, stepping by the strides.

    Shape ``(out_h, out_w, kh, kw[, C])``; entry ``[i, j]`` is the patch under the filter at ``(i * sh, j * sw)``.
    Views, not copies, so cheap even for a photo.
    """
    view = np.lib.stride_tricks.sliding_window_view(image, kernel_shape, axis=(0, 1))
    view = view[:: strides[0], :: strides[1]]
    if image.ndim == 3:  # move channels after the window axes: (oh, ow, C, kh, kw) -> (oh, ow, kh, kw, C)
        view = np.moveaxis(view, 2, -1)
    return view


def _prepare(
    image: np.ndarray, kernel_shape: tuple[int, int], stride: int | Sequence[int],
    padding: Padding, pad_mode: str, require_exact: bool, fill_value: float = 0.0,
) -> tuple[np.ndarray, tuple[int, int]]:
    """Pad an image for a window operation and check the sizes; returns (padded, strides)."""
    strides = as_pair(stride, "stride")
    widths = resolve_padding(padding, image.shape[:2], kernel_shape, strides)
    for axis in (0, 1):
        before, after = widths[axis]
        if before == after:  # report the error in the course's terms: n, k, s and p
            output_size(image.shape[axis], kernel_shape[axis], strides[axis], before, require_exact)
        else:
            output_size(image.shape[axis] + before + after, kernel_shape[axis], strides[axis], 0,
                        require_exact)
    return pad_image(image, widths, mode=pad_mode, fill_value=fill_value), strides


# --- Convolution ----------------------------------------------------------------------


def correlate2d(
    image: np.ndarray,
    kernel: np.ndarray,
    stride: int | Sequence[int] = 1,
    padding: Padding = "valid",
    pad_mode: str = "zero",
    require_exact: bool = False,
) -> np.ndarray:
    """Slide a 2D filter over a 2D image: at each position multiply element-wise and sum.

    This is what CNN layers call convolution (no flip). ``padding`` as in :func:`resolve_padding`; returns float64.
    """
    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if image.ndim != 2 or kernel.ndim != 2:
        raise ValueError(
            f"correlate2d takes a 2D image and a 2D filter, got shapes {image.shape} and "
            f"{kernel.shape}; for H x W x C images use correlate_multichannel."
        )
    padded, strides = _prepare(image, kernel.shape, stride, padding, pad_mode, require_exact)
    patches = windows(padded, kernel.shape, strides)
    return np.einsum("ijkl,kl->ij", patches, kernel)


def convolve2d(image: np.ndarray, kernel: np.ndarray, **options: Any) -> np.ndarray:
    """True (textbook) convolution: flip the filter in both axes, then cross-correlate."""
    return correlate2d(image, np.flip(np.asarray(kernel), axis=(0, 1)), **options)


def correlate_multichannel(
    image: np.ndarray,
    kernel: np.ndarray,
    bias: float = 0.0,
    stride: int | Sequence[int] = 1,
    padding: Padding = "valid",
    pad_mode: str = "zero",
    require_exact: bool = False,
) -> np.ndarray:
    """One filter over an ``H x W x C`` image: a ``kh x kw x C`` block, one bias, one feature map.

    Each output pixel sums all ``kh * kw * C`` products, so a filter over RGB mixes the channels into one map.
    """
    image = np.asarray(image, dtype=np.float64)
    kernel = np.asarray(kernel, dtype=np.float64)
    if image.ndim != 3 or kernel.ndim != 3 or image.shape[2] != kernel.shape[2]:
        raise ValueError(
            f"Expected an H x W x C image and a kh x kw x C filter with the same C, got "
            f"{image.shape} and {kernel.shape}. A filter needs one slice per input channel."
        )
    padded, strides = _prepare(image, kernel.shape[:2], stride, padding, pad_mode, require_exact)
    patches = windows(padded, kernel.shape[:2], strides)
    return np.einsum("ijklc,klc->ij", patches, kernel) + float(bias)


def spread_over_channels(kernel: np.ndarray, channels: int = 3) -> np.ndarray:
    """Turn a 2D ``kh x kw`` filter into a ``kh x kw x C`` one that sees the channel average.

    Each channel gets ``kernel / C``: a way to put a grayscale filter (an edge detector) into a colour conv layer.
    """
    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 2 or channels < 1:
        raise ValueError(f"Expected a 2D filter and channels >= 1, got shape {kernel.shape} and {channels}.")
    return np.repeat(kernel[..., np.newaxis] / channels, channels, axis=2)


def conv_layer(
    image: np.ndarray,
    kernels: np.ndarray,
    biases: np.ndarray | None = None,
    stride: int | Sequence[int] = 1,
    padding: Padding = "valid",
    pad_mode: str = "zero",
    require_exact: bool = False,
) -> np.ndarray:
    """What ``keras.layers.Conv2D`` computes (before its activation) for one image.

    ``kernels`` has Keras's layout ``kh x kw x C x F``; a 2D image counts as one channel; output ``out_h x out_w x F``.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        image = image[..., np.newaxis]
    kernels = np.asarray(kernels, dtype=np.float64)
    if kernels.ndim != 4 or kernels.shape[2] != image.shape[2]:
        raise ValueError(
            f"kernels must have shape (kh, kw, C, F) with C = {image.shape[2]} input channels, "
            f"got {kernels.shape}. Keras's Conv2D stores its kernel in that order."
        )
    filters = kernels.shape[3]
    biases = np.zeros(filters) if biases is None else np.asarray(biases, dtype=np.float64)
    if biases.shape != (filters,):
        raise ValueError(f"biases must have one value per filter ({filters}), got shape {biases.shape}.")
    maps = [
        correlate_multichannel(image, kernels[..., index], biases[index], stride, padding,
                               pad_mode, require_exact)
        for index in range(filters)
    ]
    return np.stack(maps, axis=-1)


# --- Pooling --------------------------------------------------------------------------


def pool2d(
    feature_map: np.ndarray,
    pool_size: int | Sequence[int] = 2,
    stride: int | Sequence[int] | None = None,
    padding: Padding = "valid",
    mode: str = "max",
    require_exact: bool = False,
) -> np.ndarray:
    """Max or average pooling over ``H x W`` or ``H x W x C``, each channel on its own.

    ``stride`` defaults to the pool size, as in Keras. Padded positions are ignored, not counted as zeros
    (as Keras): max never picks one, average divides by the real pixels in the window.
    """
    if mode not in POOL_MODES:
        raise ValueError(f"mode must be one of {POOL_MODES}, got {mode!r}.")
    feature_map = np.asarray(feature_map, dtype=np.float64)
    if feature_map.ndim not in (2, 3):
        raise ValueError(f"Expected an H x W or H x W x C feature map, got shape {feature_map.shape}.")
    pool_shape = as_pair(pool_size, "pool_size")
    padded, strides = _prepare(feature_map, pool_shape, pool_shape if stride is None else stride,
                               padding, "zero", require_exact, fill_value=np.nan)
    patches = windows(padded, pool_shape, strides)
    reduce = np.nanmax if mode == "max" else np.nanmean
    return reduce(patches, axis=(2, 3))


def max_pool2d(feature_map: np.ndarray, pool_size: int | Sequence[int] = 2, **options: Any) -> np.ndarray:
    """Max pooling: keep the strongest response in each window (see :func:`pool2d`)."""
    return pool2d(feature_map, pool_size, mode="max", **options)


def average_pool2d(feature_map: np.ndarray, pool_size: int | Sequence[int] = 2, **options: Any) -> np.ndarray:
    """Average pooling: keep the mean response in each window (see :func:`pool2d`)."""
    return pool2d(feature_map, pool_size, mode="average", **options)


# --- Tiling table ---------------------------------------------------------------------


def tiling_rows(combinations: Sequence[tuple[int, int, int, int]]) -> list[dict[str, Any]]:
    """For each ``(image, filter, stride, padding)`` say whether the windows tile exactly.

    Rows give ``(n + 2p - k) / s + 1`` unrounded, Keras's (floored) output, the pixels never reached and the
    ``"same"`` output size.
    """
    rows = []
    for image_size, kernel_size, stride, padding in combinations:
        padded = image_size + 2 * padding
        size = output_size(image_size, kernel_size, stride, padding)
        rows.append({
            "image": image_size,
            "filter": kernel_size,
            "stride": stride,
            "padding": padding,
            "(n+2p-k)/s + 1": (padded - kernel_size) / stride + 1,
            "output": size,
            "uncovered pixels": padded - ((size - 1) * stride + kernel_size),
            "tiles exactly": (padded - kernel_size) % stride == 0,
            "'same' output": math.ceil(image_size / stride),
        })
    return rows


# --- Counting parameters and multiplies -----------------------------------------------


def conv2d_parameter_count(kernel_size: int | Sequence[int], in_channels: int, filters: int,
                           use_bias: bool = True) -> int:
    """Weights and biases of a Conv2D layer: ``kh * kw * C_in * F + F`` (independent of the image size)."""
    kernel_height, kernel_width = as_pair(kernel_size, "kernel_size")
    return kernel_height * kernel_width * in_channels * filters + (filters if use_bias else 0)


def dense_parameter_count(inputs: int, units: int, use_bias: bool = True) -> int:
    """Weights and biases of a Dense layer: ``inputs * units + units``."""
    return inputs * units + (units if use_bias else 0)


def conv_multiplies(output_height: int, output_width: int, kernel_size: int | Sequence[int],
                    in_channels: int, filters: int) -> int:
    """Multiplications a plain convolution performs: ``out_h * out_w * F`` outputs of ``kh * kw * C_in`` products."""
    kernel_height, kernel_width = as_pair(kernel_size, "kernel_size")
    return output_height * output_width * filters * kernel_height * kernel_width * in_channels


def dense_multiplies(inputs: int, units: int, positions: int = 1) -> int:
    """Multiplications a Dense layer performs: ``inputs * units`` at each of ``positions``.

    A Dense layer on an ``H x W x C`` tensor is a 1x1 convolution applied at ``H * W`` positions.
    """
    return positions * inputs * units


@dataclass(frozen=True)
class TwoStageCost:
    """Multiply count of a convolution done in two cheaper stages, with the plain cost beside it."""

    first_stage: int
    second_stage: int
    plain: int

    @property
    def total(self) -> int:
        """Both stages together."""
        return self.first_stage + self.second_stage

    @property
    def ratio(self) -> float:
        """Two-stage cost as a fraction of the plain convolution's."""
        return self.total / self.plain


def bottleneck_multiplies(output_height: int, output_width: int, kernel_size: int,
                          in_channels: int, bottleneck_channels: int, filters: int) -> TwoStageCost:
    """Inception's trick: a 1x1 convolution down to few channels, then the expensive filter.

    ``first_stage`` is the 1x1 reduction, ``second_stage`` the ``k x k`` conv on the reduced channels, ``plain``
    the ``k x k`` conv on all channels ("same" padding: all stages share the output size).
    """
    return TwoStageCost(
        first_stage=conv_multiplies(output_height, output_width, 1, in_channels, bottleneck_channels),
        second_stage=conv_multiplies(output_height, output_width, kernel_size, bottleneck_channels, filters),
        plain=conv_multiplies(output_height, output_width, kernel_size, in_channels, filters),
    )


def depthwise_separable_multiplies(output_height: int, output_width: int, kernel_size: int,
                                   in_channels: int, filters: int) -> TwoStageCost:
    """MobileNet's trick: one ``k x k`` filter per channel, then a 1x1 mix; ratio to plain ``1/F + 1/k^2``."""
    return TwoStageCost(
        first_stage=conv_multiplies(output_height, output_width, kernel_size, 1, 1) * in_channels,
        second_stage=conv_multiplies(output_height, output_width, 1, in_channels, filters),
        plain=conv_multiplies(output_height, output_width, kernel_size, in_channels, filters),
    )


def receptive_field(kernel_sizes: Sequence[int], strides: Sequence[int] | None = None) -> int:
    """How many input pixels (per axis) one output pixel of a stack of layers depends on.

    Each layer adds ``(k - 1)`` times the product of the strides before it: two 3x3 convs see 5x5, three 7x7.
    """
    strides = [1] * len(kernel_sizes) if strides is None else list(strides)
    if len(strides) != len(kernel_sizes):
        raise ValueError(f"Give one stride per layer: {len(kernel_sizes)} kernels but {len(strides)} strides.")
    field, jump = 1, 1
    for kernel_size, stride in zip(kernel_sizes, strides):
        field += (kernel_size - 1) * jump
        jump *= stride
    return field


def stacked_conv_weights(kernel_size: int, layers: int, channels: int = 1) -> int:
    """Weights (no biases) of ``layers`` stacked ``k x k`` convs, ``layers * k * k * C^2``: two 3x3 18, one 5x5 25."""
    return layers * kernel_size * kernel_size * channels * channels


# --- The same operations in Keras, for checking the hand versions ---------------------


def _batch(image: np.ndarray) -> np.ndarray:
    """Add the batch axis (and a channel axis to a 2D image) that Keras layers expect."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., np.newaxis]
    return image[np.newaxis]


def keras_conv2d(image: np.ndarray, kernels: np.ndarray, biases: np.ndarray | None = None,
                 stride: int | Sequence[int] = 1, padding: str = "valid") -> np.ndarray:
    """Run ``keras.layers.Conv2D`` with the given weights on one image; float64, comparable with :func:`conv_layer`."""
    import keras

    batch = _batch(image)
    kernels = np.asarray(kernels, dtype=np.float32)
    filters = kernels.shape[3]
    biases = np.zeros(filters, np.float32) if biases is None else np.asarray(biases, np.float32)
    layer = keras.layers.Conv2D(filters, kernels.shape[:2], strides=stride, padding=padding)
    layer.build(batch.shape)
    layer.set_weights([kernels, biases])
    return np.asarray(layer(batch))[0].astype(np.float64)


def keras_pool2d(feature_map: np.ndarray, pool_size: int | Sequence[int] = 2,
                 stride: int | Sequence[int] | None = None, padding: str = "valid",
                 mode: str = "max") -> np.ndarray:
    """Run Keras's ``MaxPooling2D`` or ``AveragePooling2D`` on one ``H x W (x C)`` map (float64, C = 1 for 2D)."""
    import keras

    if mode not in POOL_MODES:
        raise ValueError(f"mode must be one of {POOL_MODES}, got {mode!r}.")
    layer_class = keras.layers.MaxPooling2D if mode == "max" else keras.layers.AveragePooling2D
    layer = layer_class(pool_size=pool_size, strides=stride, padding=padding)
    return np.asarray(layer(_batch(feature_map)))[0].astype(np.float64)


def compare_with_keras(
    image: np.ndarray, kernels: np.ndarray, biases: np.ndarray,
    settings: Sequence[tuple[int, str]], pool_size: int = 2,
) -> list[dict[str, Any]]:
    """Run the hand versions and the Keras layers side by side for each ``(stride, padding)``.

    Conv2D, MaxPooling2D and AveragePooling2D (pooling the image itself): one row per layer and setting with
    both shapes and the largest absolute difference.
    """
    rows = []
    for stride, padding in settings:
        pairs = {
            "Conv2D": (conv_layer(image, kernels, biases, stride, padding),
                       keras_conv2d(image, kernels, biases, stride, padding)),
        }
        for mode, name in (("max", "MaxPooling2D"), ("average", "AveragePooling2D")):
            hand = pool2d(image, pool_size, stride, padding, mode)
            pairs[name] = (hand if hand.ndim == 3 else hand[..., np.newaxis],
                           keras_pool2d(image, pool_size, stride, padding, mode))
        for name, (hand, library) in pairs.items():
            same_shape = hand.shape == library.shape
            rows.append({
                "layer": name,
                "stride": stride,
                "padding": padding,
                "hand shape": hand.shape,
                "keras shape": library.shape,
                "max abs difference": float(np.max(np.abs(hand - library))) if same_shape else float("inf"),
            })
    return rows

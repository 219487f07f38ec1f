"""Layer-by-layer anatomy of a CNN, computed from its specification alone (notebooks 02 and 04).

A :class:`ModelSpec` (an input shape and layer specifications such as :class:`Conv2DSpec`) gives, without
Keras, every layer's output shape, parameter count with its formula, multiply-accumulates (MACs) per image,
float32 activation memory and receptive field. :func:`compare_with_keras` checks the table against a built
model (notebook 04 estimates training memory from the same table). The single-layer formulas are those of
:mod:`utils.conv`; :func:`keras_layer_macs` and :func:`keras_activation_values` apply them to any built Keras
model (branches, depthwise and separable convolutions), which :mod:`utils.architectures` sums over
``keras.applications`` models.

Conventions: channels-last images; a MAC is one multiplication and one addition (about two FLOPs); pooling,
activations, dropout and batch norm count as zero MACs, negligible beside convolutions and dense layers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from utils import conv

BYTES_PER_VALUE: dict[str, int] = {"float32": 4, "float16": 2}
MEBIBYTE = 1024**2

Shape = tuple[int, ...]


# --- Pure formulas (also used on their own by the notebooks) --------------------------


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: str | int = "valid") -> int:
    """Output length along one axis of a convolution or pooling window.

    ``padding`` is ``"valid"``, ``"same"`` (``ceil(size / stride)`` outputs) or zero pixels per side, for which
    :func:`utils.conv.output_size` applies the course's formula and explains what goes wrong.
    """
    if padding == "same":
        if min(size, kernel, stride) < 1:
            raise ValueError(f"size, kernel and stride must be positive, got {size}, {kernel}, {stride}.")
        return math.ceil(size / stride)
    if padding == "valid":
        padding = 0
    if not isinstance(padding, int):
        raise ValueError(
            f"padding must be 'valid', 'same' or a non-negative number of pixels, got {padding!r}."
        )
    return conv.output_size(size, kernel, stride, padding)


def format_count(number: int) -> str:
    """``1792`` -> ``"1,792"``: thousands separators, as the course writes its figures."""
    return f"{number:,}"


def format_shape(shape: Shape) -> str:
    """``(224, 224, 64)`` -> ``"224×224×64"``."""
    return "×".join(str(dimension) for dimension in shape)


# --- Layer specifications -------------------------------------------------------------


def _require_image(input_shape: Shape, layer: str) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ValueError(
            f"{layer} needs an image-shaped input (height, width, channels), but receives "
            f"{input_shape}. Put it before the Flatten/GlobalPool layer, not after."
        )
    return input_shape  # type: ignore[return-value]


def _require_vector(input_shape: Shape, layer: str) -> int:
    if len(input_shape) != 1:
        raise ValueError(
            f"{layer} needs a flat vector input, but receives {input_shape}. "
            f"Add a FlattenSpec() or GlobalPool2DSpec() before it."
        )
    return input_shape[0]


@dataclass(frozen=True)
class LayerSpec:
    """Base of every layer specification; ``name`` is optional and filled in by :class:`ModelSpec`."""

    name: str | None = field(default=None, kw_only=True)

    kind = "layer"

    def output_shape(self, input_shape: Shape) -> Shape:
        """Shape of one example's output (batch dimension left out)."""
        return input_shape

    def parameters(self, input_shape: Shape) -> int:
        """Number of weights the layer owns."""
        return 0

    def formula(self, input_shape: Shape) -> str:
        """How :meth:`parameters` is computed, written out with this layer's numbers."""
        return "0"

    def macs(self, input_shape: Shape) -> int:
        """Multiply-accumulates for one example's forward pass."""
        return 0

    def receptive_field(self, field_size: tuple[int, int], jump: tuple[int, int],
                        image_size: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
        """New (receptive field, jump) after this layer; most layers leave both unchanged.

        ``jump`` is the distance in input pixels between neighbouring outputs (the product of the strides so far).
        """
        return field_size, jump


@dataclass(frozen=True)
class Conv2DSpec(LayerSpec):
    """A 2D convolution: ``filters`` kernels of ``kernel_size`` slid with ``strides``."""

    filters: int
    kernel_size: int | tuple[int, int] = 3
    strides: int | tuple[int, int] = 1
    padding: str = "valid"
    activation: str | None = "relu"
    use_bias: bool = True

    kind = "conv"

    def __post_init__(self) -> None:
        conv.as_pair(self.kernel_size, "kernel_size")
        conv.as_pair(self.strides, "strides")
        if self.padding not in ("valid", "same"):
            raise ValueError(f"Conv2DSpec padding must be 'valid' or 'same', got {self.padding!r}.")
        if self.filters < 1:
            raise ValueError(f"Conv2DSpec needs at least one filter, got filters={self.filters}.")

    def output_shape(self, input_shape: Shape) -> Shape:
        height, width, _ = _require_image(input_shape, "Conv2DSpec")
        (kernel_h, kernel_w), (stride_h, stride_w) = conv.as_pair(self.kernel_size, "kernel_size"), conv.as_pair(self.strides, "strides")
        return (conv_output_size(height, kernel_h, stride_h, self.padding),
                conv_output_size(width, kernel_w, stride_w, self.padding), self.filters)

    def parameters(self, input_shape: Shape) -> int:
        kernel_h, kernel_w = conv.as_pair(self.kernel_size, "kernel_size")
        in_channels = _require_image(input_shape, "Conv2DSpec")[2]
        return conv.conv2d_parameter_count((kernel_h, kernel_w), in_channels, self.filters, self.use_bias)

    def formula(self, input_shape: Shape) -> str:
        kernel_h, kernel_w = conv.as_pair(self.kernel_size, "kernel_size")
        in_channels = _require_image(input_shape, "Conv2DSpec")[2]
        weights = f"{kernel_h}×{kernel_w}×{format_count(in_channels)}"
        if self.use_bias:
            return f"({weights} + 1) × {format_count(self.filters)}"
        return f"{weights} × {format_count(self.filters)}"

    def macs(self, input_shape: Shape) -> int:
        out_h, out_w, _ = self.output_shape(input_shape)
        kernel_h, kernel_w = conv.as_pair(self.kernel_size, "kernel_size")
        return conv.conv_multiplies(out_h, out_w, (kernel_h, kernel_w), input_shape[2], self.filters)

    def receptive_field(self, field_size, jump, image_size):
        kernel, stride = conv.as_pair(self.kernel_size, "kernel_size"), conv.as_pair(self.strides, "strides")
        return _widen(field_size, jump, kernel, stride)


def _widen(field_size: tuple[int, int], jump: tuple[int, int], window: tuple[int, int],
           stride: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """Receptive-field rule for a sliding window: field grows by (k - 1) * jump, jump by the stride."""
    new_field = tuple(f + (k - 1) * j for f, k, j in zip(field_size, window, jump))
    new_jump = tuple(j * s for j, s in zip(jump, stride))
    return new_field, new_jump  # type: ignore[return-value]


@dataclass(frozen=True)
class Pool2DSpec(LayerSpec):
    """Max or average pooling over ``pool_size`` windows; ``strides`` defaults to ``pool_size``."""

    pool_size: int | tuple[int, int] = 2
    strides: int | tuple[int, int] | None = None
    padding: str = "valid"
    mode: str = "max"

    kind = "pool"

    def __post_init__(self) -> None:
        if self.mode not in ("max", "average"):
            raise ValueError(f"Pool2DSpec mode must be 'max' or 'average', got {self.mode!r}.")
        if self.padding not in ("valid", "same"):
            raise ValueError(f"Pool2DSpec padding must be 'valid' or 'same', got {self.padding!r}.")

    @property
    def stride_pair(self) -> tuple[int, int]:
        """The strides, defaulting to the window size as Keras does."""
        return conv.as_pair(self.pool_size if self.strides is None else self.strides, "strides")

    def output_shape(self, input_shape: Shape) -> Shape:
        height, width, channels = _require_image(input_shape, "Pool2DSpec")
        (pool_h, pool_w), (stride_h, stride_w) = conv.as_pair(self.pool_size, "pool_size"), self.stride_pair
        return (conv_output_size(height, pool_h, stride_h, self.padding),
                conv_output_size(width, pool_w, stride_w, self.padding), channels)

    def formula(self, input_shape: Shape) -> str:
        return f"0 (no weights: takes the {'maximum' if self.mode == 'max' else 'mean'})"

    def receptive_field(self, field_size, jump, image_size):
        return _widen(field_size, jump, conv.as_pair(self.pool_size, "pool_size"), self.stride_pair)


@dataclass(frozen=True)
class GlobalPool2DSpec(LayerSpec):
    """Global max or average pooling: one number per channel, whatever the image size."""

    mode: str = "max"

    kind = "global_pool"

    def __post_init__(self) -> None:
        if self.mode not in ("max", "average"):
            raise ValueError(f"GlobalPool2DSpec mode must be 'max' or 'average', got {self.mode!r}.")

    def output_shape(self, input_shape: Shape) -> Shape:
        return (_require_image(input_shape, "GlobalPool2DSpec")[2],)

    def formula(self, input_shape: Shape) -> str:
        return "0 (no weights)"

    def receptive_field(self, field_size, jump, image_size):
        return _whole_image(field_size, image_size), jump


def _whole_image(field_size: tuple[int, int], image_size: tuple[int, int]) -> tuple[int, int]:
    """A layer that mixes every position sees at least the whole image."""
    return tuple(max(f, s) for f, s in zip(field_size, image_size))  # type: ignore[return-value]


@dataclass(frozen=True)
class FlattenSpec(LayerSpec):
    """Flatten an image-shaped tensor into one vector (a reshape, no weights)."""

    kind = "flatten"

    def output_shape(self, input_shape: Shape) -> Shape:
        return (math.prod(input_shape),)

    def formula(self, input_shape: Shape) -> str:
        return "0 (a reshape)"


@dataclass(frozen=True)
class DenseSpec(LayerSpec):
    """A fully connected layer of ``units`` neurons."""

    units: int
    activation: str | None = "relu"
    use_bias: bool = True

    kind = "dense"

    def output_shape(self, input_shape: Shape) -> Shape:
        _require_vector(input_shape, "DenseSpec")
        return (self.units,)

    def parameters(self, input_shape: Shape) -> int:
        return conv.dense_parameter_count(_require_vector(input_shape, "DenseSpec"), self.units, self.use_bias)

    def formula(self, input_shape: Shape) -> str:
        inputs = format_count(_require_vector(input_shape, "DenseSpec"))
        if self.use_bias:
            return f"({inputs} + 1) × {format_count(self.units)}"
        return f"{inputs} × {format_count(self.units)}"

    def macs(self, input_shape: Shape) -> int:
        return conv.dense_multiplies(_require_vector(input_shape, "DenseSpec"), self.units)

    def receptive_field(self, field_size, jump, image_size):
        return _whole_image(field_size, image_size), jump


@dataclass(frozen=True)
class DropoutSpec(LayerSpec):
    """Dropout: zero a fraction ``rate`` of the values during training (no weights)."""

    rate: float = 0.5

    kind = "dropout"

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate < 1.0:
            raise ValueError(f"DropoutSpec rate must be in [0, 1), got {self.rate}.")

    def formula(self, input_shape: Shape) -> str:
        return "0 (no weights)"


@dataclass(frozen=True)
class BatchNormSpec(LayerSpec):
    """Batch normalisation over the last axis: scale, shift, moving mean and moving variance per channel."""

    kind = "batch_norm"

    def parameters(self, input_shape: Shape) -> int:
        return 4 * input_shape[-1]

    def formula(self, input_shape: Shape) -> str:
        return f"4 × {format_count(input_shape[-1])} (γ, β trained; mean, variance tracked)"


@dataclass(frozen=True)
class ModelSpec:
    """A whole network: its name, one example's input shape, and its layers in order."""

    name: str
    input_shape: Shape
    layers: tuple[LayerSpec, ...]

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError(f"ModelSpec {self.name!r} has no layers; give it at least one LayerSpec.")
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        object.__setattr__(self, "layers", tuple(self.layers))

    def layer_names(self) -> list[str]:
        """Each layer's name, or ``<kind>_<position>`` where none was given."""
        return [layer.name or f"{layer.kind}_{index}" for index, layer in enumerate(self.layers, start=1)]


# --- The layer table ------------------------------------------------------------------


@dataclass(frozen=True)
class LayerAnatomy:
    """Everything the table says about one layer."""

    name: str
    kind: str
    output_shape: Shape
    parameters: int
    formula: str
    macs: int
    activation_values: int
    receptive_field: tuple[int, int]

    @property
    def activation_bytes(self) -> int:
        """Memory of this layer's output for one image in float32."""
        return self.activation_values * BYTES_PER_VALUE["float32"]


def analyse(spec: ModelSpec) -> list[LayerAnatomy]:
    """Walk through the layers once, carrying the shape and receptive field forward.

    The first row is the input itself, so the whole forward pass's activation memory sums from the table.
    """
    shape = spec.input_shape
    image_size = (shape[0], shape[1]) if len(shape) == 3 else (1, 1)
    field_size, jump = (1, 1), (1, 1)
    rows = [LayerAnatomy("input", "input", shape, 0, "0", 0, math.prod(shape), field_size)]
    for name, layer in zip(spec.layer_names(), spec.layers):
        try:
            output = layer.output_shape(shape)
            parameters, formula, macs = layer.parameters(shape), layer.formula(shape), layer.macs(shape)
        except ValueError as error:
            raise ValueError(f"Layer {name!r} of {spec.name!r} (input {shape}): {error}") from error
        field_size, jump = layer.receptive_field(field_size, jump, image_size)
        rows.append(LayerAnatomy(name, layer.kind, output, parameters, formula, macs,
                                 math.prod(output), field_size))
        shape = output
    return rows


def _format_field(field_size: tuple[int, int], image_size: tuple[int, int]) -> str:
    text = format_shape(field_size)
    if all(f >= s for f, s in zip(field_size, image_size)) and image_size != (1, 1):
        return f"{text} (whole image)"
    return text


def layer_table(spec: ModelSpec) -> pd.DataFrame:
    """The anatomy as a pandas table, one row per layer plus the input row.

    ``activation_bytes`` is float32 for one image; ``receptive_field`` is in input pixels.
    """
    image_size = tuple(spec.input_shape[:2]) if len(spec.input_shape) == 3 else (1, 1)
    records = [
        {
            "layer": row.name,
            "kind": row.kind,
            "output_shape": format_shape(row.output_shape),
            "parameters": row.parameters,
            "formula": row.formula if row.kind != "input" else "",
            "macs": row.macs,
            "activation_values": row.activation_values,
            "activation_bytes": row.activation_bytes,
            "receptive_field": _format_field(row.receptive_field, image_size),
        }
        for row in analyse(spec)
    ]
    return pd.DataFrame.from_records(records)


def total_parameters(spec: ModelSpec) -> int:
    """Sum of every layer's parameters."""
    return sum(row.parameters for row in analyse(spec))


# --- The same table from a built Keras model ------------------------------------------


def keras_example_shape(tensor_or_tensors: Any) -> Shape:
    """One example's shape (batch axis left out) of a layer's single input or output tensor."""
    import keras

    tensors = keras.tree.flatten(tensor_or_tensors)
    if len(tensors) != 1:
        raise ValueError(f"Expected one tensor, got {len(tensors)}.")
    shape = tuple(tensors[0].shape)[1:]
    if any(dimension is None for dimension in shape):
        raise ValueError(f"The shape {shape} has unknown sizes; build the model on a fixed input shape.")
    return tuple(int(dimension) for dimension in shape)


def keras_layer_table(model: Any) -> pd.DataFrame:
    """What Keras itself reports for each layer: name, class, output shape, parameter count.

    Sequential and single-input functional models; an input row always comes first, to line up with
    :func:`layer_table`.
    """
    if len(model.inputs) != 1:
        raise ValueError(
            f"keras_layer_table expects a model with one input, {model.name!r} has "
            f"{len(model.inputs)}. Compare multi-input models layer by layer instead."
        )
    records = [{"layer": "input", "keras_class": "InputLayer",
                "output_shape": format_shape(keras_example_shape(model.inputs[0])), "parameters": 0}]
    for layer in model.layers:
        if layer.__class__.__name__ == "InputLayer":
            continue
        records.append({
            "layer": layer.name,
            "keras_class": layer.__class__.__name__,
            "output_shape": format_shape(keras_example_shape(layer.output)),
            "parameters": int(layer.count_params()),
        })
    return pd.DataFrame.from_records(records)


def layer_signature(model: Any) -> pd.DataFrame:
    """Each layer's class, output shape and parameters, without names: models built alike give equal tables.

    The suite's fused batch norm is listed as ``BatchNormalization``: it is Keras's layer on a faster kernel.
    """
    table = keras_layer_table(model).drop(columns="layer")
    return table.replace({"keras_class": {"FusedBatchNormalization": "BatchNormalization"}})


def compare_with_keras(spec: ModelSpec, model: Any) -> pd.DataFrame:
    """Our table beside Keras's, row by row, with an ``agrees`` column.

    Different layer counts raise ``ValueError``: the rows cannot be paired, so the spec does not describe the model.
    """
    ours, theirs = layer_table(spec), keras_layer_table(model)
    if len(ours) != len(theirs):
        raise ValueError(
            f"The specification {spec.name!r} has {len(ours) - 1} layers but the Keras model "
            f"{model.name!r} has {len(theirs) - 1}; they do not describe the same network. "
            f"Check that every Keras layer (including Dropout and Flatten) has a LayerSpec."
        )
    table = pd.DataFrame({
        "layer": ours["layer"],
        "keras_layer": theirs["layer"],
        "output_shape": ours["output_shape"],
        "keras_output_shape": theirs["output_shape"],
        "parameters": ours["parameters"],
        "keras_parameters": theirs["parameters"],
    })
    table["agrees"] = (table["output_shape"] == table["keras_output_shape"]) & (
        table["parameters"] == table["keras_parameters"])
    return table


# --- Per-layer figures of any built Keras model (branches and nested models too) ------


def keras_leaf_layers(model: Any) -> list[Any]:
    """All layers of ``model``, looking inside nested models (a backbone inside a classifier)."""
    import keras

    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(keras_leaf_layers(layer))
        else:
            found.append(layer)
    return found


def keras_multiplying_layer_types() -> tuple[type, ...]:
    """The Keras layer classes whose work is multiply-accumulates: convolutions and Dense."""
    from keras import layers

    return (layers.Conv1D, layers.Conv2D, layers.Conv3D, layers.DepthwiseConv2D,
            layers.SeparableConv2D, layers.Dense)


def _keras_io_shapes(layer: Any) -> tuple[Shape, Shape]:
    """(input shape, output shape) of a layer inside a built model, with a clear error otherwise."""
    try:
        return keras_example_shape(layer.input), keras_example_shape(layer.output)
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"Cannot read the input/output shape of layer {layer.name!r} ({error}). Build the "
            "model on a known input shape first (start it with keras.Input(shape=...)), and do "
            "not reuse one layer object at several places in the graph."
        ) from error


def _window_multiplies(positions: int, kernel_size: Sequence[int], in_channels: int, filters: int) -> int:
    """:func:`utils.conv.conv_multiplies` for a convolution of any dimension (positions and kernel cells flattened)."""
    return conv.conv_multiplies(positions, 1, (math.prod(kernel_size), 1), in_channels, filters)


def keras_layer_macs(layer: Any) -> int:
    """Multiply-accumulates one image costs in a built Keras layer (0 for layers without multiplications).

    Convolution: ``kernel cells * input_channels / groups`` per output value; depthwise: kernel cells per output
    value; separable: depthwise plus a 1x1 pointwise conv; Dense: ``input_units`` per output unit and position.
    """
    from keras import layers

    if not isinstance(layer, keras_multiplying_layer_types()):
        return 0
    input_shape, output_shape = _keras_io_shapes(layer)
    if isinstance(layer, layers.Dense):
        return conv.dense_multiplies(input_shape[-1], output_shape[-1], math.prod(output_shape[:-1]))
    channels_last = getattr(layer, "data_format", "channels_last") == "channels_last"
    input_channels = input_shape[-1] if channels_last else input_shape[0]
    positions = math.prod(output_shape[:-1] if channels_last else output_shape[1:])
    if isinstance(layer, (layers.DepthwiseConv2D, layers.SeparableConv2D)):
        depthwise = input_channels * _window_multiplies(positions, layer.kernel_size, 1, layer.depth_multiplier)
        if isinstance(layer, layers.DepthwiseConv2D):
            return depthwise
        pointwise = _window_multiplies(positions, (1,), input_channels * layer.depth_multiplier, layer.filters)
        return depthwise + pointwise
    groups = getattr(layer, "groups", 1)
    return _window_multiplies(positions, layer.kernel_size, input_channels // groups, layer.filters)


def keras_activation_values(model: Any) -> int:
    """Number of values all layers output for one image (what training keeps); unreadable outputs are skipped."""
    total_values = 0
    for layer in keras_leaf_layers(model):
        try:
            total_values += math.prod(keras_example_shape(layer.output))
        except (AttributeError, ValueError):
            continue
    return total_values

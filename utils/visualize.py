"""What has a CNN learned? The layer taps, filters, activation maps and features notebook 07 looks at.

Grad-CAM, FGSM, gradient ascent, nearest neighbours and their figures are written out in notebook 07 itself. Every
function takes a built Keras model with a known input shape and images as it expects them (floats in [0, 1]).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# --- Finding layers -------------------------------------------------------------------


def _convolution_types() -> tuple[type, ...]:
    from keras import layers

    return (layers.Conv2D, layers.DepthwiseConv2D, layers.SeparableConv2D)


def _require_graph(model) -> None:
    """Raise a clear error when the model has no symbolic inputs (never built on an Input)."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ValueError(
            f"Model {model.name!r} has no defined input yet, so its layers cannot be tapped. "
            "Start it with keras.Input(shape=...) (or call model.build((None, height, width, "
            "channels)) on a Sequential model) before visualising it."
        )


def _model_input(model):
    """The model's symbolic input: the single tensor for one-input models, else the list."""
    _require_graph(model)
    return model.inputs[0] if len(model.inputs) == 1 else model.inputs


@dataclass
class SymbolicGraph:
    """One consistent symbolic graph of a model: its input and every top-level layer's input and output."""

    inputs: Any
    outputs: dict[str, Any]
    layer_inputs: dict[str, Any]

    def model(self, tapped):
        """A Keras model from the input to ``tapped`` (one tensor or a list)."""
        import keras

        return keras.Model(self.inputs, tapped)


def symbolic_graph(model) -> SymbolicGraph:
    """Tap points for ``model``, all taken from one graph so gradients flow between them (notebook 07's ascent).

    A Sequential model grown with ``add()`` leaves its layers' ``.input``/``.output`` in several graphs (a
    gradient between them is None), so its layers are applied once more to a fresh input; functional models
    already have one graph.
    """
    import keras

    _require_graph(model)
    if isinstance(model, keras.Sequential):
        inputs = keras.Input(shape=model.input_shape[1:], dtype=model.inputs[0].dtype)
        tensor, outputs, layer_inputs = inputs, {}, {}
        for layer in model.layers:
            layer_inputs[layer.name] = tensor
            tensor = layer(tensor)
            outputs[layer.name] = tensor
        return SymbolicGraph(inputs, outputs, layer_inputs)
    layers_with_nodes = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    return SymbolicGraph(_model_input(model), {layer.name: layer.output for layer in layers_with_nodes},
                         {layer.name: layer.input for layer in layers_with_nodes})


def convolution_layers(model) -> list:
    """The model's 2D convolution layers (Conv2D, DepthwiseConv2D, SeparableConv2D), in order."""
    return [layer for layer in model.layers if isinstance(layer, _convolution_types())]


def last_convolution_layer(model):
    """The last 2D convolution layer of the model: the layer Grad-CAM looks at by default.

    Its feature maps are the last with a spatial layout and the most class-specific. Raises ``ValueError``
    naming the fix when there is none at the top level (e.g. inside a nested backbone).
    """
    import keras

    found = convolution_layers(model)
    if found:
        return found[-1]
    nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
    hint = (f" Its convolutions are inside the nested model(s) {nested}: pass that model, or a "
            "layer_name of a top-level layer with a 4D output." if nested else "")
    raise ValueError(f"Model {model.name!r} has no Conv2D/DepthwiseConv2D/SeparableConv2D layer at its "
                     f"top level, so Grad-CAM has no feature maps to weigh.{hint}")


# --- First-layer filters and activation maps ------------------------------------------


def first_layer_filters(model) -> np.ndarray:
    """The first convolution's kernels as images, shape (filters, height, width, channels) in [0, 1].

    Each filter is stretched to [0, 1] on its own so its pattern shows whatever its scale; a constant one is 0.5.
    """
    layers_found = convolution_layers(model)
    if not layers_found:
        raise ValueError(f"Model {model.name!r} has no 2D convolution layer whose filters could be shown.")
    kernel = np.asarray(layers_found[0].kernel, dtype="float32")  # (kh, kw, in, out)
    filters = np.moveaxis(kernel, -1, 0)
    lowest = filters.min(axis=(1, 2, 3), keepdims=True)
    spread = filters.max(axis=(1, 2, 3), keepdims=True) - lowest
    return np.where(spread > 0, (filters - lowest) / np.where(spread > 0, spread, 1), 0.5)


def activation_model(model, layer_names: Sequence[str]):
    """A model from the same input to the outputs of ``layer_names`` (one output per name)."""
    _require_graph(model)
    missing = [name for name in layer_names if name not in {layer.name for layer in model.layers}]
    if missing:
        raise ValueError(f"No layer named {missing} in {model.name!r}; choose from "
                         f"{[layer.name for layer in model.layers]}.")
    graph = symbolic_graph(model)
    return graph.model([graph.outputs[name] for name in layer_names])


def activation_maps(model, images: np.ndarray, layer_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Outputs of the chosen layers (default: every convolution) for ``images``, by layer name."""
    names = list(layer_names or [layer.name for layer in convolution_layers(model)])
    outputs = activation_model(model, names)(np.asarray(images, "float32"), training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return {name: np.asarray(output, dtype="float32") for name, output in zip(names, outputs)}


# --- Pictures and features ----------------------------------------------------------------


def to_display(image: np.ndarray, stretch: bool = False) -> np.ndarray:
    """An image in [0, 1] clipped for ``imshow``; ``stretch`` spreads its own min..max over [0, 1] instead."""
    image = np.asarray(image, dtype="float32")
    low, high = (image.min(), image.max()) if stretch else (0.0, 1.0)
    return np.clip((image - low) / max(float(high - low), 1e-8), 0, 1)


def feature_extractor(model, layer_name: str | None = None):
    """A model from the input to a layer's output; by default to what enters the ``logits`` layer (else the last)."""
    graph = symbolic_graph(model)
    if layer_name and layer_name not in graph.outputs:
        raise ValueError(f"No layer named {layer_name!r} in {model.name!r}; choose from {list(graph.outputs)}.")
    classifier = "logits" if "logits" in graph.layer_inputs else model.layers[-1].name
    return graph.model(graph.outputs[layer_name] if layer_name else graph.layer_inputs[classifier])


def embed(extractor, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Feature vectors (flattened) of ``images`` from ``extractor``, shape (N, features)."""
    chunks = [np.asarray(extractor(np.asarray(images[start:start + batch_size], "float32"), training=False))
              for start in range(0, len(images), batch_size)]
    features = np.concatenate(chunks, axis=0)
    return features.reshape(len(features), -1).astype("float32")



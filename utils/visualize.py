"""What has a CNN learned? Filters, activations, ascent images, neighbours, and the figures of notebook 07.

Grad-CAM and FGSM are written out in notebook 07 itself; this module only draws their results. Every
function takes a built Keras model with a known input shape and images as it expects them (floats in
[0, 1]). Where a technique needs *scores* rather than probabilities, it reads what enters the model's final
softmax layer: those gradients do not vanish when the model is already sure, exactly when a probability saturates.
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
class _Graph:
    """One consistent symbolic graph of a model: its input and every top-level layer's input and output."""

    inputs: Any
    outputs: dict[str, Any]
    layer_inputs: dict[str, Any]

    def model(self, tapped):
        """A Keras model from the input to ``tapped`` (one tensor or a list)."""
        import keras

        return keras.Model(self.inputs, tapped)


def _graph(model) -> _Graph:
    """Tap points for ``model``, all taken from one graph so gradients flow between them.

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
        return _Graph(inputs, outputs, layer_inputs)
    layers_with_nodes = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    return _Graph(_model_input(model), {layer.name: layer.output for layer in layers_with_nodes},
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


def _class_scores(model, graph: _Graph):
    """The pre-softmax class scores: what enters the model's final softmax layer, else its output.

    The suite's classifiers end in a ``logits`` layer and a separate softmax layer, so the scores are a tensor
    of the graph; a softmax inside the last Dense layer (a model saved before that) is refused, not rebuilt.
    """
    from keras import layers

    last = model.layers[-1]
    if isinstance(last, layers.Dense) and getattr(last.activation, "__name__", "") == "softmax":
        raise ValueError(f"Model {model.name!r} applies its softmax inside its last Dense layer, so its class scores "
                         "are not a layer's output; end it in Dense(classes, name='logits') and "
                         "Activation('softmax') (models saved by older runs: train them again).")
    if isinstance(last, (layers.Softmax, layers.Activation)):
        return graph.layer_inputs[last.name]
    return graph.outputs[last.name]


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
    graph = _graph(model)
    return graph.model([graph.outputs[name] for name in layer_names])


def activation_maps(model, images: np.ndarray, layer_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Outputs of the chosen layers (default: every convolution) for ``images``, by layer name."""
    names = list(layer_names or [layer.name for layer in convolution_layers(model)])
    outputs = activation_model(model, names)(np.asarray(images, "float32"), training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return {name: np.asarray(output, dtype="float32") for name, output in zip(names, outputs)}


def plot_activation_maps(maps: dict[str, np.ndarray], image_index: int = 0, channels: int = 8,
                         title: str = ""):
    """One row per layer: the first ``channels`` feature maps of one image, each scaled on its own."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(maps), channels, figsize=(1.5 * channels, 1.7 * len(maps)), squeeze=False)
    for row, (name, values) in enumerate(maps.items()):
        for column in range(channels):
            axis = axes[row][column]
            axis.axis("off")
            if column >= values.shape[-1]:
                continue
            axis.imshow(values[image_index, :, :, column], cmap="viridis")
            if column == 0:
                axis.set_title(f"{name} {values.shape[1]}x{values.shape[2]}", fontsize=8, loc="left")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


# --- Grad-CAM -------------------------------------------------------------------------


def plot_grad_cam(images: np.ndarray, overlays: Sequence[np.ndarray], titles: Sequence[str],
                  title: str = "", cell_size: float = 1.7):
    """Images (top row) above their Grad-CAM overlays (bottom row), one caption per column.

    Constrained layout reserves room for every caption, so multi-line captions never run into an image.
    """
    import matplotlib.pyplot as plt

    columns = len(images)
    if columns == 0 or len(overlays) != columns or len(titles) != columns:
        raise ValueError(f"plot_grad_cam needs as many overlays and titles as images; got {columns} images, "
                         f"{len(overlays)} overlays and {len(titles)} titles.")
    figure, axes = plt.subplots(2, columns, figsize=(cell_size * columns, 2.5 * cell_size), squeeze=False,
                                layout="constrained")
    for column in range(columns):
        axes[0][column].imshow(to_display(images[column]).squeeze())
        axes[0][column].set_title(titles[column], fontsize=8)
        axes[1][column].imshow(overlays[column])
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
    axes[0][0].set_ylabel("image", fontsize=9)
    axes[1][0].set_ylabel("Grad-CAM", fontsize=9)
    if title:
        figure.suptitle(title)
    return figure


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45,
                    colormap: str = "jet") -> np.ndarray:
    """Blend a [0, 1] heatmap, coloured with ``colormap``, over an RGB or grayscale image in [0, 1]."""
    import matplotlib

    image = np.asarray(image, dtype="float32")
    if image.ndim == 2 or image.shape[-1] == 1:
        image = np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=-1)
    coloured = matplotlib.colormaps[colormap](np.clip(heatmap, 0, 1))[..., :3]
    return np.clip((1 - alpha) * image + alpha * coloured, 0, 1)


# --- Images that maximise a filter or a class (gradient ascent with regularisation) ---


@dataclass
class AscentResult:
    """Images found by gradient ascent (in [0, 1]) and their objectives per step.

    ``objective[step, target]`` is the objective before each step, the final value in the last row.
    """

    images: np.ndarray
    objective: np.ndarray
    targets: list[str]

    @property
    def image(self) -> np.ndarray:
        """The first (often only) image."""
        return self.images[0]


def _blur(images):
    """A 3x3 Gaussian blur per channel (a mild smoothness prior for the ascent)."""
    import tensorflow as tf

    kernel_1d = tf.constant([0.25, 0.5, 0.25])
    kernel = tf.tensordot(kernel_1d, kernel_1d, axes=0)[:, :, tf.newaxis, tf.newaxis]
    kernel = tf.tile(kernel, [1, 1, images.shape[-1], 1])
    # Mirror the border first: zero padding would darken the edges a little at every blur.
    padded = tf.pad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, kernel, strides=[1, 1, 1, 1], padding="VALID")


def _pre_activation_function(layer):
    """For a Conv2D with a non-linear activation: a function computing its output before the activation.

    Ascent on a ReLU output is stuck when the filter is silent on the start image (zero gradient); its
    pre-activation always has a gradient. None for other layers.
    """
    from keras import layers

    activation_name = getattr(getattr(layer, "activation", None), "__name__", "linear")
    if type(layer) is not layers.Conv2D or activation_name == "linear" or layer.data_format != "channels_last":
        return None

    def before_activation(inputs):
        values = layer.convolution_op(inputs, layer.kernel)
        return values + layer.bias if layer.use_bias else values
    return before_activation


def maximize_activation(model, layer_name: str | None = None, filter_index: int | Sequence[int] = 0,
                        class_index: int | Sequence[int] | None = None, steps: int = 60,
                        learning_rate: float = 0.02, l2_decay: float = 0.01,
                        total_variation_weight: float = 0.05, blur_every: int = 4, jitter: int = 1,
                        seed: int = 0) -> AscentResult:
    """Gradient ascent on the input: images that strongly excite chosen filters or classes.

    The objective is the mean activation of ``filter_index`` in ``layer_name`` (default: the last convolution,
    before its ReLU, so a filter silent on the grey start can still wake up), or ``class_index``'s pre-softmax
    score; a list of targets optimises one image each in a single batch.

    Unconstrained ascent makes high-frequency noise, so four regularisers keep images natural: total variation,
    L2 decay towards mid-grey, a light blur every ``blur_every`` steps and a random shift of up to ``jitter``
    pixels. Each step moves ``learning_rate`` times the gradient over its standard deviation.
    """
    import tensorflow as tf

    graph = _graph(model)
    if class_index is not None:
        chosen = np.atleast_1d(np.asarray(class_index, dtype="int32"))
        classes = model.output_shape[-1]
        if chosen.min() < 0 or chosen.max() >= classes:
            raise ValueError(f"class_index must be in 0..{classes - 1}, got {class_index}.")
        tapped, to_values = _class_scores(model, graph), lambda scores: tf.cast(scores, tf.float32)
        targets = [f"class {index}" for index in chosen]
    else:
        layer = model.get_layer(layer_name) if layer_name else last_convolution_layer(model)
        chosen = np.atleast_1d(np.asarray(filter_index, dtype="int32"))
        channels = layer.output.shape[-1]
        if chosen.min() < 0 or chosen.max() >= channels:
            raise ValueError(f"filter_index must be in 0..{channels - 1} for layer {layer.name!r}, "
                             f"got {filter_index}.")
        pre_activation = _pre_activation_function(layer)
        tapped = graph.layer_inputs[layer.name] if pre_activation else graph.outputs[layer.name]

        def to_values(values):
            values = pre_activation(values) if pre_activation else values
            return tf.reduce_mean(tf.cast(values, tf.float32), axis=(1, 2))
        targets = [f"{layer.name} filter {index}" for index in chosen]
    probe = graph.model(tapped)
    selected = tf.constant(chosen)

    def objectives(batch):
        return tf.gather(to_values(probe(batch, training=False)), selected, axis=1, batch_dims=1)

    generator = np.random.default_rng(seed)
    middle = 0.5  # mid-grey: images are in [0, 1]
    shape = (len(chosen), *model.input_shape[1:])
    start = middle + 0.05 * generator.standard_normal(shape)
    images = tf.Variable(start.astype("float32"))
    pixels_per_image = float(np.prod(shape[1:]))

    @tf.function
    def ascent_step(shift, blur):
        with tf.GradientTape() as tape:
            gains = objectives(tf.roll(images, shift=shift, axis=[1, 2]))
            smoothness = tf.image.total_variation(images) / pixels_per_image
            loss = tf.reduce_sum(-gains + total_variation_weight * smoothness)
        gradient = tape.gradient(loss, images)
        gradient = gradient / (tf.math.reduce_std(gradient, axis=[1, 2, 3], keepdims=True) + 1e-8)
        updated = images - learning_rate * gradient
        updated = middle + (updated - middle) * (1 - l2_decay)
        updated = tf.cond(blur, lambda: _blur(updated), lambda: updated)
        images.assign(tf.clip_by_value(updated, 0.0, 1.0))
        return gains

    history = []
    for step in range(steps):
        shift = generator.integers(-jitter, jitter + 1, size=2) if jitter else np.zeros(2)
        blur = bool(blur_every) and (step + 1) % blur_every == 0
        history.append(ascent_step(tf.constant(shift, tf.int32), tf.constant(blur)).numpy())
    history.append(objectives(tf.convert_to_tensor(images)).numpy())
    return AscentResult(images.numpy(), np.stack(history), targets)


def to_display(image: np.ndarray, stretch: bool = False) -> np.ndarray:
    """An image in [0, 1] clipped for ``imshow``; ``stretch`` spreads its own min..max over [0, 1] instead."""
    image = np.asarray(image, dtype="float32")
    low, high = (image.min(), image.max()) if stretch else (0.0, 1.0)
    return np.clip((image - low) / max(float(high - low), 1e-8), 0, 1)


# --- Adversarial examples: the fast gradient sign method ------------------------------


@dataclass
class AdversarialExamples:
    """Originals, their FGSM versions and what the model says about both (made by notebook 07's ``fgsm``)."""

    adversarial: np.ndarray
    perturbation: np.ndarray
    epsilon: float
    original_predictions: np.ndarray
    adversarial_predictions: np.ndarray
    original_confidence: np.ndarray
    adversarial_confidence: np.ndarray

    @property
    def flipped(self) -> np.ndarray:
        """True where the adversarial image is classified differently from the original."""
        return self.original_predictions != self.adversarial_predictions


def to_8bit(images: np.ndarray) -> np.ndarray:
    """Images in [0, 1] as they would be stored in an 8-bit file (PNG): uint8 levels 0-255.

    A perturbation under half a level is rounded away here, hence the notebook's FGSM steps of whole levels.
    """
    scaled = np.asarray(images, dtype="float64") * 255.0
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def plot_adversarial(original: np.ndarray, attack: AdversarialExamples, class_names: Sequence[str],
                     index: int = 0):
    """Original, the perturbation (magnified to fill the colour range) and the adversarial image."""
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(9, 3.4))
    original_label = class_names[attack.original_predictions[index]]
    adversarial_label = class_names[attack.adversarial_predictions[index]]
    magnified = 0.5 + attack.perturbation[index] / (2 * max(attack.epsilon, 1e-12))
    original_caption = f"original: {original_label}\n({attack.original_confidence[index]:.0%} sure)"
    perturbation_caption = (f"perturbation x{1 / max(2 * attack.epsilon, 1e-12):.0f}\n"
                            f"(each pixel +/- {attack.epsilon * 255:.3g}/255)")  # 2/255, not 2.0/255
    adversarial_caption = f"adversarial: {adversarial_label}\n({attack.adversarial_confidence[index]:.0%} sure)"
    panels = [
        (to_display(original), original_caption),
        (np.clip(magnified, 0, 1), perturbation_caption),
        (to_display(attack.adversarial[index]), adversarial_caption),
    ]
    for axis, (picture, caption) in zip(axes, panels):
        axis.imshow(picture.squeeze(), cmap="gray" if picture.shape[-1] == 1 else None)
        axis.set_title(caption, fontsize=9)
        axis.axis("off")
    figure.tight_layout()
    return figure


# --- Nearest neighbours: feature space vs pixel space ---------------------------------


def feature_extractor(model, layer_name: str | None = None):
    """A model from the input to a layer's output; by default to what enters the ``logits`` layer (else the last)."""
    graph = _graph(model)
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


def nearest_neighbours(queries: np.ndarray, database: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Indices and Euclidean distances of each query's ``k`` closest database rows (closest first).

    Items are flattened, so raw images give pixel-space neighbours.
    """
    queries = np.asarray(queries, "float64").reshape(len(queries), -1)
    database = np.asarray(database, "float64").reshape(len(database), -1)
    if queries.shape[1] != database.shape[1]:
        raise ValueError(f"Queries have {queries.shape[1]} values each but the database has "
                         f"{database.shape[1]}; embed both with the same extractor.")
    if not 1 <= k <= len(database):
        raise ValueError(f"k must be between 1 and the database size {len(database)}, got {k}.")
    squared = ((queries ** 2).sum(1)[:, None] - 2 * queries @ database.T + (database ** 2).sum(1)[None, :])
    distances = np.sqrt(np.maximum(squared, 0))
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(distances, order, axis=1)


def neighbour_label_agreement(neighbour_indices: np.ndarray, query_labels: np.ndarray,
                              database_labels: np.ndarray) -> float:
    """Fraction of all returned neighbours that share their query's label."""
    return float((np.asarray(database_labels)[neighbour_indices] == np.asarray(query_labels)[:, None]).mean())


def plot_neighbours(query_images: np.ndarray, database_images: np.ndarray,
                    neighbour_sets: dict[str, np.ndarray], class_names: Sequence[str] | None = None,
                    database_labels: np.ndarray | None = None, query_labels: np.ndarray | None = None):
    """For each query a row per neighbour set ("feature space", "pixel space"): query then neighbours."""
    import matplotlib.pyplot as plt

    k = next(iter(neighbour_sets.values())).shape[1]
    rows = len(query_images) * len(neighbour_sets)
    figure, axes = plt.subplots(rows, k + 1, figsize=(1.4 * (k + 1), 1.55 * rows), squeeze=False)

    def label_of(labels, index):
        if labels is None or class_names is None:
            return ""
        return class_names[int(labels[index])]

    row = 0
    for query_index, query in enumerate(query_images):
        for space, indices in neighbour_sets.items():
            axes[row][0].imshow(to_display(query).squeeze(), cmap="gray" if query.shape[-1] == 1 else None)
            axes[row][0].set_title(f"{space}\nquery: {label_of(query_labels, query_index)}", fontsize=7)
            for column, neighbour in enumerate(indices[query_index], start=1):
                picture = to_display(database_images[neighbour])
                axes[row][column].imshow(picture.squeeze(), cmap="gray" if picture.shape[-1] == 1 else None)
                axes[row][column].set_title(label_of(database_labels, neighbour), fontsize=7)
            row += 1
    for axis in axes.flat:
        axis.axis("off")
    figure.tight_layout()
    return figure

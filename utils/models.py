"""Model recipes: the course's networks as specifications, and a Keras builder for them (notebooks 02, 04).

Each recipe is a :class:`utils.anatomy.ModelSpec` (shapes, parameters and compute without Keras), which
:func:`build_from_spec` turns into a Keras model with a float32 softmax (stable under mixed precision).
Recipes: the course's MNIST CNN, a CIFAR-sized network, LeNet-5 and the VGG family.
"""

from __future__ import annotations

from typing import Any

from utils.anatomy import (
    BatchNormSpec,
    Conv2DSpec,
    DenseSpec,
    DropoutSpec,
    FlattenSpec,
    GlobalPool2DSpec,
    LayerSpec,
    ModelSpec,
    Pool2DSpec,
)

MNIST_INPUT_SHAPE = (28, 28, 1)


def mnist_cnn_spec(input_shape: tuple[int, int, int] = MNIST_INPUT_SHAPE, num_classes: int = 10) -> ModelSpec:
    """The course's MNIST network: two 3x3 convs, a 2x2 max pool, Dense(128), softmax, with dropout.

    1,199,882 parameters on 28x28x1 digits, 1,179,776 of them in the Dense layer reading 9,216 values.
    """
    layers: tuple[LayerSpec, ...] = (
        Conv2DSpec(32, 3, activation="relu", name="conv1"),
        Conv2DSpec(64, 3, activation="relu", name="conv2"),
        Pool2DSpec(2, name="pool"),
        DropoutSpec(0.25, name="dropout1"),
        FlattenSpec(name="flatten"),
        DenseSpec(128, activation="relu", name="dense"),
        DropoutSpec(0.5, name="dropout2"),
        DenseSpec(num_classes, activation="softmax", name="predictions"),
    )
    return ModelSpec("mnist_cnn", input_shape, layers)


CIFAR_STYLE_HEADS = ("flatten", "global_max_pooling")


def cifar_style_spec(head: str = "flatten", input_shape: tuple[int, int, int] = (32, 32, 3),
                     num_classes: int = 10) -> ModelSpec:
    """The textbook's CIFAR-sized CNN: Conv32-Conv32-Pool-Conv64-Conv64-Pool-Conv64, Dense 1024, Dense 10.

    3x3 valid convs. ``head="flatten"`` feeds 576 values to Dense(1024) (703,594 parameters);
    ``"global_max_pooling"`` keeps each channel's maximum, 64 values (179,306 parameters).
    """
    if head not in CIFAR_STYLE_HEADS:
        raise ValueError(f"head must be one of {CIFAR_STYLE_HEADS}, got {head!r}.")
    reducer: LayerSpec = FlattenSpec(name="flatten") if head == "flatten" else GlobalPool2DSpec("max", name="global_max_pool")
    layers = (
        Conv2DSpec(32, 3, name="conv1"),
        Conv2DSpec(32, 3, name="conv2"),
        Pool2DSpec(2, name="pool1"),
        Conv2DSpec(64, 3, name="conv3"),
        Conv2DSpec(64, 3, name="conv4"),
        Pool2DSpec(2, name="pool2"),
        Conv2DSpec(64, 3, name="conv5"),
        reducer,
        DenseSpec(1024, name="dense"),
        DenseSpec(num_classes, activation="softmax", name="predictions"),
    )
    return ModelSpec(f"cifar_style_{head}", input_shape, layers)


def lenet5_spec(input_shape: tuple[int, int, int] = (32, 32, 1), filters: tuple[int, int] = (6, 16),
                num_classes: int = 10, activation: str = "tanh") -> ModelSpec:
    """LeNet-5 in its classic form: 5x5 valid convs, 2x2 average pooling, Dense 120-84, softmax.

    The defaults are LeCun's (61,706 parameters); ``input_shape=(32, 32, 3), filters=(8, 16)`` gives the lecture
    notes' table. Partial C3 connections, trainable pooling and the RBF output are left out, as usual today.
    """
    first, second = filters
    layers = (
        Conv2DSpec(first, 5, activation=activation, name="conv1"),
        Pool2DSpec(2, mode="average", name="pool1"),
        Conv2DSpec(second, 5, activation=activation, name="conv2"),
        Pool2DSpec(2, mode="average", name="pool2"),
        FlattenSpec(name="flatten"),
        DenseSpec(120, activation=activation, name="fc3"),
        DenseSpec(84, activation=activation, name="fc4"),
        DenseSpec(num_classes, activation="softmax", name="predictions"),
    )
    return ModelSpec("lenet5", input_shape, layers)


# Filters per conv layer, "M" for a 2x2 max pool: the configurations A, B, D, E of Simonyan & Zisserman.
VGG_CONFIGURATIONS: dict[int, tuple[int | str, ...]] = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"),
}


def vgg_spec(depth: int = 16, input_shape: tuple[int, int, int] = (224, 224, 3),
             num_classes: int = 1000, fully_connected_units: int = 4096) -> ModelSpec:
    """VGG-``depth`` as a specification: 3x3 same convs (stride 1), 2x2 max pools, FC 4096-4096-classes.

    Layer names follow ``keras.applications.VGG16``, so the two builds compare row by row.
    """
    if depth not in VGG_CONFIGURATIONS:
        raise ValueError(f"VGG depth must be one of {sorted(VGG_CONFIGURATIONS)}, got {depth!r}.")
    layers: list[LayerSpec] = []
    block, conv_in_block = 1, 0
    for item in VGG_CONFIGURATIONS[depth]:
        if item == "M":
            layers.append(Pool2DSpec(2, strides=2, name=f"block{block}_pool"))
            block, conv_in_block = block + 1, 0
        else:
            conv_in_block += 1
            layers.append(Conv2DSpec(int(item), 3, padding="same", name=f"block{block}_conv{conv_in_block}"))
    layers += [
        FlattenSpec(name="flatten"),
        DenseSpec(fully_connected_units, name="fc1"),
        DenseSpec(fully_connected_units, name="fc2"),
        DenseSpec(num_classes, activation="softmax", name="predictions"),
    ]
    return ModelSpec(f"vgg{depth}", input_shape, tuple(layers))


def _keras_layer(layer: LayerSpec, name: str, kernel_initializer: str, is_last: bool) -> Any:
    """One LayerSpec as a Keras layer; the output softmax is kept in float32."""
    from keras import layers

    if isinstance(layer, Conv2DSpec):
        return layers.Conv2D(layer.filters, layer.kernel_size, strides=layer.strides, padding=layer.padding,
                             activation=layer.activation, use_bias=layer.use_bias,
                             kernel_initializer=kernel_initializer, name=name)
    if isinstance(layer, Pool2DSpec):
        pooling = layers.MaxPooling2D if layer.mode == "max" else layers.AveragePooling2D
        return pooling(layer.pool_size, strides=layer.strides, padding=layer.padding, name=name)
    if isinstance(layer, GlobalPool2DSpec):
        pooling = layers.GlobalMaxPooling2D if layer.mode == "max" else layers.GlobalAveragePooling2D
        return pooling(name=name)
    if isinstance(layer, FlattenSpec):
        return layers.Flatten(name=name)
    if isinstance(layer, DenseSpec):
        keep_float32 = layer.activation == "softmax" or is_last
        return layers.Dense(layer.units, activation=layer.activation, use_bias=layer.use_bias,
                            kernel_initializer=kernel_initializer, name=name,
                            **({"dtype": "float32"} if keep_float32 else {}))
    if isinstance(layer, DropoutSpec):
        return layers.Dropout(layer.rate, name=name)
    if isinstance(layer, BatchNormSpec):
        return layers.BatchNormalization(name=name)
    raise TypeError(f"build_from_spec does not know how to build {type(layer).__name__}; add it to utils/models.py.")


def build_from_spec(spec: ModelSpec, kernel_initializer: str = "glorot_uniform") -> Any:
    """Build a Keras model (functional API) that has exactly the layers of ``spec``.

    ``kernel_initializer="zeros"`` makes building a large network just to count it several times faster.
    """
    import keras

    inputs = keras.Input(shape=spec.input_shape, name="input")
    outputs = inputs
    names = spec.layer_names()
    for index, (name, layer) in enumerate(zip(names, spec.layers)):
        outputs = _keras_layer(layer, name, kernel_initializer, is_last=index == len(names) - 1)(outputs)
    return keras.Model(inputs, outputs, name=spec.name)


def build_vgg(depth: int = 16, kernel_initializer: str = "glorot_uniform", **spec_options: Any) -> Any:
    """VGG-``depth`` built from :func:`vgg_spec` (about 0.5 GB of float32 weights for VGG-16; free it after use)."""
    return build_from_spec(vgg_spec(depth, **spec_options), kernel_initializer=kernel_initializer)

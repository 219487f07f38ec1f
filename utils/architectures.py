"""Measuring CNN architectures: parameters, depth, operations, speed and memory (notebook 06).

Notebook 06 compares ``keras.applications`` models in the spirit of Canziani, Paszke and Culurciello (2017),
"An Analysis of Deep Neural Network Models for Practical Applications": accuracy against operations,
inference time against batch size, and memory. Models are built with ``weights=None``: only the architecture
matters for these figures.

Operations: :func:`count_macs` adds up, over every convolution and Dense layer, output values times the
multiplications each needs (one MAC = one multiplication plus one addition); biases, batch norm, activations,
pooling and additions are left out (a few percent). :func:`profiler_macs` checks it independently with
TensorFlow's graph profiler. The per-layer formulas live in :mod:`utils.conv` and :mod:`utils.anatomy`; notebook
06 builds its three building blocks on the page and checks formula, layer count and profiler agree before timing.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from utils import anatomy, runtime

# --- Published reference figures ------------------------------------------------------

PUBLISHED_ACCURACY_SOURCE = (
    "Keras Applications documentation, 'Available models' table (keras.io/api/applications/): "
    "ImageNet 2012 validation set, single centre crop, Keras' own pretrained weights"
)

#: Top-1/top-5 ImageNet accuracies, parameters (millions) and "depth" (layers with weights, batch norm included)
#: exactly as printed in the Keras Applications table named in PUBLISHED_ACCURACY_SOURCE.
PUBLISHED_IMAGENET: dict[str, dict[str, float]] = {
    "VGG16": {"top1": 0.713, "top5": 0.901, "parameters_millions": 138.4, "depth": 16},
    "VGG19": {"top1": 0.713, "top5": 0.900, "parameters_millions": 143.7, "depth": 19},
    "ResNet50": {"top1": 0.749, "top5": 0.921, "parameters_millions": 25.6, "depth": 107},
    "ResNet101": {"top1": 0.764, "top5": 0.928, "parameters_millions": 44.7, "depth": 209},
    "InceptionV3": {"top1": 0.779, "top5": 0.937, "parameters_millions": 23.9, "depth": 189},
    "Xception": {"top1": 0.790, "top5": 0.945, "parameters_millions": 22.9, "depth": 81},
    "MobileNet": {"top1": 0.704, "top5": 0.895, "parameters_millions": 4.3, "depth": 55},
    "MobileNetV2": {"top1": 0.713, "top5": 0.901, "parameters_millions": 3.5, "depth": 105},
    "DenseNet121": {"top1": 0.750, "top5": 0.923, "parameters_millions": 8.1, "depth": 242},
    "EfficientNetB0": {"top1": 0.771, "top5": 0.933, "parameters_millions": 5.3, "depth": 132},
}


def published_accuracy_table() -> pd.DataFrame:
    """The reference table as a DataFrame (one row per model), with a ``source`` column."""
    table = pd.DataFrame.from_dict(PUBLISHED_IMAGENET, orient="index")
    table.index.name = "model"
    table = table.reset_index()
    table["source"] = PUBLISHED_ACCURACY_SOURCE
    return table


#: Native input sizes of the applications compared in notebook 06.
APPLICATION_INPUT_SIZES: dict[str, int] = {
    "VGG16": 224,
    "VGG19": 224,
    "ResNet50": 224,
    "ResNet101": 224,
    "InceptionV3": 299,
    "Xception": 299,
    "MobileNet": 224,
    "MobileNetV2": 224,
    "DenseNet121": 224,
    "EfficientNetB0": 224,
}


def build_application(name: str, input_size: int | None = None):
    """Build ``keras.applications.<name>`` with random weights and its top, at its native size unless ``input_size``.

    Nothing is downloaded: parameters, operations and speed depend only on the architecture.
    """
    import keras

    if name not in APPLICATION_INPUT_SIZES:
        raise ValueError(
            f"Unknown application {name!r}. Choose one of {sorted(APPLICATION_INPUT_SIZES)} "
            "or add its native input size to APPLICATION_INPUT_SIZES in utils/architectures.py."
        )
    size = input_size or APPLICATION_INPUT_SIZES[name]
    constructor = getattr(keras.applications, name)
    return constructor(weights=None, include_top=True, input_shape=(size, size, 3))


# --- Counting multiply-accumulates by walking the layers ------------------------------


def count_macs(model) -> int:
    """Total multiply-accumulates per image of the convolution and Dense layers (see module doc)."""
    return int(sum(anatomy.keras_layer_macs(layer) for layer in anatomy.keras_leaf_layers(model)))


def profiler_macs(model, input_shape: tuple[int, ...] | None = None) -> int:
    """MACs per image measured by TensorFlow's graph profiler (independent of :func:`count_macs`).

    Half the floating-point operations of every Conv2D, DepthwiseConv2dNative and MatMul op of a one-image trace.
    """
    import tensorflow as tf

    shape = tuple(input_shape or model.input_shape[1:])
    traced = tf.function(lambda images: model(images, training=False))
    graph = traced.get_concrete_function(tf.TensorSpec((1, *shape), tf.float32)).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    options["account_type_regexes"] = ["Conv2D", "DepthwiseConv2dNative", "MatMul"]
    with _quiet_tensorflow():  # the v1 profiler warns about its own deprecated internals
        report = tf.compat.v1.profiler.profile(graph=graph, options=options)
    return int(report.total_float_ops // 2)


@contextlib.contextmanager
def _quiet_tensorflow():
    """Hide TensorFlow's Python warnings (deprecations, deliberate retracing) inside the block."""
    import tensorflow as tf

    logger = tf.get_logger()
    previous_level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(previous_level)


# --- Parameters, depth, memory --------------------------------------------------------


def weighted_layer_count(model) -> int:
    """Number of layers that hold weights: the Keras Applications table's "depth" (ResNet50 107, its BN included)."""
    return sum(1 for layer in anatomy.keras_leaf_layers(model) if layer.weights)


def longest_path_depth(model) -> int:
    """Convolution and Dense layers on the longest input-to-output path (the "paper" depth).

    ResNet50 gives 50 (its projection shortcuts run beside the main path), VGG16 16; walks the functional graph
    through the Keras history on each layer's input tensors.
    """
    import keras
    from keras import layers as keras_layers

    counted = anatomy.keras_multiplying_layer_types()
    depth_after: dict[int, int] = {}
    for layer in anatomy.keras_leaf_layers(model):
        if isinstance(layer, keras_layers.InputLayer):
            depth_after[id(layer)] = 0
            continue
        parents = [tensor._keras_history.operation for tensor in keras.tree.flatten(layer.input)
                   if hasattr(tensor, "_keras_history")]
        start = max((depth_after.get(id(parent), 0) for parent in parents), default=0)
        depth_after[id(layer)] = start + (1 if isinstance(layer, counted) else 0)
    return max(depth_after.values(), default=0)


def weights_megabytes(model) -> float:
    """Memory the model's weights occupy (MiB), from their sizes and dtypes."""
    weight_bytes = sum(np.prod(weight.shape) * np.dtype(weight.dtype).itemsize for weight in model.weights)
    return float(weight_bytes) / anatomy.MEBIBYTE


def activations_megabytes(model, bytes_per_value: int = 4) -> float:
    """Sum of every layer's output size for one image (MiB): what training would have to keep.

    Inference frees most activations early, so the measured peak (:func:`measure_application_memory`) is lower
    per image, while scratch space and weights add to it.
    """
    return anatomy.keras_activation_values(model) * bytes_per_value / anatomy.MEBIBYTE


def _proc_status_kib(field: str) -> int | None:
    """A ``VmRSS``/``VmHWM`` figure from ``/proc/self/status`` in KiB (None where unavailable)."""
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def _reset_high_water_mark() -> bool:
    """Reset the process's resident-set high-water mark (Linux only); True when it worked."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _memory_probe(name: str, batch_size: int, input_size: int | None = None) -> dict[str, Any]:
    """Runs inside a fresh process: memory to build ``name`` and run one batch through it.

    On a GPU the allocator's peak; on a Linux CPU the resident set's growth from just after importing TensorFlow
    to its peak in the forward pass.
    """
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        tf.config.experimental.reset_memory_stats("GPU:0")
        model = build_application(name, input_size)
        np.asarray(model(tf.zeros((batch_size, *model.input_shape[1:])), training=False))
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        return {"peak_mb": peak / anatomy.MEBIBYTE, "method": "GPU allocator peak in a fresh process"}
    np.asarray(tf.reduce_sum(tf.zeros((2, 2))))  # start TensorFlow's runtime before the baseline
    baseline = _proc_status_kib("VmRSS")
    if baseline is None or not _reset_high_water_mark():
        return {"peak_mb": None, "method": "not measurable on this platform"}
    model = build_application(name, input_size)
    np.asarray(model(tf.zeros((batch_size, *model.input_shape[1:])), training=False))
    high_water = _proc_status_kib("VmHWM")
    return {"peak_mb": (high_water - baseline) / 1024,
            "method": "CPU resident-set peak growth in a fresh process"}


def measure_application_memory(name: str, batch_size: int, input_size: int | None = None,
                               timeout_seconds: int = 600) -> tuple[float | None, str]:
    """Peak memory (MiB) of building ``name`` and running one batch, measured in a fresh process.

    TensorFlow's allocator keeps freed memory, so inside a notebook a second model would look almost free.
    Returns ``(None, reason)`` where the platform offers no way to measure.
    """
    import json
    import subprocess

    if name not in APPLICATION_INPUT_SIZES:
        raise ValueError(f"Unknown application {name!r}; choose one of {sorted(APPLICATION_INPUT_SIZES)}.")
    from utils import runtime

    environment = dict(os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(runtime.project_root()),
                                                              environment.get("PYTHONPATH")]))
    environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    completed = subprocess.run(
        [sys.executable, "-m", "utils.architectures", "memory-probe", name, str(batch_size),
         str(input_size or APPLICATION_INPUT_SIZES[name])],
        check=False, capture_output=True, text=True, timeout=timeout_seconds, env=environment,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    if completed.returncode != 0 or not lines:
        last_error = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"memory probe failed: {last_error}"
    answer = json.loads(lines[-1])
    return answer["peak_mb"], answer["method"]


# --- Timing ---------------------------------------------------------------------------


@dataclass
class TimingResult:
    """Inference time for one batch size (all times in seconds unless the name says ms)."""

    batch_size: int
    median_batch_seconds: float
    fastest_batch_seconds: float
    slowest_batch_seconds: float
    repeats: int

    @property
    def milliseconds_per_image(self) -> float:
        """Median time of a batch divided by its size, in milliseconds."""
        return 1000 * self.median_batch_seconds / self.batch_size


def time_inference(model, batch_sizes: list[int], repeats: int = 5, warmup: int = 2,
                   seed: int = 0) -> list[TimingResult]:
    """Median inference time per batch size on the current device (random input images).

    One ``tf.function`` per batch size; ``warmup`` calls (at least one) are not timed. Timed calls are
    interleaved across batch sizes, so a neighbour's passing load hits every size alike, and the median of
    ``repeats`` rounds is kept: on a shared machine a slow call says more about the neighbours than the model.
    """
    import tensorflow as tf

    if repeats < 1 or warmup < 0:
        raise ValueError(f"Need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}.")
    forward = tf.function(lambda images: model(images, training=False), reduce_retracing=True)
    generator = np.random.default_rng(seed)
    inputs = {batch_size: tf.constant(generator.uniform(0, 1, (batch_size, *model.input_shape[1:])).astype("float32"))
              for batch_size in batch_sizes}
    with _quiet_tensorflow():  # one trace per batch size is intended, not a retracing accident
        for images in inputs.values():
            for _ in range(max(1, warmup)):
                np.asarray(forward(images))
    durations: dict[int, list[float]] = {batch_size: [] for batch_size in batch_sizes}
    for _ in range(repeats):
        for batch_size, images in inputs.items():
            started = time.perf_counter()
            np.asarray(forward(images))  # copying the result back also waits for a GPU to finish
            durations[batch_size].append(time.perf_counter() - started)
    return [TimingResult(batch_size, statistics.median(values), min(values), max(values), repeats)
            for batch_size, values in durations.items()]


def timing_table(model_name: str, timings: list[TimingResult]) -> pd.DataFrame:
    """Timings as a DataFrame, one row per batch size, ready to plot or save."""
    return pd.DataFrame([{
        "model": model_name,
        "batch_size": timing.batch_size,
        "ms_per_image": timing.milliseconds_per_image,
        "fastest_ms_per_image": 1000 * timing.fastest_batch_seconds / timing.batch_size,
        "median_batch_ms": 1000 * timing.median_batch_seconds,
        "fastest_batch_ms": 1000 * timing.fastest_batch_seconds,
        "slowest_batch_ms": 1000 * timing.slowest_batch_seconds,
        "repeats": timing.repeats,
    } for timing in timings])


def machine_load() -> str:
    """The 1-minute load average against the core count, printed beside timings on shared machines."""
    cores = os.cpu_count() or 1
    if hasattr(os, "getloadavg"):
        return f"load average {os.getloadavg()[0]:.2f} on {cores} cores"
    return f"{cores} cores (load average unavailable)"


# --- One application, measured --------------------------------------------------------


def profile_model(name: str, model, batch_sizes: list[int], repeats: int = 5,
                  warmup: int = 2) -> tuple[dict[str, Any], pd.DataFrame]:
    """Every static and timing figure notebook 06 reports for one built model: a summary row and the timing table."""
    timings = time_inference(model, batch_sizes, repeats=repeats, warmup=warmup)
    summary: dict[str, Any] = {
        "model": name,
        "input_size": model.input_shape[1],
        "parameters": int(model.count_params()),
        "weighted_layers": weighted_layer_count(model),
        "conv_dense_depth": longest_path_depth(model),
        "macs_per_image": count_macs(model),
        "weights_mb": round(weights_megabytes(model), 3),
        "activations_mb_per_image": round(activations_megabytes(model), 3),
        "profiler_macs_per_image": profiler_macs(model),
    }
    for timing in timings:
        summary[f"ms_per_image_batch{timing.batch_size}"] = round(timing.milliseconds_per_image, 2)
    return summary, timing_table(name, timings)


def profile_application(name: str, batch_sizes: list[int], repeats: int = 5, warmup: int = 2,
                        measure_memory: bool = True) -> tuple[dict[str, Any], pd.DataFrame]:
    """Build one ``keras.applications`` model, measure it with :func:`profile_model`, free it.

    One model at a time, so a 2-core laptop never holds VGG16 and DenseNet at once; with ``measure_memory`` the
    peak memory of one batch of the largest size is measured in a fresh process.
    """
    runtime.clear_session_keeping_precision()
    started = time.perf_counter()
    model = build_application(name)
    build_seconds = time.perf_counter() - started
    try:
        summary, timings = profile_model(name, model, batch_sizes, repeats, warmup)
    finally:
        del model
        runtime.clear_session_keeping_precision()
    summary["build_seconds"] = round(build_seconds, 2)
    if measure_memory:
        largest = max(batch_sizes)
        peak, method = measure_application_memory(name, largest)
        summary["memory_batch_size"] = largest
        summary["peak_memory_mb"] = None if peak is None else round(peak, 1)
        summary["memory_method"] = method
    return summary, timings


def _main(arguments: list[str]) -> int:
    """``python -m utils.architectures memory-probe NAME BATCH [SIZE]``: print the probe's JSON line."""
    import json

    if len(arguments) not in (3, 4) or arguments[0] != "memory-probe":
        print("usage: python -m utils.architectures memory-probe MODEL_NAME BATCH_SIZE [INPUT_SIZE]",
              file=sys.stderr)
        return 2
    input_size = int(arguments[3]) if len(arguments) == 4 else None
    print(json.dumps(_memory_probe(arguments[1], int(arguments[2]), input_size)))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

"""tf.data input pipelines, and plain-language errors when a file cannot be decoded inside one.

``make_pipeline`` feeds uint8 arrays; ``make_file_pipeline`` decodes image files. A file can still change
on disk after the loaders' check, or come from your own list of paths; TensorFlow then stops ``fit`` with
``InvalidArgumentError: jpeg::Uncompress failed`` and no file name. So file pipelines remember their paths,
and :func:`explain_decode_failure` turns such an error into one :class:`ImageDecodeError` paragraph naming
the file and the fix (shown in place of the traceback in a notebook).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from utils import runtime
from utils.data.image_files import image_file_problem, worker_count
from utils.data.records import DataFormatError, ImageDecodeError

# Words TensorFlow's decoders put in their errors (jpeg, png, gif and format sniffing).
DECODE_FAILURE_MARKERS = ("DecodeImage", "decode_image", "Uncompress failed", "Unknown image file format",
                          "Input is empty", "Invalid PNG", "Invalid GIF", "Invalid JPEG")
DECODER_REASON = re.compile(r"(jpeg::Uncompress failed|Unknown image file format|Input is empty|Invalid (PNG|GIF|JPEG)"
                            r"|Number of channels)[^\[\n]*")
FILES_NAMED_IN_ERROR = 5
_file_pipeline_paths: dict[str, None] = {}  # every path a file pipeline of this process reads, in order


def is_decode_failure(error: BaseException) -> bool:
    """True when ``error`` is TensorFlow failing to decode an image (and not some other problem)."""
    return type(error).__name__ == "InvalidArgumentError" and any(
        marker in str(error) for marker in DECODE_FAILURE_MARKERS)


def _tensorflow_reason(error: BaseException) -> str:
    """The decoder's own words ("jpeg::Uncompress failed. Invalid JPEG data or crop window"), without node names."""
    found = DECODER_REASON.search(str(error))
    return found.group(0).strip(" .") if found else "TensorFlow's image decoder failed"


def explain_decode_failure(error: BaseException) -> ImageDecodeError | None:
    """One paragraph for a TensorFlow image-decoding error: which file(s) fail now, and how to fix it.

    None for any other error. The files are found by checking every path this process's file pipelines read.
    """
    if not is_decode_failure(error):
        return None
    from concurrent.futures import ThreadPoolExecutor

    paths = list(_file_pipeline_paths)
    with ThreadPoolExecutor(max_workers=worker_count()) as pool:
        problems = list(pool.map(image_file_problem, paths, chunksize=64))
    bad = [(path, problem) for path, problem in zip(paths, problems) if problem]
    reason = _tensorflow_reason(error)
    if bad:
        named = "; ".join(f"{path} ({problem})" for path, problem in bad[:FILES_NAMED_IN_ERROR])
        more = f"; and {len(bad) - FILES_NAMED_IN_ERROR} more" if len(bad) > FILES_NAMED_IN_ERROR else ""
        which = f"The file that fails is: {named}{more}." if len(bad) == 1 else f"The files that fail are: {named}{more}."
    else:
        which = (f"All {len(paths):,} files this session's pipelines read decode now, so the bad file was "
                 f"probably replaced since the error; rerunning may simply work.")
    return ImageDecodeError(
        f"TensorFlow could not decode an image while reading a tf.data pipeline ({reason}). {which} "
        f"A file like this is cut short, empty, or not an image at all; it changed after the dataset was loaded "
        f"or came from a list of paths that never went through the loaders' check. To fix it, delete or replace "
        f"the file (or copy the dataset again), then rerun from the cell that loads the data: the loaders "
        f"(data.load_flowers, data.load_image_folder, data.load_cifar10) check every file and skip and list "
        f"the ones that do not decode.")


def _explain_in_notebook(shell: Any, error_type: type, error: BaseException, traceback: Any,
                         tb_offset: int | None = None) -> list[str]:
    """IPython exception handler: our paragraph for decode failures, the usual traceback otherwise (it shows both)."""
    explained = explain_decode_failure(error)
    if explained is None:
        shown = shell.InteractiveTB.structured_traceback(error_type, error, traceback, tb_offset=tb_offset)
        shell._showtraceback(error_type, error, shown)
        return shown
    shown = [f"{type(explained).__name__}: {explained}"]
    shell._showtraceback(type(explained), explained, shown)
    return shown


def explain_decode_failures_in_notebook() -> bool:
    """In IPython/Jupyter, show decode failures as one paragraph instead of a traceback; False elsewhere."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    import tensorflow as tf

    shell.set_custom_exc((tf.errors.InvalidArgumentError,), _explain_in_notebook)
    return True


def _cache_shuffle_batch(dataset: Any, size: int, batch_size: int, cache: bool, training: bool, seed: int) -> Any:
    """The steps both pipelines share, in this order: cache, shuffle (training only, whole set), batch.

    Caching first keeps the cache a plain copy while each epoch gets a new order; a whole-set shuffle avoids
    the partial shuffle a small buffer gives on class-sorted data.
    """
    if cache:
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size)


def make_pipeline(
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    num_classes: int | None = None,
    training: bool = False,
    augmentation: Callable[..., Any] | None = None,
    cache: bool = True,
    seed: int = runtime.DEFAULT_SEED,
) -> Any:
    """A tf.data pipeline from uint8 arrays: cache, shuffle (training), batch, scale to [0, 1], prefetch.

    Images stay uint8 until after batching (small cache, vectorised conversion); ``num_classes`` gives one-hot
    labels, ``augmentation`` runs for training only; ``(N, H, W)`` gets a channel axis.
    """
    import tensorflow as tf

    if len(images) != len(labels):
        raise DataFormatError(f"make_pipeline: {len(images):,} images but {len(labels):,} labels.")
    if images.ndim == 3:
        images = images[..., np.newaxis]
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = _cache_shuffle_batch(dataset, len(labels), batch_size, cache=cache, training=training, seed=seed)

    def prepare(batch_images: Any, batch_labels: Any) -> tuple[Any, Any]:
        batch_images = tf.cast(batch_images, tf.float32) / 255.0
        if training and augmentation is not None:
            batch_images = augmentation(batch_images, training=True)
        if num_classes:
            batch_labels = tf.one_hot(batch_labels, num_classes)
        return batch_images, batch_labels

    return dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def make_file_pipeline(
    paths: Sequence[str],
    labels: np.ndarray,
    image_size: int | tuple[int, int],
    batch_size: int,
    num_classes: int | None = None,
    training: bool = False,
    preprocess: Callable[[Any], Any] | None = None,
    augmentation: Callable[..., Any] | None = None,
    cache: bool = True,
    seed: int = runtime.DEFAULT_SEED,
) -> Any:
    """A tf.data pipeline from image files: decode, resize, cache, shuffle, batch, augment, preprocess.

    Pixels leave the decoder as floats in [0, 255]; ``preprocess`` (default: divide by 255) makes what the model
    expects. Resized images are cached so later epochs skip decoding; a failing file is reported by name.
    """
    import tensorflow as tf

    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(paths) != len(labels):
        raise DataFormatError(f"make_file_pipeline: {len(paths):,} files but {len(labels):,} labels.")

    def load(path: Any, label: Any) -> tuple[Any, Any]:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = tf.image.resize(tf.cast(image, tf.float32), size)
        return image, label

    _file_pipeline_paths.update(dict.fromkeys(str(path) for path in paths))
    explain_decode_failures_in_notebook()
    dataset = tf.data.Dataset.from_tensor_slices((list(paths), np.asarray(labels)))
    dataset = dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = _cache_shuffle_batch(dataset, len(labels), batch_size, cache=cache, training=training, seed=seed)

    def prepare(batch_images: Any, batch_labels: Any) -> tuple[Any, Any]:
        if training and augmentation is not None:
            batch_images = augmentation(batch_images, training=True)
        batch_images = preprocess(batch_images) if preprocess is not None else batch_images / 255.0
        if num_classes:
            batch_labels = tf.one_hot(batch_labels, num_classes)
        return batch_images, batch_labels

    return dataset.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def default_augmentation(seed: int = runtime.DEFAULT_SEED) -> Any:
    """Random flip, small rotation and zoom: the usual on-the-fly augmentation for photos.

    Pinned to float32: on the host CPU a ``mixed_float16`` policy would compute in float16, slowly, round 0-255
    pixels to steps of up to 0.125 and hand float16 batches on.
    """
    import keras

    return keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed, dtype="float32"),
            keras.layers.RandomRotation(0.1, seed=seed, dtype="float32"),
            keras.layers.RandomZoom(0.1, seed=seed, dtype="float32"),
        ],
        name="augmentation",
    )

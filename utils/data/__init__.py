"""Datasets for the notebooks: local copies first, then the standard download.

``from utils import data`` gives every name of the submodules below. Arrays come back as uint8 images and int64
labels (:class:`ImageDataset`), photos as file paths decoded on the fly (:class:`FileDataset`); files that are
not complete images are skipped and listed by ``describe()``, and a dataset not found raises
:class:`DatasetNotFoundError` saying where it looked.
"""

from utils.data.formats import (
    CIFAR10_BATCH_MD5, IDX_DATA_TYPES, check_images_and_labels, dataset_from_npz, read_cifar10_batches, read_idx,
)
from utils.data.image_files import (
    CACHE_FORMAT_VERSION, DECODABLE_FORMATS, IMAGE_SUFFIXES, check_image_files, decode_image_files,
    fingerprint_file_contents, fingerprint_files, image_file_problem, list_image_folder, read_cifar10_image_folders,
    read_image_folder, read_images,
)
from utils.data.loaders import load_cifar10, load_fashion_mnist, load_flowers, load_image_folder, load_mnist
from utils.data.pipelines import (
    default_augmentation, explain_decode_failure, make_file_pipeline, make_pipeline,
)
from utils.data.records import (
    CIFAR10_CLASS_NAMES, FASHION_MNIST_CLASS_NAMES, FLOWER_CLASS_NAMES, MNIST_CLASS_NAMES, DataFormatError,
    DatasetNotFoundError, FileDataset, ImageDataset, ImageDecodeError, SkippedFile,
)
from utils.data.sources import download, extract_archive, md5_of, offline_requested, search_roots, synthetic_requested
from utils.data.splits import (
    VALIDATION_PROTOCOLS, FlowerSplits, Splits, make_splits, split_flowers, stratified_split, stratified_subsample,
)
from utils.data.synthetic import (
    SYNTHETIC_TEST_PER_CLASS, SYNTHETIC_TRAIN_PER_CLASS, synthetic_flowers, synthetic_image_dataset, synthetic_images,
)

__all__ = [
    "CACHE_FORMAT_VERSION", "CIFAR10_BATCH_MD5", "CIFAR10_CLASS_NAMES", "DECODABLE_FORMATS",
    "FASHION_MNIST_CLASS_NAMES", "FLOWER_CLASS_NAMES", "IDX_DATA_TYPES", "IMAGE_SUFFIXES", "MNIST_CLASS_NAMES",
    "SYNTHETIC_TEST_PER_CLASS", "SYNTHETIC_TRAIN_PER_CLASS", "VALIDATION_PROTOCOLS",
    "DataFormatError", "DatasetNotFoundError", "FileDataset", "FlowerSplits", "ImageDataset", "ImageDecodeError",
    "SkippedFile", "Splits",
    "check_image_files", "check_images_and_labels", "dataset_from_npz", "decode_image_files", "default_augmentation",
    "download", "explain_decode_failure", "extract_archive", "fingerprint_file_contents", "fingerprint_files",
    "image_file_problem", "list_image_folder", "load_cifar10", "load_fashion_mnist", "load_flowers",
    "load_image_folder", "load_mnist", "make_file_pipeline", "make_pipeline", "make_splits", "md5_of",
    "offline_requested", "read_cifar10_batches", "read_cifar10_image_folders", "read_idx", "read_image_folder",
    "read_images", "search_roots", "split_flowers", "stratified_split", "stratified_subsample", "synthetic_flowers",
    "synthetic_image_dataset", "synthetic_images", "synthetic_requested",
]

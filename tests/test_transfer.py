"""Tests of utils.transfer: freezing logic, BN in inference mode, head shapes, weights fallback.

No pretrained weights exist offline, so every backbone here is built with random
weights (``weights=None``) at 32x32, the smallest input ResNet50 accepts, to
keep the file fast.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from utils import data  # noqa: E402
from utils import transfer  # noqa: E402

IMAGE_SIZE = 32
RESNET50_LAYERS = 175
FEATURES = 2048
# Head of HeadConfig(): Dense(2048 -> 256) + Dense(256 -> 5).
HEAD_PARAMS = FEATURES * 256 + 256 + 256 * 5 + 5
# Gradient-trainable parameters of ResNet50 layers 140..174: conv kernels and biases only
# (BN layers stay frozen), and with the 11 BN layers' scale and offset as well.
BACKBONE_PARAMS_AFTER_LAYER_140 = 14_953_472
BACKBONE_PARAMS_AFTER_LAYER_140_WITH_BN = 14_978_048
BATCH_NORM_LAYERS_AFTER_140 = 11


@pytest.fixture(autouse=True)
def no_weights_variable(monkeypatch):
    """No test sees a weights file named by the developer's environment; seeds are fixed."""
    monkeypatch.delenv(transfer.WEIGHTS_ENVIRONMENT_VARIABLE, raising=False)
    keras.utils.set_random_seed(0)


@pytest.fixture(scope="module")
def shared_backbone():
    """One random-weights ResNet50 for the whole file: building it is the slow part of these tests."""
    backbone, choice = transfer.load_backbone(IMAGE_SIZE, weights=None)
    assert choice.label == transfer.RANDOM_INIT_LABEL
    assert choice.attempts == ("random initialisation was asked for (weights=None)",)
    return backbone


@pytest.fixture
def random_backbone(shared_backbone):
    """The shared backbone with every layer trainable again, as if freshly built."""
    shared_backbone.trainable = True
    for layer in shared_backbone.layers:
        layer.trainable = True
    return shared_backbone


def frozen(backbone):
    """Experiment 1's freezing, as notebook 05 writes it: the whole backbone at once."""
    backbone.trainable = False
    return backbone


def unfreeze_after(backbone, frozen_layer_count=transfer.COURSE_FROZEN_LAYER_COUNT, freeze_batch_norm=True):
    """Experiment 2's unfreezing, notebook 05's loop: train from the boundary on, batch norm kept frozen."""
    backbone.trainable = True
    for index, layer in enumerate(backbone.layers):
        is_batch_norm = isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = index >= frozen_layer_count and not (freeze_batch_norm and is_batch_norm)
    return backbone


def test_fine_tuning_freezes_exactly_the_first_140_layers(random_backbone):
    assert len(random_backbone.layers) == RESNET50_LAYERS
    frozen(random_backbone)
    unfreeze_after(random_backbone, transfer.COURSE_FROZEN_LAYER_COUNT)
    layers = random_backbone.layers
    assert not any(layer.trainable for layer in layers[:140])
    batch_norm_after = [layer for layer in layers[140:] if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(batch_norm_after) == BATCH_NORM_LAYERS_AFTER_140
    assert all(layer.trainable for layer in layers[140:] if layer not in batch_norm_after)
    assert not any(layer.trainable for layer in batch_norm_after)
    report = transfer.trainability(random_backbone)
    assert report["layers_trainable"] == RESNET50_LAYERS - 140 - BATCH_NORM_LAYERS_AFTER_140
    assert report["params_trainable"] == BACKBONE_PARAMS_AFTER_LAYER_140
    boundary = transfer.frozen_boundary(random_backbone)
    assert list(boundary.index) == list(range(137, 144))
    assert boundary.loc[139, "role"].startswith("frozen (one of the first 140)")
    assert boundary.loc[140, "role"].startswith("batch normalisation, kept frozen")
    assert boundary.loc[141, "role"] == "no weights: nothing to train"  # conv4_block6_add
    assert boundary.loc[143, "role"] == "fine-tuned"  # conv5_block1_1_conv


def test_fine_tuning_can_train_batch_norm_scale_when_asked(random_backbone):
    unfreeze_after(random_backbone, freeze_batch_norm=False)
    flags = [layer.trainable for layer in random_backbone.layers]
    assert flags == [False] * 140 + [True] * (RESNET50_LAYERS - 140)
    assert transfer.trainability(random_backbone)["params_trainable"] == BACKBONE_PARAMS_AFTER_LAYER_140_WITH_BN


def test_feature_extraction_trains_only_the_head(random_backbone):
    model = transfer.build_transfer_model(frozen(random_backbone))
    table = transfer.trainability_table(model, random_backbone)
    assert table.loc["backbone (ResNet50)", "params_trainable"] == 0
    assert table.loc["backbone (ResNet50)", "layers_frozen"] == RESNET50_LAYERS
    assert table.loc["new head", "params_trainable"] == HEAD_PARAMS
    assert table.loc["whole model", "params_trainable"] == HEAD_PARAMS
    assert transfer.parameter_count(model.trainable_weights) == HEAD_PARAMS
    assert table.loc["whole model", "params_frozen"] == random_backbone.count_params()


def test_fine_tuning_trainable_count_is_head_plus_layers_after_140(random_backbone):
    model = transfer.build_transfer_model(frozen(random_backbone))
    unfreeze_after(random_backbone)
    assert transfer.parameter_count(model.trainable_weights) == HEAD_PARAMS + BACKBONE_PARAMS_AFTER_LAYER_140
    table = transfer.trainability_table(model, random_backbone)
    assert table.loc["whole model", "layers_frozen"] == 140 + BATCH_NORM_LAYERS_AFTER_140
    assert table.loc["whole model", "params_trainable"] == HEAD_PARAMS + BACKBONE_PARAMS_AFTER_LAYER_140


@pytest.mark.parametrize("pooling, extra_dense_units", [("avg", 0), ("max", 128)])
def test_head_shapes_and_variations(random_backbone, pooling, extra_dense_units):
    head = transfer.HeadConfig(pooling=pooling, extra_dense_units=extra_dense_units)
    model = transfer.build_transfer_model(frozen(random_backbone), head)
    assert model.input_shape == (None, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert model.output_shape == (None, transfer.FLOWER_CLASS_COUNT)
    pooled = model.get_layer(f"global_{pooling}_pool")
    assert pooled.output.shape[1:] == (FEATURES,)
    assert model.get_layer("predictions").dtype_policy.compute_dtype == "float32"
    extra = HEAD_PARAMS if not extra_dense_units else (
        FEATURES * 128 + 128 + 128 * 256 + 256 + 256 * 5 + 5)
    assert transfer.parameter_count(model.trainable_weights) == extra
    assert ("extra_dense" in [layer.name for layer in model.layers]) == bool(extra_dense_units)
    probabilities = keras.ops.convert_to_numpy(model(np.zeros((2, IMAGE_SIZE, IMAGE_SIZE, 3), "float32")))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_softmax_stays_float32_under_mixed_precision(random_backbone):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = transfer.build_transfer_model(random_backbone)
        assert model.get_layer("head_dense").dtype_policy.compute_dtype == "float16"
        assert model.get_layer("predictions").dtype_policy.compute_dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_head_config_rejects_unknown_pooling():
    with pytest.raises(ValueError, match="pooling must be one of"):
        transfer.HeadConfig(pooling="median")


def _one_training_step(model):
    images = np.random.default_rng(0).uniform(-100, 100, (8, IMAGE_SIZE, IMAGE_SIZE, 3)).astype("float32")
    labels = keras.utils.to_categorical(np.arange(8) % transfer.FLOWER_CLASS_COUNT, transfer.FLOWER_CLASS_COUNT)
    model.train_on_batch(images, labels)


def _fine_tuning_model(backbone, freeze_batch_norm):
    model = transfer.build_transfer_model(frozen(backbone))
    unfreeze_after(backbone, freeze_batch_norm=freeze_batch_norm)
    transfer.compile_transfer_model(model, learning_rate=1e-2)
    # Same optimizer, loss and fit() code path, but eager: tracing ResNet50's training graph
    # would cost far more than the one step these tests take.
    model.compile(optimizer=model.optimizer, loss=model.loss, metrics=["accuracy"], run_eagerly=True)
    return model


def test_batch_norm_statistics_stay_fixed_while_fine_tuning(random_backbone):
    model = _fine_tuning_model(random_backbone, freeze_batch_norm=True)
    batch_norm = random_backbone.get_layer("conv5_block3_3_bn")
    convolution = random_backbone.get_layer("conv5_block3_3_conv")
    assert convolution.trainable and not batch_norm.trainable
    before = {name: getattr(batch_norm, name).numpy() for name in ("moving_mean", "moving_variance", "gamma")}
    kernel_before = convolution.kernel.numpy()
    _one_training_step(model)
    for name, value in before.items():
        np.testing.assert_array_equal(getattr(batch_norm, name).numpy(), value, err_msg=name)
    assert not np.array_equal(convolution.kernel.numpy(), kernel_before), "the step trained nothing"


def test_training_false_alone_does_not_protect_batch_norm_on_keras_3(random_backbone):
    # The control for the test above and the claim the notebook makes: build_transfer_model
    # calls the backbone with training=False, yet with trainable BN layers a fit() step
    # still overwrites the moving mean, because fit's training=True overrides it
    # (keras-team/keras#20285). If this starts failing, Keras has changed that behaviour
    # and the explanation in utils/transfer.py and notebook 05 should be updated.
    model = _fine_tuning_model(random_backbone, freeze_batch_norm=False)
    batch_norm = random_backbone.get_layer("conv5_block3_3_bn")
    mean_before = batch_norm.moving_mean.numpy()
    _one_training_step(model)
    assert not np.array_equal(batch_norm.moving_mean.numpy(), mean_before)


def _forbid_download(monkeypatch):
    calls = []

    def failing_download():
        calls.append(1)
        raise ConnectionError("no route to host (simulated)")

    monkeypatch.setattr(transfer, "download_imagenet_weights", failing_download)
    monkeypatch.setattr(transfer, "find_cached_imagenet_weights", lambda: None)
    return calls


def test_missing_local_file_falls_back_to_random_init(monkeypatch, tmp_path):
    monkeypatch.setenv("CNN_OFFLINE", "1")
    calls = _forbid_download(monkeypatch)
    backbone, choice = transfer.load_backbone(IMAGE_SIZE, local_weights_file=tmp_path / "absent.weights.h5")
    assert backbone.output_shape == (None, 1, 1, FEATURES)
    assert not choice.is_pretrained and choice.label == transfer.RANDOM_INIT_LABEL
    assert "does not exist" in choice.attempts[0]
    assert "CNN_OFFLINE=1" in choice.attempts[1]
    assert calls == [], "no download may be tried when CNN_OFFLINE=1"
    assert transfer.RANDOM_INIT_LABEL in choice.banner() and "NOT transfer learning" in choice.banner()


def test_failed_download_falls_back_to_random_init(monkeypatch):
    monkeypatch.delenv("CNN_OFFLINE", raising=False)
    calls = _forbid_download(monkeypatch)
    backbone, choice = transfer.load_backbone(IMAGE_SIZE, weights="imagenet")
    assert calls == [1]
    assert choice.label == transfer.RANDOM_INIT_LABEL and choice.file is None
    assert "failed (ConnectionError: no route to host (simulated))" in choice.attempts[-1]
    assert len(backbone.layers) == RESNET50_LAYERS


def test_damaged_local_file_falls_back_with_the_reason(monkeypatch, tmp_path):
    monkeypatch.setenv("CNN_OFFLINE", "1")
    _forbid_download(monkeypatch)
    damaged = tmp_path / "resnet50.weights.h5"
    damaged.write_bytes(b"this is not an HDF5 file")
    monkeypatch.setenv(transfer.WEIGHTS_ENVIRONMENT_VARIABLE, str(damaged))
    _, choice = transfer.load_backbone(IMAGE_SIZE)
    assert choice.label == transfer.RANDOM_INIT_LABEL
    assert choice.attempts[0].startswith(f"{transfer.WEIGHTS_ENVIRONMENT_VARIABLE} file")
    assert "could not be loaded" in choice.attempts[0]


def test_local_weights_file_from_the_environment_is_loaded(monkeypatch, tmp_path, random_backbone):
    _forbid_download(monkeypatch)
    saved = tmp_path / "resnet50_notop.weights.h5"
    random_backbone.save_weights(saved)
    monkeypatch.setenv(transfer.WEIGHTS_ENVIRONMENT_VARIABLE, str(saved))
    keras.utils.set_random_seed(1)
    backbone, choice = transfer.load_backbone(IMAGE_SIZE)
    assert choice.is_pretrained and choice.file == str(saved)
    assert choice.label == "pretrained (local file resnet50_notop.weights.h5)"
    np.testing.assert_array_equal(backbone.get_layer("conv1_conv").kernel.numpy(),
                                  random_backbone.get_layer("conv1_conv").kernel.numpy())


def test_weights_none_ignores_a_local_file(monkeypatch, tmp_path, random_backbone):
    saved = tmp_path / "resnet50_notop.weights.h5"
    random_backbone.save_weights(saved)
    monkeypatch.setenv(transfer.WEIGHTS_ENVIRONMENT_VARIABLE, str(saved))
    _, choice = transfer.load_backbone(IMAGE_SIZE, weights=None)
    assert choice.label == transfer.RANDOM_INIT_LABEL and choice.file is None
    assert "not loaded" in choice.attempts[0]


def test_weights_argument_rejects_a_path():
    with pytest.raises(ValueError, match="local_weights_file"):
        transfer.load_backbone(IMAGE_SIZE, weights="/some/file.h5")


def test_comparing_random_init_rows_says_so():
    choice = transfer.WeightsChoice(None, transfer.RANDOM_INIT_LABEL, None, ("asked for",))
    rows = [{"experiment": transfer.label_with_weights(transfer.experiment_name(number), choice),
             "weights": choice.label, "epochs": 1, "learning_rate": rate, "trainable_params": params,
             "train_accuracy": train, "val_accuracy": val, "test_accuracy": test, "seconds": 1.0}
            for number, rate, params, train, val, test in ((1, 1e-3, HEAD_PARAMS, 0.5, 0.25, 0.2),
                                                           (2, 1e-5, HEAD_PARAMS + 10, 0.6, 0.3, 0.3))]
    assert all(row["experiment"].endswith(transfer.RANDOM_INIT_LABEL) for row in rows)
    summary = transfer.compare_experiments(rows, choice, test_images=1_000, majority_share=0.244)
    assert summary.startswith("Experiment 2 wins") and "10.0 percentage points" in summary
    assert transfer.RANDOM_INIT_LABEL in summary
    assert transfer.comparison_table(rows)["weights"].eq(transfer.RANDOM_INIT_LABEL).all()


def _rows_with_test_accuracies(first: float, second: float) -> list[dict]:
    """Two minimal result rows, as compare_experiments reads them."""
    return [{"experiment": f"{number} x", "test_accuracy": accuracy, "trainable_params": 10 * number,
             "seconds": 1.0} for number, accuracy in ((1, first), (2, second))]


def test_a_two_image_lead_is_not_called_a_win():
    choice = transfer.WeightsChoice("imagenet", transfer.IMAGENET_LABEL, "file.h5")
    rows = _rows_with_test_accuracies(0.600, 0.622)  # 2 of 90 test images apart
    summary = transfer.compare_experiments(rows, choice, test_images=90, majority_share=0.244)
    assert summary.startswith("No clear winner") and "2 of 90 test images" in summary
    noise = transfer.accuracy_noise(0.600, 0.622, 90)
    assert 0.07 < noise < 0.08  # sqrt((0.6 * 0.4 + 0.622 * 0.378) / 90)


def test_a_win_below_the_majority_class_floor_is_no_win():
    choice = transfer.WeightsChoice("imagenet", transfer.IMAGENET_LABEL, "file.h5")
    rows = _rows_with_test_accuracies(0.05, 0.20)
    summary = transfer.compare_experiments(rows, choice, test_images=10_000, majority_share=0.244)
    assert summary.startswith("No winner") and "24.4%" in summary


def test_accuracy_noise_rejects_an_empty_test_set():
    with pytest.raises(ValueError, match="test_images must be positive"):
        transfer.accuracy_noise(0.5, 0.5, 0)


def test_documented_resnet50_facts_match_keras(shared_backbone):
    assert transfer.RESNET50_NOTOP_LAYERS == len(shared_backbone.layers) == RESNET50_LAYERS
    assert transfer.RESNET50_NOTOP_PARAMETERS == shared_backbone.count_params() == 23_587_712
    assert transfer.RESNET50_FEATURES == shared_backbone.output_shape[-1] == FEATURES


def test_course_figures_for_the_flowers_experiment():
    assert transfer.COURSE_FROZEN_LAYER_COUNT == 140
    assert (transfer.COURSE_FLOWER_PHOTOS_ABOUT, transfer.COURSE_GPU_MINUTES_ABOUT) == (4_000, 20)
    assert transfer.FLOWER_CLASS_COUNT == 5


def test_resnet_stages_from_layer_names():
    assert transfer.resnet_stage("input_layer") == "input"
    assert transfer.resnet_stage("pool1_pool") == transfer.resnet_stage("conv1_conv") == "stage 1"
    assert transfer.resnet_stage("conv4_block6_3_bn") == "stage 4"
    assert transfer.resnet_stage("conv5_block3_out") == "stage 5"


def test_freezing_the_first_140_layers_trains_exactly_stage_5(random_backbone):
    unfreeze_after(random_backbone, transfer.COURSE_FROZEN_LAYER_COUNT)
    table = transfer.trainable_by_stage(random_backbone)
    assert transfer.stages_that_train(random_backbone) == ["stage 5"]
    stage_5_convolutions = sum(1 for layer in random_backbone.layers
                               if layer.name.startswith("conv5_") and isinstance(layer, keras.layers.Conv2D))
    assert table.loc["stage 5", "layers_training"] == stage_5_convolutions
    assert table["params_trainable"].sum() == BACKBONE_PARAMS_AFTER_LAYER_140
    unfreeze_after(random_backbone, 130)  # a boundary earlier in stage 4 trains part of it
    assert transfer.stages_that_train(random_backbone) == ["stage 4", "stage 5"]


def test_misclassified_captions_fit_on_one_line():
    paths, captions = transfer.misclassified(["a.jpg", "b.jpg"], np.array([0, 1]), np.array([1, 1]),
                                             ["daisy", "rose"])
    assert paths == ["a.jpg"] and captions == ["rose (true: daisy)"]


def test_banner_wraps_long_reasons_to_a_readable_width():
    long_reason = ("no cached copy in " + ", ".join(f"/a/rather/long/folder/number/{index}/.keras/models"
                                                    for index in range(4))
                   + " and downloads are switched off (CNN_OFFLINE=1)")
    choice = transfer.WeightsChoice("imagenet", transfer.RANDOM_INIT_LABEL, None, (long_reason,))
    lines = choice.banner().splitlines()
    assert max(len(line) for line in lines) <= transfer.BANNER_WIDTH
    assert len({len(line) for line in lines}) == 1, "the box's right edge must be straight"
    text = " ".join(line.strip("# ").strip() for line in lines)
    assert "downloads are switched off (CNN_OFFLINE=1)" in text and "NOT transfer learning" in text


def test_augmentation_runs_in_float32_under_mixed_float16():
    """Notebook 05 builds its augmentation after a GPU's mixed_float16 is set; it runs on the host, in float32."""
    import tensorflow as tf

    from utils import data

    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        augmentation = data.default_augmentation(seed=0)
        assert all(layer.compute_dtype == "float32" for layer in augmentation.layers)
        batch = tf.data.Dataset.from_tensors(np.full((2, 16, 16, 3), 200.5, dtype=np.float32))
        augmented = next(iter(batch.map(lambda images: augmentation(images, training=True))))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert augmented.dtype == tf.float32


def test_a_rerun_of_notebook_05_reuses_both_experiments_and_adds_no_row(tmp_path, monkeypatch):
    """Experiments 1 and 2 through the runner: rows labelled with the weights and the precision the model
    trained in; run again, both are reused with their trained models and the table keeps two rows."""
    from utils import data, results

    monkeypatch.setenv("CNN_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("CNN_RUNS_DIR", str(tmp_path / "runs"))
    images, labels = data.synthetic_images((8, 8, 3), 2, 4, seed=0)
    pipeline = data.make_pipeline(images, labels, 4, num_classes=2)
    pipelines = {"train": pipeline, "train_eval": pipeline, "validation": pipeline, "test": pipeline}
    choice = transfer.WeightsChoice(None, transfer.RANDOM_INIT_LABEL, None, ("asked for",))
    settings = {"profile": "quick", "image_size": 8, "seed": 0, "precision": "mixed_bfloat16", "replicas": 1}

    def both_experiments():
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(4),
                                  keras.layers.Dense(2, activation="softmax", dtype="float32")])
        first = transfer.run_experiment(1, model, pipelines, epochs=1, learning_rate=1e-3, choice=choice,
                                        settings=settings)
        second = transfer.run_experiment(2, first.model, pipelines, epochs=1, learning_rate=1e-5, choice=choice,
                                         settings=settings, after=first)
        return first, second

    try:
        first, second = both_experiments()
        again = both_experiments()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert not first.reused and not second.reused and all(run.reused for run in again)
    assert len(results.read_results(transfer.RESULTS_TABLE)) == 2
    assert first.row["experiment"].endswith(transfer.RANDOM_INIT_LABEL) and first.row["weights"] == choice.label
    assert (first.row["precision"], first.row["replicas"]) == ("mixed_bfloat16", 1)
    assert second.row["continues_from"] == first.folder.name
    assert again[1].model is not None and again[1].row["test_accuracy"] == pytest.approx(second.row["test_accuracy"])


# --------------------------------------------------------------------------- the ImageNet path, without a download
# A random ResNet50 saved under Keras's own file name stands in for the ImageNet file, in a temporary KERAS_HOME
# (never the real ~/.keras: Keras deletes a cached file whose md5 is wrong when it cannot download it again).


@dataclass(frozen=True)
class StandInWeights:
    """A random no-top ResNet50 saved like Keras's published ImageNet file, its weights and its md5."""

    file: Path
    weights: dict[str, np.ndarray]  # by weight path, e.g. "conv1_conv/kernel"
    md5: str


def _write_legacy_weights_file(model, path: Path) -> None:
    """Weights only, layer names at the root: the layout of Keras's published ``*_notop.h5`` files.

    ``save_weights`` writes only ``.weights.h5`` (another format); the legacy writer is what Keras 2 used.
    """
    import h5py
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)


@pytest.fixture(scope="module")
def stand_in_weights(tmp_path_factory) -> StandInWeights:
    """The stand-in file, built once: its batch-norm variances (2.0) are ones no freshly built ResNet50 has (1.0),
    so a silent fallback to random weights cannot pass for a load."""
    keras.utils.set_random_seed(1234)
    model = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
    for layer in transfer.batch_norm_layers(model):
        layer.moving_variance.assign(layer.moving_variance.numpy() + 1.0)
    path = tmp_path_factory.mktemp("stand_in") / transfer.IMAGENET_WEIGHTS_FILE
    _write_legacy_weights_file(model, path)
    return StandInWeights(path, {weight.path: weight.numpy() for weight in model.weights},
                          hashlib.md5(path.read_bytes()).hexdigest())


@pytest.fixture
def keras_home(tmp_path, monkeypatch) -> Path:
    """An empty temporary KERAS_HOME (with its ``models`` folder), read by the suite at call time."""
    home = tmp_path / "keras_home"
    (home / "models").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.fixture
def cached_stand_in(keras_home, stand_in_weights) -> Path:
    """The stand-in copied into the temporary cache under Keras's file name, as an offline user copies the real one."""
    cached = keras_home / "models" / transfer.IMAGENET_WEIGHTS_FILE
    shutil.copyfile(stand_in_weights.file, cached)
    return cached


def _no_network(monkeypatch) -> list:
    """Keras's downloader replaced by one that records the call and fails, as without internet."""
    from keras.src.utils import file_utils

    calls = []

    def unreachable(origin, target, *progress):
        calls.append((origin, target))
        raise ConnectionError("no route to host (simulated)")

    monkeypatch.setattr(file_utils, "urlretrieve", unreachable)
    return calls


def _assert_holds_weights(model, expected: dict[str, np.ndarray]) -> None:
    """Every weight of ``model`` equals the saved weight of the same path."""
    assert sorted(weight.path for weight in model.weights) == sorted(expected)
    for weight in model.weights:
        np.testing.assert_array_equal(weight.numpy(), expected[weight.path], err_msg=weight.path)


def test_suite_and_keras_agree_on_the_imagenet_file():
    from keras.src.applications import resnet

    assert transfer.IMAGENET_WEIGHTS_MD5 == resnet.WEIGHTS_HASHES["resnet50"][1]
    assert transfer.IMAGENET_WEIGHTS_URL == resnet.BASE_WEIGHTS_PATH + transfer.IMAGENET_WEIGHTS_FILE


def test_readme_names_the_imagenet_file_its_url_and_md5():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    for fact in (transfer.IMAGENET_WEIGHTS_FILE, transfer.IMAGENET_WEIGHTS_URL, transfer.IMAGENET_WEIGHTS_MD5):
        assert fact in readme


def test_cache_candidates_follow_keras_home_set_after_keras_was_imported(keras_home):
    assert transfer.keras_home() == keras_home
    assert transfer.keras_cache_candidates()[0] == keras_home / "models" / transfer.IMAGENET_WEIGHTS_FILE


def test_imagenet_weights_load_offline_from_the_keras_cache(cached_stand_in, stand_in_weights, monkeypatch):
    calls = _no_network(monkeypatch)
    assert transfer.find_cached_imagenet_weights() == cached_stand_in
    keras.utils.set_random_seed(0)
    backbone, choice = transfer.load_backbone(IMAGE_SIZE, weights="imagenet")
    assert (choice.label, choice.file, choice.is_pretrained) == (transfer.IMAGENET_LABEL, str(cached_stand_in), True)
    assert choice.attempts == (f"cached ImageNet weights {cached_stand_in} loaded",)
    assert "Pretrained weights loaded: imagenet" in choice.banner()
    _assert_holds_weights(backbone, stand_in_weights.weights)
    assert calls == []


def test_colab_first_run_downloads_into_the_cache_and_checks_the_md5(keras_home, stand_in_weights, monkeypatch):
    """Online, nothing cached: ``get_file`` fetches the URL into KERAS_HOME/models (here a copy of the stand-in),
    checks its md5 (patched to the stand-in's) and the backbone loads it; the next run finds it in the cache."""
    from keras.src.utils import file_utils

    if transfer.find_cached_imagenet_weights() is not None:
        pytest.skip("a real copy of the weights sits in /tmp/.keras/models, so no download would happen")
    monkeypatch.delenv("CNN_OFFLINE", raising=False)
    monkeypatch.setattr(transfer, "IMAGENET_WEIGHTS_MD5", stand_in_weights.md5)
    downloads = []

    def download_the_stand_in(origin, target, *progress):
        downloads.append((origin, target))
        shutil.copyfile(stand_in_weights.file, target)

    monkeypatch.setattr(file_utils, "urlretrieve", download_the_stand_in)
    backbone, choice = transfer.load_backbone(IMAGE_SIZE, weights="imagenet")
    expected_file = keras_home / "models" / transfer.IMAGENET_WEIGHTS_FILE
    assert downloads == [(transfer.IMAGENET_WEIGHTS_URL, str(expected_file))]
    assert (choice.label, choice.file) == (transfer.IMAGENET_LABEL, str(expected_file))
    _assert_holds_weights(backbone, stand_in_weights.weights)
    assert transfer.find_cached_imagenet_weights() == expected_file


def test_a_cached_file_with_another_md5_is_deleted_when_it_cannot_be_downloaded_again(cached_stand_in,
                                                                                     monkeypatch):
    """Why no stand-in may enter the real ~/.keras: Keras downloads a file with a wrong md5 again, and deletes it
    when that fails."""
    calls = _no_network(monkeypatch)
    with pytest.raises(ConnectionError):
        transfer.download_imagenet_weights()
    assert calls == [(transfer.IMAGENET_WEIGHTS_URL, str(cached_stand_in))]
    assert not cached_stand_in.exists()


def test_keras_own_imagenet_loader_reads_the_stand_in(cached_stand_in, stand_in_weights, monkeypatch):
    """``keras.applications.ResNet50(weights="imagenet")`` itself loads the stand-in, so its layout is Keras's.

    Keras resolved KERAS_HOME when it was imported, so its home is patched too; its md5 table gets the stand-in's.
    """
    from keras.src.applications import resnet
    from keras.src.backend import config

    calls = _no_network(monkeypatch)
    monkeypatch.setattr(config, "_KERAS_DIR", str(cached_stand_in.parent.parent))
    top_hash = resnet.WEIGHTS_HASHES["resnet50"][0]
    monkeypatch.setitem(resnet.WEIGHTS_HASHES, "resnet50", (top_hash, stand_in_weights.md5))
    backbone = keras.applications.ResNet50(include_top=False, weights="imagenet",
                                           input_shape=(IMAGE_SIZE, IMAGE_SIZE, 3))
    _assert_holds_weights(backbone, stand_in_weights.weights)
    assert calls == []


def _write_flower_photos(folder: Path, per_class: int = 2) -> tuple[data.FlowerSplits, np.ndarray]:
    """``per_class`` PNG photos of IMAGE_SIZE pixels per flower class (lossless, so decoding gives the pixels
    back), split so that every part holds all of them; and the photos' pixels, in the order of the files."""
    from PIL import Image

    images, labels = data.synthetic_images((IMAGE_SIZE, IMAGE_SIZE, 3), transfer.FLOWER_CLASS_COUNT, per_class, seed=0)
    paths = []
    for index, (image, label) in enumerate(zip(images, labels)):
        path = folder / f"{index:02d}_class_{label}.png"
        Image.fromarray(image).save(path)
        paths.append(str(path))
    part = (np.asarray(paths), np.asarray(labels))
    splits = data.FlowerSplits({"train": part, "validation": part, "test": part},
                               list(data.FLOWER_CLASS_NAMES), "synthetic (test photos)", 0)
    return splits, images


def test_colab_learner_path_preprocesses_freezes_fine_tunes_and_trains(cached_stand_in, stand_in_weights, tmp_path):
    """Notebook 05 after the ImageNet load: ResNet50's preprocessing, experiment 1 (frozen backbone, new head)
    and experiment 2 (the 140-layer loop, batch norm kept frozen), one compiled training step each."""
    backbone, choice = transfer.load_backbone(IMAGE_SIZE, weights="imagenet")
    assert choice.label == transfer.IMAGENET_LABEL
    splits, photos = _write_flower_photos(tmp_path)
    pipelines = transfer.make_flower_pipelines(splits, IMAGE_SIZE, batch_size=5,
                                               augmentation=data.default_augmentation(seed=0), seed=0)
    images, labels = next(iter(pipelines["validation"]))
    caffe_means = np.array([103.939, 116.779, 123.68], "float32")  # BGR, subtracted, no scaling
    np.testing.assert_allclose(images.numpy(), photos[:5, ..., ::-1].astype("float32") - caffe_means, atol=1e-3)
    assert labels.shape == (5, transfer.FLOWER_CLASS_COUNT)

    model = transfer.build_transfer_model(frozen(backbone))
    transfer.compile_transfer_model(model, transfer.FEATURE_EXTRACTION_LEARNING_RATE)
    model.run_eagerly = True  # same fit() code; tracing ResNet50's training graph would cost more than the step
    head_before = model.get_layer("predictions").kernel.numpy()
    model.fit(pipelines["train"], epochs=1, steps_per_epoch=1, verbose=0)
    assert not np.array_equal(model.get_layer("predictions").kernel.numpy(), head_before), "the step trained nothing"
    _assert_holds_weights(backbone, stand_in_weights.weights)  # experiment 1 moved no backbone weight

    unfreeze_after(backbone)
    transfer.compile_transfer_model(model, transfer.FINE_TUNING_LEARNING_RATE)
    model.run_eagerly = True
    watched_batch_norm = backbone.get_layer("conv5_block3_3_bn")
    mean_before = watched_batch_norm.moving_mean.numpy()
    kernel_before = backbone.get_layer("conv5_block3_3_conv").kernel.numpy()
    model.fit(pipelines["train"], epochs=1, steps_per_epoch=1, verbose=0)
    np.testing.assert_array_equal(watched_batch_norm.moving_mean.numpy(), mean_before)
    assert not np.array_equal(backbone.get_layer("conv5_block3_3_conv").kernel.numpy(), kernel_before)
    np.testing.assert_array_equal(backbone.get_layer("conv1_conv").kernel.numpy(),
                                  stand_in_weights.weights["conv1_conv/kernel"])  # before layer 140: untouched


def test_keras_imagenet_file_named_as_the_notebook_parameter_is_loaded(stand_in_weights):
    """Notebook 05's RESNET50_WEIGHTS_FILE pointing at the Keras-format file outside the cache, as the README says."""
    backbone, choice = transfer.load_backbone(IMAGE_SIZE, weights="imagenet",
                                              local_weights_file=stand_in_weights.file)
    assert choice.label == f"pretrained (local file {transfer.IMAGENET_WEIGHTS_FILE})"
    assert choice.file == str(stand_in_weights.file)
    _assert_holds_weights(backbone, stand_in_weights.weights)


def test_a_model_is_readable_only_beyond_the_majority_floor_and_its_noise():
    # 650 test photos, largest class 24.4%: two standard errors are 3.4 points
    assert not transfer.beats_floor(0.256, 0.244, 650)
    assert not transfer.beats_floor(0.27, 0.244, 650)
    assert transfer.beats_floor(0.30, 0.244, 650)
    assert transfer.readability_note(False, "random init").startswith("CONTROL RUN (random init)")


def test_pretrained_weights_are_at_hand_only_with_a_file_or_a_download_that_works(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv(transfer.WEIGHTS_ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.setenv("CNN_OFFLINE", "1")
    assert not transfer.pretrained_weights_at_hand("imagenet")
    assert not transfer.pretrained_weights_at_hand(None)
    weights_file = tmp_path / "resnet.h5"
    weights_file.write_bytes(b"stand-in")
    assert transfer.pretrained_weights_at_hand("imagenet", weights_file)
    monkeypatch.setenv("CNN_OFFLINE", "0")

    def no_network():
        raise OSError("Name or service not known")

    monkeypatch.setattr(transfer, "download_imagenet_weights", no_network)
    assert not transfer.pretrained_weights_at_hand("imagenet")
    monkeypatch.setattr(transfer, "download_imagenet_weights", lambda: weights_file)
    assert transfer.pretrained_weights_at_hand("imagenet")


def test_banner_folders_name_no_folder_of_the_machine_that_ran_it():
    assert transfer.folder_label(Path.home() / ".keras" / "models") == "~/.keras/models"
    assert transfer.folder_label(Path("/tmp/.keras/models")) == "Keras's temp-folder fallback"

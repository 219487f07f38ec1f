"""Tests for tools.audit: the data each audit variant trains on, and refusing unknown variants."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from tools import audit
from utils import data, fast_cifar


def sorted_dataset() -> data.ImageDataset:
    """Synthetic CIFAR-sized images sorted by class, as the JPEG-folder loader returns them (a test fixture)."""
    dataset = data.synthetic_image_dataset("synthetic CIFAR-10", (32, 32, 3), list(data.CIFAR10_CLASS_NAMES))
    order = np.argsort(dataset.y_train, kind="stable")
    return dataclasses.replace(dataset, x_train=dataset.x_train[order], y_train=dataset.y_train[order])


def variant(name: str) -> fast_cifar.AuditVariant:
    return audit.chosen_variants([name])[0]


def test_all_training_images_are_shuffled_so_whitening_sees_every_class():
    dataset = sorted_dataset()
    whole = audit.variant_splits(dataset, variant("trained on all 50,000 images"), seed=42)
    assert len(whole.y_train) == len(dataset.y_train) and whole.protocol == "course"
    first = whole.y_train[: len(whole.y_train) // 10]  # the part build_network would whiten on, scaled down
    assert len(np.unique(first)) == 10 and len(np.unique(dataset.y_train[: len(first)])) == 1
    assert sorted(whole.y_train) == sorted(dataset.y_train)  # nothing lost or repeated


def test_the_jpeg_variant_compresses_every_part_again_and_says_so_in_its_source():
    dataset = sorted_dataset()
    plain = audit.variant_splits(dataset, variant(fast_cifar.PORT_AS_SHIPPED), seed=42, validation_size=200)
    again = audit.variant_splits(dataset, variant("CIFAR-10 JPEG-compressed once more"), seed=42,
                                 validation_size=200)
    for part in ("x_train", "x_validation", "x_test"):
        assert getattr(again, part).shape == getattr(plain, part).shape
        assert not np.array_equal(getattr(again, part), getattr(plain, part))
    assert np.array_equal(again.y_train, plain.y_train) and "JPEG-compressed once more" in again.source


def test_an_unknown_variant_is_refused_with_the_names_there_are():
    with pytest.raises(ValueError, match="port as shipped"):
        audit.chosen_variants(["no such variant"])


def test_the_audit_export_ships_only_real_data_rows_without_machine_paths(own_outputs):
    from utils import results

    folder = own_outputs / "reference"
    with pytest.raises(FileNotFoundError, match="python -m tools.audit"):
        audit.export_audit(folder)  # nothing recorded yet: the error names a command
    results.append_result(fast_cifar.AUDIT_TABLE, {"profile": "lesson", "data_source": "synthetic (x)",
                                                   "test_accuracy": 0.5})
    results.append_result(fast_cifar.AUDIT_TABLE, {"profile": "lesson", "data_source": "JPEG folders",
                                                   "test_accuracy": 0.86, "train_images": 45000, "epochs_done": 5,
                                                   "train_seconds": 300.0, "model_path": "/here/model.keras"})
    shipped = pd.read_csv(audit.export_audit(folder))
    assert list(shipped["test_accuracy"]) == [0.86] and "model_path" not in shipped.columns


def test_the_epochs_option_reaches_the_recipe_the_variant_trains(monkeypatch):
    trained = []
    monkeypatch.setattr(audit.fast_cifar, "run_recipe", lambda recipe, splits, **options: trained.append(recipe)
                        or (_ for _ in ()).throw(RuntimeError("stop after the recipe is built")))
    with pytest.raises(RuntimeError, match="stop"):
        audit.run_variant(variant("airbench's details together"), sorted_dataset(), seed=42, epochs=16)
    assert trained[0].epochs == 16 and trained[0].whitening_bias_epochs == 3 and trained[0].head_init == "pytorch"


def test_a_replica_trains_its_own_length_whatever_the_epochs_option(monkeypatch):
    trained = []
    monkeypatch.setattr(audit.fast_cifar, "run_recipe", lambda recipe, splits, **options: trained.append(recipe)
                        or (_ for _ in ()).throw(RuntimeError("stop after the recipe is built")))
    for name in ("airbench93's own settings", "airbench94's own settings", "airbench94's settings, 17 epochs"):
        with pytest.raises(RuntimeError, match="stop"):
            audit.run_variant(variant(name), sorted_dataset(), seed=42, epochs=5)
    assert [recipe.epochs for recipe in trained] == [11, 10, 17]
    assert [recipe.widths for recipe in trained] == [(64, 128, 128), (64, 256, 256), (64, 256, 256)]
    assert {recipe.batch_size for recipe in trained} == {1024}

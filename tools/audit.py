"""Measure what each difference between notebook 08's port and airbench94 costs: ``python -m tools.audit``.

Notebook 08's audit lists where the port differs from airbench94 (``legacy/airbench94.py`` in
github.com/KellerJordan/cifar10-airbench). This command trains the port once as shipped and once per
difference made airbench's way, every run at the lesson ablation's scale (widths 64/128/128, 5 epochs, no
clock, so every run finishes its schedule), with two seeds, and reads validation and test accuracy after each
(test-time augmentation both ways: this suite's mean of probabilities and airbench's weighted logits, from the
same predictions). Two variants change the data rather than the recipe:

- ``all 50,000``: airbench trains on every training image; the port holds 5,000 out to choose on. This run
  trains on all 50,000 (shuffled with the seed, so that the whitening statistics do not come from one class)
  and is read on the test set only.
- ``jpeg again``: the shared CIFAR-10 copy is JPEG (quality 75, colour at half resolution). Training and
  testing on a second round trip through the same compression, its block grid moved so that it damages the
  images afresh (:func:`utils.fast_cifar.jpeg_round_trip`), measures what one more dose of that damage
  costs: an estimate of what the first dose cost, which cannot be measured without the original images.

Two more variants, the replicas (:data:`utils.fast_cifar.AIRBENCH_REPLICAS`, run only when named with ``--only``),
train the port with every setting of one airbench file (airbench93's or airbench94's widths, batch, length and
details, all 50,000 images), each its own length whatever ``--epochs`` says: what airbench's recipes reach on
this copy, read by :func:`utils.fast_cifar.replica_table`.

The variants are :data:`utils.fast_cifar.AUDIT_VARIANTS`; notebook 08 reads the rows with
:func:`utils.fast_cifar.audit_table`. Every run goes through :func:`utils.fast_cifar.run_recipe` into
``results/fast_cifar_audit.csv`` (a finished run is reused, an interrupted one resumes from its checkpoint)
and is exported to ``results/reference/fast_cifar_audit_lesson.csv`` as soon as it finishes. ``--seeds 42``
runs one seed, ``--only NAME ...`` some variants, ``--epochs 16`` trains them as long as the shipped 10-minute rows
(compared with those rows by :func:`utils.fast_cifar.length_matched_table`), ``--export-only`` exports what
``results/`` already holds.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from utils import fast_cifar, reference, results, runtime

AUDIT_PROFILE = "lesson"
AUDIT_SEEDS = (42, 43)


def variant_splits(dataset: Any, variant: fast_cifar.AuditVariant, seed: int, validation_size: int = 5_000) -> Any:
    """The splits a variant trains on: notebook 08's holdout split, all 50,000 images, or a second JPEG pass."""
    from utils import data

    if variant.data == fast_cifar.ALL_TRAINING_IMAGES:
        splits = data.make_splits(dataset, protocol="course", seed=seed)
        order = np.random.default_rng(seed).permutation(len(splits.y_train))  # the loader sorts images by class
        return dataclasses.replace(splits, x_train=splits.x_train[order], y_train=splits.y_train[order])
    splits = data.make_splits(dataset, protocol="holdout", validation_size=validation_size, seed=seed)
    if variant.data == fast_cifar.JPEG_AGAIN:
        again = fast_cifar.jpeg_round_trip
        return dataclasses.replace(
            splits, x_train=again(splits.x_train), x_validation=again(splits.x_validation), x_test=again(splits.x_test),
            source=f"{splits.source}; JPEG-compressed once more (quality {fast_cifar.JPEG_QUALITY}, 4:2:0, grid "
                   f"moved {fast_cifar.JPEG_GRID_OFFSET} px, Pillow)")
    return splits


def run_variant(variant: fast_cifar.AuditVariant, dataset: Any, seed: int, verbose: int = 2,
                epochs: int = fast_cifar.AUDIT_EPOCHS) -> dict[str, Any]:
    """Train and evaluate one variant with one seed through :func:`utils.fast_cifar.run_recipe`; its row.

    ``epochs`` other than the audit's 5 trains a length-matched run (:func:`utils.fast_cifar.length_matched_table`).
    """
    recipe = fast_cifar.modern_recipe(name=variant.name, epochs=variant.epochs or epochs, **variant.changes)
    splits = variant_splits(dataset, variant, seed)
    policy = keras.mixed_precision.global_policy().name
    try:
        run = fast_cifar.run_recipe(recipe, splits, seed=seed, profile=AUDIT_PROFILE, evaluate_test=True,
                                    verbose=verbose, table=fast_cifar.AUDIT_TABLE, precision=variant.precision)
    finally:
        runtime.apply_precision(policy)  # a variant's own precision must not carry over to the next one
    row = run.row
    print(f"{variant.name} (seed {seed}): validation {float(row['val_accuracy']):.4f}, test "
          f"{float(row['test_accuracy']):.4f}, {float(row['train_seconds']):.0f} s of training"
          f"{' (reused)' if run.reused else ''}", flush=True)
    return row


def export_audit(folder: Path | None = None) -> Path:
    """Copy the real-data rows of ``results/fast_cifar_audit.csv`` into ``results/reference/`` (no machine paths)."""
    from tools import reference as reference_tool

    try:
        rows = reference_tool.real_rows(fast_cifar.AUDIT_TABLE, AUDIT_PROFILE, "08", "fast_cifar")
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"{results.results_path(fast_cifar.AUDIT_TABLE)} has no real-data rows to export. Run the audit first: "
            "python -m tools.audit (with CNN_DATA_DIR pointing at the real data); --export-only exports once its "
            "runs are recorded.") from error
    path = (folder or reference.reference_dir()) / f"{fast_cifar.AUDIT_TABLE}_{AUDIT_PROFILE}.csv"
    shipped = reference_tool.shippable_rows(rows)
    results.write_text_atomically(lambda handle: shipped.to_csv(handle, index=False), path)
    return path


def chosen_variants(names: Sequence[str] | None) -> list[fast_cifar.AuditVariant]:
    """The variants named (all when none), or a ``ValueError`` listing the names there are."""
    if not names:
        return list(fast_cifar.AUDIT_VARIANTS)
    known = {variant.name: variant for variant in (*fast_cifar.AUDIT_VARIANTS, *fast_cifar.AIRBENCH_REPLICAS,
                                                    fast_cifar.WIDE_AT_20_MINUTES)}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"Unknown audit variant(s) {unknown}; choose from {list(known)}.")
    return [known[name] for name in names]


def main(arguments: list[str] | None = None) -> int:
    """Command line: ``python -m tools.audit [--seeds 42 43] [--only NAME ...] [--epochs 5] [--export-only]``."""
    parser = argparse.ArgumentParser(description="Train notebook 08's port against airbench94's details, export rows.")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(AUDIT_SEEDS))
    parser.add_argument("--only", nargs="+", default=None, help="variant names (default: all)")
    parser.add_argument("--epochs", type=int, default=fast_cifar.AUDIT_EPOCHS,
                        help="epochs per run (default: the audit's 5; 16 matches the shipped 10-minute rows)")
    parser.add_argument("--export-only", action="store_true")
    options = parser.parse_args(arguments)
    variants = chosen_variants(options.only)
    if not options.export_only:
        from utils import data

        runtime.setup_notebook(AUDIT_PROFILE, seed=options.seeds[0], mixed_precision=True)
        dataset = data.load_cifar10()
        for seed in options.seeds:  # every variant once before any second seed, so a cut session has one of each
            for variant in variants:
                run_variant(variant, dataset, seed, epochs=options.epochs)
                print(f"exported to {export_audit()}", flush=True)
    print(f"wrote {export_audit()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

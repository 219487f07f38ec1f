"""utils.reference and tools.reference: shipped reference tables are read safely, exported from finished runs, and compared."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tools import reference as reference_tools
from utils import experiments, fast_cifar, reference


def reference_row(name: str, train: float, val: float) -> dict:
    """A results row as run_experiment writes it (only the columns the reference needs)."""
    return {"experiment": name, "epochs": 50, "train_accuracy": train, "val_accuracy": val, "test_accuracy": val,
            "seconds": 1800.0, "images_per_second": 1500.0, "precision": "mixed_bfloat16",
            "hardware": "Test CPU (2 cores)", "tensorflow": "2.21.0", "keras": "3.15.1", "data_source": "real",
            "train_images": 45_000, "val_images": 5_000, "seed": 42, "timestamp": "2026-11-25T00:00:00+00:00"}


def epoch_log(epochs: int, final: float) -> dict[int, dict[str, float]]:
    return {epoch: {"accuracy": final * (epoch + 1) / epochs, "val_accuracy": final * (epoch + 1) / epochs - 0.05,
                    "loss": 2.0 - epoch * 0.1, "val_loss": 2.1 - epoch * 0.1, "seconds": 30.0, "train_seconds": 28.0}
            for epoch in range(epochs)}


def test_a_missing_table_is_a_message_not_an_error(tmp_path: Path):
    table = reference.read_reference("cifar10_full", folder=tmp_path)
    assert not table.usable and table.rows.empty
    assert "not measured yet" in table.problem


def test_a_malformed_table_is_a_message_naming_the_fix(tmp_path: Path):
    (tmp_path / "cifar10_full.csv").write_text("experiment,train_accuracy\nI,0.8\n")
    table = reference.read_reference("cifar10_full", folder=tmp_path)
    assert not table.usable and table.rows.empty
    assert "lacks the columns" in table.problem and "git checkout" in table.problem
    (tmp_path / "cifar10_lesson.csv").write_bytes(b"\xff\xfe\x00garbage")
    assert not reference.read_reference("cifar10_lesson", folder=tmp_path).usable


def test_export_then_read_round_trips_rows_and_curves(tmp_path: Path):
    reference_tools.export_cifar10_reference(reference_row("III", 0.89, 0.80), epoch_log(3, 0.9), "full", folder=tmp_path)
    reference_tools.export_cifar10_reference(reference_row("I", 0.84, 0.78), epoch_log(3, 0.85), "full", folder=tmp_path)
    table = reference.read_reference("cifar10_full", folder=tmp_path)
    assert table.usable and list(table.rows["experiment"]) == ["I", "III"]  # in the course's order
    histories = reference.read_reference_histories("cifar10_full", folder=tmp_path)
    assert set(histories) == {"I", "III"} and len(histories["III"]["val_accuracy"]) == 3
    assert histories["I"]["accuracy"][-1] == pytest.approx(0.85)


def test_exporting_an_experiment_again_replaces_its_rows(tmp_path: Path):
    reference_tools.export_cifar10_reference(reference_row("I", 0.84, 0.78), epoch_log(3, 0.85), "full", folder=tmp_path)
    reference_tools.export_cifar10_reference(reference_row("I", 0.86, 0.79), epoch_log(2, 0.86), "full", folder=tmp_path)
    rows = reference.read_reference("cifar10_full", folder=tmp_path).rows
    assert len(rows) == 1 and rows.iloc[0]["train_accuracy"] == pytest.approx(0.86)
    assert len(reference.read_reference_histories("cifar10_full", folder=tmp_path)["I"]["loss"]) == 2


def test_side_by_side_marks_unmeasured_experiments_and_never_fills_them():
    rows = pd.DataFrame([reference_row("I", 0.84, 0.78)])
    table = experiments.side_by_side_table({"full reference": rows}, None)
    assert list(table.index) == list(experiments.EXPERIMENTS)
    assert table.loc["I", "full reference val"] == pytest.approx(0.78)
    assert table.loc[["II", "VII"], "full reference val"].isna().all()
    assert table["this run val"].isna().all()
    assert table.loc["VII", "course val"] == pytest.approx(0.84)


def test_fidelity_compares_only_measured_experiments_within_two_points():
    rows = pd.DataFrame([reference_row("I", 0.84, 0.785), reference_row("II", 0.90, 0.79)])
    fidelity = experiments.fidelity_table(rows)
    assert list(fidelity.index) == ["I", "II"]
    assert bool(fidelity.loc["I", "within 2 points"]) and not bool(fidelity.loc["II", "within 2 points"])
    assert fidelity.loc["II", "train difference"] == pytest.approx(0.90 - 0.98)
    assert experiments.fidelity_table(pd.DataFrame()).empty


def test_the_comparison_plot_draws_only_what_was_measured():
    rows = pd.DataFrame([reference_row("I", 0.84, 0.78)])
    figure = experiments.plot_comparison(experiments.side_by_side_table({"full reference": rows}, None))
    labels = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert labels == ["course train", "course val (its test set)", "full reference train", "full reference val"]


def test_early_learning_compares_the_first_epochs_against_noise():
    histories = {"I": {"val_accuracy": [0.30, 0.40, 0.45]}, "III": {"val_accuracy": [0.45, 0.52, 0.55]}}
    table = experiments.early_learning_table(histories, validation_images=5_000)
    assert list(table.index) == [1, 2, 3]
    assert table.loc[1, "difference"] == pytest.approx(0.15) and table.loc[1, "beyond noise"]
    noise = 2 * np.hypot(np.sqrt(0.3 * 0.7 / 5_000), np.sqrt(0.45 * 0.55 / 5_000))
    assert table.loc[1, "noise (2 SE)"] == pytest.approx(noise)
    assert experiments.early_learning_table({"I": histories["I"]}).empty


def test_contrast_verdicts_follow_the_course_direction_and_noise():
    made_up = pd.DataFrame([
        {"experiment": name, "seed": 42, "epochs": 15, "train_accuracy": train, "val_accuracy": val,
         "test_accuracy": val, "val_images": 5_000, "train_images": 10_000, "seconds": 1.0, "images_per_second": 1.0}
        for name, train, val in [("I", 0.55, 0.55), ("II", 0.95, 0.62), ("III", 0.70, 0.64), ("IV", 0.94, 0.63)]])
    contrasts = experiments.contrast_table(made_up).set_index(["from", "to"])
    assert contrasts.loc[("I", "III"), "verdict"] == "holds"  # +0.09, far beyond noise; the course saw +0.03
    assert contrasts.loc[("II", "III"), "verdict"] == "holds"  # +0.02 on 5,000 images each: just beyond noise
    assert contrasts.loc[("II", "IV"), "verdict"] == "within noise"  # +0.01
    dropout = contrasts.loc[("II", "III")]
    assert dropout["gap change"] < -dropout["gap noise (2 SE)"]  # dropout cuts overfitting, beyond noise
    assert dropout["gap verdict"] == "holds"  # as the course saw: its gap fell from 0.19 to 0.07
    numbers = experiments.key_numbers({"run": made_up, "none yet": pd.DataFrame(), "smoke": made_up},
                                      smoke_tests=["smoke"])
    assert numbers.loc["experiments measured", "run"] == "4 of 7"  # every reading says what it rests on
    assert numbers.loc["most overfitting experiment", "run"] == "II (of the 4 measured)"
    assert numbers.loc["overfitting changes holding", "run"].endswith("of 3")
    assert pd.isna(numbers.loc["best validation accuracy", "none yet"])
    assert numbers.loc["best validation accuracy", "smoke"] == pytest.approx(0.64)  # a smoke test keeps its accuracy
    assert (numbers.loc[["most overfitting experiment", "validation changes holding"], "smoke"]
            == experiments.SMOKE_TEST_READING).all()  # and gives no verdicts


def made_up_full_table(**changes: tuple[float, float]) -> pd.DataFrame:
    """All seven experiments at 50 epochs on 45,000 images; ``changes`` overrides (train, val) per experiment."""
    values = {"I": (0.80, 0.75), "II": (0.97, 0.77), "III": (0.88, 0.80), "IV": (0.96, 0.77),
              "V": (0.87, 0.80), "VI": (0.88, 0.81), "VII": (0.93, 0.81), **changes}
    return pd.DataFrame([{"experiment": name, "seed": 42, "epochs": 50, "train_accuracy": train,
                          "val_accuracy": val, "test_accuracy": val, "val_images": 5_000, "train_images": 45_000,
                          "seconds": 1.0, "images_per_second": 1.0} for name, (train, val) in values.items()])


def test_course_conclusions_are_checked_against_noise_and_say_when_unmeasured():
    rows = made_up_full_table()
    # Flat last epochs: no epoch-to-epoch jitter adds to the sampling noise of 5,000 images.
    histories = {"I": {"val_accuracy": [0.30, 0.40, 0.45, 0.75, 0.75, 0.75]},
                 "III": {"val_accuracy": [0.50, 0.60, 0.62, 0.80, 0.80, 0.80]}}
    says = experiments.check_course_conclusions(rows, histories)["says"]
    assert says["dropout helps most"] == "helps, but I -> III gains more"  # +0.03 beyond noise; BN gains +0.05
    assert says["batch norm speeds training"] == "agrees"  # +0.19 on average over epochs 1-3
    assert says["L2 alone does not help"] == "agrees: no gain beyond noise"  # 0.77 -> 0.77
    assert says["an extra unit adds a little"] == "within noise"  # +0.01 on 5,000 images
    assert says["wider layers overfit more"] == "agrees"  # gap 0.07 -> 0.12
    l2_helps = experiments.check_course_conclusions(made_up_full_table(IV=(0.96, 0.82)))["says"]
    assert l2_helps["L2 alone does not help"] == "disagrees: a gain beyond noise"
    assert l2_helps["batch norm speeds training"] == "not measured yet (no learning curves)"
    two_rows = experiments.check_course_conclusions(rows[rows["experiment"].isin(["I", "III"])])
    assert (two_rows["says"] == experiments.NOT_MEASURED_YET).sum() == 4 and two_rows["ours"].isna().sum() == 5


def test_fidelity_compares_our_test_accuracy_with_the_courses_validation_on_its_test_set():
    rows = pd.DataFrame([{**reference_row("I", 0.84, 0.785), "test_accuracy": 0.77}])
    fidelity = experiments.fidelity_table(rows)
    assert fidelity.loc["I", "test vs course val"] == pytest.approx(0.77 - 0.79)


def test_contrast_curves_draw_one_panel_per_comparison_and_name_what_is_missing():
    histories = {"I": {"accuracy": [0.3, 0.5], "val_accuracy": [0.3, 0.45]},
                 "III": {"accuracy": [0.4, 0.6], "val_accuracy": [0.42, 0.55]}}
    figure = experiments.plot_contrast_curves(histories, title="test")
    assert len(figure.axes) == len(experiments.CONTRASTS)
    batch_norm = figure.axes[1]
    assert [line.get_label() for line in batch_norm.lines] == ["I train", "I validation", "III train", "III validation"]
    dropout = figure.axes[0]  # II vs III: only III is measured
    assert [text.get_text() for text in dropout.texts] == [f"II: {experiments.NOT_MEASURED_YET}"]
    assert figure.axes[3].lines[0].get_color() == batch_norm.lines[2].get_color()  # III keeps its colour


def test_single_seed_noise_includes_the_jitter_of_the_last_epochs():
    rows = pd.DataFrame([{"experiment": "III", "seed": 42, "epochs": 15, "train_accuracy": 0.65, "val_accuracy": 0.62,
                          "test_accuracy": 0.62, "val_images": 5_000, "seconds": 1.0, "images_per_second": 1.0}])
    summary = experiments.summarise_seeds(rows)
    sampling = np.sqrt(0.62 * 0.38 / 5_000)
    assert experiments.standard_errors(summary, rows).loc["III", "val"] == pytest.approx(sampling)
    jumpy = {"III": {"val_accuracy": [0.40, 0.57, 0.53, 0.62]}}
    assert experiments.standard_errors(summary, rows, jumpy).loc["III", "val"] == pytest.approx(
        np.std([0.57, 0.53, 0.62], ddof=1))
    steady = {"III": {"val_accuracy": [0.40, 0.620, 0.621, 0.620]}}
    assert experiments.standard_errors(summary, rows, steady).loc["III", "val"] == pytest.approx(sampling)


ABSOLUTE_PATH = re.compile(r"(?:^|[\s\"'(,=])(/(?:[\w.-]+/)+[\w.-]*|~/[\w./-]+|[A-Za-z]:\\[^\s,\"]+)")


def test_shipped_reference_files_name_no_machine_paths() -> None:
    """A reader's clone has no /work/shared/... folder: shipped rows say what the data was, not where it lay."""
    files = sorted(path for path in reference.reference_dir().rglob("*") if path.is_file())
    assert files, "no shipped reference files found"
    found = {path.name: ABSOLUTE_PATH.findall(path.read_text()) for path in files}
    assert not {name: paths[:3] for name, paths in found.items() if paths}


def test_the_path_check_would_catch_a_machine_path() -> None:
    assert ABSOLUTE_PATH.findall("1,JPEG image folders in /work/shared/data/cifar10 (decoded cache x.npz)")
    assert ABSOLUTE_PATH.findall('"C:\\Users\\me\\data"') and ABSOLUTE_PATH.findall("saved in ~/runs/x")
    assert not ABSOLUTE_PATH.findall("1,140 img/s, 10/50 epochs, train/validation, CIFAR-10, JPEG image folders")


def test_every_shipped_table_has_as_many_fields_per_row_as_columns() -> None:
    """An unquoted comma in a hand-migrated value would shift every later column of that row."""
    import csv

    for path in sorted(reference.reference_dir().glob("*.csv")):
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        widths = {len(row) for row in rows}
        assert widths == {len(rows[0])}, f"{path.name}: rows of {sorted(widths)} fields under {len(rows[0])} columns"


@pytest.mark.parametrize("profile", ["lesson", "full"])
def test_shipped_rows_carry_every_run_key_column_and_match_a_one_replica_key(profile, tmp_path, monkeypatch) -> None:
    """``replicas`` joined notebook 03's run key: the shipped rows (measured on one device) still load, are
    still found by a one-replica key and never by a two-replica one, and still fill the side-by-side table."""
    from utils import recording

    table = reference.read_reference(reference.reference_name(profile))
    assert table.usable and not table.rows.empty
    missing = [column for column in experiments.RUN_KEY_COLUMNS if column not in table.rows.columns]
    assert not missing, f"{profile} reference lacks run-key columns {missing}"
    assert table.rows["replicas"].eq(1).all()
    monkeypatch.setenv("CNN_RESULTS_DIR", str(tmp_path))
    table.rows.to_csv(tmp_path / f"{experiments.RESULTS_TABLE}.csv", index=False)
    for _, row in table.rows.iterrows():
        key = recording.run_key(**{column: row[column] for column in experiments.RUN_KEY_COLUMNS})
        assert recording.find_recorded_row(experiments.RESULTS_TABLE, key)["experiment"] == row["experiment"]
        assert recording.find_recorded_row(experiments.RESULTS_TABLE, {**key, "replicas": 2}) is None
    shown = experiments.side_by_side_table({"reference": table.rows})
    assert shown["reference val"].notna().sum() == len(table.rows)


def test_notebook_08_reference_command_passes_parameters_the_notebook_declares():
    from tools import run

    arguments = reference_tools.fast_cifar_reference_arguments()
    assert arguments[:4] == ["--profile", "lesson", "--only", "08"]
    parameters = run.parse_parameters([arguments[-1]])
    assert parameters == reference_tools.FAST_CIFAR_REFERENCE
    run.check_parameters_are_declared(run.list_notebooks(["08"]), parameters)  # raises on a name 08 lacks
    assert set(parameters["ABLATIONS"]) <= set(fast_cifar.ABLATIONS)
    shipped = fast_cifar.read_reference("lesson")
    shipped_minutes = set(shipped["time_budget_seconds"].astype(float) / 60)
    assert {*parameters["BUDGET_MINUTES"], parameters["ABLATION_MINUTES"]} <= shipped_minutes


def test_transfer_export_ships_real_rows_of_the_profile_only(tmp_path: Path, own_outputs: Path):
    """Rows of notebook 05's curve and pretraining tables (written here, synthetic values) go to the folder given."""
    from utils import data_efficiency, results

    for table in (data_efficiency.CURVE_TABLE, data_efficiency.PRETRAINING_TABLE):
        for profile, source in (("lesson", "CIFAR-10, JPEG image folders"), ("quick", "CIFAR-10, JPEG image folders"),
                                ("lesson", "synthetic (generated)")):
            results.append_result(table, {"profile": profile, "data_source": source, "test_accuracy": 0.5,
                                          "model_path": "/somewhere/on/this/machine.keras", "empty": None})
    paths = reference_tools.export_transfer_reference("lesson", folder=tmp_path)
    assert [path.name for path in paths] == ["transfer_curve_lesson.csv", "transfer_pretraining_lesson.csv"]
    for path in paths:
        shipped = pd.read_csv(path)
        assert len(shipped) == 1 and shipped.loc[0, "profile"] == "lesson"
        assert "model_path" not in shipped.columns and "empty" not in shipped.columns
    with pytest.raises(FileNotFoundError, match="tools.reference transfer --profile full"):
        reference_tools.export_transfer_reference("full", folder=tmp_path)

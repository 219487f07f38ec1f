"""Tests for tools.bench: the benchmark runs end to end and prints its figures in the promised format.

Speed itself is never asserted (a shared CPU makes timings meaningless as pass/fail);
the benchmark runs a handful of steps on the small synthetic CIFAR-10 stand-in.
"""

from __future__ import annotations

import re

import pandas as pd
import pytest

from tools import bench
from utils import results


@pytest.fixture
def synthetic_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny generated CIFAR-10-shaped data, whatever CNN_DATA_DIR says."""
    monkeypatch.setenv("CNN_DATA", "synthetic")


def test_benchmark_prints_both_experiments_and_ends_with_the_geometric_mean_speedup(synthetic_data, capsys):
    assert bench.main(["cifar10", "--steps", "3", "--repeats", "2", "--warmup-steps", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"speedup: \d+\.\d\dx", lines[-1])
    rounds = [line for line in lines if line.startswith("round ")]
    assert len(rounds) == 2
    speedups = []
    for name in ("I", "III"):
        line = next(line for line in lines if line.startswith(f"experiment {name}: "))
        course_rate, suite_rate = (float(value.replace(",", "")) for value in
                                   re.findall(r"([\d,]+\.\d) (?:images/s )?best", line))
        assert course_rate > 0 and suite_rate > 0
        speedups.append(suite_rate / course_rate)
    expected = (speedups[0] * speedups[1]) ** 0.5
    assert float(lines[-1][len("speedup: "):-1]) == pytest.approx(expected, rel=0.02)
    projections = [line for line in lines if line.startswith("projected notebook 03 training time")]
    assert [("full profile" in line, "lesson profile" in line) for line in projections] == [(True, False),
                                                                                             (False, True)]
    assert any("synthetic" in line for line in lines)  # the data source is in plain sight
    [estimate] = [line for line in lines if line.startswith("training-time estimate, experiment I")]
    estimated, measured, ratio = (float(number) for number in
                                  re.search(r"estimated (\S+) s, measured (\S+) s .*measured (\S+)$", estimate).groups())
    assert estimated > 0 and measured > 0
    # the three numbers are printed rounded (3, 3 and 2 decimals): the ratio must fit what their rounding allows
    lowest, highest = (estimated - 5e-4) / (measured + 5e-4), (estimated + 5e-4) / max(measured - 5e-4, 1e-9)
    assert lowest - 5e-3 <= ratio <= highest + 5e-3


def test_benchmark_records_a_row_per_experiment(synthetic_data):
    outcomes = bench.benchmark_cifar10(steps=2, repeats=1, warmup_steps=1)
    assert set(outcomes) == {"I", "III"}
    assert all(len(result.course_rates) == len(result.suite_rates) == 1 for result in outcomes.values())
    bench.record(outcomes)
    table = results.read_results("cifar10_benchmark")
    assert list(table["benchmark"].tail(2)) == ["cifar10 experiment I", "cifar10 experiment III"]
    assert (table["speedup"].tail(2) > 0).all() and table.iloc[-1]["steps"] == 2


def test_projection_uses_measured_rates_and_scales_the_rest_by_multiply_adds():
    hours = bench.projected_training_hours({"I": 1_000.0, "III": 500.0}, train_images=36_000, epochs=10)
    assert hours["I"] == pytest.approx(0.1) and hours["III"] == pytest.approx(0.2)
    assert hours["II"] == pytest.approx(hours["III"])  # same convolutions, same kind of model
    assert hours["VII"] > 2 * hours["V"]  # twice the filters: about four times the multiply-adds


def test_more_steps_than_data_are_capped(capsys):
    assert bench.usable_steps(10, image_count=1_000, batch_size=32) == 10
    assert bench.usable_steps(10_000, image_count=1_000, batch_size=32) == 31
    assert "instead of 10000" in capsys.readouterr().out
    with pytest.raises(ValueError, match="not even one batch"):
        bench.usable_steps(5, image_count=10, batch_size=32)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        bench.benchmark_cifar10(steps=0)
    with pytest.raises(SystemExit):
        bench.main(["imagenet"])


def test_make_bench_prints_no_tensorflow_start_up_lines(synthetic_data, tmp_path) -> None:
    """``make bench`` runs this command; TensorFlow is imported the notebooks' quiet way, in a fresh process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from tools import run

    environment = {key: value for key, value in os.environ.items()
                   if key not in ("TF_CPP_MIN_LOG_LEVEL", "CNN_TF_LOG_LEVEL")}
    finished = subprocess.run([sys.executable, "-m", "tools.bench", "cifar10", "--steps", "2", "--repeats", "1",
                               "--warmup-steps", "1"], cwd=Path(__file__).resolve().parent.parent,
                              env=environment, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr
    printed = (finished.stdout + finished.stderr).splitlines()
    log_lines = [line for line in printed if run.TENSORFLOW_LOG_LINE.search(line)]
    assert not log_lines, "\n".join(log_lines)
    assert finished.stdout.strip().splitlines()[-1].startswith("speedup: ")


def test_the_widths_benchmark_alternates_both_networks_and_records_and_ships_their_ratio(
        synthetic_data, tmp_path, monkeypatch, capsys):
    from utils import fast_cifar, reference

    narrow, wide = bench.widths_recipes()
    assert (narrow.widths, narrow.batch_size) == ((64, 128, 128), 512)  # the shipped target rows' recipe
    assert (wide.widths, wide.batch_size, wide.epochs) == ((64, 256, 256), 1024, 10)  # airbench94's replica
    small = (fast_cifar.modern_recipe(widths=(8, 16, 16), batch_size=32),
             fast_cifar.modern_recipe(widths=(8, 32, 32), batch_size=64))
    outcome = bench.benchmark_widths(repeats=2, steps=1, recipes=small)
    assert len(outcome.narrow_seconds) == len(outcome.wide_seconds) == 2
    assert (outcome.narrow_widths, outcome.wide_widths) == ("8/16/16", "8/32/32")
    assert outcome.ratio == pytest.approx(outcome.wide_images_per_second / outcome.narrow_images_per_second)
    bench.print_widths_projection(outcome)
    printed = capsys.readouterr().out
    assert re.search(r"wide over narrow, images per second: \d\.\d{3}", printed) and "round 2:" in printed
    assert printed.count("epochs of 50,000 images") == 2  # one line per target, from the shipped narrow rows
    monkeypatch.setattr(reference, "reference_dir", lambda: tmp_path)
    shipped = bench.record_widths(outcome, ship=True)
    assert shipped == tmp_path / "fast_cifar_widths.csv"
    row = pd.read_csv(shipped).iloc[-1]
    assert row["ratio"] == pytest.approx(outcome.ratio, abs=1e-4) and row["rounds"] == 2
    assert "synthetic" in row["data_source"].lower() and row["hardware"] and row["precision"]
    assert fast_cifar.wide_epochs_within(10, pd.DataFrame({"name": ["modern"], "time_budget_seconds": [600],
                                                           "evaluate_test": [True], "images_per_second": [100.0]}),
                                         pd.read_csv(shipped)) == pytest.approx(600 * 100 * row["ratio"] / 50_000)
    assert bench.record_widths(outcome) != shipped  # without ship only the run table grows
    assert len(pd.read_csv(shipped)) == 1

"""Tests for utils.bench: the benchmark runs end to end and prints its figures in the promised format.

Speed itself is never asserted (a shared CPU makes timings meaningless as pass/fail);
the benchmark runs a handful of steps on the small synthetic CIFAR-10 stand-in.
"""

from __future__ import annotations

import re

import pytest

from utils import bench, results


@pytest.fixture
def synthetic_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny generated CIFAR-10-shaped data, whatever CNN_DATA_DIR says."""
    monkeypatch.setenv("CNN_DATA", "synthetic")


def test_benchmark_prints_both_rates_and_ends_with_the_speedup(synthetic_data, capsys):
    assert bench.main(["cifar10", "--steps", "3", "--repeats", "2", "--warmup-steps", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert re.fullmatch(r"speedup: \d+\.\d\dx", lines[-1])
    rounds = [line for line in lines if line.startswith("round ")]
    assert len(rounds) == 2
    course_line = next(line for line in lines if line.startswith("course's way"))
    suite_line = next(line for line in lines if line.startswith("suite's way"))
    course_rate = float(re.search(r"([\d,]+\.\d) images/s best", course_line).group(1).replace(",", ""))
    suite_rate = float(re.search(r"([\d,]+\.\d) images/s best", suite_line).group(1).replace(",", ""))
    assert course_rate > 0 and suite_rate > 0
    assert float(lines[-1][len("speedup: "):-1]) == pytest.approx(suite_rate / course_rate, abs=0.01)
    assert any("synthetic" in line for line in lines)  # the data source is in plain sight


def test_benchmark_records_a_row(synthetic_data):
    result = bench.benchmark_cifar10(steps=2, repeats=1, warmup_steps=1)
    assert len(result.course_rates) == len(result.suite_rates) == 1
    bench.record(result)
    table = results.read_results("cifar10_benchmark")
    assert table.iloc[-1]["steps"] == 2 and table.iloc[-1]["speedup"] > 0


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

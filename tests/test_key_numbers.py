"""The closing "key numbers" table: ours beside the course's, agreement only where both exist."""

from __future__ import annotations

import pytest

from utils.key_numbers import key_numbers_table


def test_agreement_column() -> None:
    table = key_numbers_table([("VGG16 parameters", 138_357_544, 138_357_544), ("accuracy", 0.97, 0.9859),
                               ("our own figure", 12.5, None)])
    assert table.loc["VGG16 parameters", "agrees"] is True
    assert table.loc["accuracy", "agrees"] is False
    assert table.loc["our own figure", "agrees"] == "" and table.loc["our own figure", "course"] == ""
    assert table.loc["VGG16 parameters", "ours"] == "138,357,544"


def test_relative_tolerance_for_rounded_course_figures() -> None:
    assert key_numbers_table([("millions", 138.36, 138)], relative_tolerance=0.005).loc["millions", "agrees"]


def test_bad_rows_are_explained() -> None:
    with pytest.raises(ValueError, match="write None"):
        key_numbers_table([("only two", 1)])
    with pytest.raises(ValueError, match="at least one"):
        key_numbers_table([])

"""The exercise checker says right, wrong or unanswered, and never stops a headless run."""

from __future__ import annotations

import numpy as np

from utils import exercises


def test_correct_answer_prints_correct(capsys):
    assert exercises.check("sum", 4, 4, hint="add them") is True
    assert "Correct." in capsys.readouterr().out


def test_wrong_answer_prints_the_hint(capsys):
    assert exercises.check("sum", 5, 4, hint="add them") is False
    assert "Not yet: add them" in capsys.readouterr().out


def test_unanswered_exercise_does_not_raise(capsys):
    assert exercises.check("sum", None, 4, hint="add them") is False
    assert "Not answered yet (None)" in capsys.readouterr().out


def test_tolerance_applies_to_numbers_and_arrays():
    assert exercises.check("ratio", 0.312, 0.311, hint="", tolerance=0.01)
    assert not exercises.check("ratio", 0.35, 0.311, hint="", tolerance=0.01)
    assert exercises.check("map", [1.0, 2.0], np.array([1.0, 2.001]), hint="", tolerance=0.01)
    assert not exercises.check("map", [1.0, 2.0, 3.0], np.array([1.0, 2.0]), hint="")


def test_an_incomparable_answer_is_wrong_not_an_error():
    assert exercises.check("word", {"a": 1}, "up", hint="one word") is False
    assert exercises.check("word", "up", "up", hint="one word") is True

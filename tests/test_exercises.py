"""The exercise checker: right, wrong with a hint, and never an error for a blank answer."""

from __future__ import annotations

import numpy as np
import pytest

from utils import exercises


def test_blank_answer_is_reported_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    verdict = exercises.check("stride 2", ..., expected=3, hint="use the output-size formula")
    assert verdict.status == exercises.NOT_ANSWERED
    assert "not answered yet" in capsys.readouterr().out


@pytest.mark.parametrize("answer", [None, [1, ...], ((1, 2), (3, None))])
def test_partly_blank_answers_count_as_blank(answer: object) -> None:
    assert exercises.check("x", answer, expected=[[1, 2], [3, 4]], hint="", quiet=True).status == exercises.NOT_ANSWERED


def test_right_answer() -> None:
    verdict = exercises.check("matrix", [[1, 2], [3, 4]], expected=np.array([[1.0, 2.0], [3.0, 4.0]]), hint="h",
                              quiet=True)
    assert verdict.status == exercises.RIGHT


def test_wrong_answer_prints_the_hint(capsys: pytest.CaptureFixture[str]) -> None:
    verdict = exercises.check("size", 4, expected=3, hint="floor((n + 2p - k) / s) + 1")
    assert verdict.status == exercises.WRONG
    assert "floor((n + 2p - k) / s) + 1" in capsys.readouterr().out


def test_wrong_shape_is_named() -> None:
    verdict = exercises.check("map", [[1, 2, 3]], expected=[[1, 2], [3, 4]], hint="h", quiet=True)
    assert verdict.status == exercises.WRONG and "shape (1, 3)" in verdict.message


def test_tolerance_is_respected() -> None:
    close, far = (exercises.check("acc", answer, expected=0.3474, hint="", tolerance=0.001, quiet=True)
                  for answer in (0.347, 0.35))
    assert close.status == exercises.RIGHT and far.status == exercises.WRONG


def test_booleans_and_text() -> None:
    assert exercises.check("b", True, expected=True, hint="", quiet=True).status == exercises.RIGHT
    assert exercises.check("b", 1, expected=True, hint="", quiet=True).status == exercises.WRONG
    assert exercises.check("t", " Red ", expected="red", hint="", quiet=True).status == exercises.RIGHT
    assert exercises.check("t", "blue", expected="red", hint="", quiet=True).status == exercises.WRONG


def test_text_answer_to_a_number_question_is_wrong_not_an_error() -> None:
    assert exercises.check("n", "three", expected=3, hint="a number", quiet=True).status == exercises.WRONG


def test_nothing_to_compare_with_yet_says_what_to_run() -> None:
    verdict = exercises.check("run", 0.4, expected=None, hint="set EXERCISE_EPOCHS = 12 first", quiet=True)
    assert verdict.status == exercises.CANNOT_CHECK and "EXERCISE_EPOCHS" in verdict.message

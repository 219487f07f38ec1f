"""Checkable "your turn" exercises: the learner edits a value, a check says right or wrong (every notebook).

The learner replaces ``...`` with an answer; :func:`check` compares it with the value the notebook computes
and prints one line. A blank answer is not an error, so a headless run passes through its exercises.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

NOT_ANSWERED = "not answered"
RIGHT = "right"
WRONG = "wrong"
CANNOT_CHECK = "cannot check yet"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: which exercise, its status and the line printed for the learner."""

    exercise: str
    status: str
    message: str


def is_blank(answer: Any) -> bool:
    """True when the learner has not filled the answer in: ``...`` or ``None``, alone or inside a list/tuple."""
    if answer is ... or answer is None:
        return True
    if isinstance(answer, (list, tuple)):
        return any(is_blank(item) for item in answer)
    return False


def _as_number_array(value: Any) -> np.ndarray | None:
    """``value`` as a float array when it is numbers (or nested lists/tuples of numbers), else None."""
    if isinstance(value, (str, bytes)):
        return None
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return array


def answers_agree(answer: Any, expected: Any, tolerance: float = 0.0) -> bool:
    """Whether an answer matches the expected value.

    Numbers and arrays agree with the same shape and every entry within ``tolerance``; text ignoring case and
    surrounding spaces; anything else by ``==``.
    """
    if isinstance(expected, str):
        return isinstance(answer, str) and answer.strip().lower() == expected.strip().lower()
    if isinstance(expected, (bool, np.bool_)):
        return isinstance(answer, (bool, np.bool_)) and bool(answer) == bool(expected)
    expected_numbers, answer_numbers = _as_number_array(expected), _as_number_array(answer)
    if expected_numbers is not None and answer_numbers is not None:
        return (answer_numbers.shape == expected_numbers.shape
                and bool(np.all(np.abs(answer_numbers - expected_numbers) <= tolerance)))
    return answer == expected


def _shape_hint(answer: Any, expected: Any) -> str:
    """A short note when an array answer has the wrong shape (the most common slip with matrices)."""
    expected_numbers, answer_numbers = _as_number_array(expected), _as_number_array(answer)
    if expected_numbers is None or answer_numbers is None or expected_numbers.ndim == 0:
        return ""
    if answer_numbers.shape != expected_numbers.shape:
        return f" (your answer has shape {answer_numbers.shape}; check how many rows and columns there are)"
    return ""


def check(exercise: str, answer: Any, expected: Any, hint: str, tolerance: float = 0.0,
          quiet: bool = False) -> Verdict:
    """Compare the learner's ``answer`` with ``expected``, print one line and return the verdict.

    ``...`` gives "not answered yet" (never an exception, so a headless run continues); ``expected=None`` means
    nothing to compare with yet, and the ``hint`` says what to run. A wrong answer prints the hint.
    """
    if is_blank(answer):
        verdict = Verdict(exercise, NOT_ANSWERED,
                          f"{exercise}: not answered yet - replace the ... above with your answer and run again.")
    elif expected is None:
        verdict = Verdict(exercise, CANNOT_CHECK, f"{exercise}: nothing to compare with yet. {hint}")
    elif answers_agree(answer, expected, tolerance):
        verdict = Verdict(exercise, RIGHT, f"{exercise}: right!")
    else:
        verdict = Verdict(exercise, WRONG,
                          f"{exercise}: not quite{_shape_hint(answer, expected)}. Hint: {hint}")
    if not quiet:
        print(verdict.message)
    return verdict

"""Checkable exercises: a learner's answer compared with the expected one, with a hint.

A "your turn" cell sets an answer (``None`` until the learner fills it in) and
calls :func:`check`.  The check prints one line and returns whether the answer
is right; it never raises, so a notebook executed headless (with the answers
still ``None``) runs on to the end.  Solutions live in a collapsed markdown
``<details>`` block under the exercise, reachable but not in the way.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np


def _matches(answer: Any, expected: Any, tolerance: float) -> bool:
    """True when ``answer`` equals ``expected``; numbers and arrays may differ by ``tolerance``."""
    if isinstance(answer, numbers.Number) and isinstance(expected, numbers.Number):
        return abs(float(answer) - float(expected)) <= tolerance
    if isinstance(answer, (np.ndarray, list, tuple)) and isinstance(expected, (np.ndarray, list, tuple)):
        answer_array, expected_array = np.asarray(answer), np.asarray(expected)
        if answer_array.shape != expected_array.shape:
            return False
        if answer_array.dtype.kind in "biuf" and expected_array.dtype.kind in "biuf":
            return bool(np.allclose(answer_array, expected_array, rtol=0.0, atol=tolerance))
        return bool(np.array_equal(answer_array, expected_array))
    return bool(answer == expected)


def check(name: str, answer: Any, expected: Any, hint: str, tolerance: float = 0.0) -> bool:
    """Print whether the exercise ``name`` is answered correctly, and return it.

    Prints "Correct.", "Not yet: <hint>" or, while ``answer`` is still ``None``,
    "Not answered yet (None)".  Numbers (and arrays of numbers) count as equal
    when they differ by at most ``tolerance``; anything else must be equal.
    An answer that cannot be compared at all counts as "not yet", never as an error.
    """
    if answer is None:
        print(f"[{name}] Not answered yet (None)")
        return False
    try:
        correct = _matches(answer, expected, tolerance)
    except Exception:  # an answer of an unexpected type is a wrong answer, not a crash
        correct = False
    print(f"[{name}] Correct." if correct else f"[{name}] Not yet: {hint}")
    return correct

"""The short "key numbers" table that closes each notebook: ours beside the course's.

``agrees`` is filled only where the course gives a figure, so a reader sees which numbers reproduce it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

KeyNumber = tuple[str, Any, Any]


def _agrees(ours: Any, course: Any, relative_tolerance: float) -> bool | str:
    """True/False where both values exist and are numbers (or equal objects); "" where the course gives none."""
    if course is None:
        return ""
    if isinstance(ours, (int, float)) and isinstance(course, (int, float)):
        return abs(ours - course) <= relative_tolerance * max(abs(course), 1e-12)
    return ours == course


def _format(value: Any) -> str:
    """Whole numbers with thousands separators, fractions to 4 significant digits, text as is."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def key_numbers_table(rows: Sequence[KeyNumber], relative_tolerance: float = 0.0) -> pd.DataFrame:
    """A table of ``(quantity, ours, course)`` rows; ``course`` is None where the course gives no figure.

    ``relative_tolerance`` decides when a number agrees (0: exactly; 0.005 for a rounded "about 138 M").
    """
    if not rows:
        raise ValueError("key_numbers_table needs at least one (quantity, ours, course) row.")
    for row in rows:
        if len(row) != 3:
            raise ValueError(
                f"Each key number is (quantity, ours, course), got {row!r}; "
                "write None for the course's value where the course gives none.")
    return pd.DataFrame({
        "quantity": [quantity for quantity, _, _ in rows],
        "ours": [_format(ours) for _, ours, _ in rows],
        "course": [_format(course) for _, _, course in rows],
        "agrees": [_agrees(ours, course, relative_tolerance) for _, ours, course in rows],
    }).set_index("quantity")

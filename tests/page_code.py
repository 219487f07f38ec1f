"""Load functions that a notebook writes on its page, so tests can check the notebook's own code.

Code taught in one notebook lives only there (the d2l way), not in a second copy under ``utils/``; these
helpers take its ``def`` and ``class`` statements out of the notebook's code cells and define them in a
namespace the test fills with the globals the page's code expects (a ``model``, a ``graph``...).
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import numpy as np

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def page_definitions(notebook_prefix: str, names: list[str], **namespace: Any) -> dict[str, Any]:
    """The functions, classes and constants ``names`` from notebook ``notebook_prefix`` (e.g. "07"), in ``namespace``.

    Only the named top-level ``def``, ``class`` and ``NAME = ...`` statements are run, not the cells around them; a name the
    notebook does not define fails the test with the notebook's path.
    """
    path = next(NOTEBOOKS.glob(f"{notebook_prefix}_*.ipynb"))
    found: dict[str, ast.stmt] = {}
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "code":
            for node in ast.parse(cell.source).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
                    found[node.name] = node
                elif isinstance(node, ast.Assign) and len(node.targets) == 1 and getattr(node.targets[0], "id", None) in names:
                    found[node.targets[0].id] = node  # a constant the page's functions read
    missing = sorted(set(names) - set(found))
    assert not missing, f"{path.name} defines no {missing} in its code cells"
    scope = {"np": np, "Any": Any, "Callable": Callable, "dataclass": dataclass, **namespace}
    for name in names:  # in the order given, so a class is defined before a function that annotates with it
        exec(compile(ast.Module([found[name]], type_ignores=[]), str(path), "exec"), scope)
    return scope


def show_matrices(*arguments: Any, **options: Any) -> Any:
    """Notebook 01's matrix drawing, as its page writes it (used by more than one test file)."""
    import matplotlib.pyplot as plt

    from utils import plotting

    return page_definitions("01", ["show_matrices"], plt=plt, plotting=plotting)["show_matrices"](*arguments, **options)


def notebook_08_time_plots() -> dict[str, Any]:
    """Notebook 08's plots against training time, as its page writes them (used by more than one test file)."""
    import matplotlib.pyplot as plt
    import pandas as pd

    from utils import course

    return page_definitions("08", ["finish_time_axes", "plot_accuracy_against_time", "plot_same_clock_race"], plt=plt,
                            pd=pd, course=course)

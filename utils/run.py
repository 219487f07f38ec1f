"""Execute the notebooks headless, in order, in fresh kernels: ``python -m utils.run``.

Each notebook runs top to bottom with the chosen profile passed through the
``CNN_PROFILE`` environment variable (which the notebook's setup cell reads).
Executed copies, with their outputs, are written to ``runs/<profile>/`` so the
committed notebooks stay output-free.  A table of (notebook, status, seconds) is
printed and saved as ``runs/<profile>/summary.csv``; the exit status is non-zero
when any notebook failed, and the failing cell is named.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from utils import runtime


@dataclass
class NotebookOutcome:
    """How one notebook run went."""

    notebook: str
    status: str
    seconds: float
    detail: str = ""


def notebooks_dir() -> Path:
    """The folder holding the numbered source notebooks."""
    return runtime.project_root() / "notebooks"


def list_notebooks(only: list[str] | None = None) -> list[Path]:
    """Numbered notebooks in order, optionally only those whose number or name is in ``only``."""
    found = sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return found
    wanted = {token.removesuffix(".ipynb") for token in only}
    chosen = [path for path in found if path.stem in wanted or path.stem[:2] in wanted]
    unknown = wanted - {path.stem for path in chosen} - {path.stem[:2] for path in chosen}
    if unknown:
        names = ", ".join(path.stem for path in found)
        raise SystemExit(f"No notebook matches {sorted(unknown)}; available: {names}")
    return chosen


def _failing_cell_description(notebook, error: Exception) -> str:
    """Name the cell that raised: its index and first source line, plus the error's last line."""
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                first_line = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
                return f"cell {index} ({first_line[:60]!r}): {output.get('ename')}: {output.get('evalue')}"
    return str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__


def execute_notebook(
    source: Path,
    output_folder: Path,
    profile: str,
    timeout_seconds: int = 3600,
    extra_environment: dict[str, str] | None = None,
) -> NotebookOutcome:
    """Run one notebook in a fresh kernel and write the executed copy into ``output_folder``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    notebook = nbformat.read(source, as_version=4)
    saved_environment = dict(os.environ)
    os.environ.update({"CNN_PROFILE": profile, "PYTHONUNBUFFERED": "1"})
    os.environ.update(extra_environment or {})
    # The kernel's own inline backend embeds figures in the executed copy; a
    # non-interactive MPLBACKEND inherited from a test run would drop them.
    os.environ.pop("MPLBACKEND", None)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    client = NotebookClient(
        notebook,
        timeout=timeout_seconds,
        kernel_name="python3",
        resources={"metadata": {"path": str(source.parent)}},
    )
    started = time.perf_counter()
    status, detail = "ok", ""
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as error:
        status, detail = "failed", _failing_cell_description(notebook, error)
    finally:
        os.environ.clear()
        os.environ.update(saved_environment)
    seconds = time.perf_counter() - started
    output_folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, output_folder / source.name)
    return NotebookOutcome(source.stem, status, round(seconds, 1), detail)


def write_summary(outcomes: list[NotebookOutcome], path: Path) -> None:
    """Save the run table as CSV (one row per notebook)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["notebook", "status", "seconds", "detail"])
        for outcome in outcomes:
            writer.writerow([outcome.notebook, outcome.status, outcome.seconds, outcome.detail])


def format_table(outcomes: list[NotebookOutcome]) -> str:
    """A plain-text table of the run, for the terminal."""
    width = max([len("notebook"), *(len(outcome.notebook) for outcome in outcomes)])
    lines = [f"{'notebook':<{width}}  status  seconds", "-" * (width + 17)]
    for outcome in outcomes:
        lines.append(f"{outcome.notebook:<{width}}  {outcome.status:<6}  {outcome.seconds:>7.1f}")
        if outcome.detail:
            lines.append(f"{'':<{width}}  -> {outcome.detail}")
    return "\n".join(lines)


def main(arguments: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(runtime.PROFILE_DESCRIPTIONS), default=None,
                        help="quick (CPU-sized) or full (the course's settings); default: automatic")
    parser.add_argument("--only", nargs="+", metavar="NN", help="notebook numbers or names to run")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    options = parser.parse_args(arguments)
    profile = runtime.resolve_profile(options.profile)
    print(f"Profile: {profile.name} ({profile.reason})")
    output_folder = runtime.runs_dir() / profile.name
    outcomes = []
    for source in list_notebooks(options.only):
        print(f"Running {source.name} ...", flush=True)
        outcome = execute_notebook(source, output_folder, profile.name, options.timeout)
        print(f"  {outcome.status} in {outcome.seconds:.1f} s {outcome.detail}", flush=True)
        outcomes.append(outcome)
    write_summary(outcomes, output_folder / "summary.csv")
    print()
    print(format_table(outcomes))
    print(f"\nExecuted copies and summary.csv are in {output_folder}")
    failed = [outcome for outcome in outcomes if outcome.status != "ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

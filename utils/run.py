"""Execute the notebooks headless, in order, in fresh kernels: ``python -m utils.run``.

Each notebook runs top to bottom.  Its parameters are set the way papermill
sets them: a cell tagged ``injected-parameters`` is inserted right after the
cell tagged ``parameters`` and assigns the profile and every ``--param``
(``python -m utils.run --only 03 --param "EXPERIMENTS=['I', 'III'] SEEDS=[1, 2, 3]"``).
Executed copies, with their outputs, are written to ``runs/<profile>/`` so the
committed notebooks stay output-free.  A table of (notebook, status, seconds) is
printed and saved as ``runs/<profile>/summary.csv``; the exit status is non-zero
when any notebook failed, and the failing cell is named.
"""

from __future__ import annotations

import argparse
import ast
import csv
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from utils import runtime

PARAMETERS_TAG = "parameters"
INJECTED_PARAMETERS_TAG = "injected-parameters"
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
ASSIGNMENT_START = re.compile(r"(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)\s*=(?!=)")
# TensorFlow's C++ log lines ("I0000 00:00:17... port.cc:153] oneDNN ...") and the notices around them.
TENSORFLOW_LOG_LINE = re.compile(
    r"^[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [\w.]+:\d+\]|All log messages before absl::InitializeLog"
    r"|oneDNN custom operations are on|Could not find cuda drivers|failed call to cuInit"
    r"|Unable to register cu(DNN|FFT|BLAS) factory|TF-TRT Warning|This TensorFlow binary is optimized"
)
# A Keras progress line: a bar or "63/63 - 5s - 80ms/step - ..." (each redraw of a live bar counts), or "Epoch 3/12".
PROGRESS_LINE = re.compile(r"^\s*\d+/\d+\s.*(━|/step|ETA)|^Epoch \d+/\d+")


@dataclass
class NotebookOutcome:
    """How one notebook run went, with the noise counts of its executed copy."""

    notebook: str
    status: str
    seconds: float
    detail: str = ""
    log_lines: int = 0
    progress_lines: int = 0


@dataclass
class CellNoise:
    """TensorFlow log lines and Keras progress lines in one executed cell's outputs."""

    cell_index: int
    log_lines: int
    progress_lines: int


def output_lines(cell: Any) -> list[str]:
    """The text lines a cell's outputs hold as saved; a carriage return starts a new line (a redrawn bar)."""
    texts: list[str] = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            texts.append(output.get("text", ""))
        elif output.get("output_type") == "error":
            texts.extend(output.get("traceback", []))
        else:
            texts.append(output.get("data", {}).get("text/plain", ""))
    text = "\n".join("".join(part) if isinstance(part, list) else part for part in texts).replace("\b", "")
    text = ANSI_ESCAPE.sub("", text)
    return [line for line in re.split(r"\r\n|\r|\n", text) if line.strip()]


def output_noise(notebook: Any) -> list[CellNoise]:
    """Per code cell with any, the TensorFlow log lines and Keras progress lines in its saved outputs."""
    noise = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        lines = output_lines(cell)
        log_lines = sum(1 for line in lines if TENSORFLOW_LOG_LINE.search(line))
        progress_lines = sum(1 for line in lines if PROGRESS_LINE.search(line))
        if log_lines or progress_lines:
            noise.append(CellNoise(index, log_lines, progress_lines))
    return noise


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


class ParameterError(ValueError):
    """A ``--param`` that cannot be parsed or that no chosen notebook declares; the message says why."""


def parse_parameters(texts: list[str] | None) -> dict[str, Any]:
    """Turn ``NAME=value`` assignments into a dict; values are Python literals (lists, strings, numbers...).

    One text may hold several assignments separated by spaces, as ``make run
    PARAMS="EXPERIMENTS=['I', 'III'] SEEDS=[1, 2, 3]"`` passes them; a bare word
    that is not a literal (``PROTOCOL=course``) is taken as a string.
    """
    parameters: dict[str, Any] = {}
    for text in texts or []:
        starts = [match for match in ASSIGNMENT_START.finditer(text) if _outside_brackets(text, match.start(1))]
        if not starts or text[: starts[0].start(1)].strip():
            raise ParameterError(f"--param {text!r} is not of the form NAME=value (for example "
                                 f"--param \"EXPERIMENTS=['I', 'III']\" or --param EPOCHS=3).")
        for match, following in zip(starts, [*starts[1:], None]):
            value_text = text[match.end(): following.start(1) if following else len(text)].strip()
            parameters[match.group(1)] = _literal(match.group(1), value_text)
    return parameters


def _outside_brackets(text: str, position: int) -> bool:
    depth, quote = 0, ""
    for character in text[:position]:
        if quote:
            quote = "" if character == quote else quote
        elif character in "'\"":
            quote = character
        elif character in "([{":
            depth += 1
        elif character in ")]}":
            depth -= 1
    return depth == 0 and not quote


def _literal(name: str, value_text: str) -> Any:
    if not value_text:
        raise ParameterError(f"--param {name}= has no value; write for example {name}=3 or {name}=None.")
    try:
        return ast.literal_eval(value_text)
    except (ValueError, SyntaxError):
        if re.fullmatch(r"[A-Za-z0-9_.\-/]+", value_text):
            return value_text
        raise ParameterError(f"--param {name}={value_text} is not a Python literal; quote strings and write "
                             f"lists with brackets, e.g. {name}=['I', 'III'].") from None


def declared_parameters(notebook: Any) -> list[str]:
    """Names assigned in the notebook's cell tagged ``parameters`` (empty when it has none)."""
    for cell in notebook.cells:
        if PARAMETERS_TAG in cell.get("metadata", {}).get("tags", []):
            tree = ast.parse(cell.source)
            return [target.id for node in tree.body if isinstance(node, ast.Assign)
                    for target in node.targets if isinstance(target, ast.Name)]
    return []


def inject_parameters(notebook: Any, parameters: dict[str, Any]) -> None:
    """Insert a cell tagged ``injected-parameters`` right after the ``parameters`` cell.

    The same convention as papermill: the notebook keeps its defaults, and the
    executed copy shows which values replaced them.  Nothing is inserted when
    ``parameters`` is empty or the notebook has no parameters cell.
    """
    import nbformat

    position = next((index + 1 for index, existing in enumerate(notebook.cells)
                     if PARAMETERS_TAG in existing.get("metadata", {}).get("tags", [])), None)
    if not parameters or position is None:
        return

    lines = ["# Parameters injected by python -m utils.run"]
    lines += [f"{name} = {value!r}" for name, value in parameters.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.metadata["tags"] = [INJECTED_PARAMETERS_TAG]
    notebook.cells.insert(position, cell)


def parameters_for(notebook: Any, profile: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The profile plus those ``parameters`` this notebook declares (every numbered notebook declares PROFILE).

    A notebook without a parameters cell gets nothing injected; it still finds
    the profile in ``CNN_PROFILE``, which the runner sets for every kernel.
    """
    declared = declared_parameters(notebook)
    chosen = {"PROFILE": profile} if "PROFILE" in declared else {}
    chosen.update({name: value for name, value in parameters.items() if name in declared})
    return chosen


def check_parameters_are_declared(sources: list[Path], parameters: dict[str, Any]) -> None:
    """Refuse a ``--param`` that none of the chosen notebooks declares (a typo would be silently ignored)."""
    import nbformat

    declared = {name for source in sources for name in declared_parameters(nbformat.read(source, as_version=4))}
    unknown = sorted(set(parameters) - declared)
    if unknown:
        names = ", ".join(path.stem for path in sources)
        raise ParameterError(f"No chosen notebook ({names}) has a parameter named {', '.join(unknown)}. "
                             f"Their parameters cells declare: {', '.join(sorted(declared))}.")


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
    parameters: dict[str, Any] | None = None,
) -> NotebookOutcome:
    """Run one notebook in a fresh kernel and write the executed copy into ``output_folder``.

    The profile and the ``parameters`` the notebook declares are injected after
    its parameters cell; the kernel runs headless (``CNN_HEADLESS=1``), so
    training prints one line per epoch instead of a redrawn bar.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    notebook = nbformat.read(source, as_version=4)
    inject_parameters(notebook, parameters_for(notebook, profile, parameters or {}))
    saved_environment = dict(os.environ)
    os.environ.update({"CNN_PROFILE": profile, "PYTHONUNBUFFERED": "1", runtime.HEADLESS_ENVIRONMENT_VARIABLE: "1"})
    os.environ.update(extra_environment or {})
    # The kernel's own inline backend embeds figures in the executed copy; a
    # non-interactive MPLBACKEND inherited from a test run would drop them.
    os.environ.pop("MPLBACKEND", None)
    client = NotebookClient(
        notebook,
        timeout=timeout_seconds,
        kernel_name="python3",
        resources={"metadata": {"path": str(source.parent)}},
        # The kernel's own start-up warnings (e.g. "running over TCP without encryption") are not the notebook's.
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
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
    noise = output_noise(notebook)
    return NotebookOutcome(source.stem, status, round(seconds, 1), detail,
                           sum(cell.log_lines for cell in noise), sum(cell.progress_lines for cell in noise))


def write_summary(outcomes: list[NotebookOutcome], path: Path) -> None:
    """Save the run table as CSV (one row per notebook)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["notebook", "status", "seconds", "log_lines", "progress_lines", "detail"])
        for outcome in outcomes:
            writer.writerow([outcome.notebook, outcome.status, outcome.seconds, outcome.log_lines,
                             outcome.progress_lines, outcome.detail])


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
    parser.add_argument("--param", action="append", metavar="NAME=VALUE",
                        help="set a notebook parameter, e.g. --param \"EXPERIMENTS=['I', 'III']\" (repeatable; "
                             "one value may hold several space-separated assignments)")
    options = parser.parse_args(arguments)
    sources = list_notebooks(options.only)
    try:
        parameters = parse_parameters(options.param)
        check_parameters_are_declared(sources, parameters)
    except ParameterError as error:
        parser.error(str(error))
    profile = runtime.resolve_profile(options.profile)
    print(f"Profile: {profile.name} ({profile.reason})")
    if parameters:
        print("Parameters: " + ", ".join(f"{name}={value!r}" for name, value in parameters.items()))
    output_folder = runtime.runs_dir() / profile.name
    outcomes = []
    for source in sources:
        print(f"Running {source.name} ...", flush=True)
        outcome = execute_notebook(source, output_folder, profile.name, options.timeout, parameters=parameters)
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

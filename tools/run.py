"""Execute the notebooks headless, in order, in fresh kernels: ``python -m tools.run``.

Each notebook runs top to bottom.  Its parameters are set the way papermill
sets them: a cell tagged ``injected-parameters`` is inserted right after the
cell tagged ``parameters`` and assigns the profile and every ``--param``
(``python -m tools.run --only 03 --param "EXPERIMENTS=['I', 'III'] SEEDS=[1, 2, 3]"``).
Executed copies, with their outputs, are written to ``runs/<profile>/`` so the
committed notebooks stay output-free.  A table of (notebook, status, seconds) is
printed and saved as ``runs/<profile>/summary.csv``; the exit status is non-zero
when any notebook shows an error, and the cell and exception are named.

A notebook is ``ok`` only when its executed copy holds no error output and no
traceback in a printed stream, wherever it came from: a cell that raised, or a
hook that ran after it (the inline backend drawing a figure raises there, and
the next cell runs on).  Ctrl-C or SIGTERM stops the whole run cleanly: the
notebook being run is marked ``interrupted``, its partial copy is saved, the
ones not reached are marked ``not run``, a paragraph says what happened, and
the exit status is 130 or 143, as a shell reports a process those signals
stopped.
"""

from __future__ import annotations

import argparse
import ast
import csv
import os
import re
import signal
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
# A Python traceback printed into a stream (stderr of a thread, a library's own handler...).
STREAM_TRACEBACK = re.compile(r"^Traceback \(most recent call last\):", re.MULTILINE)
# The line that names the exception under a traceback: "ValueError: ..." or a bare "KeyboardInterrupt".
EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Interrupt|Exit|Exhausted))(?::\s*(.*))?$")
NOT_RUN = "not run"
STOP_SIGNALS = {signal.SIGINT: "Ctrl-C (SIGINT)", signal.SIGTERM: "SIGTERM"}
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
class ErrorOutput:
    """One error a cell's saved outputs show: an ``error`` output or a traceback printed into a stream."""

    cell_index: int
    exception: str
    first_source_line: str

    def describe(self) -> str:
        """``cell 7 ('ax.set_title(...)'): ValueError: ...``, the way the run table names it."""
        return f"cell {self.cell_index} ({self.first_source_line[:60]!r}): {self.exception}"


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


def _first_source_line(cell: Any) -> str:
    source = cell.get("source", "").strip()
    return source.splitlines()[0] if source else ""


def _exception_under_traceback(text: str) -> str:
    """The last exception line of a printed traceback, or a plain 'traceback' when none is recognisable."""
    lines = [line.strip() for line in ANSI_ESCAPE.sub("", text[STREAM_TRACEBACK.search(text).start():]).splitlines()]
    names = [line for line in lines if EXCEPTION_LINE.match(line)]
    return f"{names[-1]} (traceback in a printed stream)" if names else "traceback in a printed stream"


def error_outputs(notebook: Any) -> list[ErrorOutput]:
    """Every error a notebook's saved outputs show, in cell order (empty when it ran cleanly).

    Both kinds count: ``error`` outputs (a cell raised, or a post-execute hook
    such as figure rendering raised after it) and tracebacks printed into a
    stream output, which a cell can show without raising.
    """
    found = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                exception = f"{output.get('ename')}: {output.get('evalue')}".rstrip(": ")
                found.append(ErrorOutput(index, exception, _first_source_line(cell)))
            elif output.get("output_type") == "stream":
                text = output.get("text", "")
                text = "".join(text) if isinstance(text, list) else text
                if STREAM_TRACEBACK.search(text):
                    found.append(ErrorOutput(index, _exception_under_traceback(text), _first_source_line(cell)))
    return found


def describe_errors(errors: list[ErrorOutput]) -> str:
    """The first error named in full, and how many more the copy holds."""
    more = len(errors) - 1
    cells = len({error.cell_index for error in errors})
    extra = f" (+{more} more error output(s), {cells} cell(s) in all)" if more else ""
    return errors[0].describe() + extra


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
    """The folder holding the numbered source notebooks: ``CNN_NOTEBOOKS_DIR`` or ``notebooks/``.

    The variable lets an instructor (or a test) run a folder of their own numbered
    notebooks through the same runner, summary and stop handling.
    """
    configured = os.environ.get("CNN_NOTEBOOKS_DIR")
    return Path(configured).expanduser() if configured else runtime.project_root() / "notebooks"


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

    lines = ["# Parameters injected by python -m tools.run"]
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


class RunInterrupted(Exception):
    """Raised inside a notebook's execution when a stop signal arrived; stops the kernel the normal way."""


class StopSignals:
    """Turn Ctrl-C and SIGTERM into a clean stop of the whole run.

    The handler raises nothing in the middle of nbclient's event loop, which
    would leave the kernel running: it records the signal and kills the kernel
    of the notebook being run, so nbclient ends that notebook through its own
    dead-kernel path and shuts down cleanly.  The runner then marks the notebook
    ``interrupted`` and starts nothing more.  Later signals during the clean-up
    are ignored.  While a notebook runs, nbclient puts its own handlers on the
    event loop (a graceful shutdown that leaves the runner going on to the next
    notebook) and resets the process's handlers when it is done, so
    :class:`_StoppableClient` replaces nbclient's loop handlers with
    :meth:`handle` and :meth:`install` is called again after every notebook.
    """

    def __init__(self) -> None:
        self.signal_number: int | None = None
        self.kernel_manager: Any = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Handle SIGINT and SIGTERM in this process until :meth:`restore`."""
        for number in STOP_SIGNALS:
            previous = signal.signal(number, self._handle)
            self._previous.setdefault(number, previous)

    def restore(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for number, previous in self._previous.items():
            signal.signal(number, previous)

    def _handle(self, number: int, _frame: Any) -> None:
        self.handle(number)

    def handle(self, number: int) -> None:
        """Record the first stop signal and kill the running kernel; ignore the ones that follow."""
        if self.signal_number is None:
            self.signal_number = number
            self.kill_kernel()

    def kill_kernel(self) -> None:
        """Kill the kernel process of the notebook being run, if there is one."""
        process = getattr(getattr(self.kernel_manager, "provisioner", None), "process", None)
        if process is not None and process.poll() is None:
            process.kill()

    @property
    def exit_status(self) -> int:
        """128 plus the signal number: 130 for Ctrl-C, 143 for SIGTERM (0 when none arrived)."""
        return 128 + self.signal_number if self.signal_number else 0


NO_SIGNALS = StopSignals()  # never installed: execute_notebook called from a test or a notebook


def _stoppable_client_class() -> type:
    """nbclient's NotebookClient, with the stop signals going to a :class:`StopSignals` (imported lazily)."""
    import asyncio

    from nbclient import NotebookClient

    class _StoppableClient(NotebookClient):
        stop_signals: StopSignals = NO_SIGNALS

        async def async_start_new_kernel(self, **kwargs: Any) -> None:
            # nbclient has just put its own SIGINT/SIGTERM handlers on the loop; ours replace them.
            if self.stop_signals is not NO_SIGNALS:
                loop = asyncio.get_running_loop()
                for number in STOP_SIGNALS:
                    loop.add_signal_handler(number, self.stop_signals.handle, number)
            await super().async_start_new_kernel(**kwargs)

    return _StoppableClient


def execute_notebook(
    source: Path,
    output_folder: Path,
    profile: str,
    timeout_seconds: int = 3600,
    extra_environment: dict[str, str] | None = None,
    parameters: dict[str, Any] | None = None,
    stop_signals: StopSignals = NO_SIGNALS,
) -> NotebookOutcome:
    """Run one notebook in a fresh kernel and write the executed copy into ``output_folder``.

    The profile and the ``parameters`` the notebook declares are injected after
    its parameters cell; the kernel runs headless (``CNN_HEADLESS=1``), so
    training prints one line per epoch instead of a redrawn bar.  The status is
    ``ok``, ``error`` (the copy shows an error; the first is named) or
    ``interrupted`` (a stop signal arrived; the cell it cut is named).
    """
    import nbformat

    notebook = nbformat.read(source, as_version=4)
    inject_parameters(notebook, parameters_for(notebook, profile, parameters or {}))
    saved_environment = dict(os.environ)
    os.environ.update({"CNN_PROFILE": profile, "PYTHONUNBUFFERED": "1", runtime.HEADLESS_ENVIRONMENT_VARIABLE: "1"})
    os.environ.update(extra_environment or {})
    # The kernel's own inline backend embeds figures in the executed copy; a
    # non-interactive MPLBACKEND inherited from a test run would drop them.
    os.environ.pop("MPLBACKEND", None)
    client = _stoppable_client_class()(
        notebook,
        timeout=timeout_seconds,
        kernel_name="python3",
        resources={"metadata": {"path": str(source.parent)}},
        # The kernel's own start-up warnings (e.g. "running over TCP without encryption") are not the notebook's.
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
    )
    current_cell = {"index": None}

    def on_cell_start(cell: Any, cell_index: int) -> None:
        if cell.cell_type == "code":
            current_cell["index"] = cell_index
        stop_signals.kernel_manager = client.km
        if stop_signals.signal_number:  # the signal came while the kernel was starting
            raise RunInterrupted(STOP_SIGNALS[stop_signals.signal_number])

    client.on_cell_start = on_cell_start
    client.stop_signals = stop_signals
    started = time.perf_counter()
    failure = ""
    try:
        client.execute()
    except Exception as error:  # noqa: BLE001 - every way a run ends early is reported below, none is lost
        failure = _last_line(error)
    finally:
        stop_signals.kernel_manager = None
        if stop_signals is not NO_SIGNALS:
            stop_signals.install()  # nbclient reset the process's handlers on its way out
        os.environ.clear()
        os.environ.update(saved_environment)
    seconds = time.perf_counter() - started
    output_folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, output_folder / source.name)
    status, detail = _status_and_detail(notebook, current_cell["index"], failure, stop_signals)
    noise = output_noise(notebook)
    return NotebookOutcome(source.stem, status, round(seconds, 1), detail,
                           sum(cell.log_lines for cell in noise), sum(cell.progress_lines for cell in noise))


def _last_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[-1]}" if text else type(error).__name__


def _status_and_detail(notebook: Any, cell_index: int | None, failure: str,
                       stop_signals: StopSignals) -> tuple[str, str]:
    """Classify a finished execution: interrupted beats error, and any error output beats ok."""
    if stop_signals.signal_number:
        where = f"cell {cell_index}" if cell_index is not None else "start-up, before its first code cell"
        if cell_index is not None:
            where += f" ({_first_source_line(notebook.cells[cell_index])[:60]!r})"
        return "interrupted", f"{where}, by {STOP_SIGNALS[stop_signals.signal_number]}"
    errors = error_outputs(notebook)
    if errors:
        return "error", describe_errors(errors)
    if failure:
        where = f"cell {cell_index}: " if cell_index is not None else ""
        return "error", where + failure
    return "ok", ""


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
    lines = [f"{'notebook':<{width}}  {'status':<11}  seconds", "-" * (width + 22)]
    for outcome in outcomes:
        seconds = "" if outcome.status == NOT_RUN else f"{outcome.seconds:.1f}"
        lines.append(f"{outcome.notebook:<{width}}  {outcome.status:<11}  {seconds:>7}")
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
    stop_signals = StopSignals()
    stop_signals.install()
    try:
        outcomes = run_notebooks(sources, output_folder, profile.name, options.timeout, parameters, stop_signals)
    finally:
        stop_signals.restore()
    write_summary(outcomes, output_folder / "summary.csv")
    print()
    print(format_table(outcomes))
    print(f"\nExecuted copies and summary.csv are in {output_folder}")
    if stop_signals.signal_number:
        print("\n" + interruption_paragraph(outcomes, output_folder), flush=True)
        return stop_signals.exit_status
    return 1 if any(outcome.status != "ok" for outcome in outcomes) else 0


def run_notebooks(sources: list[Path], output_folder: Path, profile: str, timeout_seconds: int,
                  parameters: dict[str, Any], stop_signals: StopSignals) -> list[NotebookOutcome]:
    """Execute ``sources`` in order; after a stop signal, the rest are listed as ``not run``."""
    outcomes = []
    for source in sources:
        if stop_signals.signal_number:
            outcomes.append(NotebookOutcome(source.stem, NOT_RUN, 0.0))
            continue
        print(f"Running {source.name} ...", flush=True)
        outcome = execute_notebook(source, output_folder, profile, timeout_seconds, parameters=parameters,
                                   stop_signals=stop_signals)
        print(f"  {outcome.status} in {outcome.seconds:.1f} s {outcome.detail}", flush=True)
        outcomes.append(outcome)
    return outcomes


def interruption_paragraph(outcomes: list[NotebookOutcome], output_folder: Path) -> str:
    """One paragraph after a stop: what was cut where, where the partial copy and summary are, what is kept."""
    cut = next((outcome for outcome in outcomes if outcome.status == "interrupted"), None)
    not_run = [outcome.notebook for outcome in outcomes if outcome.status == NOT_RUN]
    folder = _display_path(output_folder)
    if cut is not None:
        what = (f"The run was stopped: notebook {cut.notebook} was interrupted at {cut.detail}; its partial "
                f"executed copy, with the outputs up to that cell, is {folder / (cut.notebook + '.ipynb')}")
    else:
        what = "The run was stopped between two notebooks"
    rest = f"; {len(not_run)} notebook(s) were not started ({', '.join(not_run)})" if not_run else ""
    rerun = " ".join(name[:2] for name in ([cut.notebook] if cut else []) + not_run)
    command = f'make run PROFILE={output_folder.name}' + (f' ONLY="{rerun}"' if rerun else "")
    return (f"{what}{rest}. The run table, with each notebook marked ok, error, interrupted or not run, is "
            f"{folder / 'summary.csv'}. Little is lost: every training run that finished was recorded, and the "
            f"next run reuses those recorded runs instead of training them again, so "
            f"`{command}` picks up about where this one stopped.")


def _display_path(path: Path) -> Path:
    """``path`` relative to the project when it lies inside it (shorter to read), else as it is."""
    try:
        return path.resolve().relative_to(runtime.project_root().resolve())
    except ValueError:
        return path

if __name__ == "__main__":
    sys.exit(main())

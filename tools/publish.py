"""Publish executed copies of the notebooks, with provenance: ``python -m tools.publish --only 03``.

A learner should see every notebook's figures and numbers without running anything, so
``executed/NN_name.ipynb`` (beside ``notebooks/``, which stays output-free) holds each
notebook as run headless in a profile (``lesson`` unless ``--profile`` says otherwise).
The notebook runs through the same runner as ``make run`` (:mod:`tools.run`: parameters
injected after the ``parameters`` cell, a copy in ``runs/<profile>/``); only a run with no
error is published. Before the copy is written it is cleaned:

- per-cell timing metadata (``execution``, ``ExecuteTime``) and widget state are dropped:
  they change on every run and mean nothing to a reader;
- photo-like PNG outputs become JPEG (:func:`is_photo_like`), plots stay PNG (sharp lines);
- machine paths become relative names (the repository root ``.``, the data folder
  ``data``, ...), and any other absolute path left (``/home/``, ``/tmp/``, ``/work/``...)
  stops the publication with the cell named;
- provenance (profile, parameters, commit, date, hardware, precision, library versions,
  wall time) goes into ``metadata.cnn_suite.provenance`` and a first markdown cell.

``--sync-markdown`` copies markdown-only edits of ``notebooks/`` into the existing copies
without re-running, and refuses (naming the cells) when any code cell differs.
``--check`` runs :func:`check_executed_copies`, what CI checks without executing anything.
"""

from __future__ import annotations

import argparse
import base64
import copy
import difflib
import io
import json
import platform
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from importlib import metadata as package_metadata
from pathlib import Path
from typing import Any, Iterator

from tools import run
from utils import runtime

PROVENANCE_TAG = "provenance"
METADATA_KEY = "cnn_suite"
DEFAULT_PROFILE = "lesson"
COPY_BUDGET_BYTES = 2_000_000  # one executed copy: GitHub's viewer stays quick, the repository stays small
TOTAL_BUDGET_BYTES = 12_000_000  # all copies together
# Timing metadata nbclient and Jupyter extensions write per cell; it changes on every run.
RUN_METADATA_KEYS = ("execution", "ExecuteTime", "papermill")
WIDGET_STATE_KEY = "widgets"
WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"
# Photo-like: more distinct colours than an antialiased plot has (a few thousand at most), and no single
# colour (a plot's background) covering most of the image. Measured: line plots 3,000 colours and 85 % white,
# a scatter with transparency 45,000 colours but 78 % white, photographs and grids of them 60,000+ and 20-55 %.
PHOTO_MIN_COLOURS = 10_000
PHOTO_MAX_BACKGROUND_SHARE = 0.7
JPEG_QUALITY = 85
# An absolute path on a machine: a home, temporary or work folder, a Colab or system folder, a Windows home.
ABSOLUTE_PATH = re.compile(
    r"(?<![\w.~:/-])/(?:home|tmp|work|root|Users|content|mnt|var|opt|srv|usr|private|scratch)/[^\s'\"<>)\]]*"
    r"|\b[A-Za-z]:\\(?:Users|Documents and Settings)\\[^\s'\"<>]*")
PRECISION_LINE = re.compile(r"^Precision: (\S+)")


class PublishError(RuntimeError):
    """A copy that cannot be published or synced as it is; the message names the file and the fix."""


@dataclass
class Provenance:
    """How an executed copy was made: what a reader needs to trust (or reproduce) its numbers."""

    notebook: str
    profile: str
    parameters: dict[str, str]
    commit: str
    uncommitted_changes: bool
    date: str
    hardware: str
    precision: str
    tensorflow: str
    keras: str
    python: str
    wall_seconds: float

    def regenerate_command(self) -> str:
        """The command that makes this copy again, as the README documents it."""
        return regenerate_command(self.notebook, self.profile)


def regenerate_command(notebook_name: str, profile: str = DEFAULT_PROFILE) -> str:
    """``make publish ONLY="03" PROFILE=lesson`` for ``03_cifar10_experiments``."""
    return f'make publish ONLY="{notebook_name[:2]}" PROFILE={profile}'


def sync_command(notebook_name: str) -> str:
    """The command that copies markdown-only edits into the copy of ``notebook_name``."""
    return f"python -m tools.publish --sync-markdown --only {notebook_name[:2]}"


def default_output_folder() -> Path:
    """``executed/`` beside the source notebooks' folder (``notebooks/`` or ``CNN_NOTEBOOKS_DIR``)."""
    return run.notebooks_dir().parent / "executed"


# Cleaning ---------------------------------------------------------------------------------------------------


def drop_run_metadata(notebook: Any) -> None:
    """Remove per-cell timing and execution metadata: it differs on every run and tells a reader nothing."""
    for cell in notebook.cells:
        for key in RUN_METADATA_KEYS:
            cell.metadata.pop(key, None)
    notebook.metadata.pop("papermill", None)


def drop_widget_state(notebook: Any) -> None:
    """Remove saved widget state and widget views (a static copy cannot run them); a text fallback stays."""
    notebook.metadata.pop(WIDGET_STATE_KEY, None)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for output in cell.outputs:
            output.get("data", {}).pop(WIDGET_VIEW_MIME, None)
        cell.outputs = [output for output in cell.outputs if "data" not in output or output["data"]]


def is_photo_like(png_bytes: bytes) -> bool:
    """True for a photograph or a grid of them, False for a plot (see :data:`PHOTO_MIN_COLOURS`).

    A photo has tens of thousands of distinct colours spread over the image; a plot has a few
    thousand at most (antialiased lines and text), or many colours on a mostly white background.
    """
    from PIL import Image

    image = Image.open(io.BytesIO(png_bytes)).convert("RGB")
    pixels = image.width * image.height
    colours = image.getcolors(maxcolors=pixels)
    background = max(count for count, _ in colours)
    return len(colours) > PHOTO_MIN_COLOURS and background / pixels < PHOTO_MAX_BACKGROUND_SHARE


def png_to_jpeg(png_bytes: bytes, quality: int = JPEG_QUALITY) -> bytes:
    """The image as JPEG; transparency is flattened onto white, as the notebook shows it."""
    from PIL import Image

    image = Image.open(io.BytesIO(png_bytes)).convert("RGBA")
    flattened = Image.new("RGB", image.size, "white")
    flattened.paste(image, mask=image.getchannel("A"))
    buffer = io.BytesIO()
    flattened.save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def compress_photo_outputs(notebook: Any) -> int:
    """Store each photo-like PNG output as JPEG when that is smaller; plots stay PNG. Returns how many changed."""
    converted = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" not in data:
                continue
            png_bytes = base64.b64decode(data["image/png"])
            if not is_photo_like(png_bytes):
                continue
            jpeg_bytes = png_to_jpeg(png_bytes)
            if len(jpeg_bytes) < len(png_bytes):
                _replace_png(output, base64.b64encode(jpeg_bytes).decode("ascii"))
                converted += 1
    return converted


def _replace_png(output: Any, jpeg_text: str) -> None:
    """Swap an output's ``image/png`` for ``image/jpeg``, keeping its display size metadata."""
    del output["data"]["image/png"]
    output["data"]["image/jpeg"] = jpeg_text
    sizes = output.get("metadata", {}).pop("image/png", None)
    if sizes is not None:
        output["metadata"]["image/jpeg"] = sizes


# Machine paths ----------------------------------------------------------------------------------------------


def machine_paths() -> dict[str, str]:
    """Each machine folder that outputs may print, mapped to the relative name a reader sees.

    The repository root becomes ``.`` (so ``<root>/results/a.csv`` reads ``results/a.csv``), the
    data folder ``data``, results and runs folders their own names, the home folder ``~``.
    Both the folder as configured and its resolved form are listed (they differ behind a link).
    """
    folders = {
        runtime.project_root(): ".",
        runtime.data_dir(): "data",
        runtime.cache_dir(): "data",
        runtime.results_dir(): "results",
        runtime.runs_dir(): "runs",
        Path.home(): "~",
    }
    replacements: dict[str, str] = {}
    for folder, name in folders.items():
        for form in (str(folder), str(folder.resolve())):
            if len(form) > 1:
                replacements.setdefault(form, name)
    return replacements


def relative_text(text: str, replacements: dict[str, str]) -> str:
    """``text`` with every machine folder of ``replacements`` replaced, longest folder first."""
    for folder in sorted(replacements, key=len, reverse=True):
        name = replacements[folder]
        inside = "" if name == "." else name + "/"
        text = re.sub(re.escape(folder) + r"/", lambda _match, inside=inside: inside, text)
        text = re.sub(re.escape(folder) + r"(?![\w-])", lambda _match, name=name: name, text)
    return text


def _text_fields(output: Any) -> Iterator[tuple[Any, Any]]:
    """(container, key) of every text an output holds: stream text, error lines, non-image data."""
    if output.get("output_type") == "stream":
        yield output, "text"
    elif output.get("output_type") == "error":
        yield output, "evalue"
        for index in range(len(output.get("traceback", []))):
            yield output["traceback"], index
    for mime in output.get("data", {}):
        if not mime.startswith("image/"):
            yield output["data"], mime


def scrub_paths(notebook: Any, replacements: dict[str, str]) -> None:
    """Replace machine folders in every output text by relative names (:func:`machine_paths`)."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            for container, key in _text_fields(output):
                value = container[key]
                if isinstance(value, list):
                    container[key] = [relative_text(part, replacements) for part in value]
                elif isinstance(value, str):
                    container[key] = relative_text(value, replacements)
                else:  # application/json and other structured data
                    container[key] = json.loads(relative_text(json.dumps(value), replacements))


def _searchable_texts(notebook: Any) -> Iterator[tuple[int | None, str]]:
    """(cell index, text) for every source and output text, and (None, ...) for the notebook's metadata."""
    yield None, json.dumps(notebook.metadata)
    for index, cell in enumerate(notebook.cells):
        yield index, cell.source
        for output in cell.get("outputs", []):
            for container, key in _text_fields(output):
                value = container[key]
                yield index, "".join(value) if isinstance(value, list) else (
                    value if isinstance(value, str) else json.dumps(value))


def find_absolute_paths(notebook: Any) -> list[tuple[int | None, str]]:
    """(cell index, path) for every absolute machine path left in the notebook (images are not searched)."""
    return [(index, match.group(0)) for index, text in _searchable_texts(notebook)
            for match in ABSOLUTE_PATH.finditer(text)]


def describe_paths(found: list[tuple[int | None, str]]) -> str:
    """``cell 7: /tmp/x.csv; metadata: /home/...`` for a message, at most five."""
    where = [f"{'metadata' if index is None else f'cell {index}'}: {path}" for index, path in found[:5]]
    more = f" (+{len(found) - 5} more)" if len(found) > 5 else ""
    return "; ".join(where) + more


def refuse_absolute_paths(notebook: Any, label: str) -> None:
    """Raise :class:`PublishError` naming the cells when an absolute path is left after scrubbing."""
    found = find_absolute_paths(notebook)
    if found:
        raise PublishError(
            f"{label} would show absolute machine paths to every reader ({describe_paths(found)}). The repository "
            f"root, the data, results and runs folders and the home folder are made relative automatically; this "
            f"one is elsewhere. Make the notebook print it relative to a folder it knows (for example "
            f"path.relative_to(runtime.project_root())) or not at all, then publish again. Nothing was written.")


# Provenance -------------------------------------------------------------------------------------------------


def git_commit(folder: Path) -> tuple[str, bool]:
    """The commit checked out in ``folder`` and whether tracked files differ from it ('unknown' without git)."""
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        changes = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                                 capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False
    return commit, bool(changes)


def reported_precision(notebook: Any) -> str:
    """The precision the notebook's setup report printed (``Precision: float32 (...)``), or 'not reported'."""
    for cell in notebook.cells:
        for line in run.output_lines(cell) if cell.cell_type == "code" else []:
            match = PRECISION_LINE.match(line)
            if match:
                return match.group(1)
    return "not reported"


def installed_version(package: str) -> str:
    """The installed version of ``package`` (the kernel runs in the same environment), or 'not installed'."""
    try:
        return package_metadata.version(package)
    except package_metadata.PackageNotFoundError:
        return "not installed"


def collect_provenance(executed: Any, notebook_name: str, profile: str, parameters: dict[str, Any],
                       wall_seconds: float) -> Provenance:
    """Provenance of a run that just finished on this machine (the hardware query imports TensorFlow)."""
    commit, uncommitted = git_commit(runtime.project_root())
    runtime.import_tensorflow()  # quietly, before hardware_name's own import
    return Provenance(
        notebook=notebook_name, profile=profile,
        parameters={name: repr(value) for name, value in parameters.items()},
        commit=commit, uncommitted_changes=uncommitted,
        date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        hardware=runtime.hardware_name(), precision=reported_precision(executed),
        tensorflow=installed_version("tensorflow"), keras=installed_version("keras"),
        python=platform.python_version(), wall_seconds=round(wall_seconds, 1))


def provenance_markdown(provenance: dict[str, Any]) -> str:
    """The first cell a reader sees: how, where and when this copy was run, and how to make it again."""
    name = provenance["notebook"]
    commit = provenance["commit"][:10] + (" with uncommitted changes" if provenance["uncommitted_changes"] else "")
    parameters = ", ".join(f"`{key}={value}`" for key, value in provenance["parameters"].items()) or "none"
    synced = provenance.get("markdown_synced")
    synced_line = (f" Its text was updated from commit `{synced['commit'][:10]}` on {synced['date']} "
                   "without re-running (no code cell changed)." if synced else "")
    return (
        f"> **Executed copy, for reading.** This is [`notebooks/{name}.ipynb`](../notebooks/{name}.ipynb) run "
        f"headless in the **{provenance['profile']}** profile on {provenance['date']}, commit `{commit}`, "
        f"on {provenance['hardware']} in {provenance['precision']} precision (TensorFlow "
        f"{provenance['tensorflow']}, Keras {provenance['keras']}, Python {provenance['python']}); the run took "
        f"{provenance['wall_seconds'] / 60:.1f} minutes. Parameters: {parameters}.{synced_line} "
        f"To run it yourself, open the notebook in `notebooks/`; to redo this copy, "
        f"`{regenerate_command(name, provenance['profile'])}`.")


def cell_tags(cell: Any) -> list[str]:
    """The tags of a cell (empty when it has none)."""
    return cell.get("metadata", {}).get("tags", [])


def add_provenance(notebook: Any, provenance: Provenance | dict[str, Any]) -> None:
    """Record ``provenance`` in ``metadata.cnn_suite.provenance`` and as the first cell (replacing an older one)."""
    import nbformat

    record = asdict(provenance) if isinstance(provenance, Provenance) else provenance
    notebook.metadata.setdefault(METADATA_KEY, {})["provenance"] = record
    cell = nbformat.v4.new_markdown_cell(provenance_markdown(record))
    cell.metadata["tags"] = [PROVENANCE_TAG]
    notebook.cells = [cell, *(existing for existing in notebook.cells if PROVENANCE_TAG not in cell_tags(existing))]


def read_provenance(notebook: Any) -> dict[str, Any]:
    """The provenance an executed copy records (empty when it has none)."""
    return dict(notebook.metadata.get(METADATA_KEY, {}).get("provenance", {}))


def prepare_copy(notebook: Any, provenance: Provenance, replacements: dict[str, str], label: str) -> Any:
    """Clean an executed notebook for publication and add its provenance; refuse one with machine paths."""
    import nbformat

    drop_run_metadata(notebook)
    drop_widget_state(notebook)
    compress_photo_outputs(notebook)
    scrub_paths(notebook, replacements)
    refuse_absolute_paths(notebook, label)
    add_provenance(notebook, provenance)
    nbformat.validate(notebook)
    return notebook


# Comparing a copy with its source ---------------------------------------------------------------------------


def published_cells(notebook: Any) -> list[Any]:
    """The cells that come from the source notebook: all but the provenance and injected-parameters cells."""
    added = {PROVENANCE_TAG, run.INJECTED_PARAMETERS_TAG}
    return [cell for cell in notebook.cells if not added & set(cell_tags(cell))]


def _describe_cell(index: int, cell: Any) -> str:
    return f"cell {index} ({run._first_source_line(cell)[:50]!r})"


def code_cell_changes(source: Any, executed: Any) -> list[str]:
    """The source's code cells that the executed copy does not hold as they are now (empty when none)."""
    source_code = [(index, cell) for index, cell in enumerate(source.cells) if cell.cell_type == "code"]
    executed_code = [cell for cell in published_cells(executed) if cell.cell_type == "code"]
    matcher = difflib.SequenceMatcher(a=[cell.source for cell in executed_code],
                                      b=[cell.source for _, cell in source_code], autojunk=False)
    changes = []
    for tag, old_start, old_end, new_start, new_end in matcher.get_opcodes():
        if tag == "equal":
            continue
        changes += [_describe_cell(*source_code[position]) for position in range(new_start, new_end)]
        if new_start == new_end:
            changes += [f"removed code cell ({run._first_source_line(executed_code[position])[:50]!r})"
                        for position in range(old_start, old_end)]
    return changes


def markdown_differs(source: Any, executed: Any) -> bool:
    """True when the non-code cells (markdown, raw) of the copy differ from the source's."""
    def text_cells(cells: list[Any]) -> list[tuple[str, str]]:
        return [(cell.cell_type, cell.source) for cell in cells if cell.cell_type != "code"]

    return text_cells(source.cells) != text_cells(published_cells(executed))


def merge_markdown(source: Any, executed: Any) -> None:
    """Give ``executed`` the source's non-code cells, keeping its code cells, outputs and added cells.

    Assumes the code cells are the same (:func:`code_cell_changes` is empty). Markdown cells
    may have been added, removed or edited anywhere.
    """
    added = [cell for cell in executed.cells if PROVENANCE_TAG in cell_tags(cell)]
    injected = [cell for cell in executed.cells if run.INJECTED_PARAMETERS_TAG in cell_tags(cell)]
    executed_code = iter(cell for cell in published_cells(executed) if cell.cell_type == "code")
    cells = list(added)
    for cell in source.cells:
        if cell.cell_type != "code":
            cells.append(copy.deepcopy(cell))
            continue
        cells.append(next(executed_code))
        if run.PARAMETERS_TAG in cell_tags(cell):
            cells += injected
    executed.cells = cells


def sync_markdown(source_path: Path, executed_path: Path) -> bool:
    """Copy markdown-only edits of ``source_path`` into ``executed_path``; returns whether anything changed.

    Refuses with :class:`PublishError`, naming the cells, when any code cell differs: a code
    change means the outputs may differ, so the notebook has to be run again.
    """
    import nbformat

    source = nbformat.read(source_path, as_version=4)
    executed = nbformat.read(executed_path, as_version=4)
    changes = code_cell_changes(source, executed)
    if changes:
        raise PublishError(
            f"{executed_path.name}: code changed in {source_path} since the executed copy was run "
            f"({'; '.join(changes)}), so its outputs may no longer match. Markdown can only be synced over "
            f"unchanged code: run it again with `{regenerate_command(source_path.stem, _profile_of(executed))}`.")
    if not markdown_differs(source, executed):
        return False
    merge_markdown(source, executed)
    commit, _ = git_commit(runtime.project_root())
    provenance = read_provenance(executed)
    if provenance:
        provenance["markdown_synced"] = {"commit": commit,
                                         "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
        add_provenance(executed, provenance)
    nbformat.validate(executed)
    nbformat.write(executed, executed_path)
    return True


def _profile_of(executed: Any) -> str:
    return read_provenance(executed).get("profile", DEFAULT_PROFILE)


# Checking the copies (CI, without executing) ----------------------------------------------------------------


class ExecutedCopyError(AssertionError):
    """Executed copies that are stale, invalid or too large; the message lists each with its fix."""


def html_problem(notebook: Any) -> str:
    """Empty when nbconvert turns the notebook into HTML (offline), else the error it raised."""
    from nbconvert import HTMLExporter

    try:
        HTMLExporter().from_notebook_node(notebook)
    except Exception as error:  # noqa: BLE001 - any failure of the conversion is the finding
        return f"{type(error).__name__}: {error}"
    return ""


def copy_problems(copy_path: Path, source_path: Path, budget_bytes: int = COPY_BUDGET_BYTES) -> list[str]:
    """What is wrong with one executed copy, each problem naming the copy and the command that fixes it."""
    import nbformat

    name = copy_path.name
    try:
        executed = nbformat.read(copy_path, as_version=4)
        nbformat.validate(executed)
    except Exception as error:  # noqa: BLE001 - unreadable or invalid: both reported the same way
        return [f"{name}: not a valid notebook ({type(error).__name__}: {str(error).splitlines()[0]}); "
                f"regenerate it with `{regenerate_command(copy_path.stem)}`."]
    regenerate = regenerate_command(copy_path.stem, _profile_of(executed))
    if not source_path.exists():
        return [f"{name}: there is no source notebook {source_path}; delete the copy or restore the notebook."]
    source = nbformat.read(source_path, as_version=4)
    problems = []
    changes = code_cell_changes(source, executed)
    if changes:
        problems.append(f"{name} is stale: code changed in {source_path.name} ({'; '.join(changes)}); "
                        f"regenerate it with `{regenerate}`.")
    elif markdown_differs(source, executed):
        problems.append(f"{name} is stale: markdown changed in {source_path.name}; copy it over with "
                        f"`{sync_command(copy_path.stem)}` (no re-run needed).")
    errors = run.error_outputs(executed)
    if errors:
        problems.append(f"{name} shows an error ({run.describe_errors(errors)}); fix the notebook and "
                        f"regenerate it with `{regenerate}`.")
    paths = find_absolute_paths(executed)
    if paths:
        problems.append(f"{name} shows absolute machine paths ({describe_paths(paths)}); regenerate it with "
                        f"`{regenerate}` (which makes the known folders relative).")
    size = copy_path.stat().st_size
    if size > budget_bytes:
        problems.append(f"{name} is {size / 1e6:.1f} MB, over the {budget_bytes / 1e6:.1f} MB budget per copy; "
                        f"show fewer or smaller figures, then regenerate it with `{regenerate}`.")
    conversion = html_problem(executed)
    if conversion:
        problems.append(f"{name} does not convert to HTML ({conversion}); regenerate it with `{regenerate}`.")
    return problems


def executed_copy_problems(folder: Path, sources_folder: Path | None = None, require_all: bool = False,
                           budget_bytes: int = COPY_BUDGET_BYTES,
                           total_budget_bytes: int = TOTAL_BUDGET_BYTES) -> list[str]:
    """Every problem of the copies in ``folder`` against the notebooks in ``sources_folder``.

    ``require_all`` also asks for a copy of every numbered source notebook (once all are published).
    """
    sources_folder = sources_folder or run.notebooks_dir()
    copies = sorted(folder.glob("[0-9][0-9]_*.ipynb"))
    problems = [problem for path in copies
                for problem in copy_problems(path, sources_folder / path.name, budget_bytes)]
    total = sum(path.stat().st_size for path in copies)
    if total > total_budget_bytes:
        problems.append(f"{folder.name}/ holds {total / 1e6:.1f} MB of executed copies, over the "
                        f"{total_budget_bytes / 1e6:.1f} MB budget; make the largest ones smaller.")
    if require_all:
        published = {path.name for path in copies}
        problems += [f"{source.name} has no executed copy; make it with `{regenerate_command(source.stem)}`."
                     for source in sorted(sources_folder.glob("[0-9][0-9]_*.ipynb")) if source.name not in published]
    return problems


def check_executed_copies(folder: Path, sources_folder: Path | None = None, require_all: bool = False,
                          budget_bytes: int = COPY_BUDGET_BYTES,
                          total_budget_bytes: int = TOTAL_BUDGET_BYTES) -> None:
    """Raise :class:`ExecutedCopyError` listing every problem of the copies in ``folder`` (see above)."""
    problems = executed_copy_problems(folder, sources_folder, require_all, budget_bytes, total_budget_bytes)
    if problems:
        raise ExecutedCopyError(f"{len(problems)} problem(s) with the executed copies in {folder}:\n- "
                                + "\n- ".join(problems))


# Publishing -------------------------------------------------------------------------------------------------


def publish_notebook(source: Path, profile: str, parameters: dict[str, Any], output_folder: Path,
                     timeout_seconds: int = 3600, stop_signals: run.StopSignals = run.NO_SIGNALS) -> Path:
    """Run ``source`` through the runner, clean the copy, add provenance, write it to ``output_folder``."""
    import nbformat

    run_folder = runtime.runs_dir() / profile
    outcome = run.execute_notebook(source, run_folder, profile, timeout_seconds, parameters=parameters,
                                   stop_signals=stop_signals)
    if outcome.status != "ok":
        raise PublishError(
            f"{source.name} did not run cleanly in the {profile} profile ({outcome.status}: {outcome.detail}), so "
            f"nothing was published. Its run copy, with the outputs up to there, is {run_folder / source.name}; "
            f"fix the notebook (or the machine), then run `{regenerate_command(source.stem, profile)}` again.")
    executed = nbformat.read(run_folder / source.name, as_version=4)
    injected = run.parameters_for(nbformat.read(source, as_version=4), profile, parameters)
    provenance = collect_provenance(executed, source.stem, profile, injected, outcome.seconds)
    prepare_copy(executed, provenance, machine_paths(), f"The executed copy of {source.name}")
    output_folder.mkdir(parents=True, exist_ok=True)
    target = output_folder / source.name
    nbformat.write(executed, target)
    return target


def _parse_arguments(arguments: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", metavar="NN", help="notebook numbers or names to publish")
    parser.add_argument("--profile", choices=runtime.PROFILE_NAMES, default=DEFAULT_PROFILE,
                        help=f"profile to run in (default {DEFAULT_PROFILE}, what a learner runs on a CPU)")
    parser.add_argument("--param", action="append", metavar="NAME=VALUE", help="a notebook parameter, as tools.run")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell")
    parser.add_argument("--output", type=Path, default=None, help="folder of the executed copies (default executed/)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--sync-markdown", action="store_true",
                      help="copy markdown-only edits into the existing copies, without running")
    mode.add_argument("--check", action="store_true", help="check the copies as CI does, without running")
    return parser, parser.parse_args(arguments)


def main(arguments: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser, options = _parse_arguments(arguments)
    output_folder = options.output or default_output_folder()
    try:
        if options.check:
            check_executed_copies(output_folder)
            count = len(list(output_folder.glob("[0-9][0-9]_*.ipynb")))
            print(f"{count} executed cop{'y' if count == 1 else 'ies'} in {output_folder}: current, valid, in budget.")
            return 0
        if options.sync_markdown:
            return _sync_all(output_folder, options.only)
        if not options.only:
            parser.error('name the notebooks to publish, e.g. --only 03 (make publish ONLY="03"): '
                         "each is a full run in the profile, so they are redone one at a time.")
        return _publish_all(parser, options, output_folder)
    except (PublishError, ExecutedCopyError) as error:
        print(error, file=sys.stderr)
        return 1


def _sync_all(output_folder: Path, only: list[str] | None) -> int:
    """Sync markdown into the copies of ``only`` (default: every copy there is)."""
    sources = [source for source in run.list_notebooks(only) if (output_folder / source.name).exists()]
    for source in sources:
        changed = sync_markdown(source, output_folder / source.name)
        print(f"{source.name}: {'markdown synced' if changed else 'already current'}")
    if not sources:
        print(f"No executed copy in {output_folder} to sync.")
    return 0


def _publish_all(parser: argparse.ArgumentParser, options: argparse.Namespace, output_folder: Path) -> int:
    """Publish each chosen notebook in turn; Ctrl-C or SIGTERM stops cleanly, as in tools.run."""
    sources = run.list_notebooks(options.only)
    try:
        parameters = run.parse_parameters(options.param)
        run.check_parameters_are_declared(sources, parameters)
    except run.ParameterError as error:
        parser.error(str(error))
    stop_signals = run.StopSignals()
    stop_signals.install()
    try:
        for source in sources:
            print(f"Publishing {source.name} ({options.profile} profile) ...", flush=True)
            try:
                target = publish_notebook(source, options.profile, parameters, output_folder, options.timeout,
                                          stop_signals)
            except PublishError as error:
                if not stop_signals.signal_number:
                    raise
                print(error, file=sys.stderr)
                break
            print(f"  wrote {target} ({target.stat().st_size / 1e6:.2f} MB)", flush=True)
    finally:
        stop_signals.restore()
    return stop_signals.exit_status


if __name__ == "__main__":
    sys.exit(main())

"""The headless notebook runner: success, a failing cell named, the summary table, parameters, clean outputs."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from tools import run

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def write_notebook(path: Path, sources: list[str]) -> Path:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


def test_runner_passes_profile_and_records_failures(tmp_path: Path) -> None:
    good = write_notebook(tmp_path / "10_good.ipynb", ["import os\nprint(os.environ['CNN_PROFILE'])"])
    bad = write_notebook(tmp_path / "11_bad.ipynb", ["x = 1", "raise ValueError('boom')"])
    outcome = run.execute_notebook(good, tmp_path / "out", "quick", timeout_seconds=120)
    assert outcome.status == "ok"
    executed = nbformat.read(tmp_path / "out" / "10_good.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"].strip() == "quick"
    failed = run.execute_notebook(bad, tmp_path / "out", "quick", timeout_seconds=120)
    assert failed.status == "error" and "cell 1" in failed.detail and "ValueError: boom" in failed.detail
    run.write_summary([outcome, failed], tmp_path / "summary.csv")
    assert "11_bad,error" in (tmp_path / "summary.csv").read_text()
    assert "error" in run.format_table([outcome, failed])


def test_a_figure_that_fails_while_rendering_marks_the_notebook_error(tmp_path: Path) -> None:
    """The inline backend draws the figure after the cell, so the cell "succeeds" and the next one runs on."""
    source = write_notebook(tmp_path / "14_broken_figure.ipynb", [
        "import matplotlib.pyplot as plt",
        'figure, ax = plt.subplots()\nax.plot([1, 2])\nax.set_title(r"$\\frac{1}{$")',
        "print('the next cell still ran')",
    ])
    outcome = run.execute_notebook(source, tmp_path / "out", "quick", timeout_seconds=120)
    executed = nbformat.read(tmp_path / "out" / source.name, as_version=4)
    assert executed.cells[2].outputs[0]["text"].strip() == "the next cell still ran"  # nbclient did not stop
    assert outcome.status == "error"
    assert outcome.detail.startswith("cell 1 ('figure, ax = plt.subplots()'): ValueError")
    assert {error.cell_index for error in run.error_outputs(executed)} == {1}
    run.write_summary([outcome], tmp_path / "summary.csv")
    assert "14_broken_figure,error" in (tmp_path / "summary.csv").read_text()


def test_a_traceback_printed_into_a_stream_counts_as_an_error() -> None:
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("train()")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=(
        "Epoch 1/3\nTraceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
        "    fit()\nKeyboardInterrupt\n"))]
    clean = nbformat.v4.new_code_cell("print('Tracebacks are explained below')")
    clean.outputs = [nbformat.v4.new_output("stream", name="stdout", text="a word on tracebacks\n")]
    notebook.cells = [clean, cell]
    [error] = run.error_outputs(notebook)
    assert error.cell_index == 1 and error.exception.startswith("KeyboardInterrupt")
    assert run.describe_errors([error]).startswith("cell 1 ('train()'): KeyboardInterrupt")


def test_list_notebooks_filters_by_number() -> None:
    every = run.list_notebooks()
    assert every == sorted(every)
    if every:
        number = every[0].stem[:2]
        assert run.list_notebooks([number]) == [every[0]]
    with pytest.raises(SystemExit, match="No notebook matches"):
        run.list_notebooks(["99"])


def test_executed_copy_keeps_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even when the test process draws off-screen, the executed notebook embeds its figures."""
    monkeypatch.setenv("MPLBACKEND", "Agg")
    source = write_notebook(tmp_path / "12_plot.ipynb",
                            ["import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()"])
    assert run.execute_notebook(source, tmp_path / "out", "quick", timeout_seconds=120).status == "ok"
    outputs = nbformat.read(tmp_path / "out" / "12_plot.ipynb", as_version=4).cells[0].outputs
    assert any("image/png" in output.get("data", {}) for output in outputs)


def write_parameterised_notebook(path: Path) -> Path:
    notebook = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell('PROFILE = None\nEXPERIMENTS = ["I"]\nSEEDS = None')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell("print(PROFILE, EXPERIMENTS, SEEDS)")]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
    return path


def test_parameters_are_injected_after_the_parameters_cell(tmp_path: Path) -> None:
    source = write_parameterised_notebook(tmp_path / "13_params.ipynb")
    parameters = run.parse_parameters(["EXPERIMENTS=['I', 'III'] SEEDS=[1, 2, 3]", "UNRELATED=1"])
    outcome = run.execute_notebook(source, tmp_path / "out", "quick", timeout_seconds=120, parameters=parameters)
    assert outcome.status == "ok"
    executed = nbformat.read(tmp_path / "out" / "13_params.ipynb", as_version=4)
    assert executed.cells[1].metadata["tags"] == ["injected-parameters"]
    assert "UNRELATED" not in executed.cells[1].source  # only what the notebook declares
    assert executed.cells[2].outputs[0]["text"].strip() == "quick ['I', 'III'] [1, 2, 3]"
    committed = nbformat.read(source, as_version=4)
    assert len(committed.cells) == 2, "the source notebook is never changed"


def test_parse_parameters_reads_literals_and_refuses_nonsense() -> None:
    assert run.parse_parameters(["EXPERIMENTS=['I','III'] SEEDS=[1,2,3]"]) == {
        "EXPERIMENTS": ["I", "III"], "SEEDS": [1, 2, 3]}
    assert run.parse_parameters(["EPOCHS=3", "PROTOCOL=course", "FORCE=True", "NAME='a = b'"]) == {
        "EPOCHS": 3, "PROTOCOL": "course", "FORCE": True, "NAME": "a = b"}
    for bad in (["EXPERIMENTS"], ["EPOCHS="], ["SEEDS=[1, 2"]):
        with pytest.raises(run.ParameterError):
            run.parse_parameters(bad)


def test_unknown_parameter_names_the_declared_ones(tmp_path: Path) -> None:
    source = write_parameterised_notebook(tmp_path / "14_params.ipynb")
    with pytest.raises(run.ParameterError, match="EXPERIMENTS"):
        run.check_parameters_are_declared([source], {"EXPERIMENT": ["I"]})


def test_make_run_passes_params_and_profile_to_the_runner() -> None:
    completed = subprocess.run(
        ["make", "-n", "run", "ONLY=03", "PROFILE=quick", "PARAMS=EXPERIMENTS=['I','III'] SEEDS=[1,2,3]"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    command = next(line for line in completed.stdout.splitlines() if "-m tools.run" in line)
    arguments = shlex.split(command)[3:]
    assert arguments[:4] == ["--profile", "quick", "--only", "03"]
    assert run.parse_parameters([arguments[arguments.index("--param") + 1]]) == {
        "EXPERIMENTS": ["I", "III"], "SEEDS": [1, 2, 3]}


def test_output_noise_counts_log_lines_and_each_redraw_of_a_bar() -> None:
    cell = nbformat.v4.new_code_cell("fit()")
    bar = "".join(f"\r\x1b[1m{step}/63\x1b[0m ━━━━ 1s 20ms/step - loss: 2.3" + "\b" * 10 for step in range(1, 64))
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stderr", text=(
            "I0000 00:00:1795578599.487706    6916 port.cc:153] oneDNN custom operations are on.\n"
            "E0000 00:00:1795578602.352747    6916 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR\n")),
        nbformat.v4.new_output("stream", name="stdout", text="Epoch 1/1\n" + bar + "\n"),
        nbformat.v4.new_output("stream", name="stdout", text="63/63 - 5s - 80ms/step - accuracy: 0.3\n"),
    ]
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("x"), cell]
    [noise] = run.output_noise(notebook)
    assert (noise.cell_index, noise.log_lines, noise.progress_lines) == (1, 2, 65)


def test_headless_notebook_has_no_tensorflow_log_lines_and_one_line_per_epoch(tmp_path: Path) -> None:
    """A notebook that imports utils.runtime first and then trains prints neither C++ logs nor a redrawn bar."""
    source = write_notebook(tmp_path / "15_fit.ipynb", [
        f"import sys\nsys.path.insert(0, {str(PROJECT_ROOT)!r})\nfrom utils import runtime\n"
        "context = runtime.setup_notebook('quick', quiet=True)",
        "import keras, numpy as np\n"
        "model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation='softmax')])\n"
        "model.compile('sgd', 'sparse_categorical_crossentropy')\n"
        "model.fit(np.zeros((640, 4)), np.zeros(640), batch_size=8, epochs=2, verbose=runtime.progress_verbosity())",
    ])
    outcome = run.execute_notebook(source, tmp_path / "out", "quick", timeout_seconds=300)
    assert outcome.status == "ok", outcome.detail
    assert outcome.log_lines == 0 and outcome.progress_lines == 4  # "Epoch n/2" and one summary line, twice


@pytest.mark.notebook
@pytest.mark.parametrize(("signal_name", "exit_status"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_stops_the_whole_run_and_says_what_was_cut(tmp_path: Path, signal_name: str,
                                                            exit_status: int) -> None:
    """A quick-profile run of two notebooks, signalled while the first runs: it stops, explains, records.

    Ctrl-C reaches the whole process group (the kernel too), as a terminal sends it; SIGTERM reaches
    the runner alone, as ``kill`` sends it.  The signal is sent once the first notebook's set-up cell
    has finished (it leaves a marker file), so a slow machine cannot turn the test into a race.
    """
    folder = tmp_path / "notebooks"
    folder.mkdir()
    marker = tmp_path / "set_up_done"
    write_notebook(folder / "01_long_lesson.ipynb", [
        f"import sys, pathlib\nsys.path.insert(0, {str(PROJECT_ROOT)!r})\nfrom utils import runtime\n"
        f"context = runtime.setup_notebook('quick', quiet=True)\nprint('set up')\n"
        f"pathlib.Path({str(marker)!r}).touch()",
        "import time\nfor second in range(300):\n    time.sleep(1)",
        "print('never reached')",
    ])
    write_notebook(folder / "02_next_lesson.ipynb", ["print('never started')"])
    environment = dict(os.environ, CNN_RUNS_DIR=str(tmp_path / "runs"), CNN_RESULTS_DIR=str(tmp_path / "results"),
                       CNN_NOTEBOOKS_DIR=str(folder))
    runner = subprocess.Popen([sys.executable, "-m", "tools.run", "--profile", "quick"],
                              cwd=PROJECT_ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, start_new_session=True)
    lines = [runner.stdout.readline()]
    while not lines[-1].startswith("Running 01"):
        lines.append(runner.stdout.readline())
    deadline = time.monotonic() + 240
    while not marker.exists() and time.monotonic() < deadline and runner.poll() is None:
        time.sleep(0.2)
    assert marker.exists(), "the set-up cell never finished:\n" + "".join(lines)
    time.sleep(1)  # the second cell is running
    number = getattr(signal, signal_name)
    os.killpg(runner.pid, number) if signal_name == "SIGINT" else runner.send_signal(number)
    lines.extend(runner.stdout)
    assert runner.wait(timeout=120) == exit_status, "".join(lines)
    output = "".join(lines)
    assert "Running 02" not in output  # the whole run stopped, not only the current notebook
    assert "Traceback" not in output and "DeadKernelError" not in output
    summary = (tmp_path / "runs" / "quick" / "summary.csv").read_text()
    assert "01_long_lesson,interrupted" in summary and "02_next_lesson,not run" in summary
    [paragraph] = [line for line in lines if line.startswith("The run was stopped")]
    assert "01_long_lesson was interrupted at cell 1" in paragraph and signal_name in paragraph
    assert str(tmp_path / "runs" / "quick" / "01_long_lesson.ipynb") in paragraph
    assert "summary.csv" in paragraph and "reuses those recorded runs" in paragraph
    partial = nbformat.read(tmp_path / "runs" / "quick" / "01_long_lesson.ipynb", as_version=4)
    assert "set up" in "".join(output["text"] for output in partial.cells[0].outputs if "text" in output)
    assert not partial.cells[2].get("outputs")  # the cell after the cut never ran

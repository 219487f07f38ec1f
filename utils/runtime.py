"""Run-time set-up shared by every notebook: profiles, seeds, precision, devices and paths.

A *profile* (``quick``, ``lesson``, ``full``) says how much work a notebook does. It and the precision come from
the notebook's parameter, else the environment, else the hardware, and are always printed with the reason, so
nobody mistakes a smoke test for the course's numbers.
"""

from __future__ import annotations

import os
import platform
import random
import re
import sys
import tempfile
import textwrap
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, TypeVar

T = TypeVar("T")

TENSORFLOW_LOG_LEVEL_VARIABLE = "CNN_TF_LOG_LEVEL"


# TensorFlow's C++ core logs errors only (``CNN_TF_LOG_LEVEL=0``: all); set at import, as TF reads it just once.
os.environ["TF_CPP_MIN_LOG_LEVEL"] = os.environ.get(TENSORFLOW_LOG_LEVEL_VARIABLE, "3")


def import_tensorflow() -> Any:
    """Import TensorFlow once, without the C++ start-up lines it writes straight to the terminal.

    Those lines (oneDNN notice, CUDA driver search) come before any log level applies, so standard error is
    captured during the import and shown only if it fails; setting ``CNN_TF_LOG_LEVEL`` turns this off.
    """
    if "tensorflow" in sys.modules or os.environ.get(TENSORFLOW_LOG_LEVEL_VARIABLE):
        import tensorflow

        return tensorflow
    sys.stderr.flush()
    saved_stderr = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow
        except BaseException:
            os.dup2(saved_stderr, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
    return tensorflow

PROFILE_ENVIRONMENT_VARIABLE = "CNN_PROFILE"
DEFAULT_SEED = 42


_SAME_AS_FULL: Any = object()  # marks a ``lesson=`` value left out of Profile.pick


@dataclass(frozen=True)
class Profile:
    """How much work a notebook does, with the reason it was chosen.

    Knobs are read with :meth:`pick` (``epochs = profile.pick(quick=1, lesson=15, full=50)``), so every
    knob's settings sit side by side in the parameter cell.
    """

    name: str
    description: str
    reason: str = ""

    @property
    def is_quick(self) -> bool:
        """True for the smoke-test ``quick`` profile (its numbers teach nothing)."""
        return self.name == "quick"

    def pick(self, *, quick: T, full: T, lesson: T = _SAME_AS_FULL) -> T:
        """Return the value that belongs to this profile.

        ``lesson`` may be left out (then ``full``'s) only for knobs that size no training; every knob that sizes
        training names its lesson value.
        """
        if self.name == "quick":
            return quick
        if self.name == "lesson" and lesson is not _SAME_AS_FULL:
            return lesson
        return full


PROFILE_DESCRIPTIONS: dict[str, str] = {
    "quick": "a smoke test: tiny subsets and 1-2 epochs, minutes on a CPU; its accuracies are "
    "noise and NOT comparable with the course",
    "lesson": "sized for a CPU: fewer images and epochs than the course, chosen by measurement so "
    "that the course's lessons show beyond noise; numbers differ from the course's",
    "full": "the course's own data sizes, epochs and batch sizes; hours on a CPU, minutes on a GPU",
}
PROFILE_NAMES = ("quick", "lesson", "full")
NOTHING_TRAINED_DESCRIPTION = "this notebook trains nothing: the profile only decides how much is measured"


def gpu_names() -> list[str]:
    """Names of the GPUs TensorFlow can see (empty on a CPU-only machine)."""
    tf = import_tensorflow()

    return [device.name for device in tf.config.list_physical_devices("GPU")]


def resolve_profile(requested: str | None = None) -> Profile:
    """Choose the profile from the notebook parameter, the environment, or the hardware.

    An unknown name raises ``ValueError``: a typo silently falling back to ``full`` could start hours of training.
    """
    asked = _asked_for(requested, "PROFILE", PROFILE_ENVIRONMENT_VARIABLE)
    if asked:
        name, reason = asked
    elif gpu_names():
        name, reason = "full", "a GPU is visible and nothing else was asked for"
    else:
        name, reason = "lesson", "no GPU is visible and nothing else was asked for"
    name = _checked_choice(name, reason, PROFILE_NAMES, "profile", "PROFILE", PROFILE_ENVIRONMENT_VARIABLE)
    return Profile(name=name, description=PROFILE_DESCRIPTIONS[name], reason=reason)


def _asked_for(requested: str | None, parameter: str, variable: str) -> tuple[str, str] | None:
    """A setting asked for by the notebook's parameter, else by the environment, with the reason; else None."""
    if requested:
        return requested, f"set by the notebook's {parameter} parameter"
    if os.environ.get(variable):
        return os.environ[variable], f"set by the {variable} environment variable"
    return None


def _checked_choice(name: str, reason: str, choices: Sequence[str], what: str, parameter: str, variable: str) -> str:
    """``name`` normalised, or a ``ValueError`` naming the valid choices and where the bad one came from."""
    name = name.strip().lower()
    if name not in choices:
        raise ValueError(
            f"Unknown {what} {name!r} ({reason}). Choose one of {', '.join(choices)}: set {parameter} "
            f"in the notebook's parameter cell or the {variable} environment variable."
        )
    return name


def set_seed(seed: int = DEFAULT_SEED) -> int:
    """Seed Python, NumPy and TensorFlow/Keras at once so reruns draw the same numbers.

    GPU kernels may still be non-deterministic: this removes the avoidable variation, not all of it.
    """
    import keras
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    return seed


def in_colab() -> bool:
    """True when running inside Google Colab."""
    return "google.colab" in sys.modules


def _cpuinfo_values(field_name: str, cpuinfo_text: str | None = None) -> list[str]:
    """The non-empty values of ``field_name`` in ``/proc/cpuinfo`` (or ``cpuinfo_text``); none if it is missing."""
    if cpuinfo_text is None:
        try:
            cpuinfo_text = Path("/proc/cpuinfo").read_text()
        except OSError:
            return []
    lines = (line.partition(":") for line in cpuinfo_text.splitlines())
    return [value.strip() for name, _, value in lines if name.strip() == field_name and value.strip()]


def cpu_model_name(cpuinfo_text: str | None = None) -> str:
    """The processor's model name from ``/proc/cpuinfo``, else what ``platform`` knows."""
    names = _cpuinfo_values("model name", cpuinfo_text)
    return names[0] if names else platform.processor() or platform.machine() or "unknown CPU"


def gpu_model_names() -> list[str]:
    """Model names of the visible GPUs (for example ``NVIDIA H100 80GB HBM3``)."""
    import tensorflow as tf

    names = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        names.append(details.get("device_name", device.name))
    return names


def hardware_name() -> str:
    """What a result was measured on, in one line: the GPU model(s), else the CPU and its cores."""
    gpus = gpu_model_names()
    if gpus:
        return " + ".join(gpus)
    return f"{cpu_model_name()} ({os.cpu_count()} cores)"


def environment_report() -> dict[str, str]:
    """Versions and devices that matter for reproducing a number."""
    import keras
    import numpy as np
    import tensorflow as tf

    gpus = gpu_names()
    return {
        "hardware": hardware_name(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(terse=True),
        "colab": "yes" if in_colab() else "no",
        "cpu_cores": str(os.cpu_count()),
        "gpus": ", ".join(gpus) if gpus else "none",
    }


PRECISION_ENVIRONMENT_VARIABLE = "CNN_PRECISION"
PRECISIONS: dict[str, str] = {
    "float32": "every value in 32-bit floats (Keras's default; slowest, the reference)",
    "mixed_float16": "16-bit floats for the arithmetic, float32 weights and loss (GPU tensor cores)",
    "mixed_bfloat16": "bfloat16 for the arithmetic, float32 weights and loss (CPUs with BF16 instructions, TPUs)",
}
# CPU flags (as /proc/cpuinfo spells them) giving bfloat16 matrix arithmetic in hardware (training ~2x faster).
BFLOAT16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class Precision:
    """The Keras dtype policy a notebook trains in, with the reason it was chosen."""

    policy: str
    reason: str


def cpu_flags(cpuinfo_text: str | None = None) -> set[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where it does not exist)."""
    return {flag for line in _cpuinfo_values("flags", cpuinfo_text) for flag in line.split()}


def choose_precision(
    requested: str | None = None,
    *,
    allow_mixed: bool = True,
    gpu_count: int | None = None,
    cpuinfo_text: str | None = None,
) -> Precision:
    """Pick the fastest safe precision for this machine, or the one asked for.

    ``allow_mixed=False`` gives float32 unless a precision is asked for; an unknown name raises ``ValueError``.
    """
    asked = _asked_for(requested, "PRECISION", PRECISION_ENVIRONMENT_VARIABLE)
    if asked:
        policy, reason = asked
    elif not allow_mixed:
        policy, reason = "float32", "this notebook asks for float32 (exact arithmetic matters more here than speed)"
    elif (gpu_count if gpu_count is not None else len(gpu_names())) > 0:
        policy, reason = "mixed_float16", "a GPU is visible: its float16 tensor cores are the fast path"
    else:
        found = sorted(set(BFLOAT16_CPU_FLAGS) & cpu_flags(cpuinfo_text))
        if found:
            policy, reason = "mixed_bfloat16", f"no GPU; the CPU has bfloat16 instructions ({', '.join(found)})"
        else:
            policy, reason = "float32", "no GPU and no bfloat16 instructions in the CPU's flags"
    policy = _checked_choice(policy, reason, list(PRECISIONS), "precision", "PRECISION",
                             PRECISION_ENVIRONMENT_VARIABLE)
    return Precision(policy, reason)


def apply_precision(precision: Precision | str) -> str:
    """Make ``precision`` Keras's global dtype policy for models built afterwards; returns the policy name."""
    import keras

    policy = precision.policy if isinstance(precision, Precision) else precision
    keras.mixed_precision.set_global_policy(policy)
    return policy


def clear_session_keeping_precision() -> str:
    """``keras.backend.clear_session()`` between runs, keeping the dtype policy in force.

    Keras 3's clear also resets the global policy to float32: without restoring it, every later model would
    silently train in float32 although the setup announced mixed precision. Returns the policy name.
    """
    import keras

    policy = keras.mixed_precision.global_policy().name
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(policy)
    return policy


def _layers_with_weights(model: Any) -> list[Any]:
    """Every layer of ``model`` that owns weights, nested models (a ResNet50 backbone) opened up."""
    from utils import anatomy

    return [layer for layer in anatomy.keras_leaf_layers(model) if layer.weights]


def model_precision(model: Any) -> str:
    """The dtype policy ``model`` really computes in: the one most of its weight-owning layers use.

    The global policy only says what the *next* model gets; a loaded model keeps each layer's saved policy.
    Result rows record this, so a row's ``precision`` is the one the model trained in.
    """
    from collections import Counter

    policies = Counter(layer.dtype_policy.name for layer in _layers_with_weights(model))
    return policies.most_common(1)[0][0] if policies else model.dtype_policy.name


def float32_twin(model: Any) -> Any:
    """``model`` itself when every layer computes in float32, else a copy with float32 layers and its weights.

    A loaded mixed-precision model keeps its float16/bfloat16 layers, so gradients through it (FGSM, Grad-CAM,
    activation ascent) would be coarsely rounded; the float32 weights carry over unchanged.
    """
    import keras

    if all(layer.dtype_policy.name == "float32" for layer in _layers_with_weights(model)):
        return model

    def in_float32(layer: Any) -> Any:
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float32"})

    twin = keras.models.clone_model(model, clone_function=in_float32, recursive=True)
    twin.set_weights(model.get_weights())
    return twin


def distribution_strategy(gpu_count: int | None = None) -> Any:
    """MirroredStrategy across GPUs when more than one is visible, else the default strategy.

    Build and compile models inside ``with strategy.scope():``; the batch size is the global one.
    """
    import tensorflow as tf

    if gpu_count is None:
        gpu_count = len(gpu_names())
    if gpu_count > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def project_root() -> Path:
    """The repository's top folder (the one holding ``utils/``)."""
    return Path(__file__).resolve().parent.parent


def _folder_from_environment(variable: str, default: Path, create: bool = True) -> Path:
    """The folder ``variable`` names (relative to the working folder), else ``default``; made if ``create``."""
    folder = Path(os.environ.get(variable) or default).expanduser()
    if not folder.is_absolute():
        folder = (Path.cwd() / folder).resolve()
    if create:
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def data_dir() -> Path:
    """Where datasets are looked for first: ``CNN_DATA_DIR`` or the project's ``data/``."""
    return _folder_from_environment("CNN_DATA_DIR", project_root() / "data", create=False)


def cache_dir() -> Path:
    """Where downloads and decoded caches go: ``CNN_CACHE_DIR`` or ``data/`` (the data folder may be read-only)."""
    return _folder_from_environment("CNN_CACHE_DIR", project_root() / "data")


def results_dir() -> Path:
    """Where notebooks write their CSV result tables: ``CNN_RESULTS_DIR`` or ``results/``."""
    return _folder_from_environment("CNN_RESULTS_DIR", project_root() / "results")


def runs_dir() -> Path:
    """Where run outputs go (executed notebooks, checkpoints, saved models): ``CNN_RUNS_DIR`` or ``runs/``."""
    return _folder_from_environment("CNN_RUNS_DIR", project_root() / "runs")


@dataclass
class NotebookContext:
    """What :func:`setup_notebook` decided, for the rest of the notebook to use."""

    profile: Profile
    seed: int
    precision_policy: str
    strategy: Any
    environment: dict[str, str] = field(default_factory=dict)
    precision_reason: str = ""


REPORT_WIDTH = 110  # characters per line of the setup report: no side-scrolling in a notebook's output


def joined_in_lines(items: Sequence[str], width: int, separator: str = "  ") -> list[str]:
    """``items`` joined by ``separator`` into lines of at most ``width`` characters, never splitting an item.

    A word wrapper would cut "hardware=Intel(R) Xeon(R) Processor (2 cores)" in two; a longer item gets its own line.
    """
    lines: list[str] = []
    for item in items:
        if lines and len(lines[-1]) + len(separator) + len(item) <= width:
            lines[-1] += separator + item
        else:
            lines.append(item)
    return lines


def setup_notebook(
    profile: str | None = None,
    seed: int = DEFAULT_SEED,
    mixed_precision: bool = False,
    quiet: bool = False,
    precision: str | None = None,
    keep_on_drive: bool = False,
    trains: bool = True,
) -> NotebookContext:
    """One call at the top of every notebook: profile, seeds, precision, devices, a printed report.

    ``mixed_precision=True`` lets :func:`choose_precision` pick the fastest precision (training notebooks);
    ``precision`` names a policy outright. ``keep_on_drive=True`` keeps outputs on Google Drive on Colab
    (:func:`keep_outputs_on_drive`). ``trains=False``: the notebook trains nothing, so the report says its
    numbers are the same in every profile.
    """
    if keep_on_drive:
        print(keep_outputs_on_drive())
    import_tensorflow()  # before Keras imports it, so its start-up lines stay out of the notebook
    # Our tf.data pipelines shuffle themselves; Keras's warning about fit()'s shuffle=True only distracts.
    warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed, but will be ignored")
    chosen = resolve_profile(profile)
    set_seed(seed)
    environment = environment_report()
    gpu_count = 0 if environment["gpus"] == "none" else len(environment["gpus"].split(", "))
    chosen_precision = choose_precision(precision, allow_mixed=mixed_precision, gpu_count=gpu_count)
    policy = apply_precision(chosen_precision)
    strategy = distribution_strategy(gpu_count)
    if not quiet:
        description = chosen.description if trains else NOTHING_TRAINED_DESCRIPTION
        print(f"Profile: {chosen.name} ({chosen.reason})")
        print(textwrap.fill(description, REPORT_WIDTH, initial_indent="  ", subsequent_indent="  "))
        print(textwrap.fill(f"Precision: {policy} ({chosen_precision.reason})", REPORT_WIDTH, subsequent_indent="  "))
        print(f"Seed: {seed}   replicas: {strategy.num_replicas_in_sync}")
        print("\n".join(joined_in_lines([f"{key}={value}" for key, value in environment.items()], REPORT_WIDTH)))
        outside = untested_versions({"tensorflow": environment["tensorflow"], "keras": environment["keras"]})
        if outside:
            print(outside)
        if gpu_count == 0 and chosen.name == "full":
            print(
                "No GPU visible: the full profile takes hours on a CPU. On Colab choose "
                "Runtime > Change runtime type > GPU, or run the lesson profile here."
            )
    return NotebookContext(chosen, seed, policy, strategy, environment, chosen_precision.reason)


def tested_version_ranges(requirements: Path | None = None) -> dict[str, str]:
    """The version ranges ``requirements.txt`` pins for TensorFlow and Keras (the ones the suite is tested with).

    Colab brings its own TensorFlow and Keras and never installs ``requirements.txt``, hence the check.
    """
    path = requirements or project_root() / "requirements.txt"
    ranges = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        found = re.match(r"^(tensorflow|keras)\s*([<>=!~][^#\s]*)", line.strip())
        if found:
            ranges[found.group(1)] = found.group(2)
    return ranges


def untested_versions(installed: dict[str, str], ranges: dict[str, str] | None = None) -> str:
    """One warning line naming each package whose installed version lies outside its tested range, else ''."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    ranges = tested_version_ranges() if ranges is None else ranges
    outside = []
    for name, version in installed.items():
        try:
            if name in ranges and Version(version) not in SpecifierSet(ranges[name]):
                outside.append(f"{name} {version} (tested: {ranges[name]})")
        except InvalidVersion:
            outside.append(f"{name} {version} (not a version number; tested: {ranges[name]})")
    if not outside:
        return ""
    return ("Warning: this runtime has " + ", ".join(outside) + ", outside the versions the suite is tested "
            "with (requirements.txt). If a cell fails, run `pip install -r requirements.txt` and restart the runtime.")


# --------------------------------------------------------------------------- output, Colab and long runs

HEADLESS_ENVIRONMENT_VARIABLE = "CNN_HEADLESS"
# The one place the repository's address is written down (badges and setup cells must agree; a test checks).
REPOSITORY_URL = "https://github.com/cnn-course-suite/cnn-notebooks"
DRIVE_MOUNT_POINT = Path("/content/drive")
DRIVE_FOLDER = "MyDrive/cnn-notebooks"
LONG_RUN_MINUTES = 15.0


def running_headless() -> bool:
    """True when nobody watches the output live: notebooks run by ``python -m tools.run`` or the tests."""
    return os.environ.get(HEADLESS_ENVIRONMENT_VARIABLE, "").strip().lower() in {"1", "true", "yes"}


def progress_verbosity() -> int:
    """The ``verbose`` for Keras's ``fit``: a live bar when watched, one line per epoch otherwise.

    A saved notebook or log file keeps every redraw of a live bar, so headless runs and non-terminals get 2.
    """
    if running_headless():
        return 2
    if "ipykernel" in sys.modules:
        return 1
    return 1 if sys.stdout.isatty() else 2


def keep_outputs_on_drive(folder: str = DRIVE_FOLDER) -> str:
    """On Colab, mount Google Drive and send ``results/`` and ``runs/`` there; return what was done.

    A Colab disconnect wipes the disk; on Drive, a rerun keeps every recorded row and resumes from the last
    checkpoint. Outside Colab it changes nothing. It sets ``CNN_RESULTS_DIR`` and ``CNN_RUNS_DIR``, so it must
    run before anything writes results.
    """
    if not in_colab():
        return (f"KEEP_ON_DRIVE applies on Colab only; results stay in {results_dir()} "
                f"and run outputs in {runs_dir()}.")
    from google.colab import drive  # type: ignore[import-not-found]

    drive.mount(str(DRIVE_MOUNT_POINT))
    base = DRIVE_MOUNT_POINT / folder
    os.environ["CNN_RESULTS_DIR"] = str(base / "results")
    os.environ["CNN_RUNS_DIR"] = str(base / "runs")
    return f"Results go to {results_dir()} and run outputs (checkpoints) to {runs_dir()}, on Google Drive."


class LongRunNotConfirmed(RuntimeError):
    """Raised before a long training run that nobody confirmed; the message says how to confirm."""


def confirm_long_run(
    profile: Profile, estimate_minutes: Callable[[], float], proceed: bool, setting_name: str,
    threshold_minutes: float = LONG_RUN_MINUTES,
) -> float | None:
    """Print the estimated training time of a full-profile run and stop unless it was confirmed.

    ``estimate_minutes`` is called only in the full profile (quick and lesson are sized for a CPU). At or above
    ``threshold_minutes`` the run needs ``proceed``; otherwise :class:`LongRunNotConfirmed` says how to confirm
    (``setting_name``) or shorten it. Returns the estimate, or None outside the full profile.
    """
    if profile.name != "full":
        print(f"{profile.name.capitalize()} profile: sized for this kind of machine, no confirmation needed.")
        return None
    minutes = float(estimate_minutes())
    print(f"Estimated training time on this machine: about {minutes:.0f} minute(s).")
    if minutes >= threshold_minutes and not proceed:
        raise LongRunNotConfirmed(
            f"This full-profile run is estimated at about {minutes:.0f} minutes on this machine "
            f"(threshold {threshold_minutes:.0f}), and {setting_name} is False, so nothing was trained. "
            f"To go ahead, set {setting_name} = True in the parameters cell and rerun from there "
            f"(headless: python -m tools.run --only NN --param {setting_name}=True). To run something shorter, "
            f"set PROFILE = \"quick\" or lower the epochs. On Colab, KEEP_ON_DRIVE = True in the setup cell "
            f"keeps results and checkpoints if the session disconnects."
        )
    return minutes


def marginal_seconds_per_step(fit_steps: Callable[[int], Any], short: int, long: int, *, limit: int | None = None,
                              repeats: int = 3, warm_up: int | None = None, min_extra_seconds: float = 1.0) -> float:
    """Seconds one more training step costs: ``fit_steps(long)`` minus ``fit_steps(short)``, per extra step.

    One short fit divided by its steps charges every step with the fit's start-up, several times too much when
    a step takes milliseconds. ``fit_steps(n)`` trains ``n`` steps in a fresh fit; ``long`` grows (up to
    ``limit``) until the extra steps take ``min_extra_seconds``. The median of ``repeats`` pairs is kept, so one
    pair slowed by another program cannot inflate the estimate (and leave most of a budget unused). It is also
    capped by the quickest long fit divided by its steps: one more step cannot cost more than a whole fit's
    average step, start-up included, so two disturbed pairs cannot inflate it either. If it is not positive,
    the longest fit divided by its steps: an upper bound, never a claim that a step is free.
    """
    import time

    def seconds_for(steps: int) -> float:
        started = time.perf_counter()
        fit_steps(steps)
        return time.perf_counter() - started

    seconds_for(warm_up or long)  # traces the training function; not timed
    if long <= short:  # nothing to subtract
        return seconds_for(long) / long
    limit = long if limit is None else limit
    while long < limit and seconds_for(long) - seconds_for(short) < min_extra_seconds:
        long = min(limit, short + 2 * (long - short))
    pairs = [(seconds_for(long), seconds_for(short)) for _ in range(repeats)]
    differences = sorted(longer - shorter for longer, shorter in pairs)
    marginal = differences[len(differences) // 2]
    if marginal > 0:
        return min(marginal / (long - short), min(longer for longer, _ in pairs) / long)
    return max(longer for longer, _ in pairs) / long


def estimate_training_minutes(
    model: Any, pipeline: Any, epochs: int, runs: int = 1, loss: Any = None, probe_steps: int = 5,
    steps_per_execution: int = 1, optimizer: Any = "adam", jit_compile: Any = "auto", repeats: int = 3,
    batches_per_epoch: int | None = None,
) -> float:
    """Minutes that ``runs`` trainings of ``epochs`` epochs on ``pipeline`` should take, measured here.

    Times an untrained copy of ``model``, compiled as the run compiles, by the marginal cost of a step
    (:func:`marginal_seconds_per_step`), so start-up and shuffle-buffer refills are not charged to every step.
    Validation comes on top: a lower bound. ``batches_per_epoch`` lets a small probe ``pipeline`` stand in for a
    big one (a pipeline decoding a whole photo set would decode all of it before its first probe step).
    """
    import keras

    probe_batches = int(pipeline.cardinality())
    if probe_batches <= 0:
        raise ValueError("estimate_training_minutes needs a pipeline of known, finite length (a batched tf.data "
                         "pipeline from utils.data).")
    batches = batches_per_epoch or probe_batches
    probe = keras.models.clone_model(model)
    probe.compile(optimizer=optimizer, loss=loss or model.loss, steps_per_execution=steps_per_execution,
                  jit_compile=jit_compile)
    short = min(steps_per_execution, probe_batches)
    long = min(short + max(1, probe_steps) * steps_per_execution, probe_batches)

    def fit_steps(steps: int) -> None:
        probe.fit(pipeline.take(steps), epochs=1, verbose=0, shuffle=False)

    # Slices of whole executions; the long one grows until its extra steps take a second (or the pipeline ends).
    seconds_per_step = marginal_seconds_per_step(fit_steps, short, long, limit=probe_batches, repeats=repeats)
    return seconds_per_step * batches * epochs * runs / 60

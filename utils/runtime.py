"""Run-time set-up shared by every notebook: profiles, seeds, devices and paths.

A *profile* says how much work a notebook does.  ``quick`` uses small subsets
and one or two epochs so that every notebook finishes in minutes on a laptop
CPU (and in the test suite); ``full`` uses the course's own settings and is
meant for a GPU.  The profile comes from, in order: the notebook's ``PROFILE``
parameter, the ``CNN_PROFILE`` environment variable, and otherwise ``full``
when a GPU is visible and ``quick`` when not.  The chosen profile and the
reason for it are always printed, so nobody mistakes a quick run for the
course's numbers.
"""

from __future__ import annotations

import os
import platform
import random
import sys
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

PROFILE_ENVIRONMENT_VARIABLE = "CNN_PROFILE"
DEFAULT_SEED = 42


@dataclass(frozen=True)
class Profile:
    """How much work a notebook does, with the reason it was chosen.

    Notebooks read their knobs with :meth:`pick`, for example
    ``epochs = profile.pick(quick=1, full=12)``, so that the two settings of
    every knob sit side by side in the notebook's parameter cell.
    """

    name: str
    description: str
    reason: str = ""

    @property
    def is_quick(self) -> bool:
        """True for the CPU-sized ``quick`` profile."""
        return self.name == "quick"

    def pick(self, *, quick: T, full: T) -> T:
        """Return the value that belongs to this profile."""
        return quick if self.is_quick else full


PROFILE_DESCRIPTIONS: dict[str, str] = {
    "quick": "small data subsets and 1-2 epochs; minutes on a CPU; numbers are "
    "smoke-test sized and NOT comparable with the course",
    "full": "the course's own data sizes, epochs and batch sizes; meant for a GPU",
}
NOTHING_TRAINED_DESCRIPTION = "this notebook trains nothing, so its numbers are the same in every profile"


def gpu_names() -> list[str]:
    """Names of the GPUs TensorFlow can see (empty on a CPU-only machine)."""
    import tensorflow as tf

    return [device.name for device in tf.config.list_physical_devices("GPU")]


def resolve_profile(requested: str | None = None) -> Profile:
    """Choose the profile from the notebook parameter, the environment, or the hardware.

    Raises ``ValueError`` naming the valid choices when a profile name is unknown,
    because a typo silently falling back to ``full`` could start hours of training.
    """
    if requested:
        name, reason = requested, "set by the notebook's PROFILE parameter"
    elif os.environ.get(PROFILE_ENVIRONMENT_VARIABLE):
        name = os.environ[PROFILE_ENVIRONMENT_VARIABLE]
        reason = f"set by the {PROFILE_ENVIRONMENT_VARIABLE} environment variable"
    elif gpu_names():
        name, reason = "full", "a GPU is visible and nothing else was asked for"
    else:
        name, reason = "quick", "no GPU is visible and nothing else was asked for"
    name = name.strip().lower()
    if name not in PROFILE_DESCRIPTIONS:
        raise ValueError(
            f"Unknown profile {name!r} ({reason}). Choose one of "
            f"{sorted(PROFILE_DESCRIPTIONS)}: set PROFILE in the notebook's parameter "
            f"cell or the {PROFILE_ENVIRONMENT_VARIABLE} environment variable."
        )
    return Profile(name=name, description=PROFILE_DESCRIPTIONS[name], reason=reason)


def set_seed(seed: int = DEFAULT_SEED) -> int:
    """Seed Python, NumPy and TensorFlow/Keras at once so reruns draw the same numbers.

    GPU kernels may still be non-deterministic; this removes the avoidable
    sources of run-to-run variation, not all of them.
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


def environment_report() -> dict[str, str]:
    """Versions and devices that matter for reproducing a number."""
    import keras
    import numpy as np
    import tensorflow as tf

    gpus = gpu_names()
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(terse=True),
        "colab": "yes" if in_colab() else "no",
        "cpu_cores": str(os.cpu_count()),
        "gpus": ", ".join(gpus) if gpus else "none",
    }


def use_mixed_precision_if_gpu(gpu_count: int | None = None) -> str:
    """Switch Keras to ``mixed_float16`` on a GPU and keep ``float32`` elsewhere.

    Mixed precision speeds up GPUs with tensor cores but slows CPUs down, so it
    is turned on only when a GPU is present.  Models built afterwards must keep
    their final softmax in float32 (``dtype="float32"`` on the last layer) so
    the loss stays numerically stable; the model recipes in ``utils`` do that.
    Returns the policy name now in force.
    """
    import keras

    if gpu_count is None:
        gpu_count = len(gpu_names())
    policy = "mixed_float16" if gpu_count > 0 else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


def distribution_strategy(gpu_count: int | None = None) -> Any:
    """MirroredStrategy across GPUs when more than one is visible, else the default strategy.

    Build and compile models inside ``with strategy.scope():`` so their variables
    are mirrored; scale the global batch size with ``strategy.num_replicas_in_sync``.
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


def _folder_from_environment(variable: str, default: Path) -> Path:
    folder = Path(os.environ.get(variable) or default).expanduser()
    if not folder.is_absolute():
        folder = (Path.cwd() / folder).resolve()
    return folder


def data_dir() -> Path:
    """Where datasets are looked for first: ``CNN_DATA_DIR`` or the project's ``data/``."""
    return _folder_from_environment("CNN_DATA_DIR", project_root() / "data")


def cache_dir() -> Path:
    """Where downloads and decoded-array caches go: ``CNN_CACHE_DIR`` or ``data/``.

    Kept apart from :func:`data_dir` because the data folder may be read-only
    (for example a shared copy beside the project).
    """
    folder = _folder_from_environment("CNN_CACHE_DIR", project_root() / "data")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def results_dir() -> Path:
    """Where notebooks write their CSV result tables: ``CNN_RESULTS_DIR`` or ``results/``."""
    folder = _folder_from_environment("CNN_RESULTS_DIR", project_root() / "results")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def runs_dir() -> Path:
    """Where run outputs go (executed notebooks, checkpoints, saved models): ``CNN_RUNS_DIR`` or ``runs/``."""
    folder = _folder_from_environment("CNN_RUNS_DIR", project_root() / "runs")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class NotebookContext:
    """What :func:`setup_notebook` decided, for the rest of the notebook to use."""

    profile: Profile
    seed: int
    precision_policy: str
    strategy: Any
    environment: dict[str, str] = field(default_factory=dict)


def setup_notebook(
    profile: str | None = None,
    seed: int = DEFAULT_SEED,
    mixed_precision: bool = False,
    quiet: bool = False,
    trains: bool = True,
) -> NotebookContext:
    """One call at the top of every notebook: profile, seeds, devices, a printed report.

    ``mixed_precision=True`` turns on mixed precision where a GPU is present
    (training notebooks ask for it; the others keep float32 everywhere).
    ``trains=False`` is for notebooks that train nothing: their numbers are the
    same in every profile, so the report says that instead of the profile's
    warning about training results.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Our tf.data pipelines shuffle themselves; Keras still warns about fit()'s
    # default shuffle=True on every call, which only distracts learners.
    warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed, but will be ignored")
    chosen = resolve_profile(profile)
    set_seed(seed)
    environment = environment_report()
    gpu_count = 0 if environment["gpus"] == "none" else len(environment["gpus"].split(", "))
    policy = use_mixed_precision_if_gpu(gpu_count) if mixed_precision else "float32"
    if not mixed_precision:
        import keras

        keras.mixed_precision.set_global_policy("float32")
    strategy = distribution_strategy(gpu_count)
    if not quiet:
        description = chosen.description if trains else NOTHING_TRAINED_DESCRIPTION
        print(f"Profile: {chosen.name} ({chosen.reason}) - {description}")
        print(f"Seed: {seed}   precision: {policy}   replicas: {strategy.num_replicas_in_sync}")
        print("  ".join(f"{key}={value}" for key, value in environment.items()))
        if gpu_count == 0:
            print(
                "No GPU visible: fine for the quick profile. For the full profile on Colab "
                "choose Runtime > Change runtime type > GPU."
            )
    return NotebookContext(chosen, seed, policy, strategy, environment)

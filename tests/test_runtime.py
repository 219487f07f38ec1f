"""Profiles, seeds, device helpers and paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from utils import runtime


def test_profile_from_parameter_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNN_PROFILE", "full")
    profile = runtime.resolve_profile("quick")
    assert profile.name == "quick" and "parameter" in profile.reason


def test_profile_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNN_PROFILE", "FULL")
    profile = runtime.resolve_profile(None)
    assert profile.name == "full" and "CNN_PROFILE" in profile.reason
    assert profile.pick(quick=1, full=12) == 12


def test_profile_defaults_to_lesson_without_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNN_PROFILE", raising=False)
    monkeypatch.setattr(runtime, "gpu_names", list)
    profile = runtime.resolve_profile(None)
    assert profile.name == "lesson" and "no GPU" in profile.reason
    assert profile.pick(quick=1, lesson=6, full=12) == 6


def test_lesson_profile_falls_back_to_full_only_where_no_lesson_value_is_given() -> None:
    lesson = runtime.resolve_profile("lesson")
    assert lesson.pick(quick=1, full=12) == 12
    assert lesson.pick(quick=1, lesson=None, full=12) is None  # None is a real choice, not "missing"
    quick = runtime.resolve_profile("quick")
    assert quick.pick(quick=1, lesson=6, full=12) == 1 and quick.is_quick
    assert not lesson.is_quick


def test_profile_defaults_to_full_with_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNN_PROFILE", raising=False)
    monkeypatch.setattr(runtime, "gpu_names", lambda: ["/physical_device:GPU:0"])
    assert runtime.resolve_profile(None).name == "full"


def test_unknown_profile_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="Choose one of"):
        runtime.resolve_profile("fast")


def test_set_seed_makes_draws_repeatable() -> None:
    import keras

    runtime.set_seed(7)
    first = (np.random.rand(3), keras.random.uniform((3,)).numpy())
    runtime.set_seed(7)
    second = (np.random.rand(3), keras.random.uniform((3,)).numpy())
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_apply_precision_sets_the_global_policy() -> None:
    import keras

    try:
        assert runtime.apply_precision("mixed_float16") == "mixed_float16"
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        layer = keras.layers.Dense(2)
        layer.build((None, 3))
        assert layer.compute_dtype == "float16" and layer.variable_dtype == "float32"
        assert runtime.apply_precision("float32") == "float32"
        assert keras.mixed_precision.global_policy().name == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_clearing_the_session_through_the_helper_keeps_a_mixed_policy(policy: str) -> None:
    """Keras 3's own clear_session falls back to float32; the helper must restore the policy."""
    import keras

    try:
        keras.mixed_precision.set_global_policy(policy)
        assert runtime.clear_session_keeping_precision() == policy
        assert keras.mixed_precision.global_policy().name == policy
        layer = keras.layers.Dense(2)
        layer.build((None, 3))
        assert layer.compute_dtype == policy.removeprefix("mixed_")
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_distribution_strategy_choice() -> None:
    import tensorflow as tf

    default = runtime.distribution_strategy(gpu_count=0)
    assert default.num_replicas_in_sync == 1
    assert not isinstance(default, tf.distribute.MirroredStrategy)
    assert runtime.distribution_strategy(gpu_count=1).num_replicas_in_sync == 1


def test_mirrored_strategy_for_several_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """With two GPUs asked for, MirroredStrategy is built (here over the CPU, as a stand-in)."""
    import tensorflow as tf

    created = {}

    class RecordingStrategy(tf.distribute.MirroredStrategy):
        def __init__(self, *arguments, **keywords):
            created["yes"] = True
            super().__init__(devices=["/cpu:0"])

    monkeypatch.setattr(tf.distribute, "MirroredStrategy", RecordingStrategy)
    strategy = runtime.distribution_strategy(gpu_count=2)
    assert created and isinstance(strategy, tf.distribute.MirroredStrategy)


def test_folders_follow_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("CNN_RESULTS_DIR", str(tmp_path / "r"))
    monkeypatch.setenv("CNN_DATA_DIR", str(tmp_path / "d"))
    assert runtime.results_dir() == tmp_path / "r" and (tmp_path / "r").is_dir()
    assert runtime.data_dir() == tmp_path / "d"
    assert (runtime.project_root() / "utils" / "runtime.py").exists()


def test_setup_notebook_reports(capsys: pytest.CaptureFixture[str]) -> None:
    context = runtime.setup_notebook("quick", seed=3)
    printed = capsys.readouterr().out
    assert context.profile.name == "quick" and context.seed == 3
    assert "Profile: quick" in printed and "tensorflow=" in printed
    assert context.precision_policy == "float32"


XEON_AMX = "processor\t: 0\nmodel name\t: Intel Xeon\nflags\t\t: fpu avx512f amx_bf16 amx_tile avx512_bf16\n"
EPYC_ZEN4 = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"
OLD_CPU = "processor\t: 0\nmodel name\t: Old CPU\nflags\t\t: fpu sse2 avx2\n"


@pytest.mark.parametrize("cpuinfo, expected", [(XEON_AMX, "mixed_bfloat16"), (EPYC_ZEN4, "mixed_bfloat16"),
                                                (OLD_CPU, "float32"), ("", "float32")])
def test_precision_follows_the_cpu_flags(monkeypatch: pytest.MonkeyPatch, cpuinfo: str, expected: str) -> None:
    monkeypatch.delenv("CNN_PRECISION", raising=False)
    chosen = runtime.choose_precision(gpu_count=0, cpuinfo_text=cpuinfo)
    assert chosen.policy == expected
    assert ("bf16" in chosen.reason) == (expected == "mixed_bfloat16")


def test_precision_on_a_gpu_is_mixed_float16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNN_PRECISION", raising=False)
    assert runtime.choose_precision(gpu_count=1, cpuinfo_text=XEON_AMX).policy == "mixed_float16"


def test_precision_parameter_beats_environment_beats_hardware(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNN_PRECISION", "float32")
    from_environment = runtime.choose_precision(gpu_count=0, cpuinfo_text=XEON_AMX)
    assert from_environment.policy == "float32" and "CNN_PRECISION" in from_environment.reason
    from_parameter = runtime.choose_precision("mixed_bfloat16", gpu_count=0, cpuinfo_text=OLD_CPU)
    assert from_parameter.policy == "mixed_bfloat16" and "parameter" in from_parameter.reason


def test_notebooks_that_do_not_train_keep_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNN_PRECISION", raising=False)
    assert runtime.choose_precision(allow_mixed=False, gpu_count=1, cpuinfo_text=XEON_AMX).policy == "float32"


def test_unknown_precision_names_the_choices() -> None:
    with pytest.raises(ValueError, match="mixed_bfloat16"):
        runtime.choose_precision("bf16")


def test_cpu_model_name_and_flags_are_read_from_cpuinfo() -> None:
    assert runtime.cpu_model_name(XEON_AMX) == "Intel Xeon"
    assert {"amx_bf16", "avx512_bf16"} <= runtime.cpu_flags(XEON_AMX)
    assert runtime.cpu_flags("") == set()


def test_setup_notebook_for_a_notebook_that_trains_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    runtime.setup_notebook("quick", seed=3, trains=False)
    printed = capsys.readouterr().out
    assert "NOT comparable" not in printed and runtime.NOTHING_TRAINED_DESCRIPTION in printed


def test_tested_version_ranges_come_from_requirements(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# stack\ntensorflow>=2.16,<2.22\nkeras>=3.3,<4  # Keras 3\nnumpy>=1.26\n")
    assert runtime.tested_version_ranges(requirements) == {"tensorflow": ">=2.16,<2.22", "keras": ">=3.3,<4"}
    assert set(runtime.tested_version_ranges()) == {"tensorflow", "keras"}  # the project's own file


def test_a_version_outside_the_tested_range_gets_one_warning_line() -> None:
    ranges = {"tensorflow": ">=2.16,<2.22", "keras": ">=3.3,<4"}
    assert runtime.untested_versions({"tensorflow": "2.21.0", "keras": "3.15.1"}, ranges) == ""
    warning = runtime.untested_versions({"tensorflow": "2.22.0", "keras": "3.15.1"}, ranges)
    assert "tensorflow 2.22.0 (tested: >=2.16,<2.22)" in warning and "keras" not in warning.split("outside")[0]
    assert "pip install -r requirements.txt" in warning and "\n" not in warning
    assert "not a version number" in runtime.untested_versions({"keras": "custom"}, ranges)


def test_this_environment_is_inside_the_tested_ranges() -> None:
    import keras
    import tensorflow as tf

    assert runtime.untested_versions({"tensorflow": tf.__version__, "keras": keras.__version__}) == ""


def test_report_items_are_joined_in_short_lines_without_splitting_an_item() -> None:
    items = ["hardware=Intel(R) Xeon(R) Processor (2 cores)", "python=3.11.7", "x" * 30, "platform=" + "y" * 120]
    lines = runtime.joined_in_lines(items, 70)
    assert lines == [f"{items[0]}  {items[1]}", items[2], items[3]]


def test_model_precision_is_the_models_own_not_the_global_policy() -> None:
    """A row must name what the model computes in; the global policy only says what the next model gets."""
    import keras

    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                                  keras.layers.Dense(2, activation="softmax", dtype="float32")])
        keras.mixed_precision.set_global_policy("float32")
        assert runtime.model_precision(model) == "mixed_bfloat16"  # the float32 softmax is outvoted
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_a_float32_twin_computes_in_float32_with_the_same_weights() -> None:
    import keras

    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="hidden"),
                                  keras.layers.Dense(2, activation="softmax", dtype="float32")])
        twin = runtime.float32_twin(model)
        assert all(layer.compute_dtype == "float32" for layer in twin.layers)
        assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), twin.get_weights()))
        assert runtime.float32_twin(twin) is twin  # already float32: nothing to copy
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_the_precision_the_setup_prints_is_the_one_models_train_in(capsys: pytest.CaptureFixture[str]) -> None:
    """What the setup cell announces must hold for every model built later, after the notebooks' resets."""
    import keras

    try:
        context = runtime.setup_notebook("quick", mixed_precision=True, precision="mixed_bfloat16")
        assert "Precision: mixed_bfloat16" in capsys.readouterr().out
        runtime.clear_session_keeping_precision()
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        assert runtime.model_precision(model) == context.precision_policy == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")

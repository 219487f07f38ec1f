"""Profiles, seeds, device helpers and paths."""

from __future__ import annotations

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


def test_profile_defaults_to_quick_without_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNN_PROFILE", raising=False)
    monkeypatch.setattr(runtime, "gpu_names", list)
    profile = runtime.resolve_profile(None)
    assert profile.name == "quick" and "no GPU" in profile.reason
    assert profile.pick(quick=1, full=12) == 1


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


def test_mixed_precision_only_with_gpu() -> None:
    import keras

    try:
        assert runtime.use_mixed_precision_if_gpu(gpu_count=1) == "mixed_float16"
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        layer = keras.layers.Dense(2)
        layer.build((None, 3))
        assert layer.compute_dtype == "float16" and layer.variable_dtype == "float32"
        assert runtime.use_mixed_precision_if_gpu(gpu_count=0) == "float32"
        assert keras.mixed_precision.global_policy().name == "float32"
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


def test_setup_notebook_for_a_notebook_that_trains_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    runtime.setup_notebook("quick", seed=3, trains=False)
    printed = capsys.readouterr().out
    assert "NOT comparable" not in printed and runtime.NOTHING_TRAINED_DESCRIPTION in printed

"""Training-speed benchmark: the course's way vs the suite's, ``python -m tools.bench cifar10``.

The course feeds float32 NumPy arrays straight into ``model.fit(x, y, batch_size=32)``,
in float32, with Keras's own batch-norm layer. The suite keeps the images as uint8 in a
tf.data pipeline (see :func:`utils.data.make_pipeline`), trains in the precision the
hardware does fastest (:func:`utils.runtime.choose_precision`: mixed bfloat16 on CPUs
with BF16 instructions, mixed float16 on GPUs) and uses the fused batch norm where it
measured faster (:mod:`utils.layers`). Same batch size, same model, same steps.

Two experiments are measured, because they stress different things: experiment I (no
batch norm: the convolutions dominate) and experiment III (batch norm after every
convolution). All four (experiment x way) are timed in one process, alternating in ABBA
order over several rounds so a busy shared CPU penalises every one alike. Each way's
best round is the one least disturbed by other jobs (the reasoning of Python's
``timeit``); medians are printed too. The last line is ``speedup: N.NNx``, the geometric
mean over the two experiments of suite over course. The script also projects notebook
03's training time in the full and lesson profiles from these rates.

Speed is reported, never asserted: a benchmark that fails on a busy machine teaches
nothing. Each invocation appends one row per experiment to ``results/cifar10_benchmark.csv``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any


from utils import course, runtime

BENCHMARKS = ("cifar10",)


@dataclass
class BenchmarkResult:
    """Images per second of each way, round by round, and what was measured."""

    steps: int
    batch_size: int
    data_source: str
    device: str
    course_rates: list[float] = field(default_factory=list)
    suite_rates: list[float] = field(default_factory=list)
    course_cpu_rates: list[float] = field(default_factory=list)
    suite_cpu_rates: list[float] = field(default_factory=list)
    suite_settings: str = ""
    estimate_seconds: float | None = None  # runtime's training-time estimate for one measured fit

    @property
    def course_median(self) -> float:
        """Median images/s of the course's way over the rounds."""
        return statistics.median(self.course_rates)

    @property
    def suite_median(self) -> float:
        """Median images/s of the suite's way over the rounds."""
        return statistics.median(self.suite_rates)

    @property
    def course_best(self) -> float:
        """Best (least disturbed) images/s of the course's way."""
        return max(self.course_rates)

    @property
    def suite_best(self) -> float:
        """Best (least disturbed) images/s of the suite's way."""
        return max(self.suite_rates)

    @property
    def speedup(self) -> float:
        """How many times faster the suite's way is, best round against best round (above 1: faster)."""
        return self.suite_best / self.course_best


def _timed_fit(model: Any, *fit_arguments: Any, **fit_options: Any) -> tuple[float, float]:
    """Wall-clock and process-CPU seconds of one ``model.fit`` call of one epoch, progress output off.

    CPU seconds matter on a shared machine: when other jobs take the cores the wall
    clock stretches, but the work this process did (its CPU time) barely changes.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    model.fit(*fit_arguments, epochs=1, verbose=0, **fit_options)
    return time.perf_counter() - started, time.process_time() - cpu_started


def usable_steps(requested: int, image_count: int, batch_size: int) -> int:
    """The requested step count, capped (with a printed note) to the full batches the data holds."""
    available = image_count // batch_size
    if available < 1:
        raise ValueError(f"Only {image_count} training images: not even one batch of {batch_size}.")
    if requested > available:
        print(f"Only {image_count:,} training images: measuring {available} steps instead of {requested}.")
        return available
    return requested


BENCHMARKED_EXPERIMENTS = ("I", "III")


def _build_pair(name: str, suite_policy: str, steps_per_execution: int) -> tuple[Any, Any]:
    """One experiment twice: the course's way (float32, Keras's batch norm) and the suite's."""
    import keras

    from utils import experiments

    runtime.apply_precision("float32")
    runtime.set_seed(0)
    course_model = experiments.compile_like_course(
        experiments.build_experiment_model(name, batch_norm_layer=keras.layers.BatchNormalization))
    runtime.apply_precision(suite_policy)
    runtime.set_seed(0)
    suite_model = experiments.compile_like_course(experiments.build_experiment_model(name),
                                                  steps_per_execution=steps_per_execution)
    runtime.apply_precision("float32")
    return course_model, suite_model


def benchmark_cifar10(steps: int = 100, repeats: int = 5, warmup_steps: int = 10,
                      batch_size: int = course.CIFAR10_BATCH_SIZE,
                      names: tuple[str, ...] = BENCHMARKED_EXPERIMENTS) -> dict[str, BenchmarkResult]:
    """Train each experiment in ``names`` for ``steps`` batches per measurement, the course's way and the suite's.

    Each round times one ``fit`` call per (experiment, way), in an order that reverses
    every other round; a warm-up call of each first pays for graph tracing so it is not
    counted. Every measurement sees the same ``steps * batch_size`` training images.
    Returns one :class:`BenchmarkResult` per experiment.
    """
    import keras

    from utils import data, experiments, layers

    if steps < 1 or repeats < 1 or warmup_steps < 1:
        raise ValueError(f"steps, repeats and warmup_steps must be at least 1 "
                         f"(got {steps}, {repeats}, {warmup_steps}).")
    dataset = data.load_cifar10()
    steps = usable_steps(steps, len(dataset.y_train), batch_size)
    warmup_steps = min(warmup_steps, steps)
    image_count = steps * batch_size
    images, labels = dataset.x_train[:image_count], dataset.y_train[:image_count]
    num_classes = len(dataset.class_names)

    # The course's way: the whole array scaled to float32 and labels one-hot, before fit.
    course_images = images.astype("float32") / 255.0
    course_labels = keras.utils.to_categorical(labels, num_classes)
    # The suite's way: uint8 images in a cached, shuffled, prefetched pipeline.
    suite_pipeline = data.make_pipeline(images, labels, batch_size, num_classes=num_classes, training=True)

    gpu_count = len(runtime.gpu_names())
    device = runtime.hardware_name()
    suite_policy = runtime.choose_precision(gpu_count=gpu_count).policy
    steps_per_execution = experiments.default_steps_per_execution(gpu_count)
    batch_norm = "fused batch norm" if layers.fused_batch_norm_is_faster(gpu_count) else "Keras batch norm"
    settings = (f"precision {suite_policy}, {batch_norm}, steps_per_execution {steps_per_execution}, "
                f"no jit_compile")
    outcomes = {name: BenchmarkResult(steps, batch_size, dataset.source, device, suite_settings=settings)
                for name in names}
    models = {name: _build_pair(name, suite_policy, steps_per_execution) for name in names}

    def measure(name: str, way: str) -> None:
        course_model, suite_model = models[name]
        result = outcomes[name]
        if way == "course":
            runtime.apply_precision("float32")
            seconds, cpu_seconds = _timed_fit(course_model, course_images, course_labels, batch_size=batch_size)
            result.course_rates.append(image_count / seconds)
            result.course_cpu_rates.append(image_count / cpu_seconds)
        else:
            runtime.apply_precision(suite_policy)
            seconds, cpu_seconds = _timed_fit(suite_model, suite_pipeline, shuffle=False)
            result.suite_rates.append(image_count / seconds)
            result.suite_cpu_rates.append(image_count / cpu_seconds)

    warmup_images = warmup_steps * batch_size
    for course_model, suite_model in models.values():
        _timed_fit(course_model, course_images[:warmup_images], course_labels[:warmup_images],
                   batch_size=batch_size)
        _timed_fit(suite_model, suite_pipeline.take(warmup_steps), shuffle=False)
    order = [(name, way) for name in names for way in ("course", "suite")]
    for round_index in range(repeats):
        for name, way in (order if round_index % 2 == 0 else order[::-1]):
            measure(name, way)
        print(f"round {round_index + 1}: " + "; ".join(
            f"{name} course {outcomes[name].course_rates[-1]:,.1f}, suite {outcomes[name].suite_rates[-1]:,.1f}"
            for name in names) + " images/s", flush=True)
    if "I" in outcomes:  # the estimate the long-run guard relies on, against the fits just measured
        runtime.apply_precision(suite_policy)
        outcomes["I"].estimate_seconds = 60 * experiments.estimate_experiment_minutes(
            "I", suite_pipeline, epochs=1, steps_per_execution=steps_per_execution,
            input_shape=tuple(images.shape[1:]), num_classes=num_classes)
    runtime.apply_precision("float32")
    runtime.clear_session_keeping_precision()
    return outcomes


def geometric_mean_speedup(outcomes: dict[str, BenchmarkResult]) -> float:
    """The geometric mean of each experiment's speedup (suite best over course best)."""
    return statistics.geometric_mean([result.speedup for result in outcomes.values()])


def projected_training_hours(rates: dict[str, float], train_images: int, epochs: int) -> dict[str, float]:
    """Hours of training (validation and test passes excluded) for each of the seven experiments.

    Measured rates are used for the experiments measured; the others take the rate of the
    measured experiment of the same kind (batch norm or not), scaled by the ratio of the
    two models' multiply-adds per image. These are projections, labelled as such wherever
    they are printed.
    """
    from utils import architectures, experiments

    macs = {}
    for name in experiments.EXPERIMENTS:
        macs[name] = architectures.count_macs(experiments.build_experiment_model(name))
    runtime.clear_session_keeping_precision()
    hours = {}
    for name, experiment in experiments.EXPERIMENTS.items():
        if name in rates:
            rate = rates[name]
        else:
            same_kind = [measured for measured in rates
                         if experiments.EXPERIMENTS[measured].batch_norm == experiment.batch_norm] or list(rates)
            reference = same_kind[0]
            rate = rates[reference] * macs[reference] / macs[name]
        hours[name] = train_images * epochs / rate / 3600
    return hours


def record(outcomes: dict[str, BenchmarkResult]) -> None:
    """Append one row per benchmarked experiment to ``results/cifar10_benchmark.csv``."""
    from utils import results

    for name, result in outcomes.items():
        results.append_result("cifar10_benchmark", {
            "benchmark": f"cifar10 experiment {name}",
            "steps": result.steps,
            "batch_size": result.batch_size,
            "rounds": len(result.course_rates),
            "course_images_per_second": round(result.course_best, 1),
            "suite_images_per_second": round(result.suite_best, 1),
            "course_median_images_per_second": round(result.course_median, 1),
            "suite_median_images_per_second": round(result.suite_median, 1),
            "speedup": round(result.speedup, 3),
            "course_images_per_cpu_second": round(statistics.median(result.course_cpu_rates), 1),
            "suite_images_per_cpu_second": round(statistics.median(result.suite_cpu_rates), 1),
            "device": result.device,
            "suite_settings": result.suite_settings,
            "data_source": result.data_source,
            **{key: value for key, value in results.library_versions().items() if key != "precision"},
        })


def print_projections(outcomes: dict[str, BenchmarkResult]) -> None:
    """Notebook 03's training time in the full and lesson profiles, projected from the suite's best rates."""
    from utils import course, experiments

    rates = {name: result.suite_best for name, result in outcomes.items()}
    full_images = 50_000 - experiments.HOLDOUT_IMAGES
    for profile, train_images, epochs in (("full", full_images, course.CIFAR10_EPOCHS),
                                          ("lesson", experiments.LESSON_TRAIN_IMAGES, experiments.LESSON_EPOCHS)):
        hours = projected_training_hours(rates, train_images, epochs)
        per_experiment = ", ".join(f"{name} {value * 60:,.0f}" for name, value in hours.items())
        print(f"projected notebook 03 training time, {profile} profile ({train_images:,} images x {epochs} "
              f"epochs, suite's way): {sum(hours.values()) * 60:,.0f} min for all seven "
              f"(minutes each: {per_experiment}; measured rates for {', '.join(rates)}, the others scaled "
              f"by multiply-adds)")


def main(arguments: list[str] | None = None) -> int:
    """Command-line entry point: run the named benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", choices=BENCHMARKS, help="what to benchmark")
    parser.add_argument("--steps", type=int, default=100, help="training batches per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (each times both ways once)")
    parser.add_argument("--warmup-steps", type=int, default=10, help="untimed batches first, per way")
    options = parser.parse_args(arguments)
    runtime.import_tensorflow()  # the quiet import the notebooks use: no C++ start-up lines on the terminal
    outcomes = benchmark_cifar10(options.steps, options.repeats, options.warmup_steps)
    record(outcomes)
    first = next(iter(outcomes.values()))
    print(f"CIFAR-10 experiments {', '.join(outcomes)}, batch {first.batch_size}, {first.steps} steps "
          f"({first.steps * first.batch_size:,} images) per measurement, {len(first.course_rates)} rounds")
    print(f"device: {first.device}; data: {first.data_source}")
    print("course's way: float32 NumPy arrays into fit, Keras's batch norm")
    print(f"suite's way: tf.data pipeline, {first.suite_settings}")
    for name, result in outcomes.items():
        print(f"experiment {name}: course {result.course_best:,.1f} images/s best ({result.course_median:,.1f} "
              f"median), suite {result.suite_best:,.1f} best ({result.suite_median:,.1f} median): "
              f"{result.speedup:.2f}x; per CPU-second of this process: course "
              f"{statistics.median(result.course_cpu_rates):,.1f}, suite "
              f"{statistics.median(result.suite_cpu_rates):,.1f} images")
    if len(outcomes) > 1:
        names = list(outcomes)
        ratio = outcomes[names[0]].suite_best / outcomes[names[-1]].suite_best
        print(f"suite's way, experiment {names[0]} over {names[-1]}: {ratio:.2f}x")
    print_projections(outcomes)
    for name, result in outcomes.items():
        if result.estimate_seconds is not None:
            measured = result.steps * result.batch_size / result.suite_median
            print(f"training-time estimate, experiment {name}, one fit of {result.steps} steps: estimated "
                  f"{result.estimate_seconds:.3f} s, measured {measured:.3f} s (median round): "
                  f"estimate/measured {result.estimate_seconds / measured:.2f}")
    print(f"speedup: {geometric_mean_speedup(outcomes):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

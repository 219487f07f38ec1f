"""Training-speed benchmark: the course's input handling vs the suite's, ``python -m utils.bench cifar10``.

The course feeds float32 NumPy arrays straight into ``model.fit(x, y, batch_size=32)``.
The suite keeps the images as uint8 in a tf.data pipeline (cache, shuffle, batch,
scale on the fly, prefetch; see :func:`utils.data.make_pipeline`), and on a GPU adds
mixed precision and several steps per execution.  This script trains the same
architecture (experiment I) for the same number of steps both ways, in one
process, alternating the two in ABBA order over several rounds so that a busy
shared CPU penalises both alike, and prints images per second for each and their
ratio.  The last line is ``speedup: N.NNx``: suite over course, each way's best
round.  The best round is the one least disturbed by other jobs (the reasoning of
Python's ``timeit``); on a shared 2-core machine the rates jump between a fast mode
and a slow one as other jobs come and go, so the medians are printed as well.

Speed is reported, never asserted: a benchmark that fails on a busy machine
teaches nothing.  Each invocation also appends one row to
``results/cifar10_benchmark.csv``.
"""

from __future__ import annotations

import argparse
import os
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


def _build_models(gpu_count: int, steps_per_execution: int) -> tuple[Any, Any, str]:
    """Experiment I twice: float32 for the course's way, the suite's precision for the suite's."""
    import keras

    from utils import experiments

    keras.mixed_precision.set_global_policy("float32")
    runtime.set_seed(0)
    course_model = experiments.compile_like_course(experiments.build_experiment_model("I"))
    suite_policy = runtime.use_mixed_precision_if_gpu(gpu_count)
    runtime.set_seed(0)
    suite_model = experiments.compile_like_course(experiments.build_experiment_model("I"),
                                                  steps_per_execution=steps_per_execution)
    keras.mixed_precision.set_global_policy("float32")
    settings = f"precision {suite_policy}, steps_per_execution {steps_per_execution}, no jit_compile"
    return course_model, suite_model, settings


def benchmark_cifar10(steps: int = 100, repeats: int = 5, warmup_steps: int = 10,
                      batch_size: int = course.CIFAR10_BATCH_SIZE) -> BenchmarkResult:
    """Train experiment I for ``steps`` batches per measurement, the course's way and the suite's.

    Each round times one ``fit`` call per way (order alternating ABBA); a warm-up
    call of each first pays for graph tracing so it is not counted.  Both ways see
    the same ``steps * batch_size`` training images.
    """
    import keras

    from utils import data, experiments

    if steps < 1 or repeats < 1 or warmup_steps < 1:
        raise ValueError(f"steps, repeats and warmup_steps must be at least 1 "
                         f"(got {steps}, {repeats}, {warmup_steps}).")
    dataset = data.load_cifar10()
    steps = usable_steps(steps, len(dataset.y_train), batch_size)
    warmup_steps = min(warmup_steps, steps)
    image_count = steps * batch_size
    images, labels = dataset.x_train[:image_count], dataset.y_train[:image_count]

    # The course's way: the whole array scaled to float32 and labels one-hot, before fit.
    course_images = images.astype("float32") / 255.0
    course_labels = keras.utils.to_categorical(labels, len(dataset.class_names))
    # The suite's way: uint8 images in a cached, shuffled, prefetched pipeline.
    suite_pipeline = data.make_pipeline(images, labels, batch_size, num_classes=len(dataset.class_names),
                                        training=True)
    warmup_pipeline = suite_pipeline.take(warmup_steps)

    gpu_count = len(runtime.gpu_names())
    device = f"GPU x{gpu_count}" if gpu_count else f"CPU ({runtime.environment_report()['cpu_cores']} cores)"
    course_model, suite_model, settings = _build_models(
        gpu_count, experiments.default_steps_per_execution(gpu_count))
    result = BenchmarkResult(steps, batch_size, dataset.source, device, suite_settings=settings)

    def measure_course() -> None:
        seconds, cpu_seconds = _timed_fit(course_model, course_images, course_labels, batch_size=batch_size)
        result.course_rates.append(image_count / seconds)
        result.course_cpu_rates.append(image_count / cpu_seconds)

    def measure_suite() -> None:
        seconds, cpu_seconds = _timed_fit(suite_model, suite_pipeline, shuffle=False)
        result.suite_rates.append(image_count / seconds)
        result.suite_cpu_rates.append(image_count / cpu_seconds)

    warmup_images = warmup_steps * batch_size
    _timed_fit(course_model, course_images[:warmup_images], course_labels[:warmup_images],
               batch_size=batch_size)
    _timed_fit(suite_model, warmup_pipeline, shuffle=False)
    for round_index in range(repeats):
        order = (measure_course, measure_suite) if round_index % 2 == 0 else (measure_suite, measure_course)
        for measure in order:
            measure()
        print(f"round {round_index + 1}: course {result.course_rates[-1]:,.1f} images/s, "
              f"suite {result.suite_rates[-1]:,.1f} images/s", flush=True)
    keras.backend.clear_session()
    return result


def record(result: BenchmarkResult) -> None:
    """Append the benchmark's figures to ``results/cifar10_benchmark.csv``."""
    from utils import results

    results.append_result("cifar10_benchmark", {
        "benchmark": "cifar10 experiment I",
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
        **results.library_versions(),
    })


def main(arguments: list[str] | None = None) -> int:
    """Command-line entry point: run the named benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("benchmark", choices=BENCHMARKS, help="what to benchmark")
    parser.add_argument("--steps", type=int, default=100, help="training batches per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (each times both ways once)")
    parser.add_argument("--warmup-steps", type=int, default=10, help="untimed batches first, per way")
    options = parser.parse_args(arguments)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    result = benchmark_cifar10(options.steps, options.repeats, options.warmup_steps)
    record(result)
    print(f"CIFAR-10 experiment I, batch {result.batch_size}, {result.steps} steps "
          f"({result.steps * result.batch_size:,} images) per measurement, {len(result.course_rates)} rounds")
    print(f"device: {result.device}; data: {result.data_source}")
    print(f"course's way (float32 NumPy arrays into fit): {result.course_best:,.1f} images/s best, "
          f"{result.course_median:,.1f} median")
    print(f"suite's way (tf.data pipeline; {result.suite_settings}): {result.suite_best:,.1f} images/s best, "
          f"{result.suite_median:,.1f} median")
    print(f"per CPU-second of this process (robust to other jobs on a shared machine): course "
          f"{statistics.median(result.course_cpu_rates):,.1f}, suite {statistics.median(result.suite_cpu_rates):,.1f} "
          f"images")
    print(f"speedup: {result.speedup:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

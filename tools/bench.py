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

``python -m tools.bench fast-cifar-widths`` times notebook 08's two networks the same way (alternating rounds in
one process): the shipped 10- and 20-minute recipe (64/128/128) and airbench94's replica (64/256/256). Their ratio
turns the shipped rows' speed into the wide network's epochs per budget on the machine that measured those rows
(``--ship`` writes ``results/reference/fast_cifar_widths.csv``, read by notebook 08's ceiling table).

Speed is reported, never asserted: a benchmark that fails on a busy machine teaches
nothing. Each invocation appends one row per experiment to ``results/cifar10_benchmark.csv``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from utils import course, runtime

BENCHMARKS = ("cifar10", "fast-cifar-widths")


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


@dataclass
class WidthsResult:
    """Seconds per training step of notebook 08's two networks, measured alternately in one process."""

    narrow_batch: int
    wide_batch: int
    narrow_widths: str = "64/128/128"
    wide_widths: str = "64/256/256"
    data_source: str = ""
    steps: int = 0
    narrow_seconds: list[float] = field(default_factory=list)
    wide_seconds: list[float] = field(default_factory=list)

    @property
    def narrow_images_per_second(self) -> float:
        """The narrow recipe's images per second at its median step."""
        return self.narrow_batch / statistics.median(self.narrow_seconds)

    @property
    def wide_images_per_second(self) -> float:
        """The wide recipe's images per second at its median step."""
        return self.wide_batch / statistics.median(self.wide_seconds)

    @property
    def ratio(self) -> float:
        """Wide images per second over narrow: the factor that turns a narrow row's speed into the wide one's."""
        return self.wide_images_per_second / self.narrow_images_per_second

    @property
    def fastest_ratio(self) -> float:
        """The same ratio from each way's fastest round (the rounds least disturbed by other work)."""
        return (self.wide_batch / min(self.wide_seconds)) / (self.narrow_batch / min(self.narrow_seconds))


def widths_recipes() -> tuple[Any, Any]:
    """The two recipes :func:`benchmark_widths` compares: the shipped target rows' and airbench94's replica."""
    from utils import fast_cifar

    wide = fast_cifar.AIRBENCH_REPLICAS[1]
    return (fast_cifar.modern_recipe(),
            fast_cifar.modern_recipe(name=wide.name, epochs=wide.epochs, **wide.changes))


def benchmark_widths(repeats: int = 4, steps: int = 8, recipes: tuple[Any, Any] | None = None) -> WidthsResult:
    """Time a step of the shipped 10- and 20-minute recipe (64/128/128) and of airbench94's replica (64/256/256).

    The shipped target rows record their images per second on the machine that measured them; the wide network
    was never trained there. Its speed there is the narrow rows' speed times the ratio measured here, both ways
    timed by :func:`utils.fast_cifar.measure_seconds_per_step` (marginal step cost, augmentation included) in
    ABBA order, so a busy machine slows both alike and the ratio survives where the seconds would not.
    ``recipes`` (narrow, wide) replaces :func:`widths_recipes` (the tests' small stand-ins).
    """
    from utils import data, fast_cifar

    if repeats < 1 or steps < 1:
        raise ValueError(f"repeats and steps must be at least 1 (got {repeats}, {steps}).")
    narrow, wide = recipes or widths_recipes()
    splits = data.make_splits(data.load_cifar10(), protocol="course")  # all training images; no validation needed
    outcome = WidthsResult(narrow.batch_size, wide.batch_size, "/".join(map(str, narrow.widths)),
                           "/".join(map(str, wide.widths)), splits.source, steps)
    order = [(narrow, outcome.narrow_seconds), (wide, outcome.wide_seconds)]
    for round_index in range(repeats):
        for recipe, seconds in (order if round_index % 2 == 0 else order[::-1]):
            seconds.append(fast_cifar.measure_seconds_per_step(recipe, splits, steps=steps, repeats=1))
        print(f"round {round_index + 1}: narrow {outcome.narrow_seconds[-1]:.3f} s/step "
              f"(batch {narrow.batch_size}), wide {outcome.wide_seconds[-1]:.3f} s/step "
              f"(batch {wide.batch_size})", flush=True)
    return outcome


def print_widths_projection(outcome: WidthsResult) -> None:
    """The wide network's epochs within each target budget on the machine that measured the shipped target rows."""
    import pandas as pd

    from utils import fast_cifar

    print(f"narrow ({outcome.narrow_widths}, batch {outcome.narrow_batch}): {outcome.narrow_images_per_second:,.1f} "
          f"images/s; wide ({outcome.wide_widths}, batch {outcome.wide_batch}): "
          f"{outcome.wide_images_per_second:,.1f} images/s "
          f"(medians of {len(outcome.wide_seconds)} rounds, this machine: {runtime.hardware_name()})")
    print(f"wide over narrow, images per second: {outcome.ratio:.3f} (fastest rounds: {outcome.fastest_ratio:.3f})")
    rows = fast_cifar.read_reference("lesson")
    for minutes in fast_cifar.FRONTIER_TARGETS:
        narrow_speed = fast_cifar.shipped_images_per_second(minutes, rows)
        if narrow_speed is None:
            print(f"{minutes:g} minutes: no shipped narrow row to scale (not measured)")
            continue
        wide_epochs = fast_cifar.wide_epochs_within(minutes, rows, pd.DataFrame({"ratio": [outcome.ratio]}))
        print(f"{minutes:g} minutes on the machine that measured the shipped rows: narrow {narrow_speed:,.1f} "
              f"images/s, so the wide network at {narrow_speed * outcome.ratio:,.1f} images/s trains "
              f"{wide_epochs:.1f} epochs of {fast_cifar.ALL_TRAINING_IMAGE_COUNT:,} images")


def record_widths(outcome: WidthsResult, ship: bool = False) -> Path:
    """Append the measurement to ``results/fast_cifar_widths.csv``; with ``ship``, copy that table's rows to the
    shipped ``results/reference/fast_cifar_widths.csv`` that notebook 08 reads (:func:`utils.fast_cifar.ceiling_table`).
    """
    from utils import fast_cifar, reference, results

    path = results.append_result(fast_cifar.WIDTHS_TABLE, {
        "narrow_widths": outcome.narrow_widths, "wide_widths": outcome.wide_widths,
        "narrow_batch_size": outcome.narrow_batch, "wide_batch_size": outcome.wide_batch, "steps": outcome.steps,
        "rounds": len(outcome.wide_seconds),
        "narrow_seconds_per_step": round(statistics.median(outcome.narrow_seconds), 4),
        "wide_seconds_per_step": round(statistics.median(outcome.wide_seconds), 4),
        "narrow_images_per_second": round(outcome.narrow_images_per_second, 1),
        "wide_images_per_second": round(outcome.wide_images_per_second, 1),
        "ratio": round(outcome.ratio, 4), "fastest_ratio": round(outcome.fastest_ratio, 4),
        "data_source": outcome.data_source, **results.library_versions(),
    })
    if not ship:
        return path
    shipped = reference.reference_dir() / f"{fast_cifar.WIDTHS_TABLE}.csv"
    rows = results.read_results(fast_cifar.WIDTHS_TABLE)
    results.write_text_atomically(lambda handle: rows.to_csv(handle, index=False), shipped)
    return shipped


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
    parser.add_argument("--ship", action="store_true",
                        help="fast-cifar-widths only: also write the shipped results/reference/fast_cifar_widths.csv")
    options = parser.parse_args(arguments)
    runtime.import_tensorflow()  # the quiet import the notebooks use: no C++ start-up lines on the terminal
    if options.benchmark == "fast-cifar-widths":
        runtime.apply_precision(runtime.choose_precision(gpu_count=len(runtime.gpu_names())).policy)
        outcome = benchmark_widths(options.repeats)
        print_widths_projection(outcome)
        print(f"recorded in {record_widths(outcome, ship=options.ship)}")
        return 0
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

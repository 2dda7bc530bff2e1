"""Detector benchmark on the shared real photo sets (a script that prints a table, not a test).

Per set (towers, Intramuros, Berlin; see detector_sets.py) and seed: train on the set's
training photos (negatives: background crops of its own photos, no other city's photos),
then judge on its held-out photos and on photos of no sight of that city: the other sets'
photos and everyday photos (`--everyday DIR`). The model is judged with its open-set gate
(as shipped) and with the gate opened (`set_rejection_threshold(-2)`), so the table shows
what the gate buys and costs.

With `--pool`, each set is trained once more per other set, that set's photos standing in
for an everyday pool that holds landmarks (a quarter of the training photos, as the
service takes from the pool), and judged on the third set's photos only; the baseline is
judged on that same third set, so the table shows what landmarks in the pool buy.

With `--landmark-pool`, each set is trained once and its gate rebuilt with other landmarks'
photos among its negatives (the landmark pool; not trained on): the other sets' sights are
split into two folds, and the photos of each fold are judged with the other fold's
training photos in the pool, so no judged landmark is in the pool.

    PYTHONPATH=src python benchmarks/detector.py --sets towers intramuros berlin \\
        --seeds 0 1 --epochs 55 --everyday /tmp/everyday [--pool | --landmark-pool]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from detector_sets import (
    ALL_LANDMARKS,
    DATA,
    FOLDER_SETS,
    SETS,
    BenchmarkSet,
    everyday,
    load_set,
)

from sightscan.inference import Detector
from sightscan.training import (
    TrainConfig,
    TrainingImage,
    assemble_training_set,
    evaluate,
    train_detector,
)
from sightscan.training.dataset import TrainingSet, decode_landmarks
from sightscan.training.export import read_metadata, set_rejection_threshold
from sightscan.training.negatives import EVERYDAY_KEY
from sightscan.training.quantize import MAX_INT8_BYTES, calibration_photos, quantize_model, regate
from sightscan.training.rejection import DISABLED
from sightscan.training.trainer import TrainedModel


@dataclass
class Run:
    """One set, one seed: the measures of the table."""

    map50: float
    map50_95: float
    top1: float
    top1_ungated: float
    clean: float
    clean_ungated: float
    clean_everyday: float  # the everyday photos among the no-sight ones, gated
    lost: float
    cpu_per_core: float
    load: tuple[float, float]
    ms_per_photo: float
    model_mb: float
    int8_mb: float  # the fast int8 variant (QDQ), its gate rebuilt, as the service makes it
    int8_map50: float
    int8_map50_95: float
    int8_clean_everyday: float
    int8_clean: float  # all no-sight photos, as clients get them (the served int8 model)
    int8_ms_per_photo: float
    clean_by_set: dict[str, float]  # no-sight photos left clean, gated, per set they came from
    threshold_choice: dict[str, float]  # the score threshold and its two candidates


def _answered(detector: Detector, images: list) -> list[str | None]:
    """Top answer per photo (None = no detection)."""
    results = detector.detect_many([im.load() for im in images])
    return [dets[0].label if dets else None for dets in results]


def _train(chosen: BenchmarkSet, config: TrainConfig, pool: list | None = None
           ) -> tuple[TrainingSet, TrainedModel]:
    """The set's training set (plus `pool` photos as everyday negatives) and its model."""
    pool_negatives = [TrainingImage(f"{EVERYDAY_KEY}{im.key}", im.load, []) for im in pool or []]
    training_set = assemble_training_set(chosen.train + pool_negatives, city=chosen.name,
                                         min_images_per_label=5, val_fraction=0.15,
                                         seed=config.seed,
                                         decode_size=int(config.image_size * 1.25))
    return training_set, train_detector(training_set, config, city=chosen.name)


def run_one(chosen: BenchmarkSet, foreign: dict[str, list], daily: list, config: TrainConfig,
            pool: list | None = None, int8_too: bool = True) -> Run:
    """Train on the set (plus `pool` photos as everyday negatives), judge on its held-out
    photos and on the no-sight photos: `foreign` (per other set) and `daily`."""
    others = [im for photos in foreign.values() for im in photos] + daily
    load_before = os.getloadavg()[0]
    cpu_started = time.process_time()
    training_set, trained = _train(chosen, config, pool)
    cpu = time.process_time() - cpu_started
    load_after = os.getloadavg()[0]
    gated = Detector.from_bytes(trained.onnx, threads=1)
    opened = Detector.from_bytes(set_rejection_threshold(trained.onnx, DISABLED), threads=1)
    names = training_set.class_names
    test = [im for im in chosen.test if {lab.name for lab in im.labels} <= set(names)]
    metrics = evaluate(gated, test, names)
    truth = [{lab.name for lab in im.labels} for im in test]
    top_gated, top_open = _answered(gated, test), _answered(opened, test)
    right_open = [a in t for a, t in zip(top_open, truth, strict=True)]
    lost = sum(r and a is None for r, a in zip(right_open, top_gated, strict=True))
    clean_gated = [a is None for a in _answered(gated, others)]
    clean_daily = [a is None for a in _answered(gated, daily)] if daily else [True]
    clean_open = [a is None for a in _answered(opened, others)]
    clean_by_set, start = {}, 0
    for set_name, photos in foreign.items():
        clean_by_set[set_name] = sum(clean_gated[start:start + len(photos)]) / len(photos)
        start += len(photos)
    if int8_too:
        int8 = regate(quantize_model(trained.onnx, calibration_photos(
            [s.pixels for s in training_set.train], config.image_size)),
            training_set.train, training_set.val)
        small = Detector.from_bytes(int8, threads=1)
        int8_metrics = evaluate(small, test, names)
        int8_daily = [a is None for a in _answered(small, daily)] if daily else [True]
        int8_clean = [a is None for a in _answered(small, others)]
    else:  # the float model stands in (the pool comparison needs no int8 columns)
        int8, small, int8_metrics = trained.onnx, gated, metrics
        int8_daily, int8_clean = clean_daily, clean_gated
    return Run(
        map50=metrics.map50, map50_95=metrics.map50_95, top1=metrics.top1_accuracy,
        top1_ungated=sum(right_open) / len(test),
        clean=sum(clean_gated) / len(others), clean_ungated=sum(clean_open) / len(others),
        clean_everyday=sum(clean_daily) / len(clean_daily),
        lost=lost / max(1, sum(right_open)), cpu_per_core=cpu / config.threads,
        load=(load_before, load_after), ms_per_photo=_ms_per_photo(gated, test),
        model_mb=len(trained.onnx) / 1e6, int8_mb=len(int8) / 1e6,
        int8_map50=int8_metrics.map50, int8_map50_95=int8_metrics.map50_95,
        int8_clean_everyday=sum(int8_daily) / len(int8_daily),
        int8_clean=sum(int8_clean) / len(int8_clean),
        int8_ms_per_photo=_ms_per_photo(small, test), clean_by_set=clean_by_set,
        threshold_choice=trained.metadata["score_threshold_choice"],
    )


def _ms_per_photo(detector: Detector, images: list) -> float:
    """Median wall ms of one `detect` (decode, resize, graph, NMS) over up to 20 photos."""
    timings = []
    for image in images[:20]:
        data = image.load()
        started = time.perf_counter()
        detector.detect(data)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def _cell(values: list[float], digits: int = 3) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _boxed(name: str, values: list[float]) -> str:
    return _cell(values) if name not in ("berlin", ALL_LANDMARKS) else "n/a (no boxes)"


def pool_runs(name: str, chosen: BenchmarkSet, sets: dict[str, BenchmarkSet],
              foreign: dict[str, list], daily: list, config: TrainConfig) -> dict[str, Run]:
    """The set without a pool (judged per other set), then with each other set's photos as
    its pool (judged on the third set): keys "<set>" and "<set> + pool <other>"."""
    runs = {name: run_one(chosen, foreign, daily, config, int8_too=False)}
    positives = sum(1 for im in chosen.train if im.labels)
    for pooled in foreign:
        judged = {other: photos for other, photos in foreign.items() if other != pooled}
        landmarks = [im for im in sets[pooled].train if im.labels] + sets[pooled].test
        pool = landmarks[::max(1, len(landmarks) // max(1, positives // 4))][:positives // 4]
        runs[f"{name} + pool {pooled}"] = run_one(chosen, judged, daily, config, pool=pool,
                                                  int8_too=False)
    for key, run in runs.items():
        print(f"{key} seed {config.seed}: {run}", flush=True)
    return runs


def print_pool_table(results: dict[str, list[Run]], args: argparse.Namespace) -> None:
    """One row per set and pooled set: the third set's photos left clean without and with
    the pool, and what the pool costs in everyday photos, lost answers and top-1."""
    print(f"\nLandmarks in the everyday pool, {args.size}px, {args.epochs} epochs, "
          f"seeds {args.seeds} (mean ± spread over seeds)")
    print("| set | pool | judged on | other landmarks clean: no pool → pool | "
          "everyday clean | lost | top-1 gated |")
    print("|---|---|---|---|---|---|---|")
    for name in args.sets:
        for key in sorted(k for k in results if k.startswith(f"{name} + pool ")):
            pooled = key.rsplit(" ", 1)[1]
            judged = next(iter(results[key][0].clean_by_set))
            alone, with_pool = results[name], results[key]
            print(f"| {name} | {pooled} | {judged} | "
                  f"{_cell([r.clean_by_set[judged] for r in alone])} → "
                  f"{_cell([r.clean_by_set[judged] for r in with_pool])} | "
                  f"{_cell([r.clean_everyday for r in alone])} → "
                  f"{_cell([r.clean_everyday for r in with_pool])} | "
                  f"{_cell([r.lost for r in alone])} → {_cell([r.lost for r in with_pool])} | "
                  f"{_cell([r.top1 for r in alone])} → {_cell([r.top1 for r in with_pool])} |")


@dataclass
class LandmarkPoolRun:
    """One set, one seed: each measure without the landmark pool and with it."""

    clean: tuple[float, float]  # other sets' photos left clean (float model)
    int8_clean: tuple[float, float]
    everyday: tuple[float, float]  # everyday photos left clean (float model)
    int8_everyday: tuple[float, float]
    top1: tuple[float, float]  # held-out sight photos, gated (float model)
    lost: tuple[float, float]  # held-out photos answered right by the open model, refused
    int8_mb: tuple[float, float]
    landmark_rows: float  # landmark photos in the gate's negatives (mean of the folds)


def _sight(image: TrainingImage) -> str:
    return min(lab.name for lab in image.labels)


class _Judged(NamedTuple):
    clean: list[bool]  # per no-sight photo of other landmarks: left clean
    everyday: float
    top1: float
    lost: float


def _judged(model: bytes, test: list, right_open: list[bool], others: list, daily: list
            ) -> _Judged:
    """A model judged on its held-out sight photos, other landmarks and everyday photos."""
    detector = Detector.from_bytes(model, threads=1)
    top = _answered(detector, test)
    truth = [{lab.name for lab in im.labels} for im in test]
    lost = sum(r and a is None for r, a in zip(right_open, top, strict=True))
    clean_daily = [a is None for a in _answered(detector, daily)] or [True]
    return _Judged([a is None for a in _answered(detector, others)],
                   sum(clean_daily) / len(clean_daily),
                   sum(a in t for a, t in zip(top, truth, strict=True)) / len(test),
                   lost / max(1, sum(right_open)))


def landmark_pool_run(chosen: BenchmarkSet, sets: dict[str, BenchmarkSet],
                      foreign: dict[str, list], daily: list, config: TrainConfig
                      ) -> LandmarkPoolRun:
    """Train once; rebuild the gate (float and int8) without and with other landmarks'
    photos among its negatives. The other sets' sights are split into two folds; each
    fold's photos are judged with the other fold's training photos as the pool."""
    training_set, trained = _train(chosen, config)
    train, val, names = training_set.train, training_set.val, training_set.class_names
    test = [im for im in chosen.test if {lab.name for lab in im.labels} <= set(names)]
    opened = Detector.from_bytes(set_rejection_threshold(trained.onnx, DISABLED), threads=1)
    right_open = [a in {lab.name for lab in im.labels}
                  for a, im in zip(_answered(opened, test), test, strict=True)]
    int8 = quantize_model(trained.onnx, calibration_photos([s.pixels for s in train],
                                                           config.image_size))
    judged = [im for photos in foreign.values() for im in photos]
    sights = sorted({_sight(im) for im in judged})
    candidates = [im for other in foreign for im in sets[other].train if im.labels]
    decoded = {s.key: s for s in decode_landmarks(candidates, training_set.decode_size)[0]}
    alone = [regate(model, train, val) for model in (trained.onnx, int8)]
    base = [_judged(model, test, right_open, judged, daily) for model in alone]
    pooled: list[list[_Judged]] = [[], []]  # per precision (float, int8), per fold
    sizes, rows = [], []
    for fold in (set(sights[0::2]), set(sights[1::2])):
        landmarks = [decoded[im.key] for im in candidates
                     if im.key in decoded and _sight(im) not in fold]
        others = [im for im in judged if _sight(im) in fold]
        for k, model in enumerate((trained.onnx, int8)):
            rebuilt = regate(model, train, val, landmarks)
            pooled[k].append(_judged(rebuilt, test, right_open, others, daily))
            if k:
                sizes.append(len(rebuilt) / 1e6)
                rows.append(read_metadata(rebuilt)["rejection"]["landmark_negatives"])

    def clean(k: int) -> tuple[float, float]:  # every judged photo once, over the folds
        flags = [flag for result in pooled[k] for flag in result.clean]
        return sum(base[k].clean) / len(base[k].clean), sum(flags) / len(flags)

    def mean(k: int, measure: str) -> tuple[float, float]:
        return (getattr(base[k], measure),
                statistics.fmean(getattr(result, measure) for result in pooled[k]))

    return LandmarkPoolRun(
        clean=clean(0), int8_clean=clean(1), everyday=mean(0, "everyday"),
        int8_everyday=mean(1, "everyday"), top1=mean(0, "top1"), lost=mean(0, "lost"),
        int8_mb=(len(alone[1]) / 1e6, max(sizes)), landmark_rows=statistics.fmean(rows))


def print_landmark_pool_table(results: dict[str, list[LandmarkPoolRun]], names: list[str]
                              ) -> None:
    """One column per set: each measure without the landmark pool → with it."""
    def cell(name: str, attr: str, digits: int = 3) -> str:
        runs = results[name]
        return (f"{_cell([getattr(r, attr)[0] for r in runs], digits)} → "
                f"{_cell([getattr(r, attr)[1] for r in runs], digits)}")

    rows = [("other landmarks left clean", "clean"), ("int8: other landmarks left clean",
                                                      "int8_clean"),
            ("everyday photos left clean", "everyday"), ("int8: everyday photos left clean",
                                                         "int8_everyday"),
            ("top-1 gated", "top1"), ("sight photos that lose their answer to the gate", "lost")]
    print("| measure: no pool → landmark pool | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for title, attr in rows:
        print(f"| {title} | " + " | ".join(cell(n, attr) for n in names) + " |")
    print("| int8 model MB | " + " | ".join(cell(n, "int8_mb", 2) for n in names) + " |")
    print("| landmark photos in the gate | " + " | ".join(
        _cell([r.landmark_rows for r in results[n]], 0) for n in names) + " |")


def print_table(results: dict[str, list[Run]], counts: dict[str, str], names: list[str]
                ) -> None:
    """The markdown table of docs/detector.md: one column per set, mean ± spread of runs."""
    rows = [
        ("train / held-out sight / no-sight photos", lambda n: counts[n]),
        ("mAP@0.5 (held-out, gated)", lambda n: _boxed(n, [r.map50 for r in results[n]])),
        ("mAP@0.5:0.95 (held-out, gated)",
         lambda n: _boxed(n, [r.map50_95 for r in results[n]])),
        ("top-1 gated (ungated)", lambda n: f"{_cell([r.top1 for r in results[n]])} "
                                            f"({_cell([r.top1_ungated for r in results[n]])})"),
        ("no-sight photos left clean, gated (ungated)",
         lambda n: f"{_cell([r.clean for r in results[n]])} "
                   f"({_cell([r.clean_ungated for r in results[n]])})"),
        ("of which everyday photos left clean, gated",
         lambda n: _cell([r.clean_everyday for r in results[n]])),
        ("sight photos that lose their answer to the gate",
         lambda n: _cell([r.lost for r in results[n]])),
        ("training CPU s per core", lambda n: _cell([r.cpu_per_core for r in results[n]], 0)),
        ("load (1 min) before / after", lambda n: ", ".join(
            f"{r.load[0]:.1f}/{r.load[1]:.1f}" for r in results[n])),
        ("inference ms/photo, 1 thread", lambda n: _cell([r.ms_per_photo for r in results[n]], 1)),
        ("model MB", lambda n: _cell([r.model_mb for r in results[n]], 1)),
        (f"int8 model MB (served up to {MAX_INT8_BYTES / 1e6:.0f})",
         lambda n: _cell([r.int8_mb for r in results[n]], 2)),
        ("int8 mAP@0.5 / mAP@0.5:0.95", lambda n: (
            f"{_boxed(n, [r.int8_map50 for r in results[n]])} / "
            f"{_boxed(n, [r.int8_map50_95 for r in results[n]])}")),
        ("int8 no-sight photos left clean (everyday)",
         lambda n: f"{_cell([r.int8_clean for r in results[n]])} "
                   f"({_cell([r.int8_clean_everyday for r in results[n]])})"),
        ("int8 inference ms/photo, 1 thread",
         lambda n: _cell([r.int8_ms_per_photo for r in results[n]], 1)),
    ]
    print("| measure | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for title, cell in rows:
        print(f"| {title} | " + " | ".join(cell(n) for n in names) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", choices=(*SETS, *FOLDER_SETS, ALL_LANDMARKS),
                        default=list(SETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    trainer_defaults = TrainConfig()  # the benchmark judges what the service trains
    parser.add_argument("--epochs", type=int, default=trainer_defaults.epochs)
    parser.add_argument("--size", type=int, default=trainer_defaults.image_size)
    parser.add_argument("--threads", type=int, default=trainer_defaults.threads)
    parser.add_argument("--everyday", type=Path, help="folder of everyday photos (no sight)")
    parser.add_argument("--pool", action="store_true",
                        help="compare with another set's photos in the everyday pool")
    parser.add_argument("--landmark-pool", action="store_true",
                        help="compare with other landmarks' photos among the gate's negatives")
    args = parser.parse_args()
    if not all((DATA / name).is_dir() for name in SETS):
        print(f"the shared sets are not all under {DATA}: nothing to benchmark")
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    daily = everyday(args.everyday)
    results: dict[str, list[Run]] = {}
    pooled: dict[str, list[LandmarkPoolRun]] = {}
    counts: dict[str, str] = {}
    for seed in args.seeds:
        sets = {name: load_set(name, seed) for name in SETS}
        for name in args.sets:
            chosen = sets[name] if name in sets else load_set(name, seed)
            base = name.removesuffix("-folders")
            foreign = {other: sets[other].foreign for other in SETS
                       if other != base and name != ALL_LANDMARKS}
            config = TrainConfig(epochs=args.epochs, image_size=args.size, seed=seed,
                                 threads=args.threads)
            if args.pool:
                for key, run in pool_runs(name, chosen, sets, foreign, daily, config).items():
                    results.setdefault(key, []).append(run)
                continue
            if args.landmark_pool and foreign:
                pooled.setdefault(name, []).append(
                    landmark_pool_run(chosen, sets, foreign, daily, config))
                print(f"{name} seed {seed}: {pooled[name][-1]}", flush=True)
                continue
            run = run_one(chosen, foreign, daily, config)
            results.setdefault(name, []).append(run)
            counts[name] = (f"{len(chosen.train)} / {len(chosen.test)} / "
                            f"{sum(map(len, foreign.values())) + len(daily)} "
                            f"({len(daily)} everyday)")
            print(f"{name} seed {seed}: {run}", flush=True)
    if args.pool:
        print_pool_table(results, args)
        return 0
    if args.landmark_pool:
        print(f"\nLandmark pool in the gate, {args.size}px, {args.epochs} epochs, seeds "
              f"{args.seeds} (mean ± spread over seeds; two folds of the other sets' sights)")
        print_landmark_pool_table(pooled, list(pooled))
        return 0
    print(f"\nEfficientNet-Lite0 detector + open-set gate, {args.size}px, {args.epochs} epochs, "
          f"seeds {args.seeds} (mean ± spread = standard deviation over seeds)")
    print_table(results, counts, args.sets)
    return 0


if __name__ == "__main__":
    sys.exit(main())

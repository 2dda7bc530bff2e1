"""Detector benchmark on the real tower photos (a script that prints a table, not a test).

Held-out protocol: 20% of the tower photos (stratified by tower, fixed seed) are never seen
in training; the trainer gets the rest (it holds out its own validation split to calibrate
the score threshold). Background photos come from the Berlin set: Berlin Wall and Berlin
Cathedral photos are training negatives, Brandenburg Gate photos are held-out negatives
(split by sight because that set holds augmented copies of the same originals). The five
tower photos with empty label files are left out: a tower is visible, so they are neither
boxed examples nor negatives.

    PYTHONPATH=src python benchmarks/detector.py [--epochs 40] [--size 256] [--seed 0]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import statistics
import sys
import time
from pathlib import Path

from sightscan.datasets import read_yolo_dataset
from sightscan.detections import Label
from sightscan.inference import Detector
from sightscan.training import (
    TrainConfig,
    TrainingImage,
    assemble_training_set,
    evaluate,
    train_detector,
)

DATA = Path(os.environ.get("SIGHTSCAN_DATASETS", "/work/shared/datasets"))


def _image(path: Path, labels: list[Label]) -> TrainingImage:
    return TrainingImage(str(path), path.read_bytes, labels)


def _photos(folder: Path, count: int) -> list[Path]:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    step = max(1, len(paths) // count)
    return paths[::step][:count]


def load(seed: int, test_fraction: float, negatives: int
         ) -> tuple[list[TrainingImage], list[TrainingImage], int]:
    """(training photos, held-out photos, left-out count) from the shared datasets."""
    items = list(read_yolo_dataset(DATA / "towers"))
    boxed = [it for it in items if it.labels]
    by_tower: dict[str, list[TrainingImage]] = {}
    for it in boxed:
        tower = min(lab.name for lab in it.labels)
        by_tower.setdefault(tower, []).append(_image(it.path, it.labels))
    train, test = [], []
    for tower in sorted(by_tower):
        photos = sorted(by_tower[tower], key=lambda im: im.key)
        random.Random(f"{seed}:{tower}").shuffle(photos)
        n_test = round(len(photos) * test_fraction)
        test += photos[:n_test]
        train += photos[n_test:]
    berlin = DATA / "berlin"
    if berlin.is_dir():
        for folder in ("berlin_wall", "berliner_cathedral"):
            train += [_image(p, []) for p in _photos(berlin / folder, negatives // 2)]
        test += [_image(p, []) for p in _photos(berlin / "brandenburg_gate", negatives)]
    return train, test, len(items) - len(boxed)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--frozen", type=int, default=5)
    parser.add_argument("--ema", type=float, default=TrainConfig().ema_decay)
    parser.add_argument("--low-res", type=float, default=0.5,
                        help="fraction of the epochs trained at 3/4 of the size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--negatives", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, help="write the model and report here")
    args = parser.parse_args()
    if not (DATA / "towers" / "images").is_dir():
        print(f"no tower photos under {DATA / 'towers'}: nothing to benchmark")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    train_images, test_images, left_out = load(args.seed, 0.2, args.negatives)
    config = TrainConfig(epochs=args.epochs, image_size=args.size, batch_size=args.batch,
                         lr=args.lr, seed=args.seed, threads=args.threads,
                         frozen_blocks=args.frozen, low_res_fraction=args.low_res,
                         ema_decay=args.ema)
    load_before = os.getloadavg()[0]
    started, cpu_started = time.perf_counter(), time.process_time()
    training_set = assemble_training_set(train_images, city="towers", min_images_per_label=5,
                                         val_fraction=0.15, seed=args.seed,
                                         decode_size=int(args.size * 1.25))
    trained = train_detector(training_set, config, city="towers")
    train_s = time.perf_counter() - started
    train_cpu_s = time.process_time() - cpu_started
    load_after = os.getloadavg()[0]

    detector = Detector.from_bytes(trained.onnx, threads=1)
    metrics = evaluate(detector, test_images, training_set.class_names)
    photos = [im.load() for im in test_images[:40]]
    for data in photos[:3]:
        detector.detect(data)
    timings = []
    for data in photos:
        t0 = time.perf_counter()
        detector.detect(data)
        timings.append((time.perf_counter() - t0) * 1000)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        (args.save / "towers.onnx").write_bytes(trained.onnx)
        (args.save / "towers-report.png").write_bytes(trained.report_png)

    clean = metrics.negatives_clean_rate
    rows = [
        ("held-out tower photos / no-tower photos", f"{metrics.images - metrics.negatives} / "
                                                    f"{metrics.negatives}", ""),
        ("training photos (towers + negatives), left out", f"{len(train_images)}, {left_out}", ""),
        ("mAP@0.5 (held-out)", f"{metrics.map50:.3f}", ">= 0.93"),
        ("mAP@0.5:0.95 (held-out)", f"{metrics.map50_95:.3f}", ">= 0.80"),
        ("top-1 accuracy (held-out towers)", f"{metrics.top1_accuracy:.3f}", ""),
        ("no-tower photos without detection", "n/a" if clean is None else f"{clean:.3f}",
         ">= 0.95"),
        ("score threshold (calibrated on val)", f"{detector.score_threshold:.2f}", ""),
        (f"training wall time, {args.threads} threads (s)", f"{train_s:.0f}", "<= 300"),
        ("training CPU time / threads (s)",
         f"{train_cpu_s / args.threads:.0f}", ""),
        ("load average (1 min) before / after training", f"{load_before:.1f} / {load_after:.1f}",
         ""),
        ("inference ms/photo, 1 thread (median)", f"{statistics.median(timings):.1f}", "<= 25"),
        ("model size (MB)", f"{len(trained.onnx) / 1e6:.1f}", "< 20"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\nEfficientNet-Lite0 detector, {args.size}px, {args.epochs} epochs, seed {args.seed}")
    print(f"{'measure':<{width}}  {'value':>10}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>10}  {target}")
    print("per-class AP@0.5:0.95:", {k: round(v, 3) for k, v in metrics.per_class_ap50_95.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())

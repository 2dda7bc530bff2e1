"""float32 against int8 on the tower photos: size, held-out quality, ms/photo on one thread.

Takes a float model trained by `benchmarks/detector.py --save DIR` (same seed, so the same
held-out photos), quantises it with `sightscan.training.quantize` calibrated on the
training tower photos, and prints one table (a script, not a test).

    PYTHONPATH=src python benchmarks/detector.py --seed 0 --save /tmp/towers
    PYTHONPATH=src python benchmarks/quantize.py /tmp/towers/towers.onnx [--seed 0]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from sightscan.inference import Detector
from sightscan.training import evaluate, read_metadata
from sightscan.training.dataset import decode_pixels
from sightscan.training.quantize import calibration_photos, choose_served_model, quantize_model


def _tower_split(seed: int) -> tuple[list, list]:
    spec = importlib.util.spec_from_file_location("detector_bench", Path(__file__).with_name(
        "detector.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    train, test, _ = module.load(seed, 0.2, 40)
    return train, test


def _ms_per_photo(model: bytes, photos: list[bytes]) -> float:
    detector = Detector.from_bytes(model, threads=1)
    for data in photos[:3]:
        detector.detect(data)
    timings = []
    for data in photos:
        started = time.perf_counter()
        detector.detect(data)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="float .onnx from benchmarks/detector.py")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calibration", type=int, default=64)
    parser.add_argument("--save", type=Path, help="write the int8 model here")
    args = parser.parse_args()
    float_model = args.model.read_bytes()
    size = int(read_metadata(float_model)["input"]["shape"][1])
    class_names = list(read_metadata(float_model)["class_names"])
    train, test = _tower_split(args.seed)
    pixels = [decode_pixels(im.load(), size) for im in train]
    started = time.perf_counter()
    int8_model = quantize_model(float_model, calibration_photos(pixels, size, args.calibration))
    quantize_s = time.perf_counter() - started
    if args.save:
        args.save.write_bytes(int8_model)
    metrics = {name: evaluate(Detector.from_bytes(model), test, class_names)
               for name, model in (("float32", float_model), ("int8", int8_model))}
    photos = [im.load() for im in test[:40]]
    speed = {name: _ms_per_photo(model, photos)
             for name, model in (("float32", float_model), ("int8", int8_model))}
    served = choose_served_model(float_model, metrics["float32"], calibration=pixels,
                                 val_images=test, class_names=class_names)
    rows = [
        ("model size (MB)", *(f"{len(m) / 1e6:.2f}" for m in (float_model, int8_model))),
        ("mAP@0.5 (held-out)", *(f"{metrics[n].map50:.3f}" for n in ("float32", "int8"))),
        ("mAP@0.5:0.95 (held-out)", *(f"{metrics[n].map50_95:.3f}" for n in ("float32", "int8"))),
        ("top-1 accuracy", *(f"{metrics[n].top1_accuracy:.3f}" for n in ("float32", "int8"))),
        ("no-tower photos without detection",
         *(f"{metrics[n].negatives_clean_rate or 0:.3f}" for n in ("float32", "int8"))),
        ("inference ms/photo, 1 thread (median)", *(f"{speed[n]:.1f}" for n in speed)),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\nfloat32 vs int8 (QDQ, per-channel), seed {args.seed}, {len(test)} held-out photos, "
          f"quantised in {quantize_s:.0f} s, load {os.getloadavg()[0]:.1f}")
    print(f"{'measure':<{width}}  {'float32':>8}  {'int8':>8}")
    for name, a, b in rows:
        print(f"{name:<{width}}  {a:>8}  {b:>8}")
    print(f"served: {served.precision} ({served.reason})")
    print("max |score difference| on held-out photos:", _max_score_diff(
        float_model, int8_model, [decode_pixels(p, size) for p in photos[:8]]))
    return 0


def _max_score_diff(a: bytes, b: bytes, photos: list[np.ndarray]) -> str:
    batch = np.stack(photos)
    _, scores_a = Detector.from_bytes(a).raw_outputs(batch)
    _, scores_b = Detector.from_bytes(b).raw_outputs(batch)
    return f"{float(np.abs(scores_a - scores_b).max()):.3f}"


if __name__ == "__main__":
    sys.exit(main())

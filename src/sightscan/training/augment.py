"""Photo augmentation for real-world sight photos: zoom, partial views, light, night, noise.

Geometric changes (random crop keeping most of every sight, zoom-out onto a plain canvas,
mirror) run per photo on the decoded arrays; photometric ones (brightness, contrast,
saturation, night-like gamma, grey, blur, sensor noise) run on the whole batch in torch.
Everything draws from one numpy Generator, so a seed reproduces a run exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.nn import functional as F

from sightscan.training.dataset import WHOLE_IMAGE, Sample

MIN_VISIBLE = 0.6  # a crop keeps at least this fraction of every boxed sight


@dataclass(slots=True)
class Batch:
    """Pixels (float NCHW, 0..255) and per-photo targets in relative xyxy."""

    pixels: torch.Tensor
    boxes: list[torch.Tensor]  # [n, 4]
    labels: list[torch.Tensor]  # [n] class indices
    image_classes: list[list[int]]


def _visible_fraction(box: tuple[float, float, float, float],
                      crop: tuple[float, float, float, float]) -> float:
    x1, y1, x2, y2 = box
    cx1, cy1, cx2, cy2 = crop
    iw = max(0.0, min(x2, cx2) - max(x1, cx1))
    ih = max(0.0, min(y2, cy2) - max(y1, cy1))
    area = (x2 - x1) * (y2 - y1)
    return iw * ih / area if area > 0 else 0.0


def _random_crop(rng: np.random.Generator, boxes: list[tuple[float, float, float, float]],
                 min_scale: float) -> tuple[float, float, float, float]:
    for _ in range(10):
        scale = rng.uniform(min_scale, 1.0)
        aspect = float(np.exp(rng.uniform(np.log(0.75), np.log(1.333))))
        cw, ch = min(1.0, scale * aspect**0.5), min(1.0, scale / aspect**0.5)
        x0, y0 = rng.uniform(0, 1 - cw), rng.uniform(0, 1 - ch)
        crop = (x0, y0, x0 + cw, y0 + ch)
        if all(_visible_fraction(b, crop) >= MIN_VISIBLE for b in boxes):
            return crop
    return (0.0, 0.0, 1.0, 1.0)


def _geometric(sample: Sample, size: int, rng: np.random.Generator, strong: bool
               ) -> tuple[torch.Tensor, Any, Any]:
    image = torch.tensor(sample.pixels).permute(2, 0, 1).float()  # [3, D, D]
    boxes: Any = np.array([b.as_list() for _, b in sample.boxes], dtype=np.float32).reshape(-1, 4)
    labels = np.array([c for c, _ in sample.boxes], dtype=np.int64)
    real = [(b.x1, b.y1, b.x2, b.y2) for _, b in sample.boxes if b != WHOLE_IMAGE]
    d = image.shape[-1]
    if strong and rng.random() < 0.7:
        x0, y0, x1, y1 = _random_crop(rng, real, 0.5)
        px0, py0 = int(x0 * d), int(y0 * d)
        px1, py1 = max(px0 + 8, int(round(x1 * d))), max(py0 + 8, int(round(y1 * d)))
        image = image[:, py0:py1, px0:px1]
        x0, y0, x1, y1 = px0 / d, py0 / d, px1 / d, py1 / d
        boxes = (boxes - [x0, y0, x0, y0]) / [x1 - x0, y1 - y0, x1 - x0, y1 - y0]
    image = F.interpolate(image[None], size=(size, size), mode="bilinear",
                          antialias=True, align_corners=False)[0]
    if strong and rng.random() < 0.2:  # zoom out: the sight small in a wide view
        f = rng.uniform(0.55, 0.9)
        inner = max(8, int(size * f))
        ox, oy = int(rng.integers(0, size - inner + 1)), int(rng.integers(0, size - inner + 1))
        canvas = image.mean(dim=(1, 2), keepdim=True).expand(3, size, size).clone()
        canvas[:, oy:oy + inner, ox:ox + inner] = F.interpolate(
            image[None], size=(inner, inner), mode="bilinear", antialias=True,
            align_corners=False)[0]
        image = canvas
        s = inner / size
        boxes = boxes * s + [ox / size, oy / size, ox / size, oy / size]
    if rng.random() < 0.5:
        image = image.flip(-1)
        boxes = np.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], axis=1)
    boxes = np.clip(boxes, 0.0, 1.0).reshape(-1, 4)
    keep = ((boxes[:, 2] - boxes[:, 0]) > 0.01) & ((boxes[:, 3] - boxes[:, 1]) > 0.01)
    return image, boxes[keep], labels[keep]


class PhotometricDraws(NamedTuple):
    """One batch's photometric changes, per photo ([B, 1, 1, 1] factors, 1 = unchanged)."""

    brightness: torch.Tensor
    contrast: torch.Tensor
    saturation: torch.Tensor
    gamma: torch.Tensor  # dusk and night
    to_grey: np.ndarray  # [B] bool
    blur: np.ndarray  # [B] bool
    sigma: np.ndarray  # [B] sensor noise strength, 0 = none
    noise: np.ndarray  # like the batch, standard normal


def photometric_draws(shape: torch.Size, rng: np.random.Generator) -> PhotometricDraws:
    """Every random draw of `_photometric`, in a fixed order (a seed gives the same batch)."""
    b = shape[0]

    def per_image(low: float, high: float, p: float) -> torch.Tensor:
        values = np.where(rng.random(b) < p, rng.uniform(low, high, b), 1.0)
        return torch.tensor(values, dtype=torch.float32).view(b, 1, 1, 1)

    brightness, contrast = per_image(0.6, 1.4, 0.8), per_image(0.6, 1.4, 0.8)
    saturation, gamma = per_image(0.3, 1.6, 0.7), per_image(1.4, 2.6, 0.15)
    to_grey, blur = rng.random(b) < 0.05, rng.random(b) < 0.1
    sigma = np.where(rng.random(b) < 0.3, rng.uniform(0.0, 0.03, b), 0.0)
    return PhotometricDraws(brightness, contrast, saturation, gamma, to_grey, blur, sigma,
                            rng.standard_normal(shape))


def _photometric(pixels: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    d = photometric_draws(pixels.shape, rng)
    x = pixels / 255.0
    x.mul_(d.brightness)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = x.sub_(mean).mul_(d.contrast).add_(mean)
    grey = x.mean(dim=1, keepdim=True)
    x = x.sub_(grey).mul_(d.saturation).add_(grey).clamp_(0, 1)
    # the rarer changes only on the photos drawn for them (most of the CPU otherwise)
    dusk = np.flatnonzero(d.gamma.view(-1).numpy() != 1.0)
    x[dusk] = x[dusk] ** d.gamma[dusk]
    grey_photos = np.flatnonzero(d.to_grey)
    x[grey_photos] = x[grey_photos].mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)
    blurred = np.flatnonzero(d.blur)
    x[blurred] = F.avg_pool2d(x[blurred], 3, stride=1, padding=1, count_include_pad=False)
    noisy = np.flatnonzero(d.sigma)
    x[noisy] += (torch.from_numpy(d.noise[noisy].astype(np.float32))
                 * torch.tensor(d.sigma[noisy], dtype=torch.float32).view(-1, 1, 1, 1))
    return (x.clamp_(0, 1) * 255.0).contiguous()


def make_batch(samples: list[Sample], size: int, rng: np.random.Generator,
               augment: bool = True) -> Batch:
    """Decoded samples -> an (optionally augmented) training batch at size x size."""
    images, boxes, labels = [], [], []
    for sample in samples:
        image, b, lab = _geometric(sample, size, rng, augment) if augment else _plain(sample, size)
        images.append(image)
        boxes.append(torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32)))
        labels.append(torch.from_numpy(np.ascontiguousarray(lab, dtype=np.int64)))
    pixels = torch.stack(images)
    if augment:
        pixels = _photometric(pixels, rng)
    return Batch(pixels, boxes, labels, [list(s.image_classes) for s in samples])


def _plain(sample: Sample, size: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    image = torch.tensor(sample.pixels).permute(2, 0, 1).float()
    if image.shape[-1] != size:
        image = F.interpolate(image[None], size=(size, size), mode="bilinear",
                              antialias=True, align_corners=False)[0]
    boxes = np.array([b.as_list() for _, b in sample.boxes], dtype=np.float32).reshape(-1, 4)
    return image, boxes, np.array([c for c, _ in sample.boxes], dtype=np.int64)

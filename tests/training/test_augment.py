import numpy as np
import pytest
import torch
from torch.nn import functional as F

from sightscan.training.augment import _photometric, photometric_draws


def _whole_batch_photometric(pixels: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """The plain formula: every change computed on every photo, then chosen per photo."""
    d = photometric_draws(pixels.shape, rng)
    b = pixels.shape[0]
    x = pixels / 255.0 * d.brightness
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * d.contrast + mean
    grey = x.mean(dim=1, keepdim=True)
    x = ((x - grey) * d.saturation + grey).clamp(0, 1) ** d.gamma
    to_grey = torch.from_numpy(d.to_grey).view(b, 1, 1, 1)
    x = torch.where(to_grey, x.mean(dim=1, keepdim=True).expand_as(x), x)
    blur = torch.from_numpy(d.blur).view(b, 1, 1, 1)
    x = torch.where(blur, F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False), x)
    noise = torch.from_numpy(d.noise.astype(np.float32))
    x = x + noise * torch.tensor(d.sigma, dtype=torch.float32).view(b, 1, 1, 1)
    return x.clamp(0, 1) * 255.0


@pytest.mark.parametrize("seed", range(40))
def test_photometric_changes_only_the_photos_drawn_for_each_and_match_the_plain_formula(
        seed: int) -> None:
    pixels = torch.rand(12, 3, 20, 16, generator=torch.Generator().manual_seed(seed)) * 255
    got = _photometric(pixels.clone(), np.random.default_rng(seed))
    assert torch.equal(got, _whole_batch_photometric(pixels, np.random.default_rng(seed)))
    assert got.is_contiguous() and 0.0 <= float(got.min()) and float(got.max()) <= 255.0


def test_photometric_leaves_its_input_alone_and_differs_between_seeds() -> None:
    pixels = torch.full((8, 3, 16, 16), 128.0)
    first = _photometric(pixels, np.random.default_rng(1))
    assert torch.equal(pixels, torch.full((8, 3, 16, 16), 128.0))
    assert not torch.equal(first, _photometric(pixels, np.random.default_rng(2)))
    assert torch.equal(first, _photometric(pixels, np.random.default_rng(1)))

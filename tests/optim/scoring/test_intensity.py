from types import SimpleNamespace

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from dl_utils.errors import UserInputError
from optim.scoring.intensity import IntensityDensityScorer, histogram_density


def _healthy_volumes(count: int = 2) -> list[SimpleNamespace]:
    """Brain intensities ~ N(0.5, 0.05), background 0 (outside the mask, so never counted)."""
    g = torch.Generator().manual_seed(0)
    volumes = []
    for _ in range(count):
        mask = torch.zeros(10, 10, 4, dtype=torch.bool)
        mask[2:8, 2:8] = True
        image = torch.where(mask, 0.5 + 0.05 * torch.randn(10, 10, 4, generator=g), torch.zeros(()))
        volumes.append(SimpleNamespace(image=image.clamp(0, 1), mask=mask))
    return volumes


def test_unfitted_scorer_raises() -> None:
    x = torch.rand(4, 4, 2)
    with pytest.raises(UserInputError, match="not fitted"):
        IntensityDensityScorer()(x, None, x > 0.5)


def test_density_matches_numpy_histogram_without_smoothing() -> None:
    values = torch.rand(1000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected, _ = np.histogram(values.numpy(), bins=20, range=(0.0, 1.0), density=True)
    density = histogram_density([values], 20, (0.0, 1.0), smoothing_sigma=0.0)
    np.testing.assert_allclose(density.numpy(), expected, rtol=1e-12)


def test_smoothing_matches_scipy_gaussian_filter1d_with_zero_padding() -> None:
    g = torch.Generator().manual_seed(3)
    values = 0.4 + 0.1 * torch.randn(500, generator=g, dtype=torch.float64)
    counts, _ = np.histogram(values.numpy(), bins=25, range=(0.0, 1.0))
    smoothed = ndi.gaussian_filter1d(counts.astype(float), 1.5, mode="constant", truncate=4.0)
    expected = smoothed / (smoothed.sum() / 25)
    density = histogram_density([values], 25, (0.0, 1.0), smoothing_sigma=1.5)
    np.testing.assert_allclose(density.numpy(), expected, rtol=1e-10)


def test_mode_scores_zero_and_both_tails_score_high() -> None:
    scorer = IntensityDensityScorer(bins=50, smoothing_sigma=1.0)
    scorer.fit(_healthy_volumes())
    x = torch.tensor([0.5, 0.05, 0.95, 1.5, 0.3]).reshape(5, 1, 1)
    mask = torch.tensor([True, True, True, True, False]).reshape(5, 1, 1)
    amap = scorer(x, torch.empty(0, 5, 1, 1), mask).flatten()
    assert amap[0] < 0.2  # 0.5 sits in (or next to) the modal bin, which scores exactly 0
    assert amap[1] > 5 and amap[2] > 5  # hypo- and hyper-intense
    top = np.log(scorer.state_dict()["density"].max().item() + scorer.eps) - np.log(scorer.eps)
    np.testing.assert_allclose(amap[3].item(), top, rtol=1e-5)  # outside value_range: density 0
    assert amap[4] == 0
    assert amap.min() >= 0


def test_modal_bin_scores_exactly_zero() -> None:
    scorer = IntensityDensityScorer(bins=10, smoothing_sigma=0.0)
    scorer.fit(_healthy_volumes())
    density = scorer.state_dict()["density"]
    centre = (density.argmax().item() + 0.5) / 10
    x = torch.full((1, 1, 1), centre, dtype=torch.float64)
    assert scorer(x, None, torch.ones(1, 1, 1, dtype=torch.bool)).item() == 0


def test_state_dict_round_trip() -> None:
    fitted = IntensityDensityScorer(bins=30)
    fitted.fit(_healthy_volumes())
    restored = IntensityDensityScorer(bins=30)
    restored.load_state_dict(fitted.state_dict())
    x = torch.rand(6, 5, 3, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(restored(x, None, x > 0.2), fitted(x, None, x > 0.2))
    with pytest.raises(UserInputError):
        IntensityDensityScorer(bins=31).load_state_dict(fitted.state_dict())

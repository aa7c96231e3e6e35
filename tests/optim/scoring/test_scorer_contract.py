"""The Scorer protocol, checked for every scorer."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from optim.scoring import (
    IntensityDensityScorer,
    L1Scorer,
    MahalanobisScorer,
    SSIMEnsembleScorer,
    SSIMScorer,
)


def _fitted_intensity() -> IntensityDensityScorer:
    g = torch.Generator().manual_seed(5)
    scorer = IntensityDensityScorer()
    healthy = SimpleNamespace(
        image=torch.rand(8, 8, 3, generator=g), mask=torch.ones(8, 8, 3, dtype=torch.bool)
    )
    scorer.fit([healthy])
    return scorer


SCORERS = {
    "l1": L1Scorer,
    "ssim": SSIMScorer,
    "ssim_ensemble_3d": SSIMEnsembleScorer,
    "ssim_ensemble_2d": lambda: SSIMEnsembleScorer(spatial_dims=2),
    "mahalanobis": MahalanobisScorer,
    "mahalanobis_diagonal": lambda: MahalanobisScorer(diagonal=True),
    "intensity": _fitted_intensity,
}


@pytest.mark.parametrize("name", SCORERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scorer_contract(name: str, dtype: torch.dtype, sample) -> None:
    x, recs, mask = (t.to(dtype) if t.is_floating_point() else t for t in sample)
    scorer = SCORERS[name]()
    assert isinstance(scorer.num_reconstructions, int)
    n = max(scorer.num_reconstructions, 1)  # 0 = needs no model; pass one anyway
    noise = 0.02 * torch.rand((n, *x.shape), generator=torch.Generator().manual_seed(6))
    recs = recs.repeat(3, 1, 1, 1)[:n] + noise.to(dtype)
    before = (x.clone(), recs.clone(), mask.clone())
    amap = scorer(x, recs, mask)
    assert amap.shape == x.shape and amap.dtype == dtype and amap.device == x.device
    assert torch.isfinite(amap).all()
    assert amap[~mask].abs().max() == 0
    assert amap[mask].abs().max() > 0
    for original, after in zip(before, (x, recs, mask)):
        assert torch.equal(original, after)
    with pytest.raises(dataclasses.FrozenInstanceError):
        scorer.num_reconstructions = 3

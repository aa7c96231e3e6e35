"""SSIM ensemble map = the originals' (torchmetrics SSIM with reflect padding and the softmin
ensemble of S's utils_eval, recorded, see tests/fixtures/parity/SOURCES.md)."""

from pathlib import Path

import numpy as np
import torch

from optim.scoring.ssim import ENSEMBLE_SIGMAS, SSIMEnsembleScorer, ssim_maps

FIXTURE = Path(__file__).parents[2] / "fixtures" / "parity" / "ssim_ensemble_map.npz"


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """The recording's volumes, regenerated from its seed."""
    g = torch.Generator().manual_seed(5)
    x = torch.rand(24, 20, 14, generator=g, dtype=torch.float64)
    rec = (x + 0.15 * torch.randn(24, 20, 14, generator=g, dtype=torch.float64)).clamp(0, 1)
    return x, rec


def test_reflect_padding_reproduces_the_originals_ensemble_map():
    ref = np.load(FIXTURE)
    x, rec = _inputs()
    scorer = SSIMEnsembleScorer(padding="reflect")
    amap = scorer(x, rec[None], torch.ones_like(x, dtype=torch.bool))
    np.testing.assert_allclose(amap.numpy(), ref["amap"], rtol=0, atol=1e-10)
    maps = ssim_maps(rec, x, ENSEMBLE_SIGMAS, padding="reflect")
    np.testing.assert_allclose(maps[0].numpy(), ref["sigma03"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(maps[-1].numpy(), ref["sigma17"], rtol=0, atol=1e-10)


def test_symmetric_padding_differs_only_at_the_borders():
    ref = np.load(FIXTURE)["amap"]
    x, rec = _inputs()
    amap = SSIMEnsembleScorer(padding="symmetric")(x, rec[None], torch.ones_like(x, dtype=torch.bool)).numpy()
    r = 6  # largest window radius, int(3.5 * 1.7 + 0.5)
    np.testing.assert_allclose(amap[r:-r, r:-r, r:-r], ref[r:-r, r:-r, r:-r], rtol=0, atol=1e-10)
    assert np.abs(amap - ref).max() > 1e-3  # the edge slices move

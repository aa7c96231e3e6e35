"""Anomaly scorers: (x (H, W, D), recs (N, H, W, D), mask (H, W, D)) -> map (H, W, D)."""

from optim.scoring.intensity import IntensityDensityScorer
from optim.scoring.l1 import L1Scorer
from optim.scoring.mahalanobis import MahalanobisScorer, mahalanobis_pixel_scores
from optim.scoring.ssim import SSIMEnsembleScorer, SSIMScorer, ssim_maps

__all__ = [
    "IntensityDensityScorer",
    "L1Scorer",
    "MahalanobisScorer",
    "SSIMEnsembleScorer",
    "SSIMScorer",
    "mahalanobis_pixel_scores",
    "ssim_maps",
]

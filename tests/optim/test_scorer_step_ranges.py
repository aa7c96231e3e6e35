"""The scorers' and post-processing steps' ranges (their signatures, `dl_utils.param_ranges`) hold for a
direct Python caller too (`check_fields`), the values that overflowed or gave NaN maps after training among them;
the config check refuses the same values before the run folder exists (tests/reliability/cases.py)."""
from __future__ import annotations

import math

import pytest

from optim.postprocessing import BrainMaskErosion, MedianFilter, RemoveSmallComponents
from optim.scoring import IntensityDensityScorer, MahalanobisScorer, SSIMEnsembleScorer, SSIMScorer
from optim.scoring.ra_lpips import RAPerceptualScorer

INF = math.inf


@pytest.mark.parametrize("make, words", [
    (lambda: IntensityDensityScorer(value_range=(0.0, INF)), "value_range: [1]: expected a number >= -1e+06 and <= 1e+06"),
    (lambda: IntensityDensityScorer(value_range=(-INF, 1.0)), "value_range: [0]: expected a number >= -1e+06"),
    (lambda: IntensityDensityScorer(smoothing_sigma=1e300), "smoothing_sigma: expected a number >= 0 and <= 2048"),
    (lambda: IntensityDensityScorer(bins=10**12), "bins: expected an integer >= 1 and <= 65536"),
    (lambda: IntensityDensityScorer(num_reconstructions=10**6), "num_reconstructions: expected an integer >= 0 and <= 1000"),
    (lambda: RAPerceptualScorer(backbone="random", random_backbone_seed=10**30),
     "random_backbone_seed: expected an integer >= 0 and <= 9223372036854775807"),
    (lambda: RAPerceptualScorer(backbone="random", sigma=1e300), "sigma: expected a number > 0 and <= 2048"),
    (lambda: RAPerceptualScorer(backbone="random", truncate=1e300), "truncate: expected a number > 0 and <= 40"),
    (lambda: RAPerceptualScorer(backbone="random", clahe_clip_limit=1e300), "clahe_clip_limit: expected a number >= 0 and <= 1"),
    (lambda: SSIMScorer(sigma=INF), "sigma: expected a number > 0 and <= 2048, got inf"),
    (lambda: SSIMScorer(k1=2.0), "k1: expected a number > 0 and <= 1"),
    (lambda: SSIMScorer(data_range=1e300), "data_range: expected a number > 0 and <= 1e+06, got 1e+300"),
    (lambda: SSIMEnsembleScorer(sigmas=(1.0,) * 65), "sigmas: expected list of numbers > 0 and <= 2048 (at least 1, at most 64)"),
    (lambda: SSIMEnsembleScorer(sigmas=(0.5, 1e300)), "sigmas: [1]: expected a number > 0 and <= 2048"),
    (lambda: MahalanobisScorer(smoothing_sigma=1e300), "smoothing_sigma: expected a number >= 0 and <= 2048"),
    (lambda: MahalanobisScorer(ssim_sigma=1e300), "ssim_sigma: expected a number > 0 and <= 2048"),
    (lambda: RemoveSmallComponents(min_size=10**30), "min_size: expected an integer >= 0 and <= 8589934592"),
    (lambda: MedianFilter(kernel_size=65), "kernel_size: expected an integer >= 1 and <= 64"),
    (lambda: BrainMaskErosion(iterations=10**6), "iterations: expected an integer >= 0 and <= 2048"),
])
def test_a_direct_caller_meets_the_signature_ranges(make, words):
    with pytest.raises(ValueError) as info:
        make()
    assert words in str(info.value)


def test_the_largest_values_in_range_are_accepted():
    """The bounds are the limits themselves, not one below (a paper's values lie far inside)."""
    IntensityDensityScorer(bins=65_536, value_range=(-1e6, 1e6), smoothing_sigma=2048.0)
    RAPerceptualScorer(backbone="random", random_backbone_seed=2**63 - 1, sigma=2048.0, truncate=40.0, clahe_clip_limit=1.0)
    SSIMEnsembleScorer(sigmas=(2048.0,) * 64, k1=1.0, k2=1.0, data_range=1e6)
    RemoveSmallComponents(min_size=2048**3)

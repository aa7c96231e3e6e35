import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from dl_utils.errors import UserInputError
from optim.scoring.mahalanobis import (
    MahalanobisScorer,
    mahalanobis_pixel_scores,
    min_max_in_mask,
)
from optim.scoring.mahalanobis_reference import dense_mahalanobis_pixel_scores
from optim.scoring.ssim import ssim_maps


def _inputs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (9, 8, 4) float64, n correlated reconstructions, a different random brain per slice."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(9, 8, 4, generator=g, dtype=torch.float64)
    shared = torch.randn(n, 1, 1, 4, generator=g, dtype=torch.float64)
    recs = x + 0.05 * torch.randn(n, 9, 8, 4, generator=g, dtype=torch.float64) + 0.05 * shared
    mask = torch.rand(9, 8, 4, generator=g) < torch.tensor([0.9, 0.5, 0.2, 0.0])
    return x, recs, mask  # the last slice has no brain


@pytest.mark.parametrize("n", [3, 5, 10])
@pytest.mark.parametrize("regularization", [0.01, 1e-4])
def test_woodbury_matches_dense_inverse(n: int, regularization: float) -> None:
    x, recs, mask = _inputs(n, seed=n)
    fast = mahalanobis_pixel_scores(x, recs, mask, regularization)
    dense = dense_mahalanobis_pixel_scores(x, recs, mask, regularization)
    torch.testing.assert_close(fast, dense, atol=1e-5, rtol=0)
    assert fast[~mask].abs().max() == 0


def test_masked_pixels_do_not_influence_brain_pixels() -> None:
    x, recs, mask = _inputs(6, seed=7)
    changed = recs.clone()
    changed[:, ~mask] = torch.rand(int((~mask).sum()), dtype=torch.float64)
    torch.testing.assert_close(
        mahalanobis_pixel_scores(x, changed, mask), mahalanobis_pixel_scores(x, recs, mask)
    )


def test_diagonal_variant_by_hand() -> None:
    # one pixel, recs 0.1, 0.3, 0.5: mean 0.3, variance (0.04 + 0 + 0.04) / 2 = 0.04
    x = torch.full((1, 1, 1), 0.6, dtype=torch.float64)
    recs = torch.tensor([0.1, 0.3, 0.5], dtype=torch.float64).reshape(3, 1, 1, 1)
    mask = torch.ones(1, 1, 1, dtype=torch.bool)
    score = mahalanobis_pixel_scores(x, recs, mask, regularization=0.01, diagonal=True)
    np.testing.assert_allclose(score.item(), 0.3 / np.sqrt(0.05), rtol=1e-12)
    # with one pixel the full covariance is the same 1 x 1 matrix
    full = mahalanobis_pixel_scores(x, recs, mask, regularization=0.01)
    np.testing.assert_allclose(full.item(), 0.3 / np.sqrt(0.05), rtol=1e-12)


def test_float32_close_to_float64() -> None:
    x, recs, mask = _inputs(10, seed=3)
    ref = mahalanobis_pixel_scores(x, recs, mask)
    out = mahalanobis_pixel_scores(x.float(), recs.float(), mask)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, atol=1e-3, rtol=1e-3)


def test_min_max_in_mask() -> None:
    v = torch.tensor([5.0, 1.0, 3.0, 9.0])
    m = torch.tensor([True, True, True, False])
    torch.testing.assert_close(min_max_in_mask(v, m), torch.tensor([1.0, 0.0, 0.5, 0.0]))
    torch.testing.assert_close(min_max_in_mask(v, torch.zeros(4, dtype=torch.bool)), torch.zeros(4))


def test_scorer_combines_normalised_smoothed_mhd_with_ssim() -> None:
    g = torch.Generator().manual_seed(11)
    x = torch.rand(12, 11, 10, generator=g, dtype=torch.float64)
    recs = x + 0.05 * torch.randn(5, 12, 11, 10, generator=g, dtype=torch.float64)
    mask = torch.zeros(12, 11, 10, dtype=torch.bool)
    mask[2:10, 2:9, 1:9] = True
    mhd = mahalanobis_pixel_scores(x, recs, mask).numpy()
    inside = mhd[mask.numpy()]
    normalised = np.where(mask.numpy(), (mhd - inside.min()) / np.ptp(inside), 0.0)
    smoothed = ndi.gaussian_filter(normalised, sigma=1.0)  # the original's smoothing
    dissimilarity = 1 - ssim_maps(recs.mean(0), x, (1.0,), spatial_dims=3)[0].numpy()
    expected = smoothed * dissimilarity * mask.numpy()
    amap = MahalanobisScorer(num_reconstructions=5)(x, recs, mask)
    np.testing.assert_allclose(amap.numpy(), expected, atol=1e-12)
    plain = MahalanobisScorer(combine_with_ssim=False, smoothing_sigma=0.0)(x, recs, mask)
    np.testing.assert_allclose(plain.numpy(), normalised * mask.numpy(), atol=1e-12)


def test_needs_two_reconstructions() -> None:
    with pytest.raises(UserInputError):
        MahalanobisScorer(num_reconstructions=1)
    x = torch.rand(4, 4, 2)
    with pytest.raises(ValueError):
        mahalanobis_pixel_scores(x, x[None], x > 0.5)

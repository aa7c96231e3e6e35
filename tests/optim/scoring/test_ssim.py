import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from dl_utils.errors import UserInputError
from optim.scoring.ssim import (
    ENSEMBLE_SIGMAS,
    SSIMEnsembleScorer,
    SSIMScorer,
    softmin_ensemble,
    ssim_maps,
)


def _pair(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A smooth-ish image and a noisy, partly altered copy (float64 in [0, 1])."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.linspace(0, 3, n) for n in shape], indexing="ij")
    a = 0.5 + 0.3 * np.sin(sum(grids)) + 0.1 * rng.random(shape)
    b = np.clip(a + 0.08 * rng.standard_normal(shape), 0, 1)
    b[: shape[0] // 3] *= 0.6
    return a, b


def _skimage_ssim(a: np.ndarray, b: np.ndarray, sigma: float, data_range: float) -> np.ndarray:
    return structural_similarity(
        a, b, full=True, gaussian_weights=True, sigma=sigma,
        use_sample_covariance=False, data_range=data_range,
    )[1]


def test_3d_matches_skimage_everywhere_for_every_sigma() -> None:
    a, b = _pair((16, 15, 14))
    maps = ssim_maps(torch.from_numpy(a), torch.from_numpy(b), ENSEMBLE_SIGMAS, 3, data_range=1.0)
    assert maps.shape == (8, 16, 15, 14)
    for k, sigma in enumerate(ENSEMBLE_SIGMAS):
        np.testing.assert_allclose(maps[k].numpy(), _skimage_ssim(a, b, sigma, 1.0), atol=1e-10)


def test_2d_runs_per_axial_slice_and_matches_skimage() -> None:
    a, b = _pair((20, 17, 3), seed=1)
    maps = ssim_maps(torch.from_numpy(a), torch.from_numpy(b), ENSEMBLE_SIGMAS, 2, data_range=0.9)
    for k, sigma in enumerate(ENSEMBLE_SIGMAS):
        for j in range(a.shape[-1]):
            expected = _skimage_ssim(a[..., j], b[..., j], sigma, 0.9)
            np.testing.assert_allclose(maps[k, ..., j].numpy(), expected, atol=1e-10)


def test_2d_single_image() -> None:
    a, b = _pair((15, 14), seed=2)
    maps = ssim_maps(torch.from_numpy(a), torch.from_numpy(b), (1.5,), 2, data_range=1.0)
    np.testing.assert_allclose(maps[0].numpy(), _skimage_ssim(a, b, 1.5, 1.0), atol=1e-10)


def test_default_data_range_is_larger_range_of_both() -> None:
    a, b = _pair((16, 15, 14), seed=3)
    b = 0.5 * b
    expected_range = max(np.ptp(a), np.ptp(b))
    maps = ssim_maps(torch.from_numpy(a), torch.from_numpy(b), (0.7,), 3)
    expected = _skimage_ssim(a, b, 0.7, expected_range)
    np.testing.assert_allclose(maps[0].numpy(), expected, atol=1e-10)


def test_float32_follows_input_and_stays_close() -> None:
    a, b = _pair((16, 15, 14), seed=4)
    ref = ssim_maps(torch.from_numpy(a), torch.from_numpy(b), (0.5, 1.3), 3)
    out = ssim_maps(torch.from_numpy(a).float(), torch.from_numpy(b).float(), (0.5, 1.3), 3)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=2e-4)


def test_softmin_ensemble_by_hand() -> None:
    maps = torch.tensor([[0.2], [0.8]], dtype=torch.float64)
    # w = exp(-S) / sum exp(-S): w0 = 1 / (1 + e^-0.6)
    w0 = 1 / (1 + np.exp(-0.6))
    expected = w0 * 0.2 + (1 - w0) * 0.8
    np.testing.assert_allclose(softmin_ensemble(maps).item(), expected, rtol=1e-12)


def test_ensemble_scorer_combines_maps_of_mean_reconstruction(sample) -> None:
    x, recs, mask = sample
    scorer = SSIMEnsembleScorer(sigmas=[0.3, 0.7], spatial_dims=2)
    assert scorer.sigmas == (0.3, 0.7)
    maps = ssim_maps(recs.mean(0), x, (0.3, 0.7), 2)
    weights = torch.exp(-maps) / torch.exp(-maps).sum(0)
    expected = (1 - (weights * maps).sum(0)) * mask
    torch.testing.assert_close(scorer(x, recs, mask), expected)


def test_identical_input_scores_zero(sample) -> None:
    x, _, mask = sample
    for scorer in (SSIMEnsembleScorer(spatial_dims=2), SSIMScorer(spatial_dims=2)):
        torch.testing.assert_close(scorer(x, x[None], mask), torch.zeros_like(x))


def test_single_sigma_scorer(sample) -> None:
    x, recs, mask = sample
    expected = (1 - ssim_maps(recs.mean(0), x, (1.1,), 3)[0]) * mask
    torch.testing.assert_close(SSIMScorer(sigma=1.1)(x, recs, mask), expected)


@pytest.mark.parametrize(
    "kwargs", [{"spatial_dims": 1}, {"sigmas": []}, {"sigmas": [0.0]}, {"num_reconstructions": 0}]
)
def test_bad_params_raise(kwargs: dict) -> None:
    with pytest.raises(UserInputError):
        SSIMEnsembleScorer(**kwargs)


@pytest.mark.parametrize("sigmas_per_pass", [None, 3])
def test_sigmas_per_pass_does_not_change_maps(sigmas_per_pass: int | None) -> None:
    a, b = _pair((14, 13, 13), seed=5)
    x, y = torch.from_numpy(a), torch.from_numpy(b)
    expected = ssim_maps(x, y, ENSEMBLE_SIGMAS, 3)
    out = ssim_maps(x, y, ENSEMBLE_SIGMAS, 3, sigmas_per_pass=sigmas_per_pass)
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)

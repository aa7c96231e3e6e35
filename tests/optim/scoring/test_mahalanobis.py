from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from dl_utils.errors import UserInputError
from optim.scoring.mahalanobis import (
    MahalanobisScorer,
    autocast_fp16_pixel_scores,
    mahalanobis_pixel_scores,
    min_max_in_mask,
)
from optim.scoring.mahalanobis_reference import dense_mahalanobis_pixel_scores
from optim.scoring.ssim import autocast_fp16_ssim_map, ssim_maps


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


# The MHD original's test step under fp16 autocast (Lightning precision 16), recorded from its own
# mh_dist and SSIM_TM modules: tests/fixtures/parity/SOURCES.md, `mhd_fp16_autocast.npz`.
PARITY = Path(__file__).resolve().parents[2] / "fixtures/parity/mhd_fp16_autocast.npz"


@pytest.fixture(scope="module")
def recorded() -> dict[str, torch.Tensor]:
    with np.load(PARITY) as data:
        return {k: torch.from_numpy(data[k]) for k in data.files}


def _bitwise_share(ours: torch.Tensor, theirs: torch.Tensor, where: torch.Tensor) -> float:
    return float((ours[where] == theirs[where]).double().mean())


def test_fp16_mhd_equals_the_originals_autocast(recorded) -> None:
    """Their dense fp16 path (fp16 covariance product, fp32 inverse cast to fp16, fp16 d x inverse):
    bitwise on this CPU (every brain pixel); the exact fp32 path is not, and a tie of a rounding
    on another BLAS moves one value by about an fp16 step, hence the share and the tolerance."""
    x, recs, mask, theirs = recorded["x"], recorded["recs"].float(), recorded["mask"], recorded["mhd"]
    ours = autocast_fp16_pixel_scores(x, recs, mask)
    assert ours.dtype == torch.float32 and ours[~mask].abs().max() == 0
    assert _bitwise_share(ours, theirs, mask) >= 0.99
    torch.testing.assert_close(ours, theirs, atol=4e-3 * float(theirs.max()), rtol=0)
    exact = mahalanobis_pixel_scores(x, recs, mask)
    nonzero = mask & (theirs > 0)
    assert _bitwise_share(exact, theirs, nonzero) < 0.2  # the option is what reproduces them
    assert float((exact - theirs).abs().max()) > 1e-3


def test_fp16_mhd_adds_lambda_in_place_bitwise_as_before() -> None:
    """+ lambda I on the covariance's diagonal in place (no P x P identity) gives the same bits as
    the previous identity sum (`benchmarks/bench_scorers.py` times both), here with constant
    pixels too (zero covariance rows and columns)."""
    from benchmarks.bench_scorers import _fp16_scores_before

    x, recs, mask = _inputs(10, seed=4)
    recs[:, :2] = 0.5  # constant in every reconstruction
    x, recs = x.float(), recs.float()
    ours = autocast_fp16_pixel_scores(x, recs, mask)
    assert torch.equal(ours.view(torch.int32), _fp16_scores_before(x, recs, mask).view(torch.int32))


def test_fp16_ssim_factor_equals_the_originals_autocast(recorded) -> None:
    """Their torchmetrics SSIM of the fp16 mean reconstruction under autocast (fp16 moments and
    window, fp32 squares): bitwise except where a conv3d sum falls on an fp16 rounding tie (8 of
    1092 voxels on this CPU: the order of the sums decides, one step of a moment, which the
    variance's cancellation makes up to 0.09 of SSIM); the fp32 SSIM matches almost nowhere."""
    x, recs, theirs = recorded["x"], recorded["recs"].float(), recorded["ssim"]
    reference = recs.to(torch.float16).mean(0).float()
    torch.testing.assert_close(reference, recorded["reco_mean"], atol=0, rtol=0)
    ours = autocast_fp16_ssim_map(reference, x, sigma=1.0)
    everywhere = torch.ones_like(x, dtype=torch.bool)
    assert _bitwise_share(ours, theirs, everywhere) >= 0.98
    assert float((ours - theirs).abs().mean()) < 1e-3 and float((ours - theirs).abs().max()) < 0.1
    fp32 = ssim_maps(recs.mean(0), x, (1.0,), spatial_dims=3, padding="reflect")[0]
    assert _bitwise_share(fp32, theirs, everywhere) < 0.05 and float((fp32 - theirs).abs().mean()) > 1e-3


def test_fp16_scorer_reproduces_the_originals_map(recorded) -> None:
    """The whole map (their min-max, scipy smoothing, x (1 - SSIM) x mask), precision fp16 against
    the recorded one; the default fp32 scorer is over a hundred times farther off. Their min-max runs over the
    whole volume, ours over the brain: equal, as a brain pixel with a negative share (here a third
    of them) is 0 in both."""
    x, recs, mask, theirs = recorded["x"], recorded["recs"].float(), recorded["mask"], recorded["amap"]
    assert float(autocast_fp16_pixel_scores(x, recs, mask)[mask].min()) == 0
    scorer = MahalanobisScorer(ssim_padding="reflect", precision="fp16")
    ours = scorer(x, recs, mask)
    assert ours.dtype == x.dtype and ours.shape == x.shape
    error = float((ours - theirs).abs().mean())
    assert error < 1e-4 and float((ours - theirs).abs().max()) < 0.01
    default = MahalanobisScorer(ssim_padding="reflect")(x, recs, mask)
    assert float((default - theirs).abs().mean()) > 100 * error


def test_fp16_scorer_on_cpu_any_input_dtype(sample) -> None:
    """fp16 products run on CPU (no autocast needed, explicit casts: the same on any device); the
    map comes back in the input's dtype and device, finite, zero outside the brain."""
    x, recs, mask = sample
    noise = 0.02 * torch.rand((10, *x.shape), generator=torch.Generator().manual_seed(6), dtype=x.dtype)
    recs = recs.repeat(3, 1, 1, 1)[:10] + noise
    for dtype in (torch.float32, torch.float64):
        amap = MahalanobisScorer(ssim_padding="reflect", precision="fp16")(x.to(dtype), recs.to(dtype), mask)
        assert amap.dtype == dtype and amap.device == x.device and torch.isfinite(amap).all()
        assert amap[~mask].abs().max() == 0 and amap[mask].max() > 0


def test_fp16_precision_is_an_option_with_fp32_default() -> None:
    from dl_utils.options import OptionError
    from optim.scoring.mahalanobis import MHDPrecision

    assert MahalanobisScorer().precision is MHDPrecision.FP32
    assert MahalanobisScorer(ssim_padding="reflect", precision="fp16").precision is MHDPrecision.FP16
    with pytest.raises(OptionError, match="fp32, fp16"):
        MahalanobisScorer(precision="bf16")
    for bad in ({"diagonal": True, "ssim_padding": "reflect"}, {"ssim_padding": "symmetric"}):
        with pytest.raises(UserInputError, match="precision fp16"):
            MahalanobisScorer(precision="fp16", **bad)

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from optim.scoring.gaussian import (
    gaussian_filter,
    gaussian_filter_bank,
    gaussian_filter_stack,
    symmetric_indices,
)


def test_symmetric_indices_match_numpy_symmetric_pad() -> None:
    # numpy's 'symmetric' pad is scipy's 'reflect': d c b a | a b c d | d c b a
    for n, pad in [(5, 2), (3, 7), (1, 4)]:
        expected = np.pad(np.arange(n), pad, mode="symmetric")
        assert symmetric_indices(n, pad, torch.device("cpu")).tolist() == expected.tolist()


@pytest.mark.parametrize("shape", [(9, 8, 3), (14, 13, 12), (7, 6)])
def test_bank_matches_scipy_gaussian_filter(shape: tuple[int, ...]) -> None:
    a = np.random.default_rng(1).random(shape)
    sigmas = (0.3, 0.9, 1.7)
    out = gaussian_filter_bank(torch.from_numpy(a)[None, None], sigmas, truncate=3.5)[0]
    for k, s in enumerate(sigmas):
        expected = ndi.gaussian_filter(a, s, truncate=3.5, mode="reflect")
        np.testing.assert_allclose(out[k].numpy(), expected, atol=1e-12)


def test_channels_are_channel_major() -> None:
    a = torch.from_numpy(np.random.default_rng(2).random((2, 9, 8)))
    out = gaussian_filter_bank(a[None], (0.5, 1.0), truncate=4.0)[0]
    np.testing.assert_allclose(out[3].numpy(), ndi.gaussian_filter(a[1].numpy(), 1.0), atol=1e-12)


def test_single_sigma_matches_scipy_default() -> None:
    a = np.random.default_rng(3).random((10, 9, 8))
    out = gaussian_filter(torch.from_numpy(a), 1.0)
    np.testing.assert_allclose(out.numpy(), ndi.gaussian_filter(a, 1.0), atol=1e-12)


def test_stack_layout_batch_channel_sigma() -> None:
    a = np.random.default_rng(4).random((2, 3, 9, 8, 7))
    sigmas = (0.5, 1.2)
    out = gaussian_filter_stack(torch.from_numpy(a), sigmas, truncate=3.5)
    assert out.shape == (2, 3, 2, 9, 8, 7)
    for b, c, k in np.ndindex(2, 3, 2):
        expected = ndi.gaussian_filter(a[b, c], sigmas[k], truncate=3.5)
        np.testing.assert_allclose(out[b, c, k].numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("sigma", [1e-300, 1e-200, 1e-100])
def test_vanishing_sigma_is_the_identity_not_nan(sigma: float) -> None:
    """A sigma whose square underflows to 0 filters as its limit (a delta, as scipy's 1e-100 does),
    not as 0 / 0 = NaN at the kernel's centre."""
    a = np.random.default_rng(5).random((6, 5, 4))
    out = gaussian_filter(torch.from_numpy(a), sigma)
    np.testing.assert_array_equal(out.numpy(), ndi.gaussian_filter(a, 1e-100))
    np.testing.assert_array_equal(out.numpy(), a)

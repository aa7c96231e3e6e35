"""Separable Gaussian filtering of a bank of sigmas in one pass, matching scipy.ndimage.

Hand-written because SSIM ensembles need all sigmas at once and scipy's 'reflect'
boundary, which torch's F.pad lacks: per axis, the boundary is folded into an n x n
filter matrix per sigma, applied as a matrix product (on CPU several times faster than
depthwise convolution).
"""

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def gaussian_radius(sigma: float, truncate: float) -> int:
    """Kernel radius as scipy.ndimage.gaussian_filter: int(truncate * sigma + 0.5)."""
    return int(truncate * sigma + 0.5)


def gaussian_kernel_bank(
    sigmas: Sequence[float], truncate: float, *, dtype: torch.dtype, device: torch.device
) -> Tensor:
    """Normalised 1D Gaussian kernels, zero-padded to the largest radius -> (K, 2 r_max + 1)."""
    radius = max(gaussian_radius(s, truncate) for s in sigmas)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernels = []
    for sigma in sigmas:
        r = gaussian_radius(sigma, truncate)
        if sigma**2 > 0:
            k = torch.exp(-0.5 * offsets**2 / sigma**2) * (offsets.abs() <= r)
        else:  # sigma**2 underflows to 0 (sigma < 1e-154): the limit, a delta, not 0 / 0 = NaN at the centre
            k = (offsets == 0).to(torch.float64)
        kernels.append(k / k.sum())
    return torch.stack(kernels).to(dtype=dtype, device=device)


def symmetric_indices(n: int, pad: int, device: torch.device) -> Tensor:
    """Indices of scipy's 'reflect' extension (d c b a | a b c d | d c b a) by `pad` per side."""
    i = torch.arange(-pad, n + pad, device=device) % (2 * n)
    return torch.where(i >= n, 2 * n - 1 - i, i)


def filter_matrices(kernels: Tensor, n: int) -> Tensor:
    """Kernels (K, L) as matrices (K, n, n): M[k] @ s = s correlated with kernel k, reflected."""
    num, length = kernels.shape
    rows = torch.arange(n, device=kernels.device)[:, None]
    taps = rows + torch.arange(length, device=kernels.device)
    sources = symmetric_indices(n, length // 2, kernels.device)[taps]  # (n, L)
    flat = (rows * n + sources).flatten()
    matrices = torch.zeros(num, n * n, dtype=kernels.dtype, device=kernels.device)
    matrices.index_add_(1, flat, kernels.repeat(1, n))
    return matrices.view(num, n, n)


def gaussian_filter_stack(
    t: Tensor, sigmas: Sequence[float], *, truncate: float = 4.0
) -> Tensor:
    """Filter every channel of t (B, C, *S), 1 to 3 spatial axes, with every sigma ->
    (B, C, K, *S), possibly a non-contiguous view.

    Equals scipy.ndimage.gaussian_filter(mode='reflect', truncate=truncate) per sigma.
    """
    batch, channels, *spatial = t.shape
    rows, num = batch * channels, len(sigmas)
    kernels = gaussian_kernel_bank(sigmas, truncate, dtype=t.dtype, device=t.device)
    first = filter_matrices(kernels, spatial[0]).reshape(num * spatial[0], spatial[0])
    out = (first @ t.reshape(rows, spatial[0], -1)).view(rows, num, *spatial)
    if len(spatial) > 1:  # last axis: per-sigma product from the right, no copy
        right = filter_matrices(kernels, spatial[-1]).transpose(1, 2)
        out = (out.reshape(rows, num, -1, spatial[-1]) @ right).view(rows, num, *spatial)
    for axis in range(1, len(spatial) - 1):  # middle axis: sigma-major copy, product from left
        left = filter_matrices(kernels, spatial[axis])
        moved = out.transpose(0, 1).reshape(num, -1, spatial[axis], math.prod(spatial[axis + 1 :]))
        result = torch.empty_like(moved)
        for k in range(num):  # one matrix per sigma; a batched product would copy it per row
            torch.matmul(left[k], moved[k], out=result[k])
        out = result.view(num, rows, *spatial).transpose(0, 1)
    return out.unflatten(0, (batch, channels))


def gaussian_filter_bank(
    t: Tensor, sigmas: Sequence[float], *, truncate: float = 4.0
) -> Tensor:
    """Filter every channel of t (B, C, *S) with every sigma -> (B, C * K, *S).

    Output channel c * K + k is channel c filtered with sigmas[k] along all spatial axes,
    equal to scipy.ndimage.gaussian_filter(mode='reflect', truncate=truncate).
    """
    return gaussian_filter_stack(t, sigmas, truncate=truncate).flatten(1, 2)


def gaussian_filter(volume: Tensor, sigma: float, *, truncate: float = 4.0) -> Tensor:
    """Gaussian smoothing of an image or volume (*S) along all axes as scipy.ndimage -> (*S)."""
    return gaussian_filter_stack(volume[None, None], (sigma,), truncate=truncate)[0, 0, 0]

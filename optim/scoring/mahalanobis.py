"""Pixel-wise Mahalanobis distance to an ensemble of reconstructions (MHD, Behrendt et al.).

Per axial slice the covariance of the N reconstructions over the P brain pixels has rank
<= N - 1, so (S + lambda I)^-1 d is applied with the Woodbury identity in O(N^2 P) for
all slices at once, instead of the original code's dense P x P inverse per slice.
`precision: fp16` reproduces the original's test step under fp16 autocast instead (dense).
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

import torch
from torch import Tensor

from dl_utils.errors import UserInputError
from dl_utils.options import parse_option
from dl_utils.param_ranges import MAX_RECONSTRUCTIONS, PositiveFloat, Sigma, SmoothingSigma
from dl_utils.param_types import Ge, Le, check_fields
from optim.scoring._checks import check_inputs, check_num_reconstructions
from optim.scoring.gaussian import gaussian_filter
from optim.scoring.ssim import (
    SSIM_TRUNCATE,
    SSIMPadding,
    autocast_fp16_ssim_map,
    parse_ssim_padding,
    reflect_min_side,
    ssim_maps,
)


class MHDPrecision(StrEnum):
    """The arithmetic of the MHD map.

    fp32: ours, exact (Woodbury) in at least float32, the SSIM factor in the input precision.
    fp16: the originals' test step under Lightning `precision: 16` (CUDA fp16 autocast): fp16
        reconstructions and mean, per slice the dense P x P covariance from an fp16 product, its
        fp32 inverse rounded to fp16, the product d x inverse in fp16; the SSIM factor's Gaussian
        moments in fp16 (`autocast_fp16_ssim_map`). Dense O(P^3) per slice, as the originals.
    """

    FP32 = "fp32"
    FP16 = "fp16"


def _slices(t: Tensor) -> Tensor:
    """(..., H, W, D) -> (..., D, H * W): one row of pixels per axial slice."""
    return t.movedim(-1, -3).flatten(-2)


def mahalanobis_pixel_scores(
    x: Tensor,
    recs: Tensor,
    mask: Tensor,
    regularization: float = 0.01,
    diagonal: bool = False,
) -> Tensor:
    """Per-pixel Mahalanobis share m_i per axial slice over its brain pixels -> (H, W, D).

    x (H, W, D), recs (N >= 2, H, W, D), mask (H, W, D). With mu = mean_n recs, R the
    centred reconstructions (N x P), S = R^T R / (N - 1), d = x - mu:
    m_i = sqrt(max(0, d_i [(S + lambda I)^-1 d]_i)), or |d_i| / sqrt(S_ii + lambda) if
    diagonal. Zeroing non-brain pixels of R and d makes S block-diagonal, so the in-brain
    result equals the brain-restricted one. Computed in at least float32.
    """
    check_inputs(x, recs, mask, min_recs=2)
    dtype = torch.promote_types(x.dtype, torch.float32)
    n = recs.shape[0]
    m = _slices(mask).to(dtype)[:, None]  # (D, 1, P)
    rows = _slices(recs.to(dtype)).transpose(0, 1)  # (D, N, P), a view of recs
    mu = rows.mean(1, keepdim=True)
    r = torch.empty(rows.shape, dtype=dtype, device=x.device)  # contiguous, for the products
    torch.sub(rows, mu, out=r).mul_(m)  # centred, zero outside the brain
    d = (_slices(x.to(dtype))[:, None] - mu) * m  # (D, 1, P)
    if diagonal:
        share = d * d / (r.square().sum(1, keepdim=True) / (n - 1) + regularization)
    else:
        eye = torch.eye(n, dtype=dtype, device=x.device)
        small = r @ r.mT + (n - 1) * regularization * eye  # (D, N, N)
        z = torch.linalg.solve(small, r @ d.mT)  # (D, N, 1)
        share = d * (d - z.mT @ r) / regularization
    scores = share[:, 0].clamp_min(0).sqrt().unflatten(-1, x.shape[:2]).movedim(0, -1)
    return scores.to(x.dtype)


def autocast_fp16_pixel_scores(x: Tensor, recs: Tensor, mask: Tensor, regularization: float = 0.01) -> Tensor:
    """The originals' per-slice MHD (`compute_pixelwise_mahalanobis_distance_slicewise_3d` with a
    mask) as their fp16-autocast test step computes it -> (H, W, D) in x's dtype.

    Explicit casts in place of autocast, so any device gives the same: recs and their mean in fp16
    (their UNet's output under autocast), d = x - mean in fp32; per slice over its brain pixels the
    covariance R^T R / (N - 1) of the fp16 centred rows as an fp16 product, + lambda I in fp32, the
    fp32 inverse cast to fp16, (d @ inverse) in fp16 times d in fp32, its square root; NaN (negative
    shares) and inf -> 0, as their test step. Dense: O(P^3) per slice, P = brain pixels. The fp32
    inverse is ~93% of the time on CPU (the fp16 products cost about what fp32 ones would), some
    15 s per 96 x 96 slice on 2 cores, where `mahalanobis_pixel_scores` takes milliseconds; its
    rounding is part of the scores: a Cholesky or float64 inverse moves ~1% of them, Woodbury of
    the unrounded covariance most (`python -m benchmarks.bench_scorers --fp16-mhd`).
    """
    check_inputs(x, recs, mask, min_recs=2)
    n = recs.shape[0]
    half = recs.to(torch.float16)
    mean = half.mean(0)
    out = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
    for k in range(x.shape[-1]):
        inside = mask[..., k].bool()
        if not inside.any():
            continue
        mu = mean[..., k][inside]
        centred = half[..., k][:, inside] - mu  # (N, P) fp16
        d = x[..., k][inside].float() - mu.float()
        covariance = (centred.mT @ centred) / (n - 1)  # fp16, as autocast's matmul
        regularised = covariance.float()
        regularised.diagonal().add_(regularization)  # + lambda I without a P x P identity: the same values
        inverse = torch.linalg.inv(regularised).to(torch.float16)  # the O(P^3) step, ~93% of the time
        distance = ((d.to(torch.float16) @ inverse).float() * d).sqrt()
        out[..., k][inside] = torch.where(torch.isfinite(distance), distance, torch.zeros_like(distance))
    return out.to(x.dtype)


def min_max_in_mask(volume: Tensor, mask: Tensor) -> Tensor:
    """Rescale volume (*S) to [0, 1] over the voxels of mask (*S); 0 outside and if flat."""
    inside = mask.bool()
    if not inside.any():
        return torch.zeros_like(volume)
    values = volume[inside]
    low, span = values.min(), values.max() - values.min()
    scaled = (volume - low) / span if span > 0 else torch.zeros_like(volume)
    return torch.where(inside, scaled, torch.zeros_like(volume))


@dataclass(frozen=True)
class MahalanobisScorer:
    """MHD anomaly map: min-max(MHD) over the brain, 3D Gaussian smoothing, times
    (1 - 3D SSIM(mean reconstruction, x)) if combine_with_ssim, times the brain mask.

    smoothing_sigma=0 skips smoothing. Smoothing follows scipy.ndimage.gaussian_filter
    (truncate 4, reflect) as the original code; the SSIM window is skimage's (truncate 3.5),
    as the originals' torchmetrics SSIM; ssim_padding "reflect" = the originals' torch
    reflect padding (edge not repeated), "symmetric" = skimage-exact. precision: `fp32` (ours,
    default) or `fp16` (the originals' test step under fp16 autocast, `MHDPrecision`; with
    diagonal false and reflect padding, as theirs).
    """

    num_reconstructions: Annotated[int, Ge(2), Le(MAX_RECONSTRUCTIONS)] = 10
    regularization: PositiveFloat = 0.01
    diagonal: bool = False
    smoothing_sigma: SmoothingSigma = 1.0
    ssim_sigma: Sigma = 1.0
    combine_with_ssim: bool = True
    ssim_padding: SSIMPadding = SSIMPadding.SYMMETRIC
    precision: MHDPrecision = MHDPrecision.FP32

    def __post_init__(self) -> None:
        name = type(self).__name__
        object.__setattr__(self, "ssim_padding", parse_ssim_padding(self.ssim_padding))
        object.__setattr__(self, "precision", parse_option(MHDPrecision, self.precision, f"{name}.precision"))
        if self.precision is MHDPrecision.FP16 and (self.diagonal or self.ssim_padding is not SSIMPadding.REFLECT):
            raise UserInputError(f"{name}: precision fp16 reproduces the originals' dense MHD and their SSIM "
                                 "(reflect padding); use it with diagonal: false and ssim_padding: reflect")
        check_num_reconstructions(self.num_reconstructions, 2, name)
        check_fields(self)  # the signature's ranges (regularization, sigmas), for a direct Python caller (the config check came first)

    @property
    def min_slice_side(self) -> int:
        """`NeedsMinimumSlice`: the SSIM factor's reflect padding (the originals', or fp16) needs sides longer
        than its window's radius."""
        reflect = self.precision is MHDPrecision.FP16 or self.ssim_padding is SSIMPadding.REFLECT
        return reflect_min_side((self.ssim_sigma,), SSIM_TRUNCATE) if self.combine_with_ssim and reflect else 1

    @property
    def min_depth(self) -> int:
        """`NeedsMinimumSlice`: the SSIM factor's window is 3-D, so the slices need the same reach."""
        return self.min_slice_side

    def __call__(self, x: Tensor, recs: Tensor, mask: Tensor) -> Tensor:
        """x (H, W, D), recs (N, H, W, D), mask (H, W, D) bool -> map (H, W, D)."""
        if self.precision is MHDPrecision.FP16:
            return self._autocast_fp16(x, recs, mask)
        mhd = mahalanobis_pixel_scores(x, recs, mask, self.regularization, self.diagonal)
        amap = min_max_in_mask(mhd, mask)
        if self.smoothing_sigma > 0:
            amap = gaussian_filter(amap, self.smoothing_sigma)
        if self.combine_with_ssim:
            amap = amap * (
                1 - ssim_maps(recs.mean(0), x, (self.ssim_sigma,), spatial_dims=3, padding=self.ssim_padding)[0]
            )
        return amap * mask

    def _autocast_fp16(self, x: Tensor, recs: Tensor, mask: Tensor) -> Tensor:
        """The map as the originals' fp16-autocast test step: fp16 MHD and SSIM, the rest in fp32."""
        mhd = autocast_fp16_pixel_scores(x.float(), recs, mask, self.regularization)
        amap = min_max_in_mask(mhd, mask)
        if self.smoothing_sigma > 0:
            amap = gaussian_filter(amap, self.smoothing_sigma)
        if self.combine_with_ssim:
            reference = recs.to(torch.float16).mean(0).float()  # their fp16 mean reconstruction
            amap = amap * (1 - autocast_fp16_ssim_map(reference, x.float(), self.ssim_sigma))
        return (amap * mask).to(x.dtype)

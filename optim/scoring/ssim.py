"""SSIM maps for several Gaussian sigmas from one set of moments, and the SSIM scorers."""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from dl_utils.errors import UserInputError
from dl_utils.options import parse_option
from dl_utils.param_ranges import MAX_SIGMAS, IntensityRange, Reconstructions, Sigma, Truncate
from dl_utils.param_types import Finite, Gt, Le, MaxItems, MinItems, check_fields
from optim.scoring._checks import check_inputs, check_num_reconstructions
from optim.scoring.gaussian import gaussian_filter_stack, gaussian_radius

ENSEMBLE_SIGMAS = (0.3, 0.5, 0.7, 0.9, 1.1, 1.3, 1.5, 1.7)
SSIM_TRUNCATE = 3.5  # skimage's Gaussian window radius in sigmas (and the originals' torchmetrics SSIM's)
# k1, k2: fractions of the data range (Wang et al.: 0.01, 0.03); above 1 the constants swamp the image statistics
SSIMConstant = Annotated[float, Gt(0), Le(1), Finite()]


class SSIMPadding(StrEnum):
    """How the Gaussian windows see beyond the border (numpy's names).

    symmetric: edge repeated (d c b a | a b c d), scipy/skimage's "reflect".
    reflect: edge not repeated (d c b | a b c d), torch ``F.pad(mode="reflect")``, as the
        originals' torchmetrics SSIM; differs from symmetric only near the borders.
    """

    SYMMETRIC = "symmetric"
    REFLECT = "reflect"


def parse_ssim_padding(padding: str) -> SSIMPadding:
    """SSIMPadding(padding), or a one-line error naming the choices."""
    return parse_option(SSIMPadding, padding, "SSIM padding")


def default_data_range(x: Tensor, y: Tensor) -> Tensor:
    """Largest value range of the two inputs (the SSIM ensemble paper's choice) -> scalar."""
    return torch.maximum(x.max() - x.min(), y.max() - y.min())


def reflect_min_side(sigmas: Sequence[float], truncate: float) -> int:
    """The shortest axis reflect padding by the widest Gaussian window's radius accepts (radius + 1)."""
    return max(gaussian_radius(s, truncate) for s in sigmas) + 1


def _to_batch(t: Tensor, spatial_dims: int) -> Tensor:
    """(5, *S) stacked moments -> (B, 5, *spatial): 2D stacks slices of the last axis."""
    if spatial_dims == 2 and t.ndim == 4:
        return t.movedim(-1, 0)
    return t[None]


def _ssim_from_moments(
    ux: Tensor, uy: Tensor, uxx: Tensor, uyy: Tensor, uxy: Tensor, c1: Tensor, c2: Tensor
) -> Tensor:
    """(2 ux uy + c1)(2 vxy + c2) / ((ux^2 + uy^2 + c1)(vx + vy + c2)), overwriting its inputs.

    In place because the eight-sigma moments are large and the formula is memory-bound.
    """
    uxuy = ux * uy
    num = uxy.sub_(uxuy).mul_(2).add_(c2).mul_(uxuy.mul_(2).add_(c1))
    squares = ux.square_().add_(uy.square_())
    den = uxx.add_(uyy).sub_(squares).add_(c2).mul_(squares.add_(c1))
    return num.div_(den)


def _ssim_pass(
    moments: Tensor, sigmas: tuple[float, ...], truncate: float, c1: Tensor, c2: Tensor
) -> Tensor:
    """SSIM maps (B, K, *spatial) from the moments (B, 5, *spatial) of x, y, x^2, y^2, xy."""
    filtered = gaussian_filter_stack(moments, sigmas, truncate=truncate)
    return _ssim_from_moments(*filtered.unbind(1), c1, c2)


def ssim_maps(
    x: Tensor,
    y: Tensor,
    sigmas: Sequence[float],
    spatial_dims: int = 3,
    k1: float = 0.01,
    k2: float = 0.03,
    data_range: float | Tensor | None = None,
    truncate: float = SSIM_TRUNCATE,
    sigmas_per_pass: int | None = 1,
    padding: SSIMPadding = SSIMPadding.SYMMETRIC,
) -> Tensor:
    """Full SSIM maps of x and y for every sigma, sharing the moment products -> (K, *S).

    x, y: (H, W, D) volumes, or (H, W) images with spatial_dims=2. spatial_dims=2 filters
    each axial slice (last axis) on its own, 3 the whole volume. Equals
    skimage.metrics.structural_similarity(full=True, gaussian_weights=True, sigma=s,
    use_sample_covariance=False, truncate=3.5) on every voxel, borders included.
    data_range=None takes the larger value range of x and y over the whole input.
    sigmas_per_pass sigmas share each filter product (None: all). 1 is fastest on CPU,
    where the stacked moments of 8 sigmas (75 MB at 96 x 96 x 50) outgrow the cache.
    padding "reflect" (the originals) pads the moments with torch's reflect by the largest
    radius first, so the symmetric fold of the filter never reaches the original voxels.
    """
    if spatial_dims not in (2, 3) or x.ndim not in (spatial_dims, 3):
        raise ValueError(f"spatial_dims={spatial_dims} does not fit x of shape {tuple(x.shape)}")
    if x.shape != y.shape:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} differ in shape")
    if data_range is None:
        data_range = default_data_range(x, y)
    c1 = torch.as_tensor((k1 * data_range) ** 2, dtype=x.dtype, device=x.device)
    c2 = torch.as_tensor((k2 * data_range) ** 2, dtype=x.dtype, device=x.device)
    moments = _to_batch(torch.stack([x, y, x * x, y * y, x * y]), spatial_dims)
    pad = max(gaussian_radius(s, truncate) for s in sigmas) if parse_ssim_padding(padding) == SSIMPadding.REFLECT else 0
    if pad:
        spatial = moments.shape[2:]
        if pad >= min(spatial):
            raise ValueError(f"reflect padding by {pad} needs every axis longer than that, got {tuple(spatial)}")
        moments = F.pad(moments, (pad,) * (2 * len(spatial)), mode="reflect")
    step = len(sigmas) if sigmas_per_pass is None else max(1, sigmas_per_pass)
    chunks = [tuple(sigmas[i : i + step]) for i in range(0, len(sigmas), step)]
    maps = torch.cat([_ssim_pass(moments, chunk, truncate, c1, c2) for chunk in chunks], dim=1)
    if pad:
        maps = maps[(slice(None), slice(None), *(slice(pad, -pad) for _ in maps.shape[2:]))]
    if spatial_dims == 2 and x.ndim == 3:
        return maps.movedim(0, -1)
    return maps[0]


def _autocast_fp16_kernel(sigma: float, truncate: float, device: torch.device) -> Tensor:
    """The originals' 3D Gaussian window under fp16 autocast: 1D kernels in fp32 (torchmetrics'
    `_gaussian`), x-y outer product as an fp16 matmul, times z in fp32, cast to fp16 by conv3d."""
    radius = gaussian_radius(sigma, truncate)
    dist = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    gauss = torch.exp(-torch.pow(dist / sigma, 2) / 2)
    g = gauss / gauss.sum()
    xy = g.to(torch.float16)[:, None] * g.to(torch.float16)[None, :]  # fp16 x fp16 -> fp16
    return (xy.float()[..., None] * g).to(torch.float16)


def autocast_fp16_ssim_map(preds: Tensor, target: Tensor, sigma: float = 1.0, k1: float = 0.01, k2: float = 0.03,
                           truncate: float = SSIM_TRUNCATE) -> Tensor:
    """The originals' 3D SSIM map (torchmetrics `_ssim_update`, reflect padding, data range of the
    inputs, full image) as their fp16-autocast test step computes it -> (H, W, D) float32.

    Explicit casts for CUDA autocast's rules, so any device gives the same: the five moments and
    the window enter the Gaussian conv3d as fp16 and leave it as fp16 (fp32 sums); squares of the
    means in fp32 (autocast's pow), mu_x mu_y and sigma_xy in fp16, the rest in fp32. Dense
    conv3d, as theirs: the fp16 window is not separable.
    """
    if preds.ndim != 3 or preds.shape != target.shape:
        raise ValueError(f"preds {tuple(preds.shape)} and target {tuple(target.shape)} must both be (H, W, D)")
    p, t = preds.float(), target.float()
    data_range = torch.maximum(p.max() - p.min(), t.max() - t.min())
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    kernel = _autocast_fp16_kernel(sigma, truncate, p.device)
    pad = kernel.shape[0] // 2
    if pad >= min(p.shape):
        raise ValueError(f"reflect padding by {pad} needs every axis longer than that, got {tuple(p.shape)}")
    moments = F.pad(torch.stack([p, t])[:, None], (pad,) * 6, mode="reflect")
    p, t = moments[0], moments[1]
    moments = torch.stack([p, t, p * p, t * t, p * t])  # (5, 1, ...) fp32, as theirs
    half = moments.to(torch.float16).float()
    out = F.conv3d(half, kernel.float()[None, None]).to(torch.float16).float()[:, 0]  # fp16 conv3d, fp32 sums
    ux, uy, uxx, uyy, uxy = out.unbind(0)
    ux2, uy2 = ux.square(), uy.square()  # fp32 (autocast's pow)
    uxuy = (ux * uy).to(torch.float16).float()  # fp16 x fp16
    vxy = (uxy - uxuy).to(torch.float16).float()
    upper = 2 * vxy + c2
    lower = (uxx - ux2) + (uyy - uy2) + c2
    first = (2 * uxuy + c1.to(torch.float16).float()).to(torch.float16).float()  # fp16 + a 0-dim fp32 -> fp16
    return (first * upper) / ((ux2 + uy2 + c1) * lower)


def softmin_ensemble(maps: Tensor) -> Tensor:
    """Per-voxel softmin-weighted mean of SSIM maps (K, *S): sum_k w_k S_k, w = softmax(-S)."""
    return torch.linalg.vecdot(torch.softmax(-maps, dim=0), maps, dim=0)


def _check_ssim_params(
    sigmas: Sequence[float], spatial_dims: int, num_reconstructions: int, name: str
) -> None:
    if spatial_dims not in (2, 3):
        raise UserInputError(f"{name}.spatial_dims={spatial_dims} is unsupported; use 2 or 3")
    if not sigmas or min(sigmas) <= 0:
        raise UserInputError(f"{name}: SSIM sigmas {list(sigmas)} must be positive numbers")
    check_num_reconstructions(num_reconstructions, 1, name)


@dataclass(frozen=True)
class _SSIMMapScorer:
    """The SSIM constants both SSIM scorers share (Wang et al. 2004; windows as skimage) and
    their map of the mean reconstruction against the input."""

    spatial_dims: Literal[2, 3] = 3
    k1: SSIMConstant = 0.01
    k2: SSIMConstant = 0.03
    data_range: IntensityRange | None = None
    truncate: Truncate = SSIM_TRUNCATE
    num_reconstructions: Reconstructions = 1
    padding: SSIMPadding = SSIMPadding.SYMMETRIC

    def _window_sigmas(self) -> tuple[float, ...]:
        raise NotImplementedError

    def __post_init__(self) -> None:
        object.__setattr__(self, "padding", parse_ssim_padding(self.padding))
        _check_ssim_params(self._window_sigmas(), self.spatial_dims, self.num_reconstructions, type(self).__name__)
        check_fields(self)  # the signature's ranges, for a direct Python caller (the config check came first)

    @property
    def min_slice_side(self) -> int:
        """`NeedsMinimumSlice`: reflect padding by the widest window's radius needs longer sides than it."""
        return reflect_min_side(self._window_sigmas(), self.truncate) if self.padding is SSIMPadding.REFLECT else 1

    @property
    def min_depth(self) -> int:
        """`NeedsMinimumSlice`: 3-D windows pad along the slices too; 2-D ones score each slice alone."""
        return self.min_slice_side if self.spatial_dims == 3 else 1

    def _maps(self, x: Tensor, recs: Tensor, mask: Tensor) -> Tensor:
        """x (H, W, D), recs (N, H, W, D), mask -> SSIM maps (K, H, W, D), one per sigma."""
        check_inputs(x, recs, mask)
        return ssim_maps(recs.mean(0), x, self._window_sigmas(), self.spatial_dims, self.k1, self.k2,
                         self.data_range, self.truncate, padding=self.padding)


@dataclass(frozen=True)
class SSIMEnsembleScorer(_SSIMMapScorer):
    """(1 - softmin-weighted ensemble of SSIM maps over sigmas) * mask (Behrendt et al.).

    The reference is the mean of the reconstructions. data_range=None: larger value range
    of input and reference. spatial_dims=3 (paper) or 2 (per axial slice). Windows follow
    skimage (radius int(truncate * sigma + 0.5)), as the originals' torchmetrics SSIM, which
    sizes the window from sigma the same way (its kernel_size 11 is unused for Gaussian
    windows). padding "reflect" = the originals (torch reflect, edge not repeated; paper
    config), "symmetric" = skimage-exact. As there, the windows also see non-brain voxels;
    only the map is masked.
    """

    sigmas: Annotated[tuple[Sigma, ...], MinItems(1), MaxItems(MAX_SIGMAS)] = ENSEMBLE_SIGMAS

    def _window_sigmas(self) -> tuple[float, ...]:
        return tuple(float(s) for s in self.sigmas)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigmas", self._window_sigmas())
        super().__post_init__()

    def __call__(self, x: Tensor, recs: Tensor, mask: Tensor) -> Tensor:
        """x (H, W, D), recs (N, H, W, D), mask (H, W, D) bool -> map (H, W, D)."""
        return (1 - softmin_ensemble(self._maps(x, recs, mask))) * mask


@dataclass(frozen=True)
class SSIMScorer(_SSIMMapScorer):
    """(1 - SSIM map with one Gaussian sigma) * mask; sigma 1.5 as Wang et al. (2004).

    padding as ``SSIMEnsembleScorer``.
    """

    sigma: Sigma = 1.5

    def _window_sigmas(self) -> tuple[float, ...]:
        return (float(self.sigma),)

    def __call__(self, x: Tensor, recs: Tensor, mask: Tensor) -> Tensor:
        """x (H, W, D), recs (N, H, W, D), mask (H, W, D) bool -> map (H, W, D)."""
        return (1 - self._maps(x, recs, mask)[0]) * mask

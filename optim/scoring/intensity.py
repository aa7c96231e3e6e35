"""Model-free baseline: how unlikely a voxel's intensity is under healthy brain tissue."""

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import Tensor

from dl_utils.errors import UserInputError
from dl_utils.param_ranges import MAX_RECONSTRUCTIONS, HistogramBins, Intensity, PositiveFloat, SmoothingSigma
from dl_utils.param_types import Ge, Le, check_fields
from optim.scoring._checks import check_inputs
from optim.scoring.gaussian import gaussian_kernel_bank


def histogram_density(
    values: Iterable[Tensor],
    bins: int,
    value_range: tuple[float, float],
    smoothing_sigma: float,
    truncate: float = 4.0,
) -> Tensor:
    """Density (bins,) float64 of all values, Gaussian-smoothed by smoothing_sigma bins.

    Values outside value_range are ignored; smoothing pads with zeros (no mass outside)
    and cuts the kernel at truncate sigmas as scipy.ndimage.
    """
    low, high = value_range
    counts = torch.zeros(bins, dtype=torch.float64)
    for v in values:
        counts += torch.histc(v.detach().double().cpu(), bins, low, high)
    if smoothing_sigma > 0:
        kernel = gaussian_kernel_bank((smoothing_sigma,), truncate, dtype=torch.float64, device=counts.device)
        counts = F.conv1d(counts[None, None], kernel[None], padding=kernel.shape[-1] // 2)[0, 0]
    total = counts.sum()
    if total <= 0:
        raise UserInputError("IntensityDensityScorer.fit: no brain voxels within value_range")
    return counts / (total * (high - low) / bins)


@dataclass(frozen=True)
class IntensityDensityScorer:
    """-log(density(x) + eps) of healthy brain intensities, shifted so the most likely
    healthy intensity scores 0: hyper- and hypo-intense voxels both score high.

    Needs no model: recs are ignored (any N, num_reconstructions=0). Call fit() on healthy
    volumes first; the fitted density travels via state_dict()/load_state_dict().
    """

    bins: HistogramBins = 200
    value_range: tuple[Intensity, Intensity] = (0.0, 1.0)  # finite: torch.histc takes no infinite end
    smoothing_sigma: SmoothingSigma = 1.0  # in bins
    eps: PositiveFloat = 1e-6
    num_reconstructions: Annotated[int, Ge(0), Le(MAX_RECONSTRUCTIONS)] = 0
    _fitted: dict[str, Tensor] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "value_range", tuple(float(v) for v in self.value_range))
        name = type(self).__name__
        low, high = self.value_range
        if not high > low:  # (bins, eps, smoothing_sigma: the signature's ranges, check_fields)
            raise UserInputError(f"{name}: need value_range low < high")
        check_fields(self)  # the signature's ranges, for a direct Python caller (the config check came first)

    def fit(self, volumes: Iterable[Any]) -> None:
        """Histogram the brain voxels of healthy volumes (objects with .image, .mask (H, W, D))."""
        values = (v.image[v.mask.bool()] for v in volumes)
        density = histogram_density(values, self.bins, self.value_range, self.smoothing_sigma)
        self._fitted["density"] = density

    def state_dict(self) -> dict[str, Tensor]:
        """Fitted state as plain tensors: {'density': (bins,) float64}."""
        return {"density": self._density().clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore the state written by state_dict()."""
        density = state.get("density")
        if density is None or density.shape != (self.bins,):
            raise UserInputError(
                f"{type(self).__name__}.load_state_dict: need 'density' of shape ({self.bins},)"
            )
        self._fitted["density"] = density.detach().double().cpu().clone()

    def _density(self) -> Tensor:
        if "density" not in self._fitted:
            raise UserInputError(
                f"{type(self).__name__} is not fitted: call fit(healthy_volumes) or "
                "load_state_dict() before scoring"
            )
        return self._fitted["density"]

    def __call__(self, x: Tensor, recs: Tensor | None, mask: Tensor) -> Tensor:
        """x (H, W, D), recs ignored, mask (H, W, D) bool -> map (H, W, D)."""
        if recs is not None:
            check_inputs(x, recs, mask, min_recs=0)
        work = torch.promote_types(x.dtype, torch.float32)
        density = self._density().to(device=x.device, dtype=work)
        low, high = self.value_range
        position = (x.to(work) - low) / (high - low) * self.bins
        inside = (position >= 0) & (position <= self.bins)
        index = position.clamp(0, self.bins - 1).long()
        p = torch.where(inside, density[index], torch.zeros_like(position))
        score = math.log(density.max().item() + self.eps) - torch.log(p + self.eps)
        return (score * mask).to(x.dtype)

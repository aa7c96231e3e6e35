"""Training augmentations (torchio), deterministic per (seed, epoch, index).

torchio draws from torch's global RNG, so each call runs inside
`torch.random.fork_rng` seeded from (seed, epoch, index): the caller's RNG state is
untouched and an item's augmentation does not depend on workers or processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import torch
import torchio as tio

from data.interpolation import Interpolation
from dl_utils.options import parse_option
from dl_utils.param_groups import group_flat_params
from dl_utils.param_ranges import NonNegativeFloat, Probability
from dl_utils.param_types import Ge, Lt


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed that is a pure function of (seed, epoch, index)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def item_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    """numpy Generator for the non-torchio randomness of an item (e.g. slice choice)."""
    return np.random.default_rng(item_seed(seed, epoch, index))


@dataclass(frozen=True)
class Gamma:
    """torchio RandomGamma: intensity ** exp(u), u uniform in [-log_range, log_range]."""

    p: Probability = 0.5
    log_range: NonNegativeFloat = 0.3


@dataclass(frozen=True)
class BiasField:
    """torchio RandomBiasField with polynomial coefficients in [-coefficients, coefficients]."""

    p: Probability = 0.25
    coefficients: NonNegativeFloat = 0.5


@dataclass(frozen=True)
class Blur:
    """torchio RandomBlur, Gaussian std in mm up to std_max (in-plane only for 2D)."""

    p: Probability = 0.25
    std_max: NonNegativeFloat = 1.0


@dataclass(frozen=True)
class Ghosting:
    """torchio RandomGhosting (torchio's defaults)."""

    p: Probability = 0.5


@dataclass(frozen=True)
class Noise:
    """torchio RandomNoise, std up to std_max."""

    p: Probability = 0.0
    std_max: NonNegativeFloat = 0.02


@dataclass(frozen=True)
class Affine:
    """torchio RandomAffine: rotation up to `degrees`, scale 1 +- `scale`, shift up to `translation` mm
    (in-plane only for 2D); `isotropic` draws one scale for all axes (torchvision's RandomAffine, RA)."""

    p: Probability = 0.0
    degrees: NonNegativeFloat = 5.0
    scale: Annotated[float, Ge(0), Lt(1)] = 0.05
    translation: NonNegativeFloat = 2.0
    interpolation: Interpolation = Interpolation.BSPLINE
    isotropic: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "interpolation", parse_option(Interpolation, self.interpolation, "affine.interpolation"))


@dataclass(frozen=True)
class Flip:
    """Flip of the W axis (axis 1 of (1, H, W) or (H, W, D)): RA's horizontal flip."""

    p: Probability = 0.0


# Config version 1: flat keys (`gamma_p`, `affine_degrees`, ...) -> today's per-transform parts.
FLAT_KEYS: dict[str, tuple[str, ...]] = {
    "gamma_p": ("gamma", "p"), "gamma_log_range": ("gamma", "log_range"),
    "bias_field_p": ("bias_field", "p"), "bias_field_coefficients": ("bias_field", "coefficients"),
    "blur_p": ("blur", "p"), "blur_std_max": ("blur", "std_max"),
    "ghosting_p": ("ghosting", "p"),
    "noise_p": ("noise", "p"), "noise_std_max": ("noise", "std_max"),
    "affine_p": ("affine", "p"), "affine_degrees": ("affine", "degrees"), "affine_scale": ("affine", "scale"),
    "affine_translation": ("affine", "translation"), "affine_interpolation": ("affine", "interpolation"),
    "affine_isotropic": ("affine", "isotropic"),
    "flip_p": ("flip", "p"),
}


@dataclass(frozen=True)
class Augmentation:
    """Random augmentations, one part per torchio transform, each with its probability `p`
    (paper defaults: gamma .5, bias field .25, blur .25, ghosting .5; noise, affine and flip off).

    Input intensities are in [0, 1]; the output is clipped to [0, 1] unless `clip` is false
    (the originals do not clip). The mask is resampled with nearest neighbour by the affine
    and untouched by intensity ops. Only steps with p > 0 enter the pipeline, in the order
    affine, flip, gamma, bias field, blur, ghosting, noise: with the originals' `aug_intensity`
    settings (gamma .5, bias field .25, blur .25 with std_max 2, ghosting .5) the
    pipeline is theirs and draws the same parameters from the same torch seed.
    """

    affine: Affine = Affine()
    flip: Flip = Flip()
    gamma: Gamma = Gamma()
    bias_field: BiasField = BiasField()
    blur: Blur = Blur()
    ghosting: Ghosting = Ghosting()
    noise: Noise = Noise()
    clip: bool = True

    @staticmethod
    def upgrade_params(params: Mapping[str, Any]) -> dict[str, Any]:
        """Flat params of config version 1 (`gamma_p`, ...) in today's per-transform parts."""
        return group_flat_params(params, FLAT_KEYS, "Augmentation")

    @property
    def enabled(self) -> bool:
        """True if any augmentation has a non-zero probability."""
        return any(step.p > 0 for step in (self.affine, self.flip, self.gamma, self.bias_field, self.blur,
                                           self.ghosting, self.noise))

    def transform(self, is_2d: bool) -> tio.Compose:
        """The torchio pipeline; for 2D (D = 1) nothing acts along the last axis."""
        z = 0.0 if is_2d else 1.0
        a, b = self.affine, self.blur.std_max
        d, s, t = a.degrees, a.scale, a.translation
        steps = [
            tio.RandomAffine(
                scales=(1 - s, 1 + s) if a.isotropic else (1 - s, 1 + s, 1 - s, 1 + s, 1 - s * z, 1 + s * z),
                degrees=(-d * z, d * z, -d * z, d * z, -d, d),
                translation=(-t, t, -t, t, -t * z, t * z),
                isotropic=a.isotropic, image_interpolation=a.interpolation.value,
                label_interpolation="nearest", p=a.p,
            ),
            tio.RandomFlip(axes=(1,), flip_probability=1.0, p=self.flip.p),
            tio.RandomGamma(log_gamma=self.gamma.log_range, p=self.gamma.p),
            tio.RandomBiasField(coefficients=self.bias_field.coefficients, p=self.bias_field.p),
            tio.RandomBlur(std=(0, b, 0, b, 0, b * z), p=self.blur.p),
            tio.RandomGhosting(axes=(0, 1) if is_2d else (0, 1, 2), p=self.ghosting.p),
            tio.RandomNoise(std=(0, self.noise.std_max), p=self.noise.p),
        ]
        # A step with p = 0 would still draw its coin from torch's RNG; leaving it out keeps
        # the draws of the others identical to a pipeline without it (the originals').
        return tio.Compose([step for step in steps if step.probability > 0])

    def __call__(
        self, image: torch.Tensor, mask: torch.Tensor, seed: int, epoch: int, index: int,
        spacing: tuple[float, float, float] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """image, mask (1, H, W) slice or (H, W, D) volume -> augmented pair, same shapes.

        spacing: voxel size in mm (torchio's blur and affine act in mm; the originals
        augment the 2 mm volume); None = 1 mm. The result is a pure function of the
        inputs and (seed, epoch, index).
        """
        if not self.enabled:
            return image, mask
        is_2d = image.ndim == 3 and image.shape[0] == 1
        img4 = image.unsqueeze(-1) if is_2d else image.unsqueeze(0)
        msk4 = mask.unsqueeze(-1) if is_2d else mask.unsqueeze(0)
        grid = np.diag([*(spacing or (1.0, 1.0, 1.0)), 1.0])
        subject = tio.Subject(
            image=tio.ScalarImage(tensor=img4.float(), affine=grid),
            mask=tio.LabelMap(tensor=msk4.to(torch.uint8), affine=grid),
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(item_seed(seed, epoch, index))
            out = self.transform(is_2d)(subject)
        new_img = out["image"].data.float()
        if self.clip:
            new_img = new_img.clamp(0.0, 1.0)
        new_msk = out["mask"].data > 0
        if is_2d:
            return new_img[..., 0], new_msk[..., 0].to(mask.dtype)
        return new_img[0], new_msk[0].to(mask.dtype)

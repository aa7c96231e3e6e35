"""Training augmentations (torchio), deterministic per (seed, epoch, index).

torchio draws from torch's global RNG, so each call runs inside
`torch.random.fork_rng` seeded from (seed, epoch, index): the caller's RNG state is
untouched and an item's augmentation does not depend on workers or processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch
import torchio as tio

from dl_utils.errors import UserInputError
from dl_utils.param_types import Ge, Lt, NonNegativeFloat, Probability


def item_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed that is a pure function of (seed, epoch, index)."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), int(index)]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


def item_generator(seed: int, epoch: int, index: int) -> np.random.Generator:
    """numpy Generator for the non-torchio randomness of an item (e.g. slice choice)."""
    return np.random.default_rng(item_seed(seed, epoch, index))


@dataclass(frozen=True)
class Augmentation:
    """Random augmentations, each with its probability (paper defaults: gamma .5,
    bias field .25, blur .25, ghosting .5; noise, affine and flip off). `flip_p` flips the
    W axis (axis 1 of (1, H, W) or (H, W, D)), RA's horizontal flip; `affine_interpolation`
    is torchio's name ("nearest" = torchvision's RandomAffine default, as RA);
    `affine_isotropic` draws one scale for all axes (torchvision's RandomAffine, as RA).

    Input intensities are in [0, 1]; the output is clipped to [0, 1] unless `clip` is false
    (the originals do not clip). The mask is resampled with nearest neighbour by the affine
    and untouched by intensity ops. Only steps with p > 0 enter the pipeline, in the order
    affine, flip, gamma, bias field, blur, ghosting, noise: with the originals' `aug_intensity`
    settings (gamma .5, bias field .25, blur .25 with blur_std_max 2, ghosting .5) the
    pipeline is theirs and draws the same parameters from the same torch seed.
    """

    gamma_p: Probability = 0.5
    gamma_log_range: NonNegativeFloat = 0.3
    bias_field_p: Probability = 0.25
    bias_field_coefficients: NonNegativeFloat = 0.5
    blur_p: Probability = 0.25
    blur_std_max: NonNegativeFloat = 1.0
    ghosting_p: Probability = 0.5
    noise_p: Probability = 0.0
    noise_std_max: NonNegativeFloat = 0.02
    affine_p: Probability = 0.0
    affine_degrees: NonNegativeFloat = 5.0
    affine_scale: Annotated[float, Ge(0), Lt(1)] = 0.05
    affine_translation: NonNegativeFloat = 2.0
    affine_interpolation: str = "bspline"
    affine_isotropic: bool = False
    flip_p: Probability = 0.0
    clip: bool = True

    def __post_init__(self) -> None:
        for name in ("gamma_p", "bias_field_p", "blur_p", "ghosting_p", "noise_p", "affine_p", "flip_p"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise UserInputError(f"augmentation key '{name}' = {value}; a probability must be in [0, 1]")

    @property
    def enabled(self) -> bool:
        """True if any augmentation has a non-zero probability."""
        return any(
            getattr(self, n) > 0
            for n in ("gamma_p", "bias_field_p", "blur_p", "ghosting_p", "noise_p", "affine_p", "flip_p")
        )

    def transform(self, is_2d: bool) -> tio.Compose:
        """The torchio pipeline; for 2D (D = 1) nothing acts along the last axis."""
        z = 0.0 if is_2d else 1.0
        b = self.blur_std_max
        d, s, t = self.affine_degrees, self.affine_scale, self.affine_translation
        steps = [
            tio.RandomAffine(
                scales=(1 - s, 1 + s) if self.affine_isotropic else (1 - s, 1 + s, 1 - s, 1 + s, 1 - s * z, 1 + s * z),
                degrees=(-d * z, d * z, -d * z, d * z, -d, d),
                translation=(-t, t, -t, t, -t * z, t * z),
                isotropic=self.affine_isotropic, image_interpolation=self.affine_interpolation,
                label_interpolation="nearest", p=self.affine_p,
            ),
            tio.RandomFlip(axes=(1,), flip_probability=1.0, p=self.flip_p),
            tio.RandomGamma(log_gamma=self.gamma_log_range, p=self.gamma_p),
            tio.RandomBiasField(coefficients=self.bias_field_coefficients, p=self.bias_field_p),
            tio.RandomBlur(std=(0, b, 0, b, 0, b * z), p=self.blur_p),
            tio.RandomGhosting(axes=(0, 1) if is_2d else (0, 1, 2), p=self.ghosting_p),
            tio.RandomNoise(std=(0, self.noise_std_max), p=self.noise_p),
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

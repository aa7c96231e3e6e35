"""Pixel reconstruction losses, configurable from YAML."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from dl_utils.options import parse_option
from dl_utils.pixel_loss import PixelLoss, pixel_loss
from optim.contracts import TrainingLoss


@dataclass(frozen=True)
class ReconstructionLoss(TrainingLoss):
    """Mean L1 or L2 error between reconstruction (B, C, H, W) and target."""

    kind: PixelLoss = PixelLoss.L2

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", parse_option(PixelLoss, self.kind, "kind"))

    def __call__(self, reconstruction: Tensor, target: Tensor) -> Tensor:
        return pixel_loss(self.kind, reconstruction, target)

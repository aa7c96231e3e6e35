"""Pixel reconstruction losses, configurable from YAML."""
from __future__ import annotations

import enum
from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor

from dl_utils.options import parse_option


class LossKind(enum.StrEnum):
    L1 = "l1"
    L2 = "l2"


@dataclass(frozen=True)
class ReconstructionLoss:
    """Mean L1 or L2 error between reconstruction (B, C, H, W) and target."""

    kind: str = "l2"

    def __post_init__(self) -> None:
        parse_option(LossKind, self.kind, "kind")

    def __call__(self, reconstruction: Tensor, target: Tensor) -> Tensor:
        if self.kind == LossKind.L1:
            return F.l1_loss(reconstruction, target)
        return F.mse_loss(reconstruction, target)

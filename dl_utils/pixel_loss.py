"""The mean L1 / L2 pixel error, one definition for the reconstruction losses of every layer
(optim/losses for the autoencoders, model_zoo's diffusion training loss)."""
from __future__ import annotations

import enum

import torch.nn.functional as F
from torch import Tensor


class PixelLoss(enum.StrEnum):
    L1 = "l1"  # mean absolute error (the DDPM / cDDPM papers)
    L2 = "l2"  # mean squared error


def pixel_loss(kind: PixelLoss | str, prediction: Tensor, target: Tensor) -> Tensor:
    """Mean L1 or L2 error over all elements: (B, C, H, W) x 2 -> scalar."""
    return F.l1_loss(prediction, target) if PixelLoss(kind) == PixelLoss.L1 else F.mse_loss(prediction, target)

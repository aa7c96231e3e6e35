"""A parameter-free stand-in model for scorers that need no reconstruction."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class IdentityModel(nn.Module):
    """Returns its input as the 'reconstruction'; used by the intensity-threshold baseline."""

    def forward(self, x: Tensor) -> Tensor:
        return x

    @torch.no_grad()
    def reconstruct(self, x: Tensor, num_samples: int = 1) -> Tensor:
        """(B, C, H, W) -> (N, B, C, H, W), copies of x."""
        return x.unsqueeze(0).expand(num_samples, *x.shape)

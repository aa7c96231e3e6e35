"""A convolutional autoencoder with a dense bottleneck (the AE baseline of Baur et al.)."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from dl_utils.param_ranges import PositiveInt, Widths


def _down(cin: int, cout: int, groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.GroupNorm(min(groups, cout), cout), nn.LeakyReLU(0.2))


def _up(cin: int, cout: int, groups: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), nn.GroupNorm(min(groups, cout), cout), nn.LeakyReLU(0.2))


class ConvAutoencoder(nn.Module):
    """x (B, C, H, W) in [0, 1] -> reconstruction (B, C, H, W) in [0, 1] through a `latent_dim` vector.

    GroupNorm instead of BatchNorm, so results do not depend on how a batch is split
    over distributed processes.
    """

    def __init__(self, in_channels: PositiveInt = 1, image_size: PositiveInt = 64,
                 channels: Widths = (32, 64, 128, 256), latent_dim: PositiveInt = 128,
                 norm_groups: PositiveInt = 8):
        super().__init__()
        factor = 2 ** len(channels)
        if image_size % factor:
            raise ValueError(f"image_size {image_size} must be divisible by 2**len(channels) = {factor}")
        self.bottom = image_size // factor
        self.channels = list(channels)
        widths = [in_channels, *channels]
        self.encoder = nn.Sequential(*[_down(a, b, norm_groups) for a, b in zip(widths[:-1], widths[1:])])
        flat = channels[-1] * self.bottom**2
        self.to_latent = nn.Linear(flat, latent_dim)
        self.from_latent = nn.Linear(latent_dim, flat)
        rev = list(reversed(channels))
        self.decoder = nn.Sequential(*[_up(a, b, norm_groups) for a, b in zip(rev[:-1], rev[1:])])
        self.head = nn.ConvTranspose2d(rev[-1], in_channels, 4, stride=2, padding=1)

    def encode(self, x: Tensor) -> Tensor:
        return self.to_latent(self.encoder(x).flatten(1))

    def decode(self, z: Tensor) -> Tensor:
        h = self.from_latent(z).view(z.shape[0], self.channels[-1], self.bottom, self.bottom)
        return torch.sigmoid(self.head(self.decoder(h)))

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    @torch.no_grad()
    def reconstruct(self, x: Tensor, num_samples: int = 1) -> Tensor:
        """(B, C, H, W) -> (N, B, C, H, W); deterministic, so the N copies are equal."""
        return self.forward(x).unsqueeze(0).expand(num_samples, *x.shape)

"""RA (reversed autoencoder) network: a Soft-IntroVAE-style residual encoder/decoder.

Bercea et al., "Generalizing Unsupervised Anomaly Detection: Towards Unbiased Pathology
Screening", MIDL 2023; the network follows Daniel & Tamar, "Soft-IntroVAE", CVPR 2021.

Shapes: images ``(B, C, S, S)`` in [0, 1] with ``S = image_size``; latents ``(B, latent_dim)``.
With ``L = len(channels)`` the encoder halves the size ``L`` times, so the bottleneck is
``(B, channels[-1], S / 2**L, S / 2**L)`` (4 x 4 for the paper's 128 px and 5 channel entries).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

RESIDUAL_KERNEL = 3
"""Kernel size of the two convolutions inside a residual block (Soft-IntroVAE)."""
POOL_FACTOR = 2
"""Down-/up-sampling factor of each encoder/decoder stage."""


class RAForward(NamedTuple):
    """Result of one stochastic pass: ``rec (B,C,S,S)``, ``mu``/``logvar``/``z (B,latent_dim)``,
    ``features``: the encoder's pooled maps, one per channel entry."""

    rec: Tensor
    mu: Tensor
    logvar: Tensor
    z: Tensor
    features: list[Tensor]


class ResidualBlock(nn.Module):
    """conv-BN-LeakyReLU-conv-BN plus a (1x1-projected if needed) identity, then LeakyReLU.

    ``(B, in_channels, H, W) -> (B, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, negative_slope: float = 0.2) -> None:
        super().__init__()
        pad = RESIDUAL_KERNEL // 2
        self.expand = (
            nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
            if in_channels != out_channels
            else nn.Identity()
        )
        self.conv1 = nn.Conv2d(in_channels, out_channels, RESIDUAL_KERNEL, padding=pad, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, RESIDUAL_KERNEL, padding=pad, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act = nn.LeakyReLU(negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, in, H, W) -> (B, out, H, W)``."""
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(out + self.expand(x))


class RAEncoder(nn.Module):
    """``(B, C, S, S) -> (mu, logvar (B, latent_dim), features)`` with ``len(channels)`` feature maps."""

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        channels: Sequence[int],
        latent_dim: int,
        conv_kernel: int,
        negative_slope: float,
    ) -> None:
        super().__init__()
        first = channels[0]
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, first, conv_kernel, padding=conv_kernel // 2, bias=False),
            nn.BatchNorm2d(first),
            nn.LeakyReLU(negative_slope),
        )
        self.pool = nn.AvgPool2d(POOL_FACTOR)
        self.stages = nn.ModuleList(
            ResidualBlock(c_in, c_out, negative_slope=negative_slope)
            for c_in, c_out in zip(channels[:-1], channels[1:])
        )
        self.final = ResidualBlock(channels[-1], channels[-1], negative_slope=negative_slope)
        bottleneck = image_size // POOL_FACTOR ** len(channels)
        self.fc = nn.Linear(channels[-1] * bottleneck * bottleneck, 2 * latent_dim)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        """``x (B, C, S, S) -> mu (B, z), logvar (B, z), features`` (after each pooling)."""
        y = self.pool(self.stem(x))
        features = [y]
        for stage in self.stages:
            y = self.pool(stage(y))
            features.append(y)
        y = self.final(y).flatten(1)
        mu, logvar = self.fc(y).chunk(2, dim=1)
        return mu, logvar, features


class RADecoder(nn.Module):
    """``z (B, latent_dim) -> (B, C, S, S)`` in (0, 1); mirrors :class:`RAEncoder`."""

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        channels: Sequence[int],
        latent_dim: int,
        conv_kernel: int,
        negative_slope: float,
    ) -> None:
        super().__init__()
        self.bottleneck = image_size // POOL_FACTOR ** len(channels)
        self.top_channels = channels[-1]
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, self.top_channels * self.bottleneck**2), nn.ReLU()
        )
        layers: list[nn.Module] = []
        c_in = self.top_channels
        for c_out in reversed(channels):
            layers += [
                ResidualBlock(c_in, c_out, negative_slope=negative_slope),
                nn.Upsample(scale_factor=POOL_FACTOR, mode="nearest"),
            ]
            c_in = c_out
        layers += [
            ResidualBlock(c_in, c_in, negative_slope=negative_slope),
            nn.Conv2d(c_in, in_channels, conv_kernel, padding=conv_kernel // 2),
            nn.Sigmoid(),
        ]
        self.main = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        """``z (B, latent_dim) -> (B, C, S, S)``."""
        y = self.fc(z).view(z.shape[0], self.top_channels, self.bottleneck, self.bottleneck)
        return self.main(y)


class RAModel(nn.Module):
    """The RA network (Soft-IntroVAE encoder/decoder whose encoder also returns its feature maps).

    Args:
        in_channels: image channels C.
        image_size: side S of the square input; must be a multiple of ``2**len(channels)``.
        channels: channels of the encoder stages (reversed in the decoder).
        latent_dim: size of z.
        conv_kernel: kernel of the first encoder and last decoder convolution.
        negative_slope: LeakyReLU slope.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int = 128,
        channels: Sequence[int] = (64, 128, 256, 512, 512),
        latent_dim: int = 128,
        conv_kernel: int = 5,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if not channels:
            raise ValueError("RAModel: channels must have at least one entry")
        if conv_kernel % 2 != 1:
            raise ValueError(f"RAModel: conv_kernel={conv_kernel} must be odd to keep the size")
        factor = POOL_FACTOR ** len(channels)
        if image_size < factor or image_size % factor != 0:
            raise ValueError(
                f"RAModel: image_size={image_size} must be a positive multiple of "
                f"{POOL_FACTOR}**len(channels)={factor} (channels={list(channels)})"
            )
        self.in_channels = in_channels
        self.image_size = image_size
        self.latent_dim = latent_dim
        args = (in_channels, image_size, channels, latent_dim, conv_kernel, negative_slope)
        self.encoder = RAEncoder(*args)
        self.decoder = RADecoder(*args)

    def _check_input(self, x: Tensor) -> None:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"RAModel expects (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor, list[Tensor]]:
        """``x (B, C, S, S) -> mu (B, z), logvar (B, z), features`` (``len(channels)`` maps)."""
        self._check_input(x)
        return self.encoder(x)

    def decode(self, z: Tensor) -> Tensor:
        """``z (B, latent_dim) -> (B, C, S, S)`` in (0, 1)."""
        return self.decoder(z)

    @staticmethod
    def reparameterize(mu: Tensor, logvar: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``z = mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)``; shapes ``(B, z)``."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + eps * torch.exp(0.5 * logvar)

    def forward(self, x: Tensor, generator: torch.Generator | None = None) -> RAForward:
        """Training pass with a sampled latent: ``x (B, C, S, S) -> RAForward``."""
        mu, logvar, features = self.encode(x)
        z = self.reparameterize(mu, logvar, generator)
        return RAForward(self.decode(z), mu, logvar, z, features)

    def reconstruct(self, x: Tensor, num_samples: int = 1) -> Tensor:
        """Deterministic reconstruction from the latent mean (no sampling at test time).

        ``x (B, C, S, S) -> (num_samples, B, C, S, S)``: the same image repeated.
        """
        if num_samples < 1:
            raise ValueError(f"RAModel.reconstruct: num_samples={num_samples} must be >= 1")
        mu, _, _ = self.encode(x)
        rec = self.decode(mu)
        return rec.unsqueeze(0).expand(num_samples, *rec.shape).clone()

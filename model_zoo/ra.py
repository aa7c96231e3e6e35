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

from dl_utils.param_ranges import NonNegativeFloat, PositiveInt, Widths

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

    def __init__(
        self, in_channels: int, out_channels: int, *, negative_slope: float = 0.2, project: bool | None = None,
    ) -> None:
        """project: 1x1 projection on the identity path; None = only if the channels differ."""
        super().__init__()
        pad = RESIDUAL_KERNEL // 2
        project = in_channels != out_channels if project is None else project
        self.expand = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False) if project else nn.Identity()
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


SMALL_INT_CACHE_MAX = 256
"""CPython caches ints up to 256: above it, two equal channel counts read from YAML are
different objects, so the published `inc is not outc` test is True for 512 -> 512."""


def stage_projects(c_in: int, c_out: int, published_skip_convs: bool) -> bool:
    """Whether a stage block between two channel entries gets a 1x1 identity projection.

    Ours: only if the counts differ. Published (ci-ber/RA `ResidualBlock`, `inc is not outc`
    on YAML-parsed ints): also for equal counts above 256, e.g. the two 512 -> 512 stages.
    """
    return c_in != c_out or (published_skip_convs and c_in > SMALL_INT_CACHE_MAX)


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
        published_skip_convs: bool = False,
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
            ResidualBlock(
                c_in, c_out, negative_slope=negative_slope,
                project=stage_projects(c_in, c_out, published_skip_convs),
            )
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
        published_skip_convs: bool = False,
    ) -> None:
        super().__init__()
        self.bottleneck = image_size // POOL_FACTOR ** len(channels)
        self.top_channels = channels[-1]
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, self.top_channels * self.bottleneck**2), nn.ReLU()
        )
        layers: list[nn.Module] = []
        c_in = self.top_channels
        for i, c_out in enumerate(reversed(channels)):
            # the first block maps the top entry onto itself (the same int object in the original)
            project = None if i == 0 else stage_projects(c_in, c_out, published_skip_convs)
            layers += [
                ResidualBlock(c_in, c_out, negative_slope=negative_slope, project=project),
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
        published_skip_convs: the network as the published code builds it from its YAML:
            1x1 identity projections also on equal-count stages above 256 channels (two extra
            512 -> 512 convolutions at the paper's size: 29,955,073 parameters instead of
            29,430,785), so the authors' weights load (see `state_dict_from_original`).
    """

    def __init__(
        self,
        in_channels: PositiveInt = 1,
        image_size: PositiveInt = 128,
        channels: Widths = (64, 128, 256, 512, 512),
        latent_dim: PositiveInt = 128,
        conv_kernel: PositiveInt = 5,
        negative_slope: NonNegativeFloat = 0.2,
        published_skip_convs: bool = False,
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
        args = (in_channels, image_size, channels, latent_dim, conv_kernel, negative_slope, published_skip_convs)
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

    def state_dict_from_original(self, theirs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The published RA's state dict (what ci-ber/RA saves as ``model_weights``) -> ours (pure).

        Raises ``ValueError`` when theirs has the 1x1 projections of equal-count stages and
        this model was built without them (``published_skip_convs``), instead of a key report.
        """
        out, own = state_dict_from_original(theirs), self.state_dict().keys()
        extra = sorted(k for k in out if k.endswith(".expand.weight") and k not in own)
        if extra:
            raise ValueError(f"the weights hold 1x1 skip projections ({', '.join(extra)}) that RAModel builds only "
                             "with published_skip_convs: true; set it in the model params")
        return out


def state_dict_from_original(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """The published RA's state dict (ci-ber/RA `model_zoo/ra.py`, keys `encoder.main.res_in_64...`)
    renamed onto :class:`RAModel` (build it with ``published_skip_convs=True``), tensors unchanged.

    Its encoder is ``main.0`` conv, ``main.1`` BN, then one ``res_in_<size>`` block per stage
    and a last one (our ``stages.*`` and ``final``); its decoder is ``fc``, one ``res_in_<size>``
    block per channel entry plus a last one (our ``main.0, main.2, ...``), then ``predict``.
    """
    blocks: dict[str, list[str]] = {"encoder": [], "decoder": []}
    for key in state_dict:
        part, _, rest = key.partition(".main.")
        name = rest.split(".", 1)[0]
        if rest and name.startswith("res_in_") and name not in blocks[part]:
            blocks[part].append(name)
    rename = {("encoder", "0"): "encoder.stem.0", ("encoder", "1"): "encoder.stem.1"}
    for i, name in enumerate(blocks["encoder"]):
        last = i == len(blocks["encoder"]) - 1
        rename[("encoder", name)] = "encoder.final" if last else f"encoder.stages.{i}"
    for i, name in enumerate(blocks["decoder"]):
        rename[("decoder", name)] = f"decoder.main.{2 * i}"
    rename[("decoder", "predict")] = f"decoder.main.{2 * len(blocks['decoder']) - 1}"
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        part, _, rest = key.partition(".main.")
        if not rest:  # encoder.fc.*, decoder.fc.0.*: same names
            out[key] = value
            continue
        module, _, leaf = rest.partition(".")
        target = rename.get((part, module))
        if target is None:  # not one of theirs: kept, so a strict load names it
            out[key] = value
            continue
        out[f"{target}.{leaf.replace('conv_expand.', 'expand.')}"] = value
    return out

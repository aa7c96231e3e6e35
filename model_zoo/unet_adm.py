"""ADM-style UNet (OpenAI guided-diffusion family) for 2D slices.

The network maps ``(x_t, t, cond)`` to a tensor of the input's spatial size and knows
nothing about the noise schedule (``model_zoo.gaussian_diffusion`` owns it).

Attention resolutions are feature-map sizes in pixels (``image_size // 2**level``).
The middle block always attends, as in ADM. The DDPM/cDDPM code passed downsample
factors (3, 6, 12) that never occur, so attention ran only at the 24 x 24 bottleneck of
a 96 px input: that is ``attention_resolutions=()`` here, the default. A requested size
that never occurs raises instead of being ignored silently.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dl_utils.errors import UserInputError
from dl_utils.param_groups import group_flat_params
from dl_utils.param_ranges import PositiveInt, Widths
from dl_utils.param_types import Ge, Lt


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding, ADM order ``[cos, sin]``: t (B,) -> (B, dim) float32."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half
    )
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def group_norm(channels: int, num_groups: int) -> nn.GroupNorm:
    """GroupNorm with ``num_groups`` groups, reduced to gcd(channels, num_groups) for narrow layers.

    At the paper widths (multiples of 32) this is exactly GroupNorm(32); tiny test widths
    (e.g. 8 channels) fall back to the largest group count that divides the width.
    """
    if num_groups < 1:
        raise UserInputError(f"UNetADM: num_groups={num_groups} must be >= 1")
    return nn.GroupNorm(math.gcd(channels, num_groups), channels)


def _zero(module: nn.Module) -> nn.Module:
    """Zero-initialise a module's parameters (ADM's residual output layers)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class Resample(StrEnum):
    """What a res block does to the resolution before its first conv."""

    NONE = "none"
    DOWN = "down"  # 2 x 2 average pooling
    UP = "up"  # nearest-neighbour x 2


class ResBlock(nn.Module):
    """Residual block with timestep/condition embedding and optional 2x up/down sampling.

    x (B, in_ch, H, W), emb (B, emb_dim) -> (B, out_ch, H', W'), H' = H/2, H or 2H.
    With ``use_scale_shift_norm``: h = GroupNorm(h) * (1 + gamma) + beta (AdaGN / FiLM).
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        emb_dim: int,
        dropout: float = 0.0,
        use_scale_shift_norm: bool = True,
        resample: Resample = Resample.NONE,
        num_groups: int = 32,
    ) -> None:
        super().__init__()
        self.use_scale_shift_norm = use_scale_shift_norm
        self.resample = Resample(resample)
        self.norm_in = group_norm(in_ch, num_groups)
        self.conv_in = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, 2 * out_ch if use_scale_shift_norm else out_ch)
        self.norm_out = group_norm(out_ch, num_groups)
        self.dropout = nn.Dropout(dropout)
        self.conv_out = _zero(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def _resample(self, x: Tensor) -> Tensor:
        if self.resample is Resample.DOWN:
            return F.avg_pool2d(x, 2)
        if self.resample is Resample.UP:
            return F.interpolate(x, scale_factor=2, mode="nearest")
        return x

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = F.silu(self.norm_in(x))
        h = self.conv_in(self._resample(h))
        x = self._resample(x)
        e = self.emb_proj(F.silu(emb))[:, :, None, None].to(h.dtype)
        if self.use_scale_shift_norm:
            gamma, beta = e.chunk(2, dim=1)
            h = self.norm_out(h) * (1 + gamma) + beta
        else:
            h = self.norm_out(h + e)
        h = self.conv_out(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over spatial positions: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, num_head_channels: int = 64, num_groups: int = 32) -> None:
        super().__init__()
        if channels % num_head_channels:
            raise UserInputError(
                f"UNetADM: width {channels} is not divisible by num_head_channels={num_head_channels}; "
                "choose num_head_channels dividing base_channels * channel_mult"
            )
        self.num_heads = channels // num_head_channels
        self.norm = group_norm(channels, num_groups)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = _zero(nn.Conv1d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        q, k, v = self.qkv(self.norm(flat)).chunk(3, dim=1)  # each (B, C, L)

        def heads(z: Tensor) -> Tensor:  # (B, C, L) -> (B, heads, L, C / heads)
            return z.reshape(b, self.num_heads, c // self.num_heads, h * w).transpose(2, 3)

        a = F.scaled_dot_product_attention(heads(q), heads(k), heads(v))
        a = a.transpose(2, 3).reshape(b, c, h * w)
        return (flat + self.proj_out(a)).reshape(b, c, h, w)


class _Stage(nn.Module):
    """A res block, optionally followed by attention: (x, emb) -> x."""

    def __init__(self, block: nn.Module, attn: nn.Module | None = None, takes_skip: bool = False) -> None:
        super().__init__()
        self.block = block
        self.attn = attn
        self.takes_skip = takes_skip  # decoder stages concatenate an encoder skip first

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        x = self.block(x, emb) if isinstance(self.block, ResBlock) else self.block(x)
        return self.attn(x) if self.attn is not None else x


def _mlp(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))


@dataclass(frozen=True)
class UNetArchitecture:
    """The UNet's shape (paper: 128 channels, (1, 2, 2), 3 res blocks, ~37.5 M parameters at 96 px).

    base_channels: width of the first level; channel_mult: width multipliers per level, a 2x
    downsampling between levels; num_res_blocks: res blocks per level on the way down (up: one
    more); attention_resolutions: feature-map sizes (pixels, for ``image_size`` inputs) at which
    every res block is followed by attention, each ``image_size // 2**level`` for some level (the
    middle block always attends); num_head_channels: channels per attention head; dropout: in
    the res blocks; use_scale_shift_norm: FiLM through GroupNorm (AdaGN) instead of adding the
    embedding; resblock_updown: resample with res blocks (else strided conv / nearest + conv);
    num_groups: GroupNorm groups (reduced to a divisor for narrow layers)."""

    base_channels: PositiveInt = 128
    channel_mult: Widths = (1, 2, 2)
    num_res_blocks: PositiveInt = 3
    attention_resolutions: Sequence[PositiveInt] = ()
    num_head_channels: PositiveInt = 64
    dropout: Annotated[float, Ge(0), Lt(1)] = 0.0
    use_scale_shift_norm: bool = True
    resblock_updown: bool = True
    num_groups: PositiveInt = 32

    def __post_init__(self) -> None:
        object.__setattr__(self, "channel_mult", tuple(self.channel_mult))
        object.__setattr__(self, "attention_resolutions", tuple(self.attention_resolutions))


ARCHITECTURE = "architecture"
UNET_FLAT_KEYS: dict[str, tuple[str, ...]] = {f.name: (ARCHITECTURE, f.name) for f in fields(UNetArchitecture)}
"""An earlier config version's flat UNetADM params (``base_channels``, ...) -> ``architecture``."""


class UNetADM(nn.Module):
    """ADM UNet: x (B, in_channels, H, W), t (B,) long, cond (B, cond_dim) | None
    -> (B, out_channels, H, W).

    Args:
        in_channels, out_channels: image channels in and out.
        image_size: the training slice size; fixes which sizes the levels have.
        architecture: widths, depth, attention, normalisation (``UNetArchitecture``).
        cond_dim: size of a condition vector; emb = concat(MLP_t(t), MLP_c(cond)) of
            width 8 * base_channels. None: emb = MLP_t(t), width 4 * base_channels.
    """

    def __init__(
        self,
        in_channels: PositiveInt = 1,
        out_channels: PositiveInt = 1,
        image_size: PositiveInt = 96,
        architecture: UNetArchitecture = UNetArchitecture(),
        cond_dim: PositiveInt | None = None,
    ) -> None:
        super().__init__()
        arch = self.architecture = architecture
        base_channels, channel_mult, num_res_blocks, num_groups = (
            arch.base_channels, tuple(arch.channel_mult), arch.num_res_blocks, arch.num_groups)
        levels = len(channel_mult)
        if levels < 1 or num_res_blocks < 1:
            raise UserInputError("UNetADM: channel_mult needs >= 1 level and num_res_blocks >= 1")
        if image_size % 2 ** (levels - 1):
            raise UserInputError(
                f"UNetADM: image_size={image_size} is not divisible by 2**{levels - 1}; "
                "use a size divisible by the total downsampling"
            )
        sizes = [image_size // 2**lvl for lvl in range(levels)]
        unknown = sorted(set(arch.attention_resolutions) - set(sizes))
        if unknown:
            raise UserInputError(
                f"UNetADM: attention_resolutions {unknown} never occur; the feature-map sizes "
                f"at image_size={image_size} are {sizes}"
            )
        self.base_channels = base_channels
        self.cond_dim = cond_dim
        self.num_levels = levels
        self.attention_sizes = tuple(sorted(set(arch.attention_resolutions), reverse=True))
        emb_half = 4 * base_channels
        self.time_embed = _mlp(base_channels, emb_half)
        self.cond_embed = _mlp(cond_dim, emb_half) if cond_dim is not None else None
        emb_dim = emb_half * (2 if cond_dim is not None else 1)

        def res(i: int, o: int, resample: Resample = Resample.NONE) -> ResBlock:
            return ResBlock(i, o, emb_dim, arch.dropout, arch.use_scale_shift_norm, resample, num_groups)

        def attn(ch: int, size: int) -> AttentionBlock | None:
            return AttentionBlock(ch, arch.num_head_channels, num_groups) if size in self.attention_sizes else None

        def resample(ch: int, kind: Resample) -> nn.Module:
            if arch.resblock_updown:
                return res(ch, ch, kind)
            if kind is Resample.DOWN:
                return nn.Conv2d(ch, ch, 3, stride=2, padding=1)
            return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(ch, ch, 3, padding=1))

        self.input_conv = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        self.down = nn.ModuleList()
        skip_chs = [base_channels]
        ch = base_channels
        for lvl, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                self.down.append(_Stage(res(ch, base_channels * mult), attn(base_channels * mult, sizes[lvl])))
                ch = base_channels * mult
                skip_chs.append(ch)
            if lvl != levels - 1:
                self.down.append(_Stage(resample(ch, Resample.DOWN)))
                skip_chs.append(ch)
        self.middle = nn.ModuleList([
            _Stage(res(ch, ch), AttentionBlock(ch, arch.num_head_channels, num_groups)),
            _Stage(res(ch, ch)),
        ])
        self.up = nn.ModuleList()
        for lvl in reversed(range(levels)):
            out_ch = base_channels * channel_mult[lvl]
            for i in range(num_res_blocks + 1):
                stage = _Stage(res(ch + skip_chs.pop(), out_ch), attn(out_ch, sizes[lvl]), takes_skip=True)
                ch = out_ch
                self.up.append(stage)
                if lvl and i == num_res_blocks:
                    self.up.append(_Stage(resample(ch, Resample.UP)))
        self.out = nn.Sequential(
            group_norm(ch, num_groups), nn.SiLU(), _zero(nn.Conv2d(ch, out_channels, 3, padding=1))
        )

    @staticmethod
    def upgrade_params(params: Mapping[str, Any]) -> dict[str, Any]:
        """Params of an earlier config version (the architecture's fields flat) in today's groups."""
        return group_flat_params(params, UNET_FLAT_KEYS, "UNetADM")

    def embed(self, t: Tensor, cond: Tensor | None) -> Tensor:
        """t (B,), cond (B, cond_dim) | None -> emb (B, 4 or 8 * base_channels)."""
        emb = self.time_embed(timestep_embedding(t, self.base_channels))
        if self.cond_embed is None:
            if cond is not None:
                raise ValueError("UNetADM was built with cond_dim=None but got a condition")
            return emb
        if cond is None:
            raise ValueError(f"UNetADM was built with cond_dim={self.cond_dim} and needs a condition")
        return torch.cat([emb, self.cond_embed(cond)], dim=1)

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        """x (B, C, H, W), t (B,) long, cond (B, cond_dim) | None -> (B, out_channels, H, W)."""
        if x.shape[-1] % 2 ** (self.num_levels - 1) or x.shape[-2] % 2 ** (self.num_levels - 1):
            raise ValueError(f"UNetADM: input size {tuple(x.shape[-2:])} not divisible by 2**{self.num_levels - 1}")
        emb = self.embed(t, cond)
        h = self.input_conv(x)
        skips = [h]
        for stage in self.down:
            h = stage(h, emb)
            skips.append(h)
        for stage in self.middle:
            h = stage(h, emb)
        for stage in self.up:
            if stage.takes_skip:
                h = torch.cat([h, skips.pop()], dim=1)
            h = stage(h, emb)
        return self.out(h)

    def state_dict_from_original(self, theirs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The originals' OpenAI ``UNetModel`` state dict (keys ``input_blocks.*``, ``middle_block.*``,
        ``output_blocks.*``, ``time_embed.*``, ``label_emb.*``, ``out.*``) -> ours; fp16 tensors
        (OpenAI's ``convert_to_fp16``; a no-op in the cDDPM code) become fp32.

        A key with no counterpart keeps its name, so a strict load reports it. Pure: no I/O.
        """
        stages = _stage_names(self)
        out: dict[str, Tensor] = {}
        for key, value in theirs.items():
            ours = openai_unet_key(key, *stages)
            out[key if ours is None else ours] = value.float() if value.is_floating_point() else value
        return out


# ---- the originals' OpenAI-UNet names (Conditioned-Diffusion-Models-UAD src/models/modules/OpenAI_Unet.py)
OPENAI_RESBLOCK_PARTS = {"in_layers.0": "norm_in", "in_layers.2": "conv_in", "emb_layers.1": "emb_proj",
                         "out_layers.0": "norm_out", "out_layers.3": "conv_out", "skip_connection": "skip"}
"""Their ResBlock's sub-module names -> ours."""
OPENAI_RESAMPLE_CONVS = {"op": "block", "conv": "block.1"}
"""Their Downsample ``op`` / Upsample ``conv`` (``resblock_updown`` false) -> our plain resample stage."""


def _stage_names(unet: UNetADM) -> tuple[list[str], list[str], list[str]]:
    """Our down stages, main up stages (take a skip) and the upsample stage after each main one ('' if none)."""
    down = [f"down.{i}" for i in range(len(unet.down))]
    main: list[str] = []
    after: list[str] = []
    for i, stage in enumerate(unet.up):
        if stage.takes_skip:
            main.append(f"up.{i}")
            after.append("")
        else:
            after[-1] = f"up.{i}"
    return down, main, after


def _block_part(rest: str) -> tuple[str, str]:
    """'in_layers.2.weight' -> ('conv_in', 'weight') for res blocks; ('', rest) otherwise (attention)."""
    for theirs, ours in OPENAI_RESBLOCK_PARTS.items():
        if rest.startswith(theirs + "."):
            return ours, rest[len(theirs) + 1:]
    return "", rest


def _resample_part(rest: str) -> str | None:
    """'op.weight' -> 'block.weight' (strided conv), 'conv.bias' -> 'block.1.bias' (nearest + conv); else None."""
    head, _, leaf = rest.partition(".")
    return f"{OPENAI_RESAMPLE_CONVS[head]}.{leaf}" if head in OPENAI_RESAMPLE_CONVS and leaf else None


def openai_unet_key(key: str, down: list[str], main: list[str], after: list[str]) -> str | None:
    """One OpenAI-UNet key -> ours, given our stage names (`_stage_names`); None if it has no counterpart.

    Their ``input_blocks`` are the input conv, then our ``down`` stages in order; their
    ``middle_block`` is res, attention, res; their ``output_blocks.i`` is our i-th main up
    stage (res block, attention) plus, at a level's end, the upsampling stage after it.
    """
    if key.startswith(("time_embed.", "out.")):
        return key
    if key.startswith("label_emb."):
        return "cond_embed." + key[len("label_emb."):]
    match = re.fullmatch(r"input_blocks\.(\d+)\.(\d+)\.(.+)", key)
    if match:
        block, rest = int(match[1]), match[3]
        if block == 0:
            return "input_conv." + rest
        if block > len(down):
            return None
        resample = _resample_part(rest)
        if resample is not None:
            return f"{down[block - 1]}.{resample}"
        part, leaf = _block_part(rest)
        return f"{down[block - 1]}.block.{part}.{leaf}" if part else f"{down[block - 1]}.attn.{leaf}"
    match = re.fullmatch(r"middle_block\.([012])\.(.+)", key)
    if match:
        target = {"0": "middle.0.block", "1": "middle.0.attn", "2": "middle.1.block"}[match[1]]
        part, leaf = _block_part(match[2])
        return f"{target}.{part}.{leaf}" if part else f"{target}.{leaf}"
    match = re.fullmatch(r"output_blocks\.(\d+)\.(\d+)\.(.+)", key)
    if match:
        block, layer, rest = int(match[1]), int(match[2]), match[3]
        if block >= len(main):
            return None
        resample = _resample_part(rest)
        if resample is not None and layer > 0 and after[block]:
            return f"{after[block]}.{resample}"
        part, leaf = _block_part(rest)
        if not part:  # attention after the res block
            return f"{main[block]}.attn.{leaf}"
        if layer == 0:
            return f"{main[block]}.block.{part}.{leaf}"
        return f"{after[block]}.block.{part}.{leaf}" if after[block] else None  # the upsampling res block
    return None

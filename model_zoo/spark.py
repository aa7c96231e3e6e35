"""SparK masked pre-training of the cDDPM condition encoder (Tian et al., ICLR 2023).

Random patches of the input are masked; the ResNet runs "sparsely": after every conv,
pooling and batch-norm, masked positions are set to zero, and batch-norm statistics
are computed over visible positions only, so masked regions never leak into the
features. Masked positions of the 4 feature maps (strides 4..32) are filled with a
learned mask token per scale, a light UNet-like decoder upsamples back to the input,
and the L2 loss is taken on masked patches only.

The patch grid is the encoder's stride-32 grid by default (3 x 3 at 96 px); a finer
``patch_size`` (16, 8, ...) masks on a finer grid, upsampled (nearest) to finer
feature maps and max-pooled to coarser ones (a coarse position is visible if any of
its patches is).

``encoder_state_dict()`` is the ResNet trunk's state dict, the same module names as
``ConditionEncoder.backbone``, for ``ConditionalDDPM.load_encoder_weights``.

The originals' SparK (cDDPM code) regresses raw pixels (``normalize_target_patches``
false), and its timm ResNet-50 has stochastic depth 0.05 and zero-initialised last BNs
(``drop_path_rate``, ``zero_init_last``, as ``ConditionEncoder``).
"""

from __future__ import annotations

import itertools
from typing import Annotated

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.ops import stochastic_depth

from dl_utils.errors import UserInputError
from dl_utils.param_ranges import OpenFraction, PositiveInt
from dl_utils.param_types import Ge, Lt
from model_zoo.condition_encoder import (
    ResNetArch,
    block_drop_rates,
    build_resnet_backbone,
    stage_channels,
)

ENCODER_STRIDE = 32


def mask_at(active: Tensor, size: tuple[int, int]) -> Tensor:
    """Visible-position mask (B, 1, g, g) bool resampled to ``size`` -> (B, 1, *size) bool."""
    g = active.shape[-1]
    if size[-1] >= g:
        return F.interpolate(active.float(), size=size, mode="nearest").bool()
    return F.adaptive_max_pool2d(active.float(), size).bool()


def sparse_batch_norm(bn: nn.BatchNorm2d, x: Tensor, active: Tensor) -> Tensor:
    """Batch-norm over visible positions only: x (B, C, H, W), active (B, 1, H, W) bool.

    Statistics (and running-stat updates) use only visible positions; masked outputs are 0.
    """
    sel = active[:, 0]  # (B, H, W)
    visible = x.permute(0, 2, 3, 1)[sel]  # (N, C)
    if bn.training and bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
    momentum = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
    normed = F.batch_norm(
        visible,
        bn.running_mean,
        bn.running_var,
        bn.weight,
        bn.bias,
        training=bn.training or not bn.track_running_stats,
        momentum=momentum,
        eps=bn.eps,
    )
    out = x.new_zeros(x.shape[0], x.shape[2], x.shape[3], x.shape[1])
    out[sel] = normed.to(out.dtype)
    return out.permute(0, 3, 1, 2)


class _SparseRunner:
    """Runs torchvision ResNet modules with masking after every conv / pool / BN."""

    def __init__(self, active: Tensor, drop_path_rate: float = 0.0) -> None:
        self.active = active  # (B, 1, g, g) bool, visible patches
        self.drop_path_rate = drop_path_rate
        self._cache: dict[tuple[int, int], Tensor] = {}

    def mask(self, size: tuple[int, int]) -> Tensor:
        if size not in self._cache:
            self._cache[size] = mask_at(self.active, size)
        return self._cache[size]

    def conv(self, module: nn.Module, x: Tensor) -> Tensor:
        y = module(x)
        return y * self.mask(tuple(y.shape[-2:]))

    def bn(self, module: nn.BatchNorm2d, x: Tensor) -> Tensor:
        return sparse_batch_norm(module, x, self.mask(tuple(x.shape[-2:])))

    def block(self, blk: BasicBlock | Bottleneck, x: Tensor, drop_prob: float = 0.0) -> Tensor:
        """A torchvision BasicBlock or Bottleneck, sparse, with stochastic depth (training)."""
        out = F.relu(self.bn(blk.bn1, self.conv(blk.conv1, x)))
        out = self.bn(blk.bn2, self.conv(blk.conv2, out))
        if isinstance(blk, Bottleneck):
            out = self.bn(blk.bn3, self.conv(blk.conv3, F.relu(out)))
        out = stochastic_depth(out, drop_prob, "row", training=blk.training)
        identity = x
        if blk.downsample is not None:
            conv, bn = blk.downsample[0], blk.downsample[1]
            identity = self.bn(bn, self.conv(conv, x))
        return F.relu(out + identity)

    def features(self, net: nn.Module, x: Tensor) -> list[Tensor]:
        """x (B, C, H, W) -> sparse features of layer1..layer4."""
        h = F.relu(self.bn(net.bn1, self.conv(net.conv1, x)))
        h = self.conv(net.maxpool, h)
        rates = iter(block_drop_rates(net, self.drop_path_rate))
        feats = []
        for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
            for blk in layer:
                h = self.block(blk, h, next(rates))
            feats.append(h)
        return feats


class _UpBlock(nn.Module):
    """2x transposed-conv upsampling then two 3x3 conv-BN-ReLU6: (B, cin, h, w) -> (B, cout, 2h, 2w)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin, kernel_size=4, stride=2, padding=1)
        self.conv = nn.Sequential(
            nn.Conv2d(cin, cin, 3, padding=1, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(inplace=True),
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.up(x))


class LightDecoder(nn.Module):
    """SparK's light decoder: 5 upsampling stages from stride 32 to 1, adding the
    projected encoder features of strides 32, 16, 8, 4 before the first four.

    feats [(B, width, H/32), (B, width/2, H/16), ...] -> (B, out_channels, H, W).
    """

    def __init__(self, width: int = 512, out_channels: int = 1, stages: int = 5) -> None:
        super().__init__()
        chans = [max(width // 2**i, 1) for i in range(stages + 1)]
        self.stages = nn.ModuleList(_UpBlock(a, b) for a, b in itertools.pairwise(chans))
        self.proj = nn.Conv2d(chans[-1], out_channels, 1)

    def forward(self, feats: list[Tensor]) -> Tensor:
        x = feats[0]
        for i, stage in enumerate(self.stages):
            if 0 < i < len(feats):
                x = x + feats[i]
            x = stage(x)
        return self.proj(x)


class SparkPretrainer(nn.Module):
    """SparK pre-training of a ResNet condition encoder.

    Args:
        encoder_arch: "resnet18" | "resnet34" | "resnet50", as ``ConditionEncoder``.
        in_channels: image channels.
        image_size: training slice size (a multiple of 32).
        mask_ratio: fraction of patches masked (SparK 0.6; cDDPM 0.65).
        patch_size: mask grid cell in pixels, dividing 32 (default 32, the encoder stride).
        decoder_width: channels of the decoder's first stage (halved per stage).
        normalize_target_patches: regress per-patch standardised pixels (SparK default;
            the cDDPM originals: false, raw pixels).
        drop_path_rate: stochastic depth of the encoder's last block (originals 0.05).
        zero_init_last: zero-initialise the last BN of each encoder block (originals true).
    """

    def __init__(
        self,
        encoder_arch: ResNetArch = ResNetArch.RESNET50,
        in_channels: PositiveInt = 1,
        image_size: PositiveInt = 96,
        mask_ratio: OpenFraction = 0.65,
        patch_size: PositiveInt = 32,
        decoder_width: PositiveInt = 512,
        normalize_target_patches: bool = True,
        drop_path_rate: Annotated[float, Ge(0), Lt(1)] = 0.0,
        zero_init_last: bool = False,
    ) -> None:
        super().__init__()
        if patch_size < 1 or ENCODER_STRIDE % patch_size or image_size % ENCODER_STRIDE:
            raise UserInputError(
                f"SparkPretrainer: patch_size={patch_size} must divide {ENCODER_STRIDE} and "
                f"image_size={image_size} must be a multiple of {ENCODER_STRIDE}"
            )
        if not 0.0 < mask_ratio < 1.0:
            raise UserInputError(f"SparkPretrainer: mask_ratio={mask_ratio} must be in (0, 1)")
        if not 0.0 <= drop_path_rate < 1.0:
            raise UserInputError(f"SparkPretrainer: drop_path_rate={drop_path_rate} must be in [0, 1)")
        self.backbone = build_resnet_backbone(encoder_arch, in_channels, zero_init_last)
        self.drop_path_rate = drop_path_rate
        self.patch_size = patch_size
        self.grid = image_size // patch_size
        self.num_visible = max(1, round(self.grid**2 * (1 - mask_ratio)))
        self.normalize_target_patches = normalize_target_patches
        enc = list(reversed(stage_channels(self.backbone)))  # stride 32, 16, 8, 4
        dec = [decoder_width // 2**i for i in range(4)]
        self.enc_norms = nn.ModuleList(nn.BatchNorm2d(c) for c in enc)
        self.mask_tokens = nn.ParameterList(
            nn.Parameter(nn.init.trunc_normal_(torch.zeros(1, c, 1, 1), std=0.02, a=-0.02, b=0.02)) for c in enc
        )
        self.projections = nn.ModuleList(
            nn.Conv2d(c, d, kernel_size=1 if i == 0 else 3, padding=0 if i == 0 else 1)
            for i, (c, d) in enumerate(zip(enc, dec))
        )
        self.decoder = LightDecoder(decoder_width, in_channels)

    def random_mask(self, batch: int, device: torch.device, generator: torch.Generator | None = None) -> Tensor:
        """Visible-patch mask (B, 1, g, g) bool with ``num_visible`` visible patches each."""
        gen_device = generator.device if generator is not None else device
        order = torch.rand(batch, self.grid**2, generator=generator, device=gen_device).argsort(dim=1)
        active = torch.zeros(batch, self.grid**2, dtype=torch.bool, device=gen_device)
        active.scatter_(1, order[:, : self.num_visible], True)
        return active.reshape(batch, 1, self.grid, self.grid).to(device)

    def encode(self, x: Tensor, active: Tensor) -> list[Tensor]:
        """Sparse encoder: x (B, C, H, W), active (B, 1, g, g) -> [layer1 .. layer4] features,
        exactly zero at masked positions."""
        runner = _SparseRunner(active, self.drop_path_rate)
        return runner.features(self.backbone, x * runner.mask(tuple(x.shape[-2:])))

    def forward(self, x: Tensor, active: Tensor) -> Tensor:
        """Reconstruction of x (B, C, H, W) from its visible patches -> (B, C, H, W)."""
        feats = list(reversed(self.encode(x, active)))  # stride 32 first
        to_dec = []
        for feat, norm, token, proj in zip(feats, self.enc_norms, self.mask_tokens, self.projections):
            vis = mask_at(active, tuple(feat.shape[-2:]))
            feat = torch.where(vis, sparse_batch_norm(norm, feat, vis), token.to(feat.dtype))
            to_dec.append(proj(feat))
        return self.decoder(to_dec)

    def _patchify(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, g*g, C*p*p)."""
        b, c, h, w = x.shape
        p = self.patch_size
        x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b, (h // p) * (w // p), c * p * p)

    def training_loss(self, x: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """x (B, C, H, W) in [0, 1] -> {"loss": L2 on masked patches}."""
        if x.shape[-1] != self.grid * self.patch_size or x.shape[-2] != self.grid * self.patch_size:
            size = self.grid * self.patch_size
            raise ValueError(f"SparkPretrainer: input {tuple(x.shape[-2:])} != image_size {size}")
        return {"loss": self.masked_loss(x, self.random_mask(x.shape[0], x.device, generator))}

    def masked_loss(self, x: Tensor, active: Tensor) -> Tensor:
        """L2 on the masked patches of x (B, C, H, W) for the visible-patch mask active (B, 1, g, g)."""
        rec, target = self._patchify(self(x, active)), self._patchify(x)
        if self.normalize_target_patches:
            mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        per_patch = ((rec - target) ** 2).mean(-1)  # (B, g*g)
        masked = (~active).reshape(x.shape[0], -1).to(per_patch.dtype)
        return (per_patch * masked).sum() / masked.sum().clamp_min(1.0)

    def encoder_state_dict(self) -> dict[str, Tensor]:
        """The ResNet trunk weights, keys as ``ConditionEncoder.backbone`` (detached copies)."""
        return {k: v.detach().clone() for k, v in self.backbone.state_dict().items()}

    def state_dict_from_original(self, theirs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The originals' Spark_2D Lightning ``state_dict`` (``model.`` + SparK_2D) -> ours (pure).

        Their trunk ``sparse_encoder.sp_cnn`` (its classifier ``fc`` dropped), ``en_de_norms``,
        ``en_de_lins``, ``mask_tokens`` and ``dense_decoder.dec.i.{up, conv.0.b}`` / ``.proj`` are
        our ``backbone``, ``enc_norms``, ``projections``, ``mask_tokens`` and
        ``decoder.stages.i.{up, conv}`` / ``.proj``. Their first projection is an identity when
        the encoder is as wide as the decoder (ResNet-18/34 at width 512): ours is a 1x1 conv,
        so it gets the identity weights. Their constant buffers (``imn_m``, ``imn_s``,
        ``norm_black``, ``pos_embeds``) are dropped; any other key keeps its name.
        """
        renames = (("model.sparse_encoder.sp_cnn.", "backbone."), ("model.en_de_norms.", "enc_norms."),
                   ("model.en_de_lins.", "projections."), ("model.mask_tokens.", "mask_tokens."),
                   ("model.dense_decoder.proj.", "decoder.proj."), ("model.dense_decoder.dec.", "decoder.stages."))
        dropped = ("model.sparse_encoder.sp_cnn.fc.", "model.imn_m", "model.imn_s", "model.norm_black",
                   "model.pos_embeds.")
        out: dict[str, Tensor] = {}
        for key, value in theirs.items():
            if key.startswith(dropped):
                continue
            prefix, ours = next(((p, o) for p, o in renames if key.startswith(p)), ("", ""))
            rest = key[len(prefix):]
            if ours == "decoder.stages.":  # <i>.conv.0.b.<j>. -> <i>.conv.<j>. (their single UNetBlock2x per stage)
                stage, sep, tail = rest.partition(".conv.0.b.")
                rest = f"{stage}.conv.{tail}" if sep else rest
            out[ours + rest if prefix else key] = value
        first = self.projections[0]
        if "projections.1.weight" in out and "projections.0.weight" not in out \
                and first.in_channels == first.out_channels:  # their nn.Identity()
            out["projections.0.weight"] = torch.eye(first.in_channels).reshape(first.weight.shape)
            out["projections.0.bias"] = torch.zeros(first.out_channels)
        return out

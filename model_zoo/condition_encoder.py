"""Condition encoder of cDDPM: a torchvision ResNet on the clean slice -> condition vector.

``ConditionEncoder.backbone`` is the ResNet trunk (conv1 .. layer4, no pooling or fc);
its state dict is what SparK pre-training (``model_zoo.spark``) produces and what
``ConditionalDDPM.load_encoder_weights`` loads strictly.

The originals built the encoder with timm (``create_model("resnet50", in_chans=1,
num_classes=cond_dim, drop_path_rate=0.05)``): the same modules and state-dict names as
torchvision's ResNet (timm ``fc`` = our ``head``), plus stochastic depth on each residual
branch (rate growing linearly from 0 at the first block to ``drop_path_rate`` at the
last) and the last BatchNorm of each block zero-initialised. Both are arguments here
(``drop_path_rate``, ``zero_init_last``); torchvision's ``stochastic_depth`` in "row"
mode draws exactly as timm's ``DropPath``.
"""

from __future__ import annotations

import torch
import torchvision
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.ops import stochastic_depth

from dl_utils.options import parse_option
from model_zoo.resnet_arch import ResNetArch


def build_resnet_backbone(
    arch: ResNetArch = ResNetArch.RESNET50, in_channels: int = 1, zero_init_last: bool = False
) -> torchvision.models.ResNet:
    """A randomly initialised torchvision ResNet with ``in_channels`` inputs and no fc.

    The stem conv is replaced (same geometry, ``in_channels`` inputs) and initialised as
    torchvision and timm initialise every ResNet conv (kaiming normal, fan out, ReLU gain:
    std sqrt(2 / (64 * 7 * 7)) = 0.025; PyTorch's default would give 0.082 for one channel);
    ``fc`` and ``avgpool`` become identities, so the state dict holds only conv1 .. layer4.
    zero_init_last: zero the last BN weight of each residual block (timm's default).
    """
    arch = parse_option(ResNetArch, arch, "encoder arch")
    net = getattr(torchvision.models, arch.value)(weights=None, zero_init_residual=zero_init_last)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    net.fc = nn.Identity()
    net.avgpool = nn.Identity()
    return net


def stage_channels(backbone: torchvision.models.ResNet) -> tuple[int, int, int, int]:
    """Output widths of layer1..layer4 (strides 4, 8, 16, 32)."""
    widths = []
    for layer in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4):
        last = layer[-1]
        widths.append((last.bn3 if isinstance(last, Bottleneck) else last.bn2).num_features)
    return tuple(widths)  # type: ignore[return-value]


def block_drop_rates(backbone: torchvision.models.ResNet, drop_path_rate: float) -> list[float]:
    """Stochastic-depth rate per residual block, timm's rule: rate * i / (n_blocks - 1)."""
    n = sum(len(layer) for layer in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4))
    return [drop_path_rate * i / max(n - 1, 1) for i in range(n)]


def residual_block(block: BasicBlock | Bottleneck, x: Tensor, drop_prob: float) -> Tensor:
    """A torchvision BasicBlock / Bottleneck with stochastic depth on the residual branch.

    Same operations as ``block(x)``; the branch output is dropped per sample with
    probability ``drop_prob`` (and scaled by 1 / (1 - drop_prob)) in training mode.
    """
    if drop_prob == 0.0 or not block.training:
        return block(x)
    out = block.relu(block.bn1(block.conv1(x)))
    out = block.bn2(block.conv2(out))
    if isinstance(block, Bottleneck):
        out = block.bn3(block.conv3(block.relu(out)))
    out = stochastic_depth(out, drop_prob, "row", training=True)
    identity = block.downsample(x) if block.downsample is not None else x
    return block.relu(out + identity)


def backbone_features(backbone: torchvision.models.ResNet, x: Tensor, drop_path_rate: float = 0.0) -> list[Tensor]:
    """Dense feature pyramid: x (B, C, H, W) -> [layer1 (H/4), layer2, layer3, layer4 (H/32)]."""
    rates = iter(block_drop_rates(backbone, drop_path_rate))
    h = backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(x))))
    feats = []
    for layer in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4):
        for block in layer:
            h = residual_block(block, h, next(rates))
        feats.append(h)
    return feats


class ConditionEncoder(nn.Module):
    """ResNet -> global average pool -> linear: x (B, in_channels, H, W) in [0, 1] -> (B, cond_dim).

    Args:
        arch: "resnet18", "resnet34" or "resnet50" (cDDPM: resnet50).
        cond_dim: size of the condition vector (paper 128; the code forced 4 x UNet base = 512).
        in_channels: image channels.
        drop_path_rate: stochastic depth of the last block (originals: 0.05; 0 = none).
        zero_init_last: zero-initialise the last BN of each block (originals: true).
    """

    def __init__(
        self,
        arch: ResNetArch = ResNetArch.RESNET50,
        cond_dim: int = 128,
        in_channels: int = 1,
        drop_path_rate: float = 0.0,
        zero_init_last: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"ConditionEncoder: drop_path_rate={drop_path_rate} must be in [0, 1)")
        self.backbone = build_resnet_backbone(arch, in_channels, zero_init_last)
        self.head = nn.Linear(stage_channels(self.backbone)[-1], cond_dim)
        self.drop_path_rate = drop_path_rate

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) -> (B, cond_dim)."""
        feat = backbone_features(self.backbone, x, self.drop_path_rate)[-1]
        return self.head(torch.flatten(feat.mean(dim=(2, 3)), 1))

    def state_dict_from_original(self, theirs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The originals' encoder state dict -> ours (pure; tensors unchanged).

        Accepts their timm ResNet (``conv1.`` .. ``fc.``), their SparK_2D_encoder wrapping it
        (``encoder.`` + timm: the paper cDDPM) or SparK's sparse trunk (``sp_cnn.`` + timm,
        its ``fc`` dropped as their cDDPM drops it when loading a SparK checkpoint).
        """
        if theirs and all(k.startswith("encoder.") for k in theirs):
            theirs = {k[len("encoder."):]: v for k, v in theirs.items()}
        elif theirs and all(k.startswith("sp_cnn.") for k in theirs):
            theirs = {k[len("sp_cnn."):]: v for k, v in theirs.items() if not k.startswith("sp_cnn.fc.")}
        return from_timm_state_dict(theirs)


def from_timm_state_dict(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """A timm ResNet classifier's state dict (the originals' encoder) -> ConditionEncoder keys.

    timm and torchvision name the trunk alike; timm's classifier ``fc`` is our ``head``.
    """
    return {(f"head.{k[3:]}" if k.startswith("fc.") else f"backbone.{k}"): v for k, v in state_dict.items()}

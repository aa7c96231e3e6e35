"""Condition encoder of cDDPM: a torchvision ResNet on the clean slice -> condition vector.

``ConditionEncoder.backbone`` is the ResNet trunk (conv1 .. layer4, no pooling or fc);
its state dict is what SparK pre-training (``model_zoo.spark``) produces and what
``ConditionalDDPM.load_encoder_weights`` loads strictly.
"""

from __future__ import annotations

from enum import StrEnum

import torch
import torchvision
from torch import Tensor, nn


class ResNetArch(StrEnum):
    RESNET18 = "resnet18"
    RESNET34 = "resnet34"
    RESNET50 = "resnet50"


def build_resnet_backbone(arch: str = "resnet50", in_channels: int = 1) -> torchvision.models.ResNet:
    """A randomly initialised torchvision ResNet with ``in_channels`` inputs and no fc.

    The stem conv is replaced (same geometry, ``in_channels`` inputs); ``fc`` and
    ``avgpool`` become identities, so the state dict holds only conv1 .. layer4.
    """
    try:
        arch = ResNetArch(arch)
    except ValueError:
        raise ValueError(f"unsupported encoder arch={arch!r}; choose one of: {', '.join(ResNetArch)}") from None
    net = getattr(torchvision.models, arch.value)(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    net.fc = nn.Identity()
    net.avgpool = nn.Identity()
    return net


def stage_channels(backbone: torchvision.models.ResNet) -> tuple[int, int, int, int]:
    """Output widths of layer1..layer4 (strides 4, 8, 16, 32)."""
    widths = []
    for layer in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4):
        last = layer[-1]
        widths.append((last.bn3 if hasattr(last, "bn3") else last.bn2).num_features)
    return tuple(widths)  # type: ignore[return-value]


def backbone_features(backbone: torchvision.models.ResNet, x: Tensor) -> list[Tensor]:
    """Dense feature pyramid: x (B, C, H, W) -> [layer1 (H/4), layer2, layer3, layer4 (H/32)]."""
    h = backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(x))))
    feats = []
    for layer in (backbone.layer1, backbone.layer2, backbone.layer3, backbone.layer4):
        h = layer(h)
        feats.append(h)
    return feats


class ConditionEncoder(nn.Module):
    """ResNet -> global average pool -> linear: x (B, in_channels, H, W) in [0, 1] -> (B, cond_dim).

    Args:
        arch: "resnet18", "resnet34" or "resnet50" (cDDPM: resnet50).
        cond_dim: size of the condition vector (paper 128; the code forced 4 x UNet base = 512).
        in_channels: image channels.
    """

    def __init__(self, arch: str = "resnet50", cond_dim: int = 128, in_channels: int = 1) -> None:
        super().__init__()
        self.backbone = build_resnet_backbone(arch, in_channels)
        self.head = nn.Linear(stage_channels(self.backbone)[-1], cond_dim)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) -> (B, cond_dim)."""
        feat = backbone_features(self.backbone, x)[-1]
        return self.head(torch.flatten(feat.mean(dim=(2, 3)), 1))

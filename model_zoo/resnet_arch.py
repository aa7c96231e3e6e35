"""Which torchvision ResNet a condition encoder is (cDDPM, SparK): the option alone, so that a config or a
plain DDPM names it without importing torchvision (seconds); `model_zoo.condition_encoder` builds it."""
from __future__ import annotations

from enum import StrEnum


class ResNetArch(StrEnum):
    RESNET18 = "resnet18"
    RESNET34 = "resnet34"
    RESNET50 = "resnet50"

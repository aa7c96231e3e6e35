"""ConditionEncoder: shapes, architectures, single input channel."""

import pytest
import torch

from model_zoo.condition_encoder import ConditionEncoder, backbone_features, build_resnet_backbone, stage_channels


@pytest.mark.parametrize("arch, widths", [("resnet34", (64, 128, 256, 512)), ("resnet50", (256, 512, 1024, 2048))])
def test_backbone_widths(arch, widths):
    with torch.device("meta"):
        net = build_resnet_backbone(arch, in_channels=1)
    assert stage_channels(net) == widths
    assert net.conv1.in_channels == 1


def test_backbone_pyramid():
    net = build_resnet_backbone("resnet18", in_channels=1)
    assert not any(k.startswith("fc.") for k in net.state_dict())
    feats = backbone_features(net, torch.rand(2, 1, 64, 64))
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]


def test_encoder_output_shape():
    enc = ConditionEncoder("resnet18", cond_dim=12, in_channels=1)
    assert enc(torch.rand(3, 1, 64, 64)).shape == (3, 12)
    assert enc.backbone.conv1.in_channels == 1


def test_unknown_arch_raises():
    with pytest.raises(ValueError, match="resnet101"):
        ConditionEncoder("resnet101")

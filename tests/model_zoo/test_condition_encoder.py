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


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])  # BasicBlock, Bottleneck (conv3 / bn3)
def test_residual_block_with_drop_path_keeps_the_blocks_operations(arch):
    """With a drop rate that drops nothing, the stochastic-depth block equals torchvision's own block."""
    from model_zoo.condition_encoder import residual_block

    torch.manual_seed(0)
    block = build_resnet_backbone(arch).layer2[0].train()
    for p in block.parameters():  # the zero-initialised last BN would hide the residual branch
        torch.nn.init.normal_(p, 0.5, 0.1)
    x = torch.rand(2, block.conv1.in_channels, 8, 8)
    torch.testing.assert_close(residual_block(block, x, drop_prob=1e-12), block(x))

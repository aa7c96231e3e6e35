"""UNetADM: paper size, attention placement, FiLM conditioning, shapes."""

import pytest
import torch

from dl_utils.errors import UserInputError
from model_zoo.unet_adm import AttentionBlock, UNetADM, UNetArchitecture, group_norm, timestep_embedding

TINY_ARCH = dict(base_channels=8, channel_mult=(1, 2, 2), num_res_blocks=2, num_head_channels=8, num_groups=4)
TINY = dict(image_size=16, architecture=UNetArchitecture(**TINY_ARCH))


def _tiny(**arch) -> UNetArchitecture:
    return UNetArchitecture(**TINY_ARCH, **arch)


def _randomise(net: torch.nn.Module) -> None:
    """ADM zero-initialises its output layers; give every parameter random values."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def test_paper_unet_has_about_37_5_million_parameters():
    # docs/methods.md section 2: base 128, mult (1, 2, 2), 3 res blocks, 96 px -> ~37.5 M.
    with torch.device("meta"):
        net = UNetADM(in_channels=1, out_channels=1, image_size=96,
                      architecture=UNetArchitecture(base_channels=128, channel_mult=(1, 2, 2), num_res_blocks=3))
    count = sum(p.numel() for p in net.parameters())
    assert 37.4e6 < count < 37.6e6


@pytest.mark.parametrize("sizes, per_level", [((), 0), ((8,), 2 + 3), ((16, 4), 2 * (2 + 3))])
def test_attention_blocks_at_configured_resolutions(sizes, per_level):
    net = UNetADM(image_size=16, architecture=_tiny(attention_resolutions=sizes))
    blocks = [m for m in net.modules() if isinstance(m, AttentionBlock)]
    # per attended level: num_res_blocks down + (num_res_blocks + 1) up; +1 in the middle block
    assert len(blocks) == per_level + 1
    seen = []
    hooks = [b.register_forward_hook(lambda m, i, o: seen.append(o.shape[-1])) for b in blocks]
    net(torch.randn(1, 1, 16, 16), torch.tensor([3]))
    for h in hooks:
        h.remove()
    assert sorted(set(seen)) == sorted({4, *sizes})  # 4 = the bottleneck (middle block)


def test_unknown_attention_resolution_raises():
    with pytest.raises(UserInputError, match="never occur"):
        UNetADM(image_size=16, architecture=_tiny(attention_resolutions=(12,)))


@pytest.mark.parametrize("updown, scale_shift", [(False, False), (True, False), (False, True)])
def test_resampling_and_norm_variants(updown, scale_shift):
    net = UNetADM(image_size=16, architecture=_tiny(resblock_updown=updown, use_scale_shift_norm=scale_shift))
    _randomise(net)
    assert net(torch.randn(1, 1, 16, 16), torch.tensor([5])).shape == (1, 1, 16, 16)


def test_group_norm_adapts_to_narrow_widths():
    assert group_norm(8, 32).num_groups == 8
    assert group_norm(256, 32).num_groups == 32


def test_timestep_embedding_matches_formula():
    # ADM: [cos(t * f_i), sin(t * f_i)], f_i = exp(-ln(10000) * i / half)
    emb = timestep_embedding(torch.tensor([7]), 4)
    f1 = 10000 ** (-1 / 2)
    expected = torch.tensor([[1.0, torch.cos(torch.tensor(7 * f1)), 0.0, torch.sin(torch.tensor(7 * f1))]])
    expected[0, 0] = torch.cos(torch.tensor(7.0))
    expected[0, 2] = torch.sin(torch.tensor(7.0))
    torch.testing.assert_close(emb, expected)


def test_output_shape_and_embedding_widths():
    net = UNetADM(in_channels=2, out_channels=3, **TINY)
    assert net(torch.randn(2, 2, 16, 16), torch.tensor([0, 999])).shape == (2, 3, 16, 16)
    assert net.embed(torch.tensor([1]), None).shape == (1, 4 * 8)
    cond_net = UNetADM(cond_dim=5, **TINY)
    assert cond_net.embed(torch.tensor([1]), torch.randn(1, 5)).shape == (1, 8 * 8)


def test_conditioning_changes_the_output():
    net = UNetADM(cond_dim=4, **TINY)
    _randomise(net)
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([10, 10])
    a = net(x, t, torch.zeros(2, 4))
    b = net(x, t, torch.ones(2, 4))
    assert (a - b).abs().max() > 1e-3
    with pytest.raises(ValueError):
        net(x, t)

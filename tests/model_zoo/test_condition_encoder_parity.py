"""cDDPM encoder = the originals' timm ResNet-50 (recorded from their module, see
tests/fixtures/parity/SOURCES.md): parameter counts, drop-path rates, zero-init last BN,
and outputs on a fixed input with their state dict loaded into ours."""

from pathlib import Path

import torch

from model_zoo.condition_encoder import (
    ConditionEncoder,
    block_drop_rates,
    from_timm_state_dict,
)

FIXTURE = Path(__file__).parents[1] / "fixtures" / "parity" / "cddpm_encoder_outputs.pt"
# Recorded from build_encoder("resnet50", 512, drop_path_rate=0) of the originals (timm ResNet).
ORIGINAL_ENCODER_PARAMS = 24_550_848
ORIGINAL_UNET_PARAMS = 44_068_481  # their OpenAI UNet with num_classes = cond_dim = 512


def _paper_encoder() -> ConditionEncoder:
    return ConditionEncoder("resnet50", cond_dim=512, in_channels=1, drop_path_rate=0.05, zero_init_last=True)


def _fixed_state_dict(encoder: ConditionEncoder) -> tuple[dict[str, torch.Tensor], torch.Generator]:
    """The recording's deterministic state dict, generated over the timm key names in sorted order."""
    to_timm = {k: (f"fc.{k[5:]}" if k.startswith("head.") else k[len("backbone."):]) for k in encoder.state_dict()}
    shapes = {to_timm[k]: v for k, v in encoder.state_dict().items()}
    g = torch.Generator().manual_seed(1)
    sd = {}
    for k in sorted(shapes):
        v = shapes[k]
        if not v.is_floating_point():
            sd[k] = v
        elif k.endswith("running_var") or (k.endswith("weight") and v.ndim == 1):
            sd[k] = 0.5 + torch.rand(v.shape, generator=g)
        else:
            sd[k] = 0.05 * torch.randn(v.shape, generator=g) if v.ndim > 1 else 0.1 * torch.randn(v.shape, generator=g)
    return sd, g


def test_parameter_counts_match_the_originals():
    from model_zoo.diffusion_models import ConditionalDDPM, EncoderSettings

    with torch.device("meta"):
        model = ConditionalDDPM(encoder=EncoderSettings(cond_dim=512, drop_path_rate=0.05, zero_init_last=True))
    assert sum(p.numel() for p in model.encoder.parameters()) == ORIGINAL_ENCODER_PARAMS
    assert sum(p.numel() for p in model.unet.parameters()) == ORIGINAL_UNET_PARAMS


def test_drop_path_rates_and_zero_init_match_timm():
    enc = _paper_encoder()
    rates = block_drop_rates(enc.backbone, 0.05)
    assert len(rates) == 16 and rates[0] == 0.0 and abs(rates[-1] - 0.05) < 1e-12
    assert abs(rates[1] - 0.05 / 15) < 1e-12
    bn3 = [b.bn3.weight for layer in (enc.backbone.layer1, enc.backbone.layer2, enc.backbone.layer3, enc.backbone.layer4) for b in layer]
    assert all(float(w.detach().abs().sum()) == 0.0 for w in bn3)


# conv1.weight std of the originals' build_encoder("resnet50", 512, input_size=96, drop_path_rate=0)
# (timm create_model(in_chans=1): kaiming normal, fan out) after torch.manual_seed(0 .. 9);
# their SparK encoder comes from the same create_model(name, in_chans=1) (SOURCES.md).
ORIGINAL_STEM_STD_MEAN = 0.02525379993021488
ORIGINAL_STEM_STD_RANGE = (0.024725956842303276, 0.02579604648053646)


def test_stem_is_initialised_as_the_originals_timm_stem():
    """Issue 18: the 1-channel conv1 of the cDDPM encoder and of SparK draws like timm's
    (std 0.025), not with PyTorch's default Conv2d init (std 0.082)."""
    from model_zoo.spark import SparkPretrainer

    builders = {"encoder": lambda: _paper_encoder().backbone,
                "spark": lambda: SparkPretrainer(encoder_arch="resnet50", image_size=96, zero_init_last=True).backbone}
    for name, build in builders.items():
        stds = []
        for seed in range(10):
            torch.manual_seed(seed)
            stds.append(float(build().conv1.weight.detach().std()))
        lo, hi = ORIGINAL_STEM_STD_RANGE
        assert lo * 0.95 < min(stds) and max(stds) < hi * 1.05, (name, stds)
        assert abs(sum(stds) / len(stds) - ORIGINAL_STEM_STD_MEAN) < 0.02 * ORIGINAL_STEM_STD_MEAN, (name, stds)


def test_outputs_match_the_originals_module_with_its_state_dict():
    torch.set_num_threads(1)
    ref = torch.load(FIXTURE, weights_only=True)
    enc = _paper_encoder()
    sd, g = _fixed_state_dict(enc)
    enc.load_state_dict(from_timm_state_dict(sd), strict=True)
    x = torch.rand(4, 1, 96, 96, generator=g)
    enc.eval()
    with torch.no_grad():
        torch.testing.assert_close(enc(x), ref["y_eval"], rtol=1e-4, atol=1e-2)
    enc.train()  # batch statistics and stochastic depth draw as timm's DropPath
    torch.manual_seed(7)
    with torch.no_grad():
        torch.testing.assert_close(enc(x), ref["y_train_seed7"], rtol=1e-4, atol=1e-3)

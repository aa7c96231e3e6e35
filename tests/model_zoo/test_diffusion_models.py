"""DDPM / ConditionalDDPM: contract shapes, batching of samples, conditioning, weights."""

import pytest
import torch

from dl_utils.errors import UserInputError
from model_zoo.diffusion_models import DDPM, ConditionalDDPM, EncoderSettings, NoiseSettings, ReconstructionSettings
from model_zoo.spark import SparkPretrainer
from model_zoo.unet_adm import UNetArchitecture

TINY = dict(image_size=16, unet=UNetArchitecture(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, num_head_channels=8,
                                                 num_groups=4))
MODES = ["one_step", "ensemble", "ddpm", "ddim"]


def _cddpm(**kw) -> ConditionalDDPM:
    return ConditionalDDPM(encoder=EncoderSettings(arch="resnet18", cond_dim=8), **TINY, **kw).eval()


@pytest.fixture(scope="module")
def models() -> dict:
    """One tiny model per class (building the ResNet dominates the cost), shared by tests."""
    return {DDPM: DDPM(**TINY).eval(), ConditionalDDPM: _cddpm()}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cls", [DDPM, ConditionalDDPM])
def test_reconstruct_shapes_for_every_mode(models, cls, mode):
    model = models[cls]
    model.reconstruction_mode, model.sampling_steps, model.t_test = mode, 3, 20
    x = torch.rand(2, 1, 16, 16)
    rec = model.reconstruct(x, num_samples=3)
    assert rec.shape == (3, 2, 1, 16, 16)
    assert rec.min() >= 0 and rec.max() <= 1


def test_samples_go_through_the_unet_in_one_batch_and_condition_once(models):
    model = models[ConditionalDDPM]
    model.reconstruction_mode = "ensemble"
    unet_batches, encoder_batches = [], []
    hooks = [
        model.unet.register_forward_hook(lambda m, i, o: unet_batches.append(i[0].shape[0])),
        model.encoder.register_forward_hook(lambda m, i, o: encoder_batches.append(i[0].shape[0])),
    ]
    model.reconstruct(torch.rand(2, 1, 16, 16), num_samples=10)
    for h in hooks:
        h.remove()
    assert unet_batches == [10 * 2 * 3]  # N samples x B slices x 3 levels, one pass
    assert encoder_batches == [2]  # once per slice, reused for every sample and level


def test_reconstruct_is_deterministic_for_a_given_rng_state():
    model = DDPM(**TINY, noise_source=NoiseSettings(kind="gaussian")).eval()
    x = torch.rand(2, 1, 16, 16)
    torch.manual_seed(5)
    a = model.reconstruct(x, 2)
    torch.manual_seed(5)
    b = model.reconstruct(x, 2)
    assert torch.equal(a, b)


def test_training_loss_returns_a_scalar_loss(models):
    model = models[ConditionalDDPM].train()
    out = model.training_loss(torch.rand(2, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    model.eval()
    assert set(out) == {"loss"} and out["loss"].ndim == 0
    out["loss"].backward()
    # the UNet output conv is zero-initialised, so gradients reach the encoder only after
    # the first update; the output conv's own gradient must exist now
    assert model.unet.out[-1].weight.grad is not None
    model.zero_grad(set_to_none=True)


def test_load_encoder_weights_passes_on_spark_and_raises_on_mismatch():
    model = _cddpm()  # own instance: this test overwrites the encoder
    spark = SparkPretrainer("resnet18", image_size=64, decoder_width=32)
    weights = spark.encoder_state_dict()
    model.load_encoder_weights(weights)
    torch.testing.assert_close(model.encoder.backbone.conv1.weight, weights["conv1.weight"])

    broken = dict(weights)
    broken.pop("layer1.0.conv1.weight")
    broken["extra.weight"] = torch.zeros(1)
    broken["conv1.weight"] = torch.zeros(64, 3, 7, 7)
    with pytest.raises(UserInputError) as err:
        model.load_encoder_weights(broken)
    message = str(err.value)
    assert "layer1.0.conv1.weight" in message and "extra.weight" in message and "conv1.weight (64, 3, 7, 7)" in message
    with pytest.raises(UserInputError):
        model.load_encoder_weights(SparkPretrainer("resnet34", image_size=64, decoder_width=32).encoder_state_dict())


def test_invalid_options_raise():
    with pytest.raises(ValueError, match="noise"):
        DDPM(**TINY, noise_source=NoiseSettings(kind="pink"))
    with pytest.raises(ValueError, match="reconstruction_mode"):
        DDPM(**TINY, reconstruction=ReconstructionSettings(mode="magic"))
    with pytest.raises(UserInputError):
        DDPM(**TINY, reconstruction=ReconstructionSettings(t_test=1001))

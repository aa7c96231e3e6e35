"""Every reconstruction model of model_zoo/ satisfies the evaluation's `ReconstructionModel`
contract (core.evaluation.contracts), checked at a tiny size on CPU.

The models are discovered from the package (every `nn.Module` with a `reconstruct` method),
so a new model cannot skip this test: it fails until the model has a tiny configuration here.
"""
from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

from core.evaluation.contracts import BatchCappedModel, DiffusionModel, ReconstructionModel
from model_zoo.diffusion_models import EncoderSettings, NoiseSettings
from model_zoo.unet_adm import UNetArchitecture
from tests.project_classes import classes_in

DIFFUSION = dict(image_size=16, noise_source=NoiseSettings(kind="gaussian"),
                 unet=UNetArchitecture(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, num_head_channels=8, num_groups=4))
TINY = {  # class name -> constructor arguments of a tiny instance on 16 x 16 slices
    "ConvAutoencoder": dict(image_size=16, channels=(4, 8), latent_dim=8),
    "RAModel": dict(image_size=16, channels=(4, 8), latent_dim=8),
    "IdentityModel": {},
    "DDPM": DIFFUSION,
    "ConditionalDDPM": dict(DIFFUSION, encoder=EncoderSettings(arch="resnet18", cond_dim=8)),
}


def _takes_slices(method) -> bool:
    """`reconstruct(x, num_samples)`: a model's (the diffusion process's own `reconstruct` takes a network)."""
    if not callable(method):
        return False
    return list(inspect.signature(method).parameters)[1:3] == ["x", "num_samples"]


def _discovered() -> dict[str, type]:
    return classes_in("model_zoo", lambda cls: issubclass(cls, nn.Module) and _takes_slices(getattr(cls, "reconstruct", None)))


MODELS = _discovered()


def test_every_reconstruction_model_has_a_tiny_configuration_here():
    assert set(MODELS) == set(TINY), f"add a tiny configuration for {sorted(set(MODELS) - set(TINY))}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_reconstruction_contract(name):
    torch.manual_seed(0)
    model = MODELS[name](**TINY[name]).eval()
    assert isinstance(model, ReconstructionModel)
    x = torch.rand(3, 1, 16, 16)
    before = x.clone()
    with torch.inference_mode():
        torch.manual_seed(1)
        recs = model.reconstruct(x, num_samples=2)
        torch.manual_seed(1)
        again = model.reconstruct(x, num_samples=2)
    assert recs.shape == (2, 3, 1, 16, 16) and recs.dtype == torch.float32
    assert torch.isfinite(recs).all() and recs.min() >= 0 and recs.max() <= 1
    assert torch.equal(recs, again)  # deterministic for a given RNG state
    assert torch.equal(x, before)  # the input is not modified
    if isinstance(model, BatchCappedModel):  # the cap splits the network batch, not the result
        model.max_batch_size = 1
        torch.manual_seed(1)
        with torch.inference_mode():
            torch.testing.assert_close(model.reconstruct(x, num_samples=2), recs, atol=1e-5, rtol=0)
    if isinstance(model, DiffusionModel):
        assert isinstance(model.unet, nn.Module)

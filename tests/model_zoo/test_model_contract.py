"""Every reconstruction model of model_zoo/ satisfies the evaluation's `ReconstructionModel`
contract (core.evaluation.contracts), checked at a tiny size on CPU.

The models are discovered from the package (every `nn.Module` whose instances have a callable
`reconstruct`, whatever its parameters are named), so a new model cannot skip this test: it fails until the model has a tiny configuration here.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from core.evaluation.contracts import BatchCappedModel, DiffusionModel, ReconstructionModel
from model_zoo.diffusion_models import EncoderSettings, NoiseSettings
from model_zoo.gaussian_diffusion import GaussianDiffusion
from model_zoo.unet_adm import UNetArchitecture
from tests.project_classes import classes_in, satisfies

DIFFUSION = dict(image_size=16, noise_source=NoiseSettings(kind="gaussian"),
                 unet=UNetArchitecture(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, num_head_channels=8, num_groups=4))
TINY = {  # class name -> constructor arguments of a tiny instance on 16 x 16 slices
    "ConvAutoencoder": dict(image_size=16, channels=(4, 8), latent_dim=8),
    "RAModel": dict(image_size=16, channels=(4, 8), latent_dim=8),
    "IdentityModel": {},
    "DDPM": DIFFUSION,
    "ConditionalDDPM": dict(DIFFUSION, encoder=EncoderSettings(arch="resnet18", cond_dim=8)),
}


def _is_reconstruction_model(cls: type) -> bool:
    """An `nn.Module` whose instances have a callable `reconstruct`, whatever its parameters are called
    (the diffusion process's step is `noise_and_denoise`, so it is not one)."""
    return issubclass(cls, nn.Module) and satisfies(cls, ReconstructionModel)


MODEL_PACKAGES = ("model_zoo", "projects")  # where a model may live (a project's own model too)


def _discovered() -> dict[str, type]:
    return {name: cls for package in MODEL_PACKAGES for name, cls in classes_in(package, _is_reconstruction_model).items()}


MODELS = _discovered()


def test_every_reconstruction_model_has_a_tiny_configuration_here():
    assert set(MODELS) == set(TINY), f"add a tiny configuration for {sorted(set(MODELS) - set(TINY))}"


class _OddlyNamed(nn.Module):
    def reconstruct(self, images, num_samples=1):  # the contract's method under other parameter names
        return images[None].repeat(num_samples, 1, 1, 1, 1)


class _Inherited(_OddlyNamed):  # reconstruct from a base class
    pass


class _CallableAttribute(nn.Module):
    def __init__(self):
        super().__init__()
        self.reconstruct = lambda x, num_samples=1: x[None]


class _NotAModule:  # not an nn.Module: no model (the builder's model role needs one)
    def reconstruct(self, x, num_samples=1):
        return x[None]


class _NoReconstruct(nn.Module):
    reconstruct = None


def test_discovery_finds_a_model_whatever_its_parameters_are_called():
    """The discovery predicate on odd-shaped classes: a model cannot escape the contract test by
    naming its parameters otherwise or by inheriting `reconstruct`."""
    assert _is_reconstruction_model(_OddlyNamed) and _is_reconstruction_model(_Inherited)
    assert _is_reconstruction_model(_CallableAttribute)
    assert not _is_reconstruction_model(_NotAModule) and not _is_reconstruction_model(_NoReconstruct)
    assert not _is_reconstruction_model(GaussianDiffusion)  # a process step, not a model: x0, noise and a network
    assert "GaussianDiffusion" not in MODELS


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

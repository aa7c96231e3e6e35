"""Every model of model_zoo/ that maps its original authors' weights (`ConvertsOriginalWeights`,
core/commands/convert.py, what `uad convert` uses) is checked here at a small size: a fake
original state dict under the originals' own key names (tests/model_zoo/original_names.py,
written from their code) maps onto the model, loads strictly, and every tensor lands where
the originals' name says (fp32); the map is pure and never drops an unknown key silently.

The models are discovered from the package (every `nn.Module` with `state_dict_from_original`),
so a new one cannot skip this test: it fails until the model has an original here.
"""
from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import torch
from torch import Tensor, nn

from core.commands.convert import ConvertsOriginalWeights
from core.config.builder import ComponentBuilder
from dl_utils.weights import load_strict, weights_mismatch
from model_zoo.unet_adm import UNetArchitecture
from tests.model_zoo import original_names as names
from tests.project_classes import classes_in


def _discovered() -> dict[str, type]:
    return classes_in("model_zoo", lambda cls: issubclass(cls, nn.Module)
                      and callable(getattr(cls, "state_dict_from_original", None)))


MODELS = _discovered()

Original = tuple[dict[str, Tensor], dict[str, Tensor]]  # (their state dict, what each of our keys must hold)


def _value(i: int, like: Tensor) -> Tensor:
    """A distinct deterministic tensor of `like`'s shape (ints stay ints)."""
    if not like.is_floating_point():
        return torch.full_like(like, i)
    return torch.randn(like.shape, generator=torch.Generator().manual_seed(i))


def _by_name(model: nn.Module, their_name: Callable[[str], str | None], half: Callable[[str], bool] = lambda k: False,
             extras: dict[str, Tensor] | None = None) -> Original:
    """Their state dict from our keys renamed by `their_name` (None: they have no such tensor)."""
    theirs, expected = dict(extras or {}), {}
    for i, (key, like) in enumerate(model.state_dict().items()):
        name = their_name(key)
        if name is None:
            continue
        value = _value(i, like)
        theirs[name] = value.half() if half(name) and value.is_floating_point() else value
        expected[key] = theirs[name].float() if value.is_floating_point() else value
    return theirs, expected


def _unet(model: nn.Module) -> Original:
    return _by_name(model, lambda k: names.openai_unet_name(k, names.CONV_RESAMPLE_UNET), names.is_fp16_torso)


def _schedule() -> dict[str, Tensor]:
    return {f"diffusion.{b}": torch.linspace(1e-4, 0.02, 10) for b in names.SCHEDULE_BUFFERS}


def _ddpm(model: nn.Module) -> Original:
    return _by_name(model, names.cddpm_name, names.is_fp16_torso, _schedule())


def _cddpm(model: nn.Module) -> Original:  # the paper's: encoder = their SparK_2D_encoder (encoder.encoder.)
    return _by_name(model, lambda k: names.cddpm_name(k, "encoder.encoder."), names.is_fp16_torso, _schedule())


def _encoder(model: nn.Module) -> Original:
    return _by_name(model, names.timm_name)


def _ra(model: nn.Module) -> Original:
    """The recorded published key list; the published module registers its parts in our order."""
    recorded, ours = names.ra_keys(), list(model.state_dict().items())
    assert [shape for _, shape in recorded] == [list(v.shape) for _, v in ours]
    theirs = {name: _value(i, v) for i, ((name, _), (_, v)) in enumerate(zip(recorded, ours))}
    return theirs, {key: theirs[name] for (name, _), (key, _) in zip(recorded, ours)}


def _spark(model: nn.Module) -> Original:
    """ResNet-18 at decoder width 512: their first projection is an identity (ours: 1x1 conv = eye)."""
    extras = {k: torch.rand(shape) for k, shape in names.SPARK_BUFFERS.items()}
    extras["model.norm_black"] = torch.zeros(1, 3, 32, 32)
    extras["model.sparse_encoder.sp_cnn.fc.weight"] = torch.randn(10, 512)  # timm classifier: not used
    extras["model.sparse_encoder.sp_cnn.fc.bias"] = torch.randn(10)
    theirs, expected = _by_name(model, lambda k: names.spark_name(k, identity_first_projection=True), extras=extras)
    expected["projections.0.weight"] = torch.eye(512).reshape(512, 512, 1, 1)
    expected["projections.0.bias"] = torch.zeros(512)
    return theirs, expected


ORIGINALS: dict[str, tuple[dict, Callable[[nn.Module], Original]]] = {  # class -> (small params as YAML gives them, original)
    "UNetADM": (names.UNET_CONV_RESAMPLE, _unet),
    "DDPM": (names.DIFFUSION, _ddpm),
    "ConditionalDDPM": (names.CDDPM, _cddpm),
    "ConditionEncoder": ({"arch": "resnet18", "cond_dim": 8}, _encoder),
    "RAModel": (names.RA_PAPER, _ra),
    "SparkPretrainer": ({"encoder_arch": "resnet18", "image_size": 32, "decoder_width": 512}, _spark),
}


def _build(name: str, params: dict) -> nn.Module:
    """`MODELS[name]` from its YAML params (typed parts as mappings), as the builder builds a config's model."""
    cls = MODELS[name]
    return ComponentBuilder("test").build({"module_name": cls.__module__, "class_name": cls.__name__, "params": params}, name)


def test_every_convertible_model_has_an_original_here():
    assert set(MODELS) == set(ORIGINALS), f"add an original for {sorted(set(MODELS) - set(ORIGINALS))}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_original_weights_load_strictly_where_their_names_say(name):
    params, original = ORIGINALS[name]
    model = _build(name, params)
    assert isinstance(model, ConvertsOriginalWeights)
    theirs, expected = original(model)
    before = {k: v.clone() for k, v in theirs.items()}
    mapped = model.state_dict_from_original(theirs)
    assert theirs.keys() == before.keys() and all(torch.equal(theirs[k], before[k]) for k in before)  # pure
    assert all(v.dtype != torch.float16 for v in mapped.values())
    load_strict(model, mapped, f"original {name}")
    state = model.state_dict()
    assert set(expected) == set(state)
    for key, value in expected.items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_an_unknown_key_is_not_dropped_silently(name):
    params, original = ORIGINALS[name]
    model = _build(name, params)
    theirs, _ = original(model)
    theirs["not_theirs.weight"] = torch.zeros(3)
    assert weights_mismatch(model.state_dict(), model.state_dict_from_original(theirs)) is not None


def test_the_recorded_paper_unet_of_the_originals_maps_exactly():
    """Their OpenAI UNet as their paper cDDPM builds it (keys and shapes recorded from their module,
    tests/fixtures/parity_data/cddpm_unet_keys.json) fits our paper-size UNet key for key."""
    recorded = json.loads(names.CDDPM_UNET_RECORDING.read_text())
    with torch.device("meta"):
        unet = MODELS["UNetADM"](image_size=96, cond_dim=512, architecture=UNetArchitecture(
            base_channels=128, channel_mult=(1, 2, 2), num_res_blocks=3, num_head_channels=64))
        theirs = {k: torch.empty(shape) for k, shape, _ in recorded["state_dict"]}
    assert sum(p.numel() for p in unet.parameters()) == recorded["parameters"]
    mapped = unet.state_dict_from_original(theirs)
    assert weights_mismatch(unet.state_dict(), mapped) is None
    assert len(mapped) == len(theirs)

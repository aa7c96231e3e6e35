"""DDPM, ConditionalDDPM and UNetADM read the flat params of an earlier config version (run folders,
checkpoints, old YAML): `upgrade_params` moves them into today's typed parts, and the flat and the
grouped form build the same model."""
from __future__ import annotations

import logging

import pytest
import torch

from core.config.builder import ComponentBuilder
from model_zoo.diffusion_models import CDDPM_FLAT_KEYS, DDPM, DDPM_FLAT_KEYS, ConditionalDDPM
from model_zoo.unet_adm import UNET_FLAT_KEYS, UNetADM

MODULE = "model_zoo.diffusion_models"

FLAT_DDPM = {"image_size": 16, "base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "num_head_channels": 8,
             "num_groups": 4, "dropout": 0.1, "timesteps": 100, "beta_schedule": "linear", "target": "noise", "loss": "l2",
             "noise": "opensimplex", "simplex_octaves": 3, "simplex_persistence": 0.5, "simplex_frequency": 32,
             "simplex_fp16": False, "reconstruction_mode": "ddim", "t_test": 40, "ensemble_timesteps": [10, 20],
             "sampling_steps": 4, "ddim_eta": 0.5, "clamp_reconstruction": False, "max_batch_size": 7}
GROUPED_DDPM = {"image_size": 16, "max_batch_size": 7,
                "unet": {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "num_head_channels": 8,
                         "num_groups": 4, "dropout": 0.1},
                "diffusion": {"timesteps": 100, "beta_schedule": "linear", "target": "noise", "loss": "l2"},
                "noise_source": {"kind": "opensimplex", "octaves": 3, "persistence": 0.5, "frequency": 32, "fp16": False},
                "reconstruction": {"mode": "ddim", "t_test": 40, "ensemble_timesteps": [10, 20], "sampling_steps": 4,
                                   "ddim_eta": 0.5, "clamp": False}}
ENCODER_FLAT = {"encoder_arch": "resnet18", "cond_dim": 8, "encoder_drop_path_rate": 0.05, "encoder_zero_init_last": True}
ENCODER_GROUPED = {"encoder": {"arch": "resnet18", "cond_dim": 8, "drop_path_rate": 0.05, "zero_init_last": True}}


def _build(class_name: str, params: dict, module: str = MODULE) -> torch.nn.Module:
    torch.manual_seed(0)
    return ComponentBuilder("cfg.yaml").build({"module_name": module, "class_name": class_name, "params": params}, "model")


def _same(a: torch.nn.Module, b: torch.nn.Module) -> None:
    assert type(a) is type(b)
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0, msg=key)
    for name in ("reconstruction_mode", "t_test", "ensemble_timesteps", "sampling_steps", "ddim_eta",
                 "clamp_reconstruction", "max_batch_size"):
        assert getattr(a, name, None) == getattr(b, name, None), name
    if hasattr(a, "noise"):
        assert type(a.noise) is type(b.noise) and vars(a.noise) == vars(b.noise)


def test_flat_and_grouped_ddpm_build_the_same_model():
    assert DDPM.upgrade_params(FLAT_DDPM) == GROUPED_DDPM
    flat, grouped = _build("DDPM", FLAT_DDPM), _build("DDPM", GROUPED_DDPM)
    _same(flat, grouped)
    assert (flat.reconstruction_mode, flat.t_test, flat.ensemble_timesteps, flat.clamp_reconstruction) == ("ddim", 40, (10, 20), False)
    assert flat.diffusion.timesteps == 100 and type(flat.noise).__name__ == "OpenSimplexNoise"


def test_flat_and_grouped_cddpm_build_the_same_model_and_keep_its_ensemble_default():
    flat_params = {k: v for k, v in FLAT_DDPM.items() if k != "reconstruction_mode"} | ENCODER_FLAT
    grouped_params = GROUPED_DDPM | ENCODER_GROUPED
    grouped_params["reconstruction"] = {k: v for k, v in GROUPED_DDPM["reconstruction"].items() if k != "mode"}
    assert ConditionalDDPM.upgrade_params(flat_params) == grouped_params
    flat, grouped = _build("ConditionalDDPM", flat_params), _build("ConditionalDDPM", grouped_params)
    _same(flat, grouped)
    assert flat.reconstruction_mode == "ensemble"  # the cDDPM's own default, flat or grouped
    assert flat.encoder.head.out_features == 8


def test_flat_and_grouped_unet_build_the_same_network():
    flat = {"image_size": 16, "cond_dim": 4, "base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
            "attention_resolutions": [8], "num_head_channels": 8, "num_groups": 4, "resblock_updown": False}
    upgraded = UNetADM.upgrade_params(flat)
    assert set(upgraded) == {"image_size", "cond_dim", "architecture"}
    _same(_build("UNetADM", flat, "model_zoo.unet_adm"), _build("UNetADM", upgraded, "model_zoo.unet_adm"))


def test_a_flat_key_over_a_grouped_one_overrides_it_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        params = DDPM.upgrade_params({"reconstruction": {"mode": "ensemble", "t_test": 500}, "t_test": 300})
    assert params == {"reconstruction": {"mode": "ensemble", "t_test": 300}}
    assert "reconstruction.t_test" in caplog.text


@pytest.mark.parametrize("table", [DDPM_FLAT_KEYS, CDDPM_FLAT_KEYS, UNET_FLAT_KEYS])
def test_no_group_is_named_as_a_flat_key(table):
    assert not {path[0] for path in table.values()} & set(table)

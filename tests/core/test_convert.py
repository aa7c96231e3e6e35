"""`uad convert`: an original checkpoint (their key layout; Lightning's pickled hyper-parameters,
iml-dl's `model_weights` dict for RA, or a bare state dict) becomes ours by loading tensors
only; a hostile pickle never runs. The key maps themselves are tested per model in
tests/model_zoo/test_original_weights.py; here: reading, dispatch, writing, errors."""
from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest
import torch
import yaml

from core.commands.cli import main as uad
from core.commands.convert import read_tensors_only
from core.config.builder import ComponentBuilder
from tests.model_zoo import original_names as names

MODEL = {"module_name": "model_zoo.diffusion_models", "class_name": "ConditionalDDPM", "params": names.CDDPM}
DDPM_MODEL = {"module_name": "model_zoo.diffusion_models", "class_name": "DDPM", "params": names.DIFFUSION}
RA_MODEL = {"module_name": "model_zoo.ra", "class_name": "RAModel", "params": names.RA_TINY}


class Hostile:
    """What a malicious pickle does: `os.system` on unpickling."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _config(tmp_path, model: dict, name: str = "tiny.yaml"):
    config = {"name": "tiny", "experiment": {"name": "c", "task": "test", "weights": None}, "model": model}
    (tmp_path / name).write_text(yaml.safe_dump(config))
    return tmp_path / name


def _random_state(model_spec: dict) -> dict[str, torch.Tensor]:
    model = ComponentBuilder("test").build(model_spec, "model")
    return {k: torch.randn_like(v.float()) if v.is_floating_point() else v for k, v in model.state_dict().items()}


# (our model, where their encoder sits): a timm backbone (`encoder.`), their SparK_2D_encoder (the
# paper cDDPM, `encoder.encoder.`), the unconditional DDPM
ORIGINALS = {"cddpm_timm": (MODEL, "encoder."), "cddpm_spark_encoder": (MODEL, "encoder.encoder."),
             "ddpm": (DDPM_MODEL, "encoder.")}


@pytest.fixture(params=sorted(ORIGINALS))
def original(request, tmp_path):
    return _original(request.param, tmp_path)


def _original(kind: str, tmp_path: Path):
    """(their checkpoint, the marker a hostile pickle would touch, our expected weights, our config, our model spec)."""
    model, encoder_prefix = ORIGINALS[kind]
    ours = _random_state(model)
    state_dict = collections.OrderedDict()
    for key, value in ours.items():
        name = names.cddpm_name(key, encoder_prefix)
        state_dict[name] = value.half() if names.is_fp16_torso(name) else value  # their convert_to_fp16() blocks
    state_dict["diffusion.betas"] = torch.linspace(1e-4, 0.02, 10)  # schedule buffers: ours computes them
    marker = tmp_path / "pwned"
    ckpt = {"state_dict": state_dict, "hyper_parameters": {"cfg": Hostile(marker)}, "epoch": 7,
            "pytorch-lightning_version": "1.9.0", "callbacks": {"ModelCheckpoint": Hostile(marker)}}
    path = tmp_path / "last.ckpt"
    torch.save(ckpt, path)
    expected = {k: v.half().float() if names.is_fp16_torso(names.cddpm_name(k, encoder_prefix)) else v for k, v in ours.items()}
    return path, marker, expected, _config(tmp_path, model), model


def test_weights_only_refuses_their_pickle(original):
    path, marker, _, _, _ = original
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)
    assert not marker.exists()


def test_convert_loads_tensors_only_and_maps_every_key(original, tmp_path, capsys):
    path, marker, expected, config, model = original
    state = read_tensors_only(path)
    assert not marker.exists()  # the __reduce__ payload never ran
    assert type(state["hyper_parameters"]["cfg"]).__name__.startswith("Inert")
    out = tmp_path / "converted.pt"
    assert uad(["convert", "--input", str(path), "--output", str(out), "--config_path", str(config)]) == 0
    assert not marker.exists()
    converted = torch.load(out, map_location="cpu", weights_only=True)
    assert set(converted["model_weights"]) == set(expected)
    for key, value in expected.items():
        torch.testing.assert_close(converted["model_weights"][key], value, rtol=0, atol=0)
    assert converted["config"]["model"] == converted["model_spec"] == model and converted["epoch"] == 7


def test_a_config_of_an_earlier_version_is_stored_upgraded(tmp_path):
    """The checkpoint is stamped metadata_version 2, so the config inside is today's form (flat DDPM keys grouped)."""
    path, _, expected, _, model = _original("ddpm", tmp_path)
    params = model["params"]
    flat = {"image_size": params["image_size"], "noise": params["noise_source"]["kind"], **params["unet"]}
    config = _config(tmp_path, {**model, "params": flat}, name="flat.yaml")
    out = tmp_path / "converted.pt"
    assert uad(["convert", "--input", str(path), "--output", str(out), "--config_path", str(config)]) == 0
    converted = torch.load(out, map_location="cpu", weights_only=True)
    upgraded = ComponentBuilder(config).upgrade(yaml.safe_load(config.read_text()))
    assert converted["metadata_version"] == 2 and converted["config"] == upgraded
    assert converted["model_spec"] == upgraded["model"] and "base_channels" not in converted["model_spec"]["params"]
    assert converted["model_spec"]["params"]["unet"]["base_channels"] == params["unet"]["base_channels"]


def test_foreign_files_are_one_line(tmp_path, capsys):
    (tmp_path / "junk.ckpt").write_bytes(b"\x80\x02random bytes")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"name": "x", "experiment": {"task": "test"}, "model": MODEL}))
    assert uad(["convert", "--input", str(tmp_path / "junk.ckpt"), "--output", str(tmp_path / "o.pt"),
                "--config_path", str(tmp_path / "c.yaml")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "junk.ckpt" in err[0]
    assert not (tmp_path / "o.pt").exists()


SPARK_MODEL = {"module_name": "model_zoo.spark", "class_name": "SparkPretrainer",
               "params": {"image_size": 32, "encoder_arch": "resnet18"}}


def test_their_spark_checkpoint_becomes_an_encoder_file_for_cddpm(tmp_path):
    # their Spark_2D LightningModule: model.sparse_encoder.sp_cnn = the timm ResNet (fc kept,
    # dropped by their cDDPM loader), besides the decoder and mask tokens (model.dense_decoder...)
    spark = ComponentBuilder("test").build(SPARK_MODEL, "model")
    trunk = {k: torch.randn_like(v.float()) if v.is_floating_point() else v for k, v in spark.backbone.state_dict().items()}
    state_dict = collections.OrderedDict(("model.sparse_encoder.sp_cnn." + k, v) for k, v in trunk.items())
    state_dict["model.sparse_encoder.sp_cnn.fc.weight"] = torch.randn(10, 512)
    state_dict["model.dense_decoder.dec.0.up_sample.weight"] = torch.randn(4, 4, 4, 4)
    state_dict["model.mask_tokens.0"] = torch.randn(1, 64, 1, 1)
    marker = tmp_path / "pwned"
    torch.save({"state_dict": state_dict, "hyper_parameters": {"cfg": Hostile(marker)}, "epoch": 3}, tmp_path / "spark.ckpt")
    cddpm = {"name": "c", "experiment": {"task": "test"}, "model": MODEL}
    (tmp_path / "cddpm.yaml").write_text(yaml.safe_dump(cddpm))
    out = tmp_path / "spark_encoder.pt"
    assert uad(["convert", "--input", str(tmp_path / "spark.ckpt"), "--output", str(out),
                "--config_path", str(tmp_path / "cddpm.yaml")]) == 0
    assert not marker.exists()
    converted = torch.load(out, map_location="cpu", weights_only=True)
    assert set(converted["model_weights"]) == set(trunk) and converted["epoch"] == 3
    for key, value in trunk.items():
        torch.testing.assert_close(converted["model_weights"][key], value, rtol=0, atol=0)
    # the file is what cDDPM's init_weights loads (strictly) into encoder.backbone
    from core.training.trainer import load_submodule_weights
    model = ComponentBuilder("test").build(MODEL, "model")
    load_submodule_weights(model, "encoder.backbone", out, torch.device("cpu"))
    torch.testing.assert_close(model.encoder.backbone.conv1.weight, trunk["conv1.weight"], rtol=0, atol=0)


def test_their_spark_checkpoint_becomes_an_encoder_file_with_a_spark_config(tmp_path):
    # the whole SparK_2D under their names (identity first projection: resnet18 at decoder width 512)
    ours = _random_state(SPARK_MODEL)
    state_dict = collections.OrderedDict((names.spark_name(k, True), v) for k, v in ours.items()
                                         if names.spark_name(k, True) is not None)
    state_dict["model.norm_black"] = torch.zeros(1, 3, 32, 32)
    torch.save({"state_dict": state_dict, "epoch": 5}, tmp_path / "spark.ckpt")
    out = tmp_path / "encoder.pt"
    assert uad(["convert", "--input", str(tmp_path / "spark.ckpt"), "--output", str(out),
                "--config_path", str(_config(tmp_path, SPARK_MODEL))]) == 0
    converted = torch.load(out, map_location="cpu", weights_only=True)
    trunk = {k[len("backbone."):]: v for k, v in ours.items() if k.startswith("backbone.")}
    assert set(converted["model_weights"]) == set(trunk) and converted["epoch"] == 5
    for key, value in trunk.items():
        torch.testing.assert_close(converted["model_weights"][key], value, rtol=0, atol=0)


def _ra_original(form: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """What ci-ber/RA writes (its RA_Trainer.py: best_model.pt with the two Adam
    states, latest_model.pt with one), or a bare `model.state_dict()`; and the expected weights."""
    model = ComponentBuilder("test").build(RA_MODEL, "model")
    ours = _random_state(RA_MODEL)
    theirs = collections.OrderedDict((names.ra_tiny_name(k), v) for k, v in ours.items())
    adam_e, adam_d = torch.optim.Adam(model.encoder.parameters()), torch.optim.Adam(model.decoder.parameters())
    model(torch.rand(2, 1, 16, 16)).rec.mean().backward()
    adam_e.step()
    adam_d.step()
    if form == "best_model":
        return {"model_weights": theirs, "optimizer_e_weights": adam_e.state_dict(),
                "optimizer_d_weights": adam_d.state_dict(), "epoch": 12}, ours
    if form == "latest_model":
        return {"model_weights": theirs, "optimizer_weights": adam_e.state_dict(), "epoch": 12}, ours
    return theirs, ours


@pytest.mark.parametrize("form", ["best_model", "latest_model", "state_dict"])
def test_ra_original_checkpoints_convert(form, tmp_path):
    checkpoint, ours = _ra_original(form)
    torch.save(checkpoint, tmp_path / "best_model.pt")
    out = tmp_path / "ra.pt"
    config = _config(tmp_path, RA_MODEL)
    assert uad(["convert", "--input", str(tmp_path / "best_model.pt"), "--output", str(out),
                "--config_path", str(config)]) == 0
    converted = torch.load(out, map_location="cpu", weights_only=True)
    assert set(converted["model_weights"]) == set(ours)
    for key, value in ours.items():
        torch.testing.assert_close(converted["model_weights"][key], value, rtol=0, atol=0)
    assert converted["model_spec"] == RA_MODEL and converted["config"]["model"] == RA_MODEL
    assert converted["epoch"] == (12 if form != "state_dict" else -1)
    # self-describing: `uad test`-style loading needs nothing but the file
    model = ComponentBuilder("test").build(converted["model_spec"], "model")
    model.load_state_dict(converted["model_weights"], strict=True)


def test_ra_projections_without_published_skip_convs_are_one_line(tmp_path, capsys):
    # their `inc is not outc` on YAML ints above 256 adds a 1x1 projection to an equal-count block
    checkpoint, _ = _ra_original("best_model")
    checkpoint["model_weights"]["encoder.main.res_in_4.conv_expand.weight"] = torch.randn(8, 8, 1, 1)
    torch.save(checkpoint, tmp_path / "best_model.pt")
    assert uad(["convert", "--input", str(tmp_path / "best_model.pt"), "--output", str(tmp_path / "o.pt"),
                "--config_path", str(_config(tmp_path, RA_MODEL))]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "best_model.pt" in err[0] and "published_skip_convs" in err[0]
    assert not (tmp_path / "o.pt").exists()


def test_a_config_without_a_map_or_of_another_method_is_one_line(tmp_path, capsys):
    checkpoint, _ = _ra_original("best_model")
    torch.save(checkpoint, tmp_path / "best_model.pt")
    autoencoder = {"module_name": "model_zoo.autoencoder", "class_name": "ConvAutoencoder",
                   "params": {"image_size": 16, "channels": [4, 8], "latent_dim": 8}}
    for model, named in ((autoencoder, "ConvAutoencoder"), (DDPM_MODEL, "missing unet.")):
        config = _config(tmp_path, model, f"{named.split()[0]}.yaml")
        assert uad(["convert", "--input", str(tmp_path / "best_model.pt"), "--output", str(tmp_path / "o.pt"),
                    "--config_path", str(config)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and named in err[0] and config.name in err[0], err
    assert not (tmp_path / "o.pt").exists()

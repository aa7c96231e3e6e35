"""`uad convert`: an original Lightning checkpoint (their key layout, pickled hyper-parameters)
becomes ours by loading tensors only; a hostile pickle never runs."""
from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest
import torch
import yaml

from core.commands.cli import main as uad
from core.commands.convert import read_tensors_only
from core.config.configurator import ComponentBuilder

MODEL = {"module_name": "model_zoo.diffusion_models", "class_name": "ConditionalDDPM", "params": {
    "image_size": 16, "base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "num_head_channels": 8,
    "num_groups": 8, "noise": "gaussian", "encoder_arch": "resnet18", "cond_dim": 16}}

# Their names for this tiny UNet, read off src/models/modules/OpenAI_Unet.py (UNetModel.__init__:
# input_blocks = [conv] + per level [ResBlock]*num_res_blocks (+ a down ResBlock between levels),
# middle_block = ResBlock, AttentionBlock, ResBlock; output_blocks per level (num_res_blocks + 1)
# blocks, the last of each level but the first ending in an up ResBlock) -> ours, written by hand.
PREFIXES = {
    "time_embed.0": "unet.time_embed.0", "time_embed.2": "unet.time_embed.2",
    "label_emb.0": "unet.cond_embed.0", "label_emb.2": "unet.cond_embed.2",
    "input_blocks.0.0": "unet.input_conv",
    "input_blocks.1.0": "unet.down.0.block", "input_blocks.2.0": "unet.down.1.block", "input_blocks.3.0": "unet.down.2.block",
    "middle_block.0": "unet.middle.0.block", "middle_block.1": "unet.middle.0.attn", "middle_block.2": "unet.middle.1.block",
    "output_blocks.0.0": "unet.up.0.block", "output_blocks.1.0": "unet.up.1.block", "output_blocks.1.1": "unet.up.2.block",
    "output_blocks.2.0": "unet.up.3.block", "output_blocks.3.0": "unet.up.4.block",
    "out.0": "unet.out.0", "out.2": "unet.out.2",
}
RESBLOCK = {"in_layers.0": "norm_in", "in_layers.2": "conv_in", "emb_layers.1": "emb_proj",
            "out_layers.0": "norm_out", "out_layers.3": "conv_out", "skip_connection": "skip"}


def their_key(ours: str) -> str:
    """Our key -> the original Lightning key (hand table above; timm ResNet names for the encoder)."""
    if ours.startswith("encoder.head."):
        return "encoder.fc." + ours[len("encoder.head."):]
    if ours.startswith("encoder.backbone."):
        return "encoder." + ours[len("encoder.backbone."):]
    for theirs, prefix in sorted(PREFIXES.items(), key=lambda kv: -len(kv[1])):
        if ours.startswith(prefix + "."):
            rest = ours[len(prefix) + 1:]
            for t, o in RESBLOCK.items():
                if rest.startswith(o + "."):
                    rest = t + rest[len(o):]
            return "diffusion.model." + theirs + "." + rest
    raise AssertionError(f"no original name for {ours}")


class Hostile:
    """What a malicious pickle does: `os.system` on unpickling."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture()
def original(tmp_path):
    model = ComponentBuilder("test").build(MODEL, "model")
    ours = {k: torch.randn_like(v.float()) if v.is_floating_point() else v for k, v in model.state_dict().items()}
    state_dict = collections.OrderedDict()
    for key, value in ours.items():
        name = their_key(key)
        half = name.startswith("diffusion.model.") and "_blocks" in name or "middle_block" in name
        state_dict[name] = value.half() if half else value  # their convert_to_fp16() blocks
    state_dict["diffusion.betas"] = torch.linspace(1e-4, 0.02, 10)  # schedule buffers: ours computes them
    marker = tmp_path / "pwned"
    ckpt = {"state_dict": state_dict, "hyper_parameters": {"cfg": Hostile(marker)}, "epoch": 7,
            "pytorch-lightning_version": "1.9.0", "callbacks": {"ModelCheckpoint": Hostile(marker)}}
    path = tmp_path / "last.ckpt"
    torch.save(ckpt, path)
    config = {"name": "tiny_cddpm", "experiment": {"name": "c", "task": "test", "weights": None}, "model": MODEL}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    return path, marker, ours, tmp_path / "tiny.yaml"


def test_weights_only_refuses_their_pickle(original):
    path, marker, _, _ = original
    with pytest.raises(Exception):
        torch.load(path, weights_only=True)
    assert not marker.exists()


def test_convert_loads_tensors_only_and_maps_every_key(original, tmp_path, capsys):
    path, marker, ours, config = original
    state = read_tensors_only(path)
    assert not marker.exists()  # the __reduce__ payload never ran
    assert type(state["hyper_parameters"]["cfg"]).__name__.startswith("Inert")
    out = tmp_path / "converted.pt"
    assert uad(["convert", "--input", str(path), "--output", str(out), "--config_path", str(config)]) == 0
    assert not marker.exists()
    converted = torch.load(out, map_location="cpu", weights_only=True)
    assert set(converted["model_weights"]) == set(ours)
    for key, value in ours.items():
        expected = value.half().float() if their_key(key).split(".")[2].endswith("_blocks") or "middle_block" in their_key(key) else value
        torch.testing.assert_close(converted["model_weights"][key], expected, rtol=0, atol=0)
    assert converted["config"]["model"] == MODEL


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

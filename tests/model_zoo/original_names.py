"""The originals' state-dict key names for tiny models, written by hand from their code (not
derived from our key maps), so a test can build a fake "original" checkpoint.

Sources (read, not copied): Conditioned-Diffusion-Models-UAD @ c5904a7
`src/models/modules/OpenAI_Unet.py` (UNetModel.__init__: input_blocks = [conv] + per level
[ResBlock (+ attention)] * num_res_blocks (+ a Downsample between levels); middle_block =
ResBlock, AttentionBlock, ResBlock; output_blocks per level num_res_blocks + 1 blocks, the
last of each level but the first ending in an Upsample), `src/models/DDPM_2D.py` (UNet at
`diffusion.model.`, timm encoder at `encoder.`, or SparK_2D_encoder's at `encoder.encoder.`),
`src/models/Spark_2D.py` + `modules/spark/{Spark_2D,decoder,encoder}.py` (SparK at `model.`);
ci-ber/RA @ 9b7a255: the recorded key list in tests/fixtures/parity_data/ra_network.json.
Their paper-size UNet keys, recorded from their module: tests/fixtures/parity_data/cddpm_unet_keys.json.
"""
from __future__ import annotations

import json
from pathlib import Path

# their ResBlock's parts -> ours
RESBLOCK = {"in_layers.0": "norm_in", "in_layers.2": "conv_in", "emb_layers.1": "emb_proj",
            "out_layers.0": "norm_out", "out_layers.3": "conv_out", "skip_connection": "skip"}

DIFFUSION = {"image_size": 16, "noise_source": {"kind": "gaussian"},
             "unet": {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "num_head_channels": 8, "num_groups": 8}}
CDDPM = dict(DIFFUSION, encoder={"arch": "resnet18", "cond_dim": 16})

# their UNet names -> ours, for DIFFUSION (resblock_updown, no attention but the middle's)
TINY_UNET = {
    "time_embed.0": "time_embed.0", "time_embed.2": "time_embed.2",
    "label_emb.0": "cond_embed.0", "label_emb.2": "cond_embed.2",
    "input_blocks.0.0": "input_conv",
    "input_blocks.1.0": "down.0.block", "input_blocks.2.0": "down.1.block", "input_blocks.3.0": "down.2.block",
    "middle_block.0": "middle.0.block", "middle_block.1": "middle.0.attn", "middle_block.2": "middle.1.block",
    "output_blocks.0.0": "up.0.block", "output_blocks.1.0": "up.1.block", "output_blocks.1.1": "up.2.block",
    "output_blocks.2.0": "up.3.block", "output_blocks.3.0": "up.4.block",
    "out.0": "out.0", "out.2": "out.2",
}

# UNetADM(image_size=16, base 8, mult (1, 2), 1 res block, attention at 8 px, resblock_updown false):
# the Downsample is a strided conv `op`, the Upsample a conv `conv` after nearest upsampling
UNET_CONV_RESAMPLE = {"image_size": 16, "architecture": {"base_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
                                                      "attention_resolutions": [8], "num_head_channels": 8, "num_groups": 8,
                                                      "resblock_updown": False}}
CONV_RESAMPLE_UNET = {
    "time_embed.0": "time_embed.0", "time_embed.2": "time_embed.2",
    "input_blocks.0.0": "input_conv",
    "input_blocks.1.0": "down.0.block", "input_blocks.2.0.op": "down.1.block",
    "input_blocks.3.0": "down.2.block", "input_blocks.3.1": "down.2.attn",
    "middle_block.0": "middle.0.block", "middle_block.1": "middle.0.attn", "middle_block.2": "middle.1.block",
    "output_blocks.0.0": "up.0.block", "output_blocks.0.1": "up.0.attn",
    "output_blocks.1.0": "up.1.block", "output_blocks.1.1": "up.1.attn", "output_blocks.1.2.conv": "up.2.block.1",
    "output_blocks.2.0": "up.3.block", "output_blocks.3.0": "up.4.block",
    "out.0": "out.0", "out.2": "out.2",
}

# their GaussianDiffusion buffers (src/models/modules/cond_DDPM.py register_buffer): ours computes them
SCHEDULE_BUFFERS = ("betas", "alphas_cumprod", "alphas_cumprod_prev", "sqrt_alphas_cumprod",
                    "posterior_variance", "posterior_mean_coef1", "p2_loss_weight")


def openai_unet_name(ours: str, table: dict[str, str]) -> str:
    """Our UNetADM key (without `unet.`) -> their OpenAI-UNet key, through a hand table."""
    for theirs, prefix in sorted(table.items(), key=lambda kv: -len(kv[1])):
        if ours.startswith(prefix + "."):
            rest = ours[len(prefix) + 1:]
            for t, o in RESBLOCK.items():
                if rest.startswith(o + "."):
                    rest = t + rest[len(o):]
            return theirs + "." + rest
    raise AssertionError(f"no original name for {ours}")


def is_fp16_torso(their_key: str) -> bool:
    """OpenAI's `convert_to_fp16()` halves input_blocks, middle_block and output_blocks (theirs at
    c5904a7 is a no-op, so their files hold fp32; fake originals keep fp16 to test the cast)."""
    return any(part in their_key for part in ("input_blocks.", "middle_block.", "output_blocks."))


def timm_name(ours: str) -> str:
    """Our ConditionEncoder key -> their timm ResNet key (trunk names alike, our `head` is `fc`)."""
    if ours.startswith("head."):
        return "fc." + ours[len("head."):]
    assert ours.startswith("backbone."), ours
    return ours[len("backbone."):]


def cddpm_name(ours: str, encoder_prefix: str = "encoder.") -> str:
    """Our DDPM / ConditionalDDPM key -> their DDPM_2D Lightning key (`encoder_prefix`: `encoder.` for
    a timm backbone, `encoder.encoder.` for their SparK_2D_encoder, the paper's)."""
    if ours.startswith("encoder."):
        return encoder_prefix + timm_name(ours[len("encoder."):])
    assert ours.startswith("unet."), ours
    return "diffusion.model." + openai_unet_name(ours[len("unet."):], TINY_UNET)


# their SparK_2D (model.*) module names -> ours
SPARK = {"model.sparse_encoder.sp_cnn": "backbone", "model.en_de_norms": "enc_norms",
         "model.en_de_lins": "projections", "model.mask_tokens": "mask_tokens",
         "model.dense_decoder.proj": "decoder.proj", "model.dense_decoder.dec": "decoder.stages"}
SPARK_BUFFERS = {"model.imn_m": (1, 3, 1, 1), "model.imn_s": (1, 3, 1, 1)}  # + norm_black (1, 3, S, S)


def spark_name(ours: str, identity_first_projection: bool) -> str | None:
    """Our SparkPretrainer key -> their Spark_2D Lightning key; None for their `nn.Identity()`
    first projection (encoder as wide as the decoder)."""
    if identity_first_projection and ours.startswith("projections.0."):
        return None
    for theirs, prefix in SPARK.items():
        if ours.startswith(prefix + "."):
            rest = ours[len(prefix) + 1:]
            if prefix == "decoder.stages":  # <i>.conv.<j>. -> <i>.conv.0.b.<j>. (one UNetBlock2x)
                stage, sep, tail = rest.partition(".conv.")
                rest = f"{stage}.conv.0.b.{tail}" if sep else rest
            return f"{theirs}.{rest}"
    raise AssertionError(f"no original name for {ours}")


CDDPM_UNET_RECORDING = Path(__file__).resolve().parents[1] / "fixtures" / "parity_data" / "cddpm_unet_keys.json"
RA_RECORDING = Path(__file__).resolve().parents[1] / "fixtures" / "parity_data" / "ra_network.json"
RA_PAPER = {"in_channels": 1, "image_size": 128, "channels": [64, 128, 256, 512, 512], "latent_dim": 128,
            "published_skip_convs": True}


def ra_keys() -> list[tuple[str, list[int]]]:
    """The published RA's state-dict keys and shapes at the paper size, in order, as recorded."""
    return [(k, shape) for k, shape in json.loads(RA_RECORDING.read_text())["state_dict"]]


# RA (ci-ber/RA model_zoo/ra.py) at image_size 16, channels (4, 8): the encoder's `main` is conv, BN,
# then `res_in_<size>` per channel step and a last one; the decoder's `main` one `res_in_<size>`
# per channel entry from size 4 up, a last one, then `predict`; `conv_expand` where the counts differ
RA_TINY = {"in_channels": 1, "image_size": 16, "channels": [4, 8], "latent_dim": 8}
RA_TINY_MODULES = {
    "encoder.main.0": "encoder.stem.0", "encoder.main.1": "encoder.stem.1",
    "encoder.main.res_in_8": "encoder.stages.0", "encoder.main.res_in_4": "encoder.final", "encoder.fc": "encoder.fc",
    "decoder.fc.0": "decoder.fc.0", "decoder.main.res_in_4": "decoder.main.0", "decoder.main.res_in_8": "decoder.main.2",
    "decoder.main.res_in_16": "decoder.main.4", "decoder.main.predict": "decoder.main.5",
}


def ra_tiny_name(ours: str) -> str:
    """Our RAModel(**RA_TINY) key -> the published RA's key."""
    for theirs, prefix in RA_TINY_MODULES.items():
        if ours.startswith(prefix + "."):
            return theirs + "." + ours[len(prefix) + 1:].replace("expand.", "conv_expand.")
    raise AssertionError(f"no original name for {ours}")

"""`uad convert`: the authors' Lightning checkpoints -> checkpoints of this framework, tensors only.

Their `.ckpt` files pickle the hyper-parameters (omegaconf objects), so
`torch.load(weights_only=True)` refuses them, and a plain `torch.load` would run
whatever code the pickle names. Here the zip's `data.pkl` is read by a restricted
unpickler: torch's tensor-rebuild functions and storage types are the only globals it
resolves; every other global becomes an inert placeholder that runs nothing. Then their
key names (Conditioned-Diffusion-Models-UAD, `src/models/DDPM_2D.py`: the OpenAI UNet
under `diffusion.model.`, the timm ResNet under `encoder.`) are mapped onto
`model_zoo.unet_adm.UNetADM` / `model_zoo.condition_encoder.ConditionEncoder`, and the
result is loaded strictly into the model of our config before it is written. Their SparK
pre-training checkpoints (`src/models/Spark_2D.py`, the ResNet at
`model.sparse_encoder.sp_cnn.`) become encoder files for `init_weights`.
"""
from __future__ import annotations

import collections
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dl_utils.checkpoint import save_checkpoint
from dl_utils.errors import UserInputError

UNET_PREFIXES = ("diffusion.model.", "model.")  # DDPM_2D keeps the UNet at diffusion.model; others at model
ENCODER_PREFIX = "encoder."
RESBLOCK_PARTS = {"in_layers.0": "norm_in", "in_layers.2": "conv_in", "emb_layers.1": "emb_proj",
                  "out_layers.0": "norm_out", "out_layers.3": "conv_out", "skip_connection": "skip"}
STORAGE_DTYPES = {f"{name}Storage": dtype for name, dtype in (
    ("Float", torch.float32), ("Double", torch.float64), ("Half", torch.float16), ("BFloat16", torch.bfloat16),
    ("Long", torch.int64), ("Int", torch.int32), ("Short", torch.int16), ("Char", torch.int8),
    ("Byte", torch.uint8), ("Bool", torch.bool))}


# ---- reading their pickles without running them -------------------------------------------
class Inert:
    """Stands for any object of a class the restricted unpickler does not trust; does nothing."""

    _name = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<inert {self._name}>"


def _inert_class(module: str, name: str) -> type:
    return type(f"Inert_{name}", (Inert,), {"_name": f"{module}.{name}"})


class _StorageType:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


class TensorsOnlyUnpickler(pickle.Unpickler):
    """Unpickles a torch zip checkpoint's `data.pkl`: tensors and plain containers only."""

    def __init__(self, handle: Any, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(handle)
        self.archive, self.prefix = archive, prefix

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_parameter"):
            return getattr(torch._utils, name)
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch" and name in ("float32", "float16", "bfloat16", "float64", "int64"):
            return getattr(torch, name)
        return _inert_class(module, name)  # their hparams, callbacks, anything else: never resolved

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, _numel = pid[:5]
        dtype = storage_type.dtype if isinstance(storage_type, _StorageType) else torch.uint8
        raw = self.archive.read(f"{self.prefix}/data/{key}")
        untyped = torch.UntypedStorage.from_buffer(raw, dtype=torch.uint8) if raw else torch.UntypedStorage(0)
        return torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)


def read_tensors_only(path: str | Path) -> dict[str, Any]:
    """The checkpoint dict with every untrusted object replaced by an inert placeholder."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: checkpoint not found; give the path of the original .ckpt file")
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if not pickles:
                raise UserInputError(f"{path}: no data.pkl inside; it is not a torch (>= 1.6) checkpoint")
            prefix = pickles[0].rsplit("/", 1)[0] if "/" in pickles[0] else ""
            with archive.open(pickles[0]) as handle:
                state = TensorsOnlyUnpickler(handle, archive, prefix).load()
    except zipfile.BadZipFile:
        raise UserInputError(f"{path}: not a zip-format torch checkpoint (legacy or corrupt); re-save it with torch >= 1.6") from None
    except (pickle.UnpicklingError, EOFError, KeyError, RuntimeError) as exc:
        raise UserInputError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(state, dict):
        raise UserInputError(f"{path}: the checkpoint is not a dict; expected a Lightning checkpoint with 'state_dict'")
    return state


# ---- their names onto ours ------------------------------------------------------------------
def _stage_names(unet: nn.Module) -> tuple[list[str], list[str], list[str]]:
    """Our down stages, main up stages (take a skip) and the upsample stage after each main one ('' if none)."""
    down = [f"down.{i}" for i in range(len(unet.down))]
    main, after = [], []
    for i, stage in enumerate(unet.up):
        if stage.takes_skip:
            main.append(f"up.{i}")
            after.append("")
        else:
            after[-1] = f"up.{i}"
    return down, main, after


def _block_part(rest: str) -> tuple[str, str]:
    """'in_layers.2.weight' -> ('conv_in', 'weight') for res blocks; attention names stay."""
    for theirs, ours in RESBLOCK_PARTS.items():
        if rest.startswith(theirs + "."):
            return ours, rest[len(theirs) + 1:]
    return "", rest


def map_unet_key(key: str, unet: nn.Module) -> str | None:
    """One OpenAI-UNet key (without prefix) -> ours (without `unet.`), None when it has no counterpart."""
    down, main, after = _stage_names(unet)
    if key.startswith(("time_embed.", "out.")):
        return key
    if key.startswith("label_emb."):
        return "cond_embed." + key[len("label_emb."):]
    match = re.match(r"input_blocks\.(\d+)\.(\d+)\.(.*)", key)
    if match:
        block, layer, rest = int(match[1]), int(match[2]), match[3]
        if block == 0:
            return "input_conv." + rest
        part, leaf = _block_part(rest)
        stage = down[block - 1]
        return f"{stage}.block.{part}.{leaf}" if part else f"{stage}.attn.{leaf}"
    match = re.match(r"middle_block\.(\d+)\.(.*)", key)
    if match:
        layer, rest = int(match[1]), match[2]
        part, leaf = _block_part(rest)
        target = {0: "middle.0.block", 1: "middle.0.attn", 2: "middle.1.block"}[layer]
        return f"{target}.{part}.{leaf}" if part else f"{target}.{leaf}"
    match = re.match(r"output_blocks\.(\d+)\.(\d+)\.(.*)", key)
    if match:
        block, layer, rest = int(match[1]), int(match[2]), match[3]
        part, leaf = _block_part(rest)
        if not part:  # attention after the res block
            return f"{main[block]}.attn.{leaf}"
        if layer == 0:
            return f"{main[block]}.block.{part}.{leaf}"
        return f"{after[block]}.block.{part}.{leaf}"  # the upsampling res block ends the output block
    return None


def map_state_dict(theirs: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Their Lightning `state_dict` -> our model's keys (fp16 weights become fp32; schedule buffers dropped)."""
    unet = getattr(model, "unet", None)
    if unet is None:
        raise UserInputError(f"{type(model).__name__} has no `unet`; convert targets DDPM / ConditionalDDPM configs")
    out: dict[str, Tensor] = {}
    for key, value in theirs.items():
        if not isinstance(value, Tensor):
            continue
        prefix = next((p for p in UNET_PREFIXES if key.startswith(p)), None)
        if prefix is not None:
            mapped = map_unet_key(key[len(prefix):], unet)
            if mapped is not None:
                out["unet." + mapped] = value.float() if value.is_floating_point() else value
        elif key.startswith(ENCODER_PREFIX) and hasattr(model, "encoder"):
            rest = key[len(ENCODER_PREFIX):]
            target = "encoder.head." + rest[len("fc."):] if rest.startswith("fc.") else "encoder.backbone." + rest
            out[target] = value.float() if value.is_floating_point() else value
    return out


SPARK_TRUNK = ".sparse_encoder.sp_cnn."  # their SparK Lightning module: model.sparse_encoder.sp_cnn.<timm ResNet>


def is_spark_checkpoint(theirs: dict[str, Any]) -> bool:
    """Whether a Lightning `state_dict` is their SparK pre-training (src/models/Spark_2D.py)."""
    return any(SPARK_TRUNK in key for key in theirs)


def map_spark_trunk(theirs: dict[str, Any]) -> dict[str, Tensor]:
    """Their SparK `state_dict` -> the ResNet trunk's keys (conv1 .. layer4): what their cDDPM
    loads into its encoder (`DDPM_2D.py`: keys after `sp_cnn`, the fc layer removed)."""
    out: dict[str, Tensor] = {}
    for key, value in theirs.items():
        if SPARK_TRUNK in key and isinstance(value, Tensor):
            rest = key.split(SPARK_TRUNK, 1)[1]
            if not rest.startswith("fc."):
                out[rest] = value.float() if value.is_floating_point() else value
    return out


def _backbone_of(model: nn.Module) -> nn.Module:
    """The ResNet trunk a SparK checkpoint fits: `backbone` (Spark pre-training) or `encoder.backbone` (cDDPM)."""
    for path in ("backbone", "encoder.backbone"):
        try:
            return model.get_submodule(path)
        except AttributeError:
            continue
    raise UserInputError(f"{type(model).__name__} has no ResNet trunk (`backbone` or `encoder.backbone`); a SparK "
                         "checkpoint converts with a Spark pre-training or cDDPM config")


def convert_checkpoint(source: str | Path, output: str | Path, config_path: str | Path | None) -> Path:
    """Read `source` (tensors only), map its keys onto the model of `config_path`, load strictly,
    and write `output` (with the config inside, so it is self-describing).

    A SparK pre-training checkpoint becomes an encoder file in the format our Spark runs
    export (`model_weights` = the ResNet trunk), for `init_weights: {encoder.backbone: FILE}`."""
    from core.config.configurator import ComponentBuilder, load_config
    from core.run import checkpoint_metadata
    from dl_utils.weights import load_model_weights

    if not config_path:
        raise UserInputError("uad convert needs --config_path: our config whose model the weights fit "
                             "(e.g. projects/cDDPM/configs/cddpm_paper.yaml)")
    state = read_tensors_only(source)
    weights = state.get("state_dict")
    if not isinstance(weights, dict):
        raise UserInputError(f"{source}: no 'state_dict' entry; expected a PyTorch Lightning checkpoint")
    config = load_config(config_path)
    model = ComponentBuilder(config_path).build(config["model"], "model")
    epoch = int(state.get("epoch", -1)) if isinstance(state.get("epoch"), int) else -1
    if is_spark_checkpoint(weights):
        trunk = _backbone_of(model)
        load_model_weights(trunk, {"model_weights": map_spark_trunk(weights)}, source)  # strict
        output = Path(output)
        save_checkpoint({"model_weights": trunk.state_dict(), "epoch": epoch, "converted_from": str(source)}, output)
        return output
    mapped = map_state_dict(weights, model)
    load_model_weights(model, {"model_weights": mapped}, source)  # strict: every key and shape must fit
    output = Path(output)
    save_checkpoint({"model_weights": model.state_dict(), "epoch": epoch,
                     "converted_from": str(source), **checkpoint_metadata.describe(config)}, output)
    return output

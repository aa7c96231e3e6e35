"""`uad convert`: the authors' checkpoints -> checkpoints of this framework, tensors only.

Reading, dispatch and writing only; the key maps live beside the models (`model_zoo/`), each
model's `state_dict_from_original` (the `ConvertsOriginalWeights` contract below).

Their `.ckpt` files pickle the hyper-parameters (omegaconf objects), so
`torch.load(weights_only=True)` refuses them, and a plain `torch.load` would run
whatever code the pickle names. Here the zip's `data.pkl` is read by a restricted
unpickler: torch's tensor-rebuild functions and storage types are the only globals it
resolves; every other global becomes an inert placeholder that runs nothing.

Their state dict is found in the checkpoint (Lightning `state_dict`: DDPM / cDDPM / SparK;
iml-dl's `model_weights`: RA, ci-ber/RA `RA_Trainer.py`; or a bare state dict), mapped by the
model of our config, loaded strictly and written with the config inside. A SparK
pre-training checkpoint (`model.sparse_encoder.sp_cnn.`) becomes an encoder file for
`trainer.params.weights.init: {encoder.backbone: FILE}`: the mapped ResNet trunk only.
"""
from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from dl_utils.checkpoint import save_checkpoint
from dl_utils.errors import UserInputError

SPARK_TRUNK = ".sparse_encoder.sp_cnn."  # their SparK Lightning module: model.sparse_encoder.sp_cnn.<timm ResNet>
TRUNK_PATHS = ("backbone", "encoder.backbone")  # where our models keep the ResNet a SparK checkpoint fits
STORAGE_DTYPES = {f"{name}Storage": dtype for name, dtype in (
    ("Float", torch.float32), ("Double", torch.float64), ("Half", torch.float16), ("BFloat16", torch.bfloat16),
    ("Long", torch.int64), ("Int", torch.int32), ("Short", torch.int16), ("Char", torch.int8),
    ("Byte", torch.uint8), ("Bool", torch.bool))}


@runtime_checkable
class ConvertsOriginalWeights(Protocol):
    """A model (`model_zoo/`) that renames its original authors' state dict onto its own keys.

    Pure (no I/O): tensors in, tensors out, fp32. Keys of theirs that are not weights of
    the model (schedule buffers, constant buffers) are dropped; any other key without a
    counterpart keeps its name, so the strict load that follows names it.
    `tests/model_zoo/test_original_weights.py` checks every implementation, discovered.
    """

    def state_dict_from_original(self, theirs: dict[str, Tensor]) -> dict[str, Tensor]: ...


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
    except UserInputError:
        raise
    except (pickle.UnpicklingError, EOFError, KeyError, RuntimeError, TypeError, ValueError, AttributeError, IndexError,
            RecursionError, MemoryError) as exc:  # a crafted pickle fails in many ways; none is a traceback
        raise UserInputError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from None
    if not isinstance(state, dict):
        raise UserInputError(f"{path}: the checkpoint is not a dict; expected a Lightning checkpoint with 'state_dict'")
    return state


# ---- dispatch ------------------------------------------------------------------------------
def original_state_dict(state: dict[str, Any], source: str | Path) -> dict[str, Tensor]:
    """The state dict inside one of their checkpoints (tensors only): Lightning's `state_dict`,
    iml-dl's `model_weights` (RA: `torch.save({'model_weights': ..., 'epoch': ...})`) or the
    checkpoint itself when it is a bare state dict."""
    for entry in ("state_dict", "model_weights"):
        if isinstance(state.get(entry), dict):
            return _named(state[entry], source, f"'{entry}'")
    if state and all(isinstance(v, Tensor) for v in state.values()):
        return _named(state, source, "the state dict")
    raise UserInputError(f"{source}: no 'state_dict' (Lightning) or 'model_weights' (iml-dl, RA) entry and not a "
                         "state dict; give the original checkpoint file")


def _named(weights: dict[Any, Any], source: str | Path, what: str) -> dict[str, Tensor]:
    """The tensors of `weights`; a key that is not a parameter name is a one-line error."""
    for key in weights:
        if not isinstance(key, str):
            raise UserInputError(f"{source}: {what} holds the key {key!r} ({type(key).__name__}), not a parameter name; "
                                 "give the original checkpoint file")
    return {k: v for k, v in weights.items() if isinstance(v, Tensor)}


def is_spark_checkpoint(theirs: dict[str, Any]) -> bool:
    """Whether a Lightning `state_dict` is their SparK pre-training (src/models/Spark_2D.py)."""
    return any(SPARK_TRUNK in key for key in theirs)


def _trunk_of(model: nn.Module, config_path: str | Path) -> tuple[str, nn.Module]:
    """The ResNet trunk a SparK checkpoint fits: `backbone` (Spark pre-training) or `encoder.backbone` (cDDPM)."""
    for path in TRUNK_PATHS:
        try:
            return path, model.get_submodule(path)
        except AttributeError:
            continue
    raise UserInputError(f"{config_path}: {type(model).__name__} has no ResNet trunk (`backbone` or `encoder.backbone`); "
                         "a SparK checkpoint converts with a Spark pre-training or cDDPM config")


def convert_checkpoint(source: str | Path, output: str | Path, config_path: str | Path | None,
                       allow_external_modules: bool = False) -> Path:
    """Read `source` (tensors only), map its keys with the model of `config_path`, load strictly,
    and write `output` (with the config inside, so it is self-describing).

    A SparK pre-training checkpoint becomes an encoder file in the format our Spark runs
    export (`model_weights` = the ResNet trunk), for `weights.init: {encoder.backbone: FILE}`."""
    from core.config.builder import MODEL, ComponentBuilder
    from core.config.configurator import load_config, refuse_file_opt_in
    from core.run import checkpoint_metadata
    from core.run.assembly import check_components
    from dl_utils.param_groups import HeldWarnings
    from dl_utils.weights import load_strict

    if not config_path:
        raise UserInputError("uad convert needs --config_path: our config whose model the weights fit "
                             "(e.g. projects/cDDPM/configs/cddpm_paper.yaml)")
    state = read_tensors_only(source)
    theirs = original_state_dict(state, source)
    config = load_config(config_path)
    refuse_file_opt_in(config, config_path)
    builder = ComponentBuilder(config_path, allow_external_modules)
    with HeldWarnings():  # upgrade warnings only for a config that is accepted
        config = builder.upgrade(config)  # stamped metadata_version 2 below: the stored config is today's form, as a run's
        check_components(config, builder)  # the checkpoint carries every section on: each checked, not only the model
    model = builder.build(config["model"], "model", expected=MODEL)
    if not isinstance(model, ConvertsOriginalWeights):
        raise UserInputError(f"{config_path}: {type(model).__name__} has no map from the originals' weights; "
                             "uad convert takes a DDPM, cDDPM, Spark pre-training or RA config")
    try:
        mapped = model.state_dict_from_original(theirs)
    except ValueError as exc:
        raise UserInputError(f"{source}: does not fit the model of {config_path}: {exc}") from None
    epoch = int(state["epoch"]) if isinstance(state.get("epoch"), int) else -1
    output = Path(output)
    hint = f"check that {config_path} is the config of the method and size that wrote the checkpoint"
    if is_spark_checkpoint(theirs):
        path, trunk = _trunk_of(model, config_path)
        weights = {k[len(path) + 1:]: v for k, v in mapped.items() if k.startswith(path + ".")}
        load_strict(trunk, weights, source, f"the ResNet trunk of {config_path}",
                    hint=f"check the encoder's arch in {config_path} (cDDPM: encoder.arch; Spark: encoder_arch)")
        save_checkpoint({"model_weights": trunk.state_dict(), "epoch": epoch, "converted_from": str(source)}, output)
        return output
    load_strict(model, mapped, source, f"the model of {config_path}", hint=hint)
    save_checkpoint({"model_weights": model.state_dict(), "epoch": epoch,
                     "converted_from": str(source), **checkpoint_metadata.describe(config)}, output)
    return output

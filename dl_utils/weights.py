"""Strict weight loading with one report of missing, unexpected and mis-shaped keys, and of tensors
no model can use (not dense, no data, complex or of another kind of dtype, NaN or infinite)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from dl_utils.errors import UserInputError

UNUSABLE_FIX = ("use a checkpoint written by this framework's training (dense, finite tensors of the model's dtypes) "
                "or train again")


def _show(keys: list[str], limit: int = 5) -> str:
    if not keys:
        return "none"
    return ", ".join(keys[:limit]) + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def _shape(value: Any) -> tuple[int, ...] | None:
    """The shape of a tensor (None: not a tensor, or one without a plain shape, e.g. a nested tensor)."""
    try:
        return tuple(value.shape) if torch.is_tensor(value) else None
    except RuntimeError:
        return None


def weights_mismatch(own: Mapping[str, Tensor], given: Mapping[str, Any]) -> str | None:
    """None when `given` fits `own` exactly (same keys, same shapes); else the report, in one line."""
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    mismatched = sorted(
        f"{k} {_shape(given[k]) if _shape(given[k]) is not None else type(given[k]).__name__} vs {tuple(own[k].shape)}"
        for k in set(own) & set(given)
        if _shape(given[k]) != tuple(own[k].shape)
    )
    if not (missing or unexpected or mismatched):
        return None
    return f"missing {_show(missing)}; unexpected {_show(unexpected)}; shape mismatch {_show(mismatched)}"


def _kind(dtype: torch.dtype) -> str:
    if dtype.is_complex:
        return "complex"
    return "floating-point" if dtype.is_floating_point else "integer"


def tensor_problem(given: Tensor, own: Tensor) -> str | None:
    """Why the tensor `given` (of `own`'s shape) cannot be `own`'s value, in words; None when it can.

    Checked before `load_state_dict`, which would fail on a sparse or meta tensor with a long traceback,
    silently drop a complex tensor's imaginary part, round floats into an integer buffer, and load NaN."""
    if given.device.type not in ("cpu", own.device.type):
        return f"is on the {given.device.type} device" + (" (it holds no values)" if given.is_meta else "")
    if given.layout != torch.strided or getattr(given, "is_nested", False):
        return f"is a {str(given.layout).removeprefix('torch.')} tensor, not a dense one"
    if _kind(given.dtype) != _kind(own.dtype):  # a float32 file for a float16 model is fine, a complex or an integer one is not
        return f"is {str(given.dtype).removeprefix('torch.')} where the model has {str(own.dtype).removeprefix('torch.')}"
    if given.dtype.is_floating_point and not bool(torch.isfinite(given).all()):
        return "holds NaN or infinite values"
    return None


def weights_unusable(own: Mapping[str, Tensor], given: Mapping[str, Tensor]) -> str | None:
    """None when every tensor of `given` (keys and shapes already fit `own`) can be loaded; else the report."""
    problems = [f"{k} {why}" for k in sorted(own) if k in given and (why := tensor_problem(given[k], own[k]))]
    return _show(problems, limit=2) if problems else None


def load_strict(module: nn.Module, weights: Mapping[str, Any], source: object, target: str = "the model",
                hint: str = "check the model's params against the config that trained them") -> None:
    """`module.load_state_dict(weights, strict=True)`, or a one-line UserInputError naming `source`, `target` and the keys."""
    if not isinstance(weights, Mapping):
        raise UserInputError(f"{source}: the weights for {target} are not a mapping of tensors; {hint}")
    own = module.state_dict()
    report = weights_mismatch(own, weights)
    if report:
        raise UserInputError(f"{source}: weights do not fit {target}: {report}; {hint}")
    unusable = weights_unusable(own, weights)
    if unusable:
        raise UserInputError(f"{source}: weights unusable for {target}: {unusable}; {UNUSABLE_FIX}")
    module.load_state_dict(dict(weights), strict=True)


def load_model_weights(model: nn.Module, state: Mapping[str, Any], source: object) -> None:
    """Strict load of a framework checkpoint's `model_weights` into `model`."""
    if "model_weights" not in state:
        raise UserInputError(f"{source}: no 'model_weights' entry; it is not a checkpoint of this framework")
    load_strict(model, state["model_weights"], source)

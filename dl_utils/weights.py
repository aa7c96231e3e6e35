"""Strict weight loading with one report of missing, unexpected and mis-shaped keys."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from dl_utils.errors import UserInputError


def _show(keys: list[str], limit: int = 5) -> str:
    if not keys:
        return "none"
    return ", ".join(keys[:limit]) + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def weights_mismatch(own: Mapping[str, Tensor], given: Mapping[str, Any]) -> str | None:
    """None when `given` fits `own` exactly (same keys, same shapes); else the report, in one line."""
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    mismatched = sorted(
        f"{k} {tuple(given[k].shape)} vs {tuple(own[k].shape)}"
        for k in set(own) & set(given)
        if not hasattr(given[k], "shape") or tuple(given[k].shape) != tuple(own[k].shape)
    )
    if not (missing or unexpected or mismatched):
        return None
    return f"missing {_show(missing)}; unexpected {_show(unexpected)}; shape mismatch {_show(mismatched)}"


def load_strict(module: nn.Module, weights: Mapping[str, Any], source: object, target: str = "the model",
                hint: str = "check the model's params against the config that trained them") -> None:
    """`module.load_state_dict(weights, strict=True)`, or a one-line UserInputError naming `source`, `target` and the keys."""
    if not isinstance(weights, Mapping):
        raise UserInputError(f"{source}: the weights for {target} are not a mapping of tensors; {hint}")
    report = weights_mismatch(module.state_dict(), weights)
    if report:
        raise UserInputError(f"{source}: weights do not fit {target}: {report}; {hint}")
    module.load_state_dict(dict(weights), strict=True)


def load_model_weights(model: nn.Module, state: Mapping[str, Any], source: object) -> None:
    """Strict load of a framework checkpoint's `model_weights` into `model`."""
    if "model_weights" not in state:
        raise UserInputError(f"{source}: no 'model_weights' entry; it is not a checkpoint of this framework")
    load_strict(model, state["model_weights"], source)

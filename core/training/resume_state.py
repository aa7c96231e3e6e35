"""The typed view of a `latest_model.pt` that `Trainer.resume` continues from, checked field by field.

A run folder may come from someone else: every field is checked (type, range, the trainer's own
row format, RNG and optimiser states loadable) before the run starts, so that a damaged or crafted
checkpoint is one line naming the file, never a traceback after the run folder was rewritten.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dl_utils.errors import UserInputError

REQUIRED = ("optimizer_weights", "epoch", "best_val", "best_epoch")
RESUME_FIX = "the checkpoint is damaged or written for another config: resume from another run folder or start anew"


@dataclass(frozen=True)
class ResumeState:
    """What a trainer restores; `model_weights` are checked against the model by `load_strict`."""

    model_weights: Mapping[str, Tensor]
    optimizer_weights: Mapping[str, Mapping[str, Any]]
    epoch: int  # the last complete epoch (0-based)
    best_val: float
    best_epoch: int  # -1: no epoch selected yet
    epochs_without_improvement: int
    stopped_early: bool
    history: list[dict[str, float]]
    torch_rng: Tensor | None
    scaler: Mapping[str, Any]


def _shown(value: Any) -> str:
    """A short description of a field's value for the one-line message."""
    if torch.is_tensor(value):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    if isinstance(value, (Mapping, list, tuple)):
        return f"a {type(value).__name__} of {len(value)} item(s)"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class _Fields:
    """Reads the fields of one checkpoint; each refusal names the file, the field and what was expected."""

    def __init__(self, state: Mapping[str, Any], path: Path):
        self.state, self.path = state, path

    def refuse(self, field: str, value: Any, expected: str) -> UserInputError:
        return UserInputError(f"{self.path}: field {field} is {_shown(value)}, expected {expected}; {RESUME_FIX}")

    def integer(self, field: str, low: int, high: int, default: int | None = None) -> int:
        value = self.state.get(field, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.refuse(field, value, f"an integer in [{low}, {high}]")
        return value

    def real(self, field: str) -> float:
        value = self.state[field]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value == -math.inf:
            raise self.refuse(field, value, "a number (or inf before the first validation)")
        return float(value)

    def mapping(self, field: str, default: Any = None) -> Mapping[str, Any]:
        value = self.state.get(field, default)
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise self.refuse(field, value, "a mapping with names as keys")
        return value

    def history(self, epoch: int) -> list[dict[str, float]]:
        """The trainer's rows: {epoch: int, <loss or seconds>: number}, epochs increasing, none after `epoch`."""
        rows = self.state.get("history", [])
        if not isinstance(rows, list):
            raise self.refuse("history", rows, "a list of the trainer's rows")
        previous = -1
        for i, row in enumerate(rows):
            where = f"history[{i}]"
            if not isinstance(row, Mapping) or not all(isinstance(k, str) for k in row) or "epoch" not in row:
                raise self.refuse(where, row, "a row {epoch: an integer, <name>: a number, ...}")
            number = row["epoch"]
            if isinstance(number, bool) or not isinstance(number, int) or not previous < number <= epoch:
                raise self.refuse(f"{where}.epoch", number, f"an integer in [{previous + 1}, {epoch}] (rows in epoch order)")
            previous = number
            for key, value in row.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise self.refuse(f"{where}.{key}", value, "a number")
        return [dict(row) for row in rows]

    def rng(self) -> Tensor | None:
        value = self.state.get("torch_rng")
        if value is None and "torch_rng" not in self.state:
            return None
        expected = f"torch.get_rng_state()'s uint8 tensor of shape {tuple(torch.get_rng_state().shape)}"
        if not torch.is_tensor(value) or value.dtype != torch.uint8 or value.dim() != 1:
            raise self.refuse("torch_rng", value, expected)
        try:  # on a generator of its own: the process's generator is set only once every field passed
            torch.Generator().set_state(value.cpu())
        except (RuntimeError, TypeError, ValueError) as exc:
            raise self.refuse("torch_rng", value, expected) from exc
        return value.cpu()


def read_resume_state(state: Mapping[str, Any], path: str | Path, nr_epochs: int) -> ResumeState:
    """Every field of a loaded `latest_model.pt` (see `Trainer.save_latest`) checked, or a one-line UserInputError."""
    path = Path(path)
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise UserInputError(f"{path}: not a resumable training state (no {', '.join(missing)}); "
                             "resume from a run folder's checkpoints/latest_model.pt")
    fields = _Fields(state, path)
    epoch = fields.integer("epoch", 0, nr_epochs - 1)
    optimizers = fields.mapping("optimizer_weights")
    for name, opt_state in optimizers.items():
        if not isinstance(opt_state, Mapping):
            raise fields.refuse(f"optimizer_weights.{name}", opt_state, "an optimiser's state_dict (a mapping)")
    stopped = state.get("stopped_early", False)
    if not isinstance(stopped, bool):
        raise fields.refuse("stopped_early", stopped, "true or false")
    return ResumeState(
        model_weights=state["model_weights"],
        optimizer_weights=optimizers,
        epoch=epoch,
        best_val=fields.real("best_val"),
        best_epoch=fields.integer("best_epoch", -1, epoch),
        epochs_without_improvement=fields.integer("epochs_without_improvement", 0, epoch + 1, default=0),
        stopped_early=stopped,
        history=fields.history(epoch),
        torch_rng=fields.rng(),
        scaler=fields.mapping("scaler", default={}),
    )


def _same_kind(saved: Any, own: Any) -> bool:
    """Whether a saved optimiser hyperparameter has the kind of the trainer's own (a number, a flag, a pair, ...)."""
    if own is None or isinstance(own, str):
        return saved is None or isinstance(saved, type(own))
    if isinstance(own, bool):
        return isinstance(saved, bool)
    if isinstance(own, (int, float)):
        return not isinstance(saved, bool) and isinstance(saved, (int, float)) and math.isfinite(saved)
    if isinstance(own, (tuple, list)):
        return isinstance(saved, (tuple, list)) and len(saved) == len(own) and all(map(_same_kind, saved, own))
    if torch.is_tensor(own):
        return torch.is_tensor(saved) and saved.shape == own.shape
    return isinstance(saved, type(own))


def load_optimizer_state(optimizer: torch.optim.Optimizer, name: str, saved: Mapping[str, Any], path: str | Path) -> None:
    """Load `saved` into `optimizer`, then check what torch does not: each group's hyperparameters have
    the trainer's kinds, each parameter's state holds finite tensors of its shape (or scalars)."""
    def refuse(detail: str) -> UserInputError:
        return UserInputError(f"{path}: optimiser '{name}' state does not fit this trainer ({detail}); "
                              "resume with the config that wrote it, from another run folder, or start anew")

    own_groups = [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]
    try:
        optimizer.load_state_dict(dict(saved))
    except Exception as exc:  # torch raises KeyError, ValueError, TypeError, AttributeError, ... for a foreign dict
        raise refuse(" ".join(str(exc).split())[:120] or type(exc).__name__) from exc
    for i, (own, group) in enumerate(zip(own_groups, optimizer.param_groups)):
        for key, value in own.items():
            if key not in group or not _same_kind(group[key], value):
                raise refuse(f"param_groups[{i}].{key} is {_shown(group.get(key))}, expected one like {_shown(value)}")
    for i, group in enumerate(optimizer.param_groups):
        for j, param in enumerate(group["params"]):
            entry = optimizer.state.get(param, {})
            if not isinstance(entry, Mapping):
                raise refuse(f"the state of group {i} parameter {j} is {_shown(entry)}")
            for key, value in entry.items():
                fits = (value is None or (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value))
                        or (torch.is_tensor(value) and value.shape in (param.shape, torch.Size([]))
                            and (not value.is_floating_point() or bool(torch.isfinite(value).all()))))
                if not fits:
                    raise refuse(f"the state '{key}' of group {i} parameter {j} is {_shown(value)}, "
                                 f"expected a finite tensor of shape {tuple(param.shape)} or a scalar")

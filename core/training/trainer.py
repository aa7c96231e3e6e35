"""Base training loop: validation, early stopping, atomic checkpoints, resume, AMP, DDP.

A project subclass writes only its step: `training_step` (one loss) or `run_step`
(several optimisers, e.g. RA's alternating encoder/decoder updates).
"""
from __future__ import annotations

import contextlib
import enum
import glob
import logging
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler

from core.training import loaders
from core.training.contracts import EpochSeeded, ModelWithOwnLoss, TrainingDataModule
from core.training.resume_state import RESUME_FIX, load_optimizer_state, read_resume_state
from dl_utils.checkpoint import load_checkpoint, save_checkpoint
from dl_utils.device import cpu_bf16_native
from dl_utils.distributed import DistributedContext, all_reduce_gradients, all_reduce_mean, broadcast_parameters
from dl_utils.errors import UserInputError
from dl_utils.options import parse_option
from dl_utils.param_groups import group_flat_params
from dl_utils.param_ranges import Epochs, LearningRate, PositiveFloat, SamplesPerEpoch
from dl_utils.param_types import closest, keyword_names, mismatch
from dl_utils.progress import progress
from dl_utils.run_logger import RunLogger
from dl_utils.seeding import DEFAULT_SEED
from dl_utils.termination import deferred, raise_if_terminated
from dl_utils.weights import load_strict, weights_mismatch, weights_unusable
from optim.contracts import TrainingLoss

LOG = logging.getLogger(__name__)
STAGING_DIR = ".partial"  # in the run folder: checkpoints are written here, then renamed into checkpoints/



class Optimizer(enum.StrEnum):
    ADAM = "adam"
    ADAMW = "adamw"
    SGD = "sgd"


OPTIMIZERS = {Optimizer.ADAM: torch.optim.Adam, Optimizer.ADAMW: torch.optim.AdamW, Optimizer.SGD: torch.optim.SGD}


@dataclass(frozen=True)
class TrainingContext:
    """What the framework gives a trainer (core.run.assembly), never the YAML: the model, the
    training data module, the device, this process's place in a distributed run and the run's seed
    (`experiment.seed`, which also seeds the sample order)."""

    model: nn.Module
    data_module: TrainingDataModule
    device: torch.device
    dist: DistributedContext = DistributedContext()
    seed: int = DEFAULT_SEED


@dataclass(frozen=True)
class WeightFiles:
    """Submodule weights a run reads before training and writes after it.

    init: {submodule path ("" = the whole model): checkpoint file} loaded strictly before
    training; a `*` in the path picks the last match in sorted order (e.g. the newest Spark run
    folder). export: {submodule path: file name inside the run folder} written from the best
    weights after training (e.g. Spark's encoder trunk for cDDPM's `encoder.backbone`); a run
    writes only inside its own run folder."""

    init: Mapping[str, str] | None = None
    export: Mapping[str, str] | None = None


WEIGHTS = "weights"
# Config version 1 (flat params, e.g. weights/ra_demo.pt's stored config) -> today's typed parts.
FLAT_KEYS: dict[str, tuple[str, ...]] = {
    "init_weights": (WEIGHTS, "init"),
    "export_weights": (WEIGHTS, "export"),
}


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """What `amp: true` trains at on `device`: fp16 on CUDA (with a GradScaler), bf16 on a CPU with bf16
    units (or one torch cannot tell), else None = fp32 with one warning: emulated bf16 runs many times
    slower than fp32 there (a paper UNet's step: minutes), for no gain in memory that a CPU run needs."""
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_bf16_native() is False:
        LOG.warning("amp: this CPU has no bf16 units (torch reports neither AVX-512 BF16 nor AMX-BF16), so training "
                    "runs in fp32 (emulated bf16 is many times slower); amp applies on CUDA and on bf16 CPUs")
        return None
    return torch.bfloat16


class Trainer:
    """Owns the loop; subclasses own the step.

    Checkpoints (`checkpoints/latest_model.pt`, `checkpoints/best_model.pt`) hold only
    tensors and plain values, so they load with `torch.load(weights_only=True)`. A trainer is
    built before its run folder exists (so that a bad config writes nothing) and gets the folder
    and its logger from `attach_run`; without one it writes nothing.
    """

    def __init__(
        self,
        *,
        context: TrainingContext,
        nr_epochs: Epochs = 100,
        optimizer: Optimizer = Optimizer.ADAM,
        optimizer_params: dict[str, Any] | None = None,
        patience: Epochs | None = None,
        val_every: Epochs = 1,
        max_steps_per_epoch: SamplesPerEpoch | None = None,
        amp: bool = False,
        grad_clip: PositiveFloat | None = None,
        loss: TrainingLoss | None = None,
        weights: WeightFiles = WeightFiles(),
        progress: bool = True,
    ):
        """`context`: injected by the framework (`TrainingContext`); `weights`: submodule weights
        read before and written after training (`WeightFiles`, YAML `weights: {init: ..., export: ...}`).
        Ranges are in the signature (`Annotated[..., Ge(1)]`) and are checked by the configurator
        before anything is built: `patience: 0` would stop after the first epoch, `grad_clip: -1`
        would reverse the gradient."""
        if nr_epochs < 1:
            raise ValueError("nr_epochs must be >= 1")
        self.context = context
        self.model = model = context.model
        self.data_module = context.data_module
        self.device = device = context.device
        self.dist = context.dist
        self.seed = context.seed
        self.run_dir: Path | None = None  # attach_run
        self.logger: RunLogger | None = None  # attach_run
        self.nr_epochs = nr_epochs
        self.optimizer_name = parse_option(Optimizer, optimizer, "optimizer")
        self.optimizer_params = dict(optimizer_params or {"lr": 1e-4})
        accepted = keyword_names(OPTIMIZERS[self.optimizer_name]) or set()
        for key in self.optimizer_params:  # torch would say only "unexpected keyword argument"
            if key not in accepted:
                raise ValueError(f"optimizer_params.{key}: unknown parameter of torch.optim."
                                 f"{OPTIMIZERS[self.optimizer_name].__name__}" + closest(key, accepted - {"params"}))
        why = mismatch(self.optimizer_params["lr"], LearningRate) if "lr" in self.optimizer_params else None
        if why:  # the optimiser's own check lets .inf and 1e308 through (the first step then gives NaN)
            raise ValueError(f"optimizer_params.lr: {why}")
        self.patience = patience
        self.val_every = val_every
        self.max_steps_per_epoch = max_steps_per_epoch
        self.amp = amp
        self.amp_dtype = amp_dtype(device) if amp else None
        self.grad_clip = grad_clip
        self.loss = loss
        self.progress = progress and self.dist.is_main
        self.scaler = torch.amp.GradScaler("cuda") if (amp and device.type == "cuda") else None
        self.start_epoch = 0
        self.epoch = 0  # the epoch being trained (0-based), for steps whose objective follows a schedule
        self.best_val = math.inf
        self.best_epoch = -1
        self.epochs_without_improvement = 0
        self.best_weights: dict[str, Tensor] | None = None
        self.history: list[dict[str, float]] = []
        self.checkpoint_extra: dict[str, Any] = {}  # attach_run: the run's config (core/run/checkpoint_metadata.py)
        self.export_weights = dict(weights.export or {})
        for name, filename in self.export_weights.items():
            _submodule(model, name, "weights.export")
            _check_inside_run(filename)
        for name, path in (weights.init or {}).items():
            load_submodule_weights(model, name, resolve_weights_path(path), device)
        self.optimizers = self.build_optimizers()

    @classmethod
    def upgrade_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """This trainer's params of an earlier config version (flat `init_weights`, `export_weights`)
        in today's typed part `weights: {init, export}`."""
        return group_flat_params(params, FLAT_KEYS, cls.__name__)

    # ---- hooks for subclasses -------------------------------------------------------
    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One optimiser over all model parameters; override for several."""
        return {"model": self.make_optimizer(self.model.parameters())}

    def make_optimizer(self, params: Any, **overrides: Any) -> torch.optim.Optimizer:
        return OPTIMIZERS[self.optimizer_name](params, **{**self.optimizer_params, **overrides})

    def attach_run(self, run_dir: Path | None, logger: RunLogger | None, checkpoint_extra: dict[str, Any] | None = None) -> None:
        """Give a trainer built before the run folder existed (so that a bad config writes nothing) its folder,
        its logger and the plain values every checkpoint carries besides the weights (the run's config).
        The one way a trainer gets a run folder and a logger."""
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.logger = logger
        self.checkpoint_extra = dict(checkpoint_extra or {})
        if logger is not None and self.start_epoch > 0:  # resumed: rows logged after the checkpoint come again
            logger.forget_from(self.start_epoch)
        staging = self.run_dir / STAGING_DIR if self.run_dir is not None else None
        if staging is not None and staging.is_dir() and self.dist.is_main:
            for stale in staging.iterdir():  # left by a run killed mid-write; never a complete checkpoint
                stale.unlink(missing_ok=True)

    def training_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Named losses for one batch; `loss` is optimised. Default: the configured
        reconstruction loss on `model(x)`, else the model's own `training_loss`."""
        x = batch["image"]
        if self.loss is not None:
            return {"loss": self.loss(self.model(x), x)}
        if not isinstance(self.model, ModelWithOwnLoss):
            raise UserInputError(
                f"trainer.params.loss: not set, and {type(self.model).__name__} has no training_loss() of its own; set "
                "trainer.params.loss (e.g. {module_name: optim.losses.reconstruction, class_name: ReconstructionLoss})"
            )
        losses = self.model.training_loss(x)
        return losses if isinstance(losses, dict) else {"loss": losses}

    def run_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One optimisation step; override for several optimisers."""
        with self.amp_context():
            losses = self.training_step(batch)
        self.optimize("model", losses["loss"])
        return {k: float(v.detach()) for k, v in losses.items()}

    def selects_best(self, epoch: int) -> bool:
        """Whether `epoch` may become the best model and counts towards patience (all epochs
        here; a trainer with a warm-up phase of another objective excludes that phase)."""
        return True

    @torch.no_grad()
    def validation_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Named validation losses; `loss` drives early stopping and the best model."""
        with self.amp_context():
            return self.training_step(batch)

    # ---- helpers for steps -------------------------------------------------------------
    def amp_context(self) -> contextlib.AbstractContextManager:
        """Autocast at `amp_dtype` when `amp` is on (`amp_dtype`); a null context otherwise."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def optimize(self, name: str | tuple[str, ...], loss: Tensor) -> None:
        """zero_grad, backward, average gradients over ranks, clip, step one optimiser (or
        several named together, which then take one joint step on the same loss)."""
        names = (name,) if isinstance(name, str) else tuple(name)
        optimizers = [self.optimizers[n] for n in names]
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite loss ({float(loss)}) in optimiser '{'+'.join(names)}'; lower the learning rate or check the data"
            )
        params = [p for optimizer in optimizers for group in optimizer.param_groups for p in group["params"]]
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            for optimizer in optimizers:
                self.scaler.unscale_(optimizer)
        else:
            loss.backward()
        all_reduce_gradients(params, self.dist.world_size)
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        for optimizer in optimizers:
            if self.scaler is not None:
                self.scaler.step(optimizer)
            else:
                optimizer.step()
        if self.scaler is not None:
            self.scaler.update()

    # ---- data ----------------------------------------------------------------------------
    def check_training_batches(self) -> None:
        """Refuse a training split that gives no batch (`core.training.loaders.check_training_batches`)."""
        loaders.check_training_batches(self.data_module, self.dist.world_size)

    def _train_loader(self) -> tuple[DataLoader, DistributedSampler]:
        return loaders.train_loader(self.data_module, self.dist, self.seed)

    def _val_loader(self) -> DataLoader | None:
        return loaders.val_loader(self.data_module)

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {k: v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}

    # ---- loop ---------------------------------------------------------------------------
    def train(self) -> None:
        """Train for `nr_epochs` (from `start_epoch` when resumed), validating every `val_every`."""
        broadcast_parameters(self.model)
        train_loader, sampler = self._train_loader()
        val_loader = self._val_loader()
        for epoch in range(self.start_epoch, self.nr_epochs):
            started = time.perf_counter()
            sampler.set_epoch(epoch)
            if isinstance(train_loader.dataset, EpochSeeded):
                train_loader.dataset.set_epoch(epoch)
            self.epoch = epoch
            train_losses = self._train_epoch(train_loader, epoch)
            record = {"epoch": epoch, **{f"train_{k}": v for k, v in train_losses.items()}}
            stop = False
            if val_loader is not None and (epoch + 1) % self.val_every == 0:
                val_losses = self.validate(val_loader)
                record.update({f"val_{k}": v for k, v in val_losses.items()})
                stop = self.selects_best(epoch) and self._update_best(val_losses["loss"], epoch)
            elif val_loader is None:
                stop = self.selects_best(epoch) and self._update_best(train_losses.get("loss", math.inf), epoch)
            record["seconds"] = time.perf_counter() - started
            self.history.append(record)
            if self.logger is not None:
                self.logger.log_metrics(record, step=epoch)
            self.save_latest(epoch, stopped=stop)
            if stop:
                LOG.info("early stopping at epoch %d (best epoch %d)", epoch, self.best_epoch)
                break
        if self.best_weights is None:  # no validation ran: the last weights are the best we have
            self.best_weights = _copy_state(self.model)
            self._save("best_model.pt", self.best_weights, self.nr_epochs - 1)
        if self.export_weights and self.dist.is_main:
            self._export_best()

    def _export_best(self) -> None:
        """Write the best weights of each `weights.export` submodule to its file in the run folder."""
        if self.run_dir is None:
            LOG.warning("weights.export: no run folder, nothing exported")
            return
        current = _copy_state(self.model)
        self.model.load_state_dict(self.best_weights)
        for name, filename in self.export_weights.items():
            weights = _copy_state(_submodule(self.model, name, "weights.export"))
            path = self.run_dir / filename
            save_checkpoint({"model_weights": weights, "epoch": self.best_epoch, "best_val": self.best_val}, path,
                            staging_dir=self.run_dir / STAGING_DIR)
            LOG.info("exported %s weights to %s", name or "model", path)
        self.model.load_state_dict(current)

    def _train_epoch(self, loader: DataLoader, epoch: int) -> dict[str, float]:
        self.model.train()
        sums: dict[str, float] = {}
        steps = 0
        with deferred():  # workers start here (fork hooks would swallow a SIGTERM's raise)
            batches: Iterator = iter(loader)
        total = len(loader) if self.max_steps_per_epoch is None else min(len(loader), self.max_steps_per_epoch)
        bar = progress(batches, desc=f"epoch {epoch + 1}/{self.nr_epochs}", total=total, enabled=self.progress)  # TTY only
        try:
            for batch in bar:
                raise_if_terminated()
                if steps >= total:
                    break
                losses = self.run_step(self._to_device(batch))
                for k, v in losses.items():
                    sums[k] = sums.get(k, 0.0) + v
                steps += 1
                bar.set_postfix({k: f"{v:.4g}" for k, v in losses.items()})
        finally:
            with deferred():  # and stop here, not in a finaliser that would swallow it
                del bar, batches
        # each rank saw its share of every global batch: the epoch's loss is the mean over ranks
        return {k: all_reduce_mean(v / max(steps, 1), self.dist.world_size, self.device) for k, v in sums.items()}

    @torch.no_grad()
    def validate(self, loader: DataLoader) -> dict[str, float]:
        """Mean validation losses; every rank sees the whole (small) validation set."""
        self.model.eval()
        sums: dict[str, float] = {}
        count = 0
        for batch in loader:
            batch = self._to_device(batch)
            n = batch["image"].shape[0]
            for k, v in self.validation_step(batch).items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            count += n
        self.model.train()
        return {k: v / max(count, 1) for k, v in sums.items()}

    def _update_best(self, value: float, epoch: int) -> bool:
        """Copy the weights when validation improves; return True when patience runs out."""
        if value < self.best_val:
            self.best_val, self.best_epoch = value, epoch
            self.epochs_without_improvement = 0
            self.best_weights = _copy_state(self.model)
            self._save("best_model.pt", self.best_weights, epoch)
            return False
        self.epochs_without_improvement += 1
        return self.patience is not None and self.epochs_without_improvement >= self.patience

    # ---- checkpoints -------------------------------------------------------------------
    def _save(self, filename: str, weights: dict[str, Tensor], epoch: int, **extra: Any) -> None:
        if self.run_dir is None or not self.dist.is_main:
            return
        state = {**self.checkpoint_extra, "model_weights": weights, "epoch": epoch, "best_val": self.best_val,
                 "best_epoch": self.best_epoch, **extra}
        save_checkpoint(state, self.run_dir / "checkpoints" / filename, staging_dir=self.run_dir / STAGING_DIR)

    def save_latest(self, epoch: int, stopped: bool = False) -> None:
        """Everything needed to resume after `epoch`."""
        self._save(
            "latest_model.pt",
            _copy_state(self.model),
            epoch,
            optimizer_weights={name: opt.state_dict() for name, opt in self.optimizers.items()},
            scaler=self.scaler.state_dict() if self.scaler is not None else {},
            epochs_without_improvement=self.epochs_without_improvement,
            stopped_early=stopped,
            history=self.history,
            torch_rng=torch.get_rng_state(),
        )

    def resume(self, checkpoint_path: str | Path) -> None:
        """Restore model, optimisers, counters and the RNG from a `latest_model.pt`; every field is
        checked (`read_resume_state`) before anything is restored, so a damaged file is one line."""
        resumed = read_resume_state(load_checkpoint(checkpoint_path, map_location=self.device), checkpoint_path, self.nr_epochs)
        for name in resumed.optimizer_weights:
            if name not in self.optimizers:
                raise UserInputError(f"{checkpoint_path}: optimiser '{name}' does not exist in this trainer "
                                     f"(it has {', '.join(self.optimizers)}); resume with the config that wrote it")
        for name in self.optimizers:  # a fresh optimiser would silently restart Adam's moments mid-run
            if name not in resumed.optimizer_weights:
                raise UserInputError(f"{checkpoint_path}: holds no state of this trainer's optimiser '{name}' "
                                     f"(it has {', '.join(resumed.optimizer_weights) or 'none'}); "
                                     "resume with the config that wrote it")
        best_path = Path(checkpoint_path).with_name("best_model.pt")
        best_weights = load_checkpoint(best_path, map_location=self.device)["model_weights"] if best_path.is_file() else None
        if best_weights is not None and (report := weights_mismatch(self.model.state_dict(), best_weights)):
            raise UserInputError(f"{best_path}: weights do not fit the model: {report}; {RESUME_FIX}")
        if best_weights is not None and (report := weights_unusable(self.model.state_dict(), best_weights)):
            raise UserInputError(f"{best_path}: weights unusable for the model: {report}; {RESUME_FIX}")
        load_strict(self.model, resumed.model_weights, checkpoint_path)
        for name, opt_state in resumed.optimizer_weights.items():
            load_optimizer_state(self.optimizers[name], name, opt_state, checkpoint_path)
        if self.scaler is not None and resumed.scaler:
            try:
                self.scaler.load_state_dict(dict(resumed.scaler))
            except Exception as exc:  # a foreign mapping: torch raises KeyError, TypeError, ...
                raise UserInputError(f"{checkpoint_path}: field scaler is not a GradScaler state; {RESUME_FIX}") from exc
        # a run that stopped early (killed before its evaluation) does not train on after resuming
        self.start_epoch = self.nr_epochs if resumed.stopped_early else resumed.epoch + 1
        self.best_val = resumed.best_val
        self.best_epoch = resumed.best_epoch
        self.epochs_without_improvement = resumed.epochs_without_improvement
        self.history = resumed.history
        if resumed.torch_rng is not None:
            torch.set_rng_state(resumed.torch_rng)
        if best_weights is not None:
            self.best_weights = best_weights
        LOG.info("resumed from %s at epoch %d", checkpoint_path, self.start_epoch)


def _submodule(model: nn.Module, name: str, key: str) -> nn.Module:
    try:
        return model.get_submodule(name) if name else model
    except AttributeError as exc:
        children = ", ".join(n for n, _ in model.named_children())
        raise UserInputError(f"trainer.params.{key}: '{name}' is not a submodule of {type(model).__name__} (top level: {children})") from exc


def _check_inside_run(filename: str) -> None:
    """weights.export files are relative names inside the run folder (shipped weights/ are never written)."""
    parts = PurePath(str(filename)).parts
    if not parts or PurePath(str(filename)).is_absolute() or ".." in parts:
        raise UserInputError(f"trainer.params.weights.export: '{filename}' must be a file name inside the run folder "
                             "(e.g. spark_encoder.pt), not an absolute path or one with '..'; a run writes only inside its folder")


def resolve_weights_path(path: str | Path) -> Path:
    """`path`, or with a `*` the last match in sorted order (run folders are named by time, so the newest)."""
    text = str(path)
    if "*" not in text:
        return Path(text)
    matches = sorted(glob.glob(text))
    if not matches:
        raise UserInputError(f"trainer.params.weights.init: nothing matches {text}; run the config that exports it first "
                             "or set trainer.params.weights.init=null to train from scratch")
    return Path(matches[-1])


def load_submodule_weights(model: nn.Module, name: str, path: str | Path, device: torch.device) -> None:
    """Strictly load a checkpoint's `model_weights` into `model.<name>`, naming any mismatch."""
    target = _submodule(model, name, "weights.init")
    if not Path(path).is_file():
        raise UserInputError(
            f"trainer.params.weights.init: {path} not found; create it first (e.g. with the config that exports it) "
            "or set trainer.params.weights.init=null to train from scratch"
        )
    load_strict(target, load_checkpoint(path, map_location=device)["model_weights"], path, name or "the model")
    LOG.info("initialised %s from %s", name or "model", path)


def _copy_state(model: nn.Module) -> dict[str, Tensor]:
    """A detached copy of the weights (never a live view of the model)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}

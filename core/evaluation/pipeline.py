"""The scoring pipeline: one volume -> anomaly map and lesion mask, the same for evaluation and `uad predict`.

`ScoringSpec` is what a task's YAML says about scoring (`scoring:`: scorer, map and binary
post-processing, the sample reduction, inference settings); `ScoringPipeline` binds it to a
model, a device and the run's seed. It is the only code that reads those settings: it
prepares the model for a run of scoring and restores it afterwards (so one task's batch cap,
memory layout or compiled UNet never leaks into the next), and it seeds every volume from
(seed, data set, index) itself, so a volume scored by `predict` gets the noise the evaluator
gave it.
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from core.evaluation.contracts import BatchCappedModel, DiffusionModel
from core.evaluation.reconstruction import Precision, reconstruct_volume, resolve_precision
from core.evaluation.unet_compile import DEFAULT_MIN_TFLOP, compile_unet, repeat_decision, should_compile
from dl_utils.errors import UserInputError
from dl_utils.options import parse_option
from dl_utils.param_ranges import MAX_BATCH, MAX_GRID_SIDE
from dl_utils.param_types import Ge, Le, check_fields
from dl_utils.seeding import derive_seed
from optim.metrics import thresholds as threshold_ops
from optim.metrics.detection import Reduction, sample_score
from optim.postprocessing import BinaryStep, MapStep, apply_binary_steps, apply_map_steps
from optim.scoring.base import FittedOnHealthy, NeedsExternalFiles, Scorer, slice_problem

LOG = logging.getLogger(__name__)
AUTO = "auto"


@dataclass(frozen=True)
class InferenceSettings:
    """How volumes run through the model at test time (YAML `scoring.inference`).

    slice_batch_size: slices per reconstruction call (x N samples inside the model);
    precision: `auto` = bf16 autocast on CUDA; on CPU bf16 autocast for diffusion models where
    the CPU has bf16 units (their maps differ from fp32's far less than the reconstruction's own
    noise), else fp32 (`core.evaluation.reconstruction.Precision`); resolved once per run of
    scoring and recorded (`ScoredWith.autocast`); unet_batch_size: the model's
    network batch cap for this evaluation: an integer, null (the model's own) or `auto` (no
    cap on CUDA, halved on out-of-memory; the model's own on CPU); channels_last: null = on
    for diffusion models' UNets, where it was measured to win; compile_unet: `auto` compiles
    the UNet on CPU when at least `compile_min_tflop` TFLOP of reconstruction lie ahead
    (core.evaluation.unet_compile)."""

    slice_batch_size: Annotated[int, Ge(1), Le(MAX_GRID_SIDE)] = 50  # a volume has at most MAX_GRID_SIDE slices
    precision: Precision = Precision.AUTO
    unet_batch_size: Annotated[int, Ge(1), Le(MAX_BATCH)] | Literal["auto"] | None = AUTO
    channels_last: bool | None = None
    compile_unet: bool | Literal["auto"] = AUTO
    compile_min_tflop: Annotated[float, Ge(0)] = DEFAULT_MIN_TFLOP  # .inf: never compile

    def __post_init__(self) -> None:
        object.__setattr__(self, "precision", parse_option(Precision, self.precision, "inference.precision"))
        check_fields(self)  # the ranges of the signature, for a direct Python caller (the config check came first)


@dataclass(frozen=True)
class ScoringSpec:
    """A task's scoring, as its YAML states it (`scoring:`).

    scorer: the anomaly map (optim/scoring/); map_postprocessing: map steps in order (e.g.
    brain-mask erosion, median filter); binary_postprocessing: steps after thresholding (e.g.
    small-component removal); sample_score: the per-volume score reduction;
    skip_if_unavailable: report the task as skipped (with the reason) when the scorer's
    external files are missing, instead of stopping the run."""

    scorer: Scorer
    map_postprocessing: Sequence[MapStep] = ()
    binary_postprocessing: Sequence[BinaryStep] = ()
    sample_score: Reduction = Reduction.MEAN
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    skip_if_unavailable: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "map_postprocessing", tuple(self.map_postprocessing))
        object.__setattr__(self, "binary_postprocessing", tuple(self.binary_postprocessing))
        object.__setattr__(self, "sample_score", parse_option(Reduction, self.sample_score, "sample_score"))


@dataclass(frozen=True)
class ScoredVolume:
    """A volume's post-processed anomaly map (H, W, D) float32 and its reconstructions (N, H, W, D); N = 0 without a model."""

    amap: np.ndarray
    reconstructions: Tensor


class ScoringPipeline:
    """A model and a `ScoringSpec` on a device, seeded per volume."""

    def __init__(self, model: nn.Module, spec: ScoringSpec, device: torch.device, seed: int) -> None:
        self.model = model
        self.spec = spec
        self.device = device
        self.seed = int(seed)
        self.compiled_unet = False  # whether the last `prepared()` compiled the UNet (recorded for predict)
        self.autocast: Precision | None = None  # the precision the last `prepared()` resolved (recorded for predict)

    @property
    def scorer(self) -> Scorer:
        return self.spec.scorer

    @property
    def num_reconstructions(self) -> int:
        return int(self.spec.scorer.num_reconstructions)

    @property
    def needs_fit(self) -> bool:
        return isinstance(self.spec.scorer, FittedOnHealthy)

    @property
    def uses_stand_in_weights(self) -> bool:
        scorer = self.spec.scorer
        return isinstance(scorer, NeedsExternalFiles) and bool(scorer.uses_stand_in_weights)

    def unavailable_reason(self) -> str | None:
        """Why the scorer cannot run here (missing external files), when the spec allows
        skipping; raises UserInputError otherwise; None when it can run."""
        scorer = self.spec.scorer
        if not isinstance(scorer, NeedsExternalFiles):
            return None
        try:
            scorer.check_available()
        except UserInputError as exc:
            if not self.spec.skip_if_unavailable:
                raise
            return str(exc)
        return None

    def slice_problem(self, height: int, width: int, depth: int | None = None) -> str | None:
        """Why the scorer cannot score axial slices of height x width, or a volume of `depth` of them
        (too small for it), or None."""
        return slice_problem(self.spec.scorer, height, width, depth)

    def fit(self, healthy: Sequence[Any]) -> None:
        """Fit the scorer's reference statistics on healthy volumes (scorers that have them)."""
        if isinstance(self.spec.scorer, FittedOnHealthy):
            self.spec.scorer.fit(healthy)

    # ---- the model, prepared for a run of scoring and restored afterwards ------------------
    @property
    def channels_last(self) -> bool:
        setting = self.spec.inference.channels_last
        return isinstance(self.model, DiffusionModel) if setting is None else bool(setting)

    def _batch_cap(self) -> tuple[bool, int | None]:
        """(whether to set the model's cap, the cap) for this device."""
        setting = self.spec.inference.unet_batch_size
        if not isinstance(self.model, BatchCappedModel) or setting is None:
            return False, None
        if setting == AUTO:
            return self.device.type == "cuda", None
        return True, int(setting)

    @contextlib.contextmanager
    def prepared(self, planned: Sequence[Sequence[Any]] = (), world_size: int = 1, compiled: bool | None = None,
                 precision: Precision | None = None) -> Iterator[ScoringPipeline]:
        """The model in eval mode with this task's batch cap, memory layout and (where it pays
        off for the `planned` data sets, scored by `world_size` processes) compiled UNet, and the
        precision it runs at resolved once (`autocast`); everything is restored on exit.
        `compiled`, `precision`: decisions taken before (the evaluation's, for `uad predict`)
        repeated instead of deciding anew."""
        model, inference = self.model, self.spec.inference
        asked = inference.precision if precision is None else parse_option(Precision, precision, "precision")
        self.autocast = resolve_precision(asked, self.device, isinstance(model, DiffusionModel))
        if asked is Precision.AUTO and self.device.type == "cpu" and self.autocast is Precision.BF16:
            LOG.info("precision auto: bf16 autocast for the diffusion UNet on this CPU (it has bf16 units); "
                     "`scoring.inference.precision: fp32` keeps fp32")
        was_training = model.training
        set_cap, cap = self._batch_cap()
        old_cap = model.max_batch_size if isinstance(model, BatchCappedModel) else None
        original_unet = model.unet if isinstance(model, DiffusionModel) else None
        model.eval()
        if set_cap:
            model.max_batch_size = cap
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        if compiled is not None:
            self.compiled_unet = repeat_decision(compiled, model, self.device)
        else:
            self.compiled_unet = should_compile(inference.compile_unet, model, self.device, planned,
                                                self.num_reconstructions, inference.compile_min_tflop, world_size)
        if self.compiled_unet:
            model.unet = compile_unet(original_unet)
        try:
            yield self
        finally:
            if original_unet is not None:
                model.unet = original_unet
            if self.channels_last:
                model.to(memory_format=torch.contiguous_format)
            if set_cap:
                model.max_batch_size = old_cap
            model.train(was_training)

    # ---- scoring -----------------------------------------------------------------------------
    def volume_seed(self, set_name: str, index: int) -> int:
        """The torch seed of volume `index` of data set `set_name` (any sharding, evaluate or predict)."""
        return derive_seed(self.seed, set_name, index)

    @torch.inference_mode()
    def score(self, volume: Any, set_name: str, index: int) -> ScoredVolume:
        """One volume (`.image`, `.mask` (H, W, D), `.name`) -> its post-processed map and reconstructions.
        Call inside `prepared()`."""
        torch.manual_seed(self.volume_seed(set_name, index))
        image = volume.image.float()
        mask = volume.mask.bool()
        n = self.num_reconstructions
        inference = self.spec.inference
        if n > 0:
            precision = inference.precision if self.autocast is None else self.autocast
            recs = reconstruct_volume(self.model, image, n, inference.slice_batch_size, self.device,
                                      precision, self.channels_last)
        else:
            recs = image.new_zeros((0, *image.shape))
        if not torch.isfinite(recs).all():
            raise UserInputError(f"{volume.name}: the model produced NaN or Inf reconstructions; check the weights")
        amap = self.spec.scorer(image.to(self.device), recs.to(self.device), mask.to(self.device)).float().cpu()
        amap = apply_map_steps(self.spec.map_postprocessing, amap, mask)
        return ScoredVolume(np.ascontiguousarray(torch.as_tensor(amap).float().numpy()), recs)

    def binary_chain(self) -> Callable[[np.ndarray], np.ndarray] | None:
        """The binary post-processing steps as one callable (None without steps)."""
        steps = list(self.spec.binary_postprocessing)
        return partial(apply_binary_steps, steps) if steps else None

    def binarize(self, amap: np.ndarray, mask: np.ndarray, threshold: float) -> np.ndarray:
        """The lesion mask: (map > threshold) inside the brain, then the binary steps."""
        return np.asarray(threshold_ops.binarize(amap, threshold, mask, self.binary_chain())).astype(bool)

    def sample_score(self, amap: np.ndarray, mask: np.ndarray) -> float:
        """The volume's anomaly score (the spec's reduction over its brain voxels)."""
        return sample_score(amap, mask, reduction=self.spec.sample_score)

"""Downstream evaluation: the base class, and the evaluation core shared by every method.

`AnomalyDetectionEvaluator`: data sets -> model reconstructions -> scorer -> map
post-processing -> thresholds (validation Dice, healthy FPR, oracle) -> metrics ->
results, `per_volume.csv`, figures and NIfTI anomaly maps. Memory does not grow with the
number of volumes (maps are spilled to a scratch folder in the run folder, every metric
stays exact), and under torchrun each rank scores its share of the volumes.
"""
from __future__ import annotations

import enum
import logging
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.evaluation.metrics import fit_thresholds, mean_reconstruction_quality, set_metrics
from core.evaluation.outputs import per_volume_rows, write_figures, write_per_volume
from core.evaluation.reconstruction import Precision, prepare_model, use_channels_last
from core.evaluation.scored_sets import ScoredSet, ScoringSetup, score_set
from core.evaluation.unet_compile import DEFAULT_MIN_TFLOP, check_setting, compile_unet, should_compile
from dl_utils.distributed import context_from_env
from dl_utils.errors import UserInputError
from dl_utils.options import parse_option
from dl_utils.run_logger import RunLogger
from optim.metrics.detection import DetectionUnit, Reduction
from optim.metrics.streaming import RankingSummary

LOG = logging.getLogger(__name__)


class ThresholdSearch(enum.StrEnum):
    BISECTION = "bisection"
    EXACT = "exact"


THRESHOLD_SEARCHES = tuple(m.value for m in ThresholdSearch)


class DownstreamEvaluator:
    """Holds the model, the device and the named data sets; subclasses implement `run`."""

    def __init__(self, *, model: nn.Module, device: torch.device, datasets: dict[str, Sequence[Any]], seed: int = 42):
        self.model = model
        self.device = device
        self.datasets = datasets
        self.seed = seed

    def run(self, run_dir: Path, logger: RunLogger | None = None) -> dict[str, dict[str, float]]:
        """Evaluate and return {data set name: {metric: value}}; files go to `run_dir`.

        Called on every rank of a torchrun job; rank 0's return value is the result."""
        raise NotImplementedError


class AnomalyDetectionEvaluator(DownstreamEvaluator):
    """The evaluation core (docs/methods.md section 8) for any reconstruction model and scorer.

    Data set roles are named in the params: `labelled_validation` maps each test set to
    the labelled validation set its Dice threshold is fitted on (a single name applies to
    all); `healthy_validation` gives the healthy-FPR thresholds; `healthy_test` the healthy
    volumes for sample-level AUROC; `fit_set` healthy volumes for scorers with `fit`.
    Every other data set is a test set.
    """

    def __init__(self, *, scorer: Callable, map_postprocessing: list[Callable] | None = None,
                 binary_postprocessing: list[Callable] | None = None,
                 labelled_validation: str | dict[str, str] | None = None, healthy_validation: str | None = None,
                 healthy_test: str | None = None, fit_set: str | None = None,
                 fpr_levels: Sequence[float] = (0.01, 0.05), threshold_search: str = "bisection",
                 bisection_steps: int = 10, oracle: bool = True, detection_min_fraction: float = 0.1,
                 sample_score: str = "mean", slice_batch_size: int = 50, figure_cases: int = 3,
                 save_maps: bool = True, skip_if_unavailable: bool = False, detection_per_slice: bool = False,
                 search_with_binary_postprocessing: bool = True, precision: str = "auto",
                 unet_batch_size: int | str | None = "auto", channels_last: bool | None = None,
                 compile_unet: bool | str = "auto", compile_min_tflop: float = DEFAULT_MIN_TFLOP,
                 keep_scratch: bool = False, detection_unit: str = "lesion", fixed_thresholds: Sequence[float] = (),
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.unavailable = _unavailable_reason(scorer, skip_if_unavailable)
        parse_option(ThresholdSearch, threshold_search, "threshold_search")
        self.scorer = scorer
        self.map_steps = list(map_postprocessing or [])
        self.binary_steps = list(binary_postprocessing or [])
        self.healthy_validation = healthy_validation
        self.healthy_test = healthy_test
        self.fit_set = fit_set
        role_sets = {healthy_validation, healthy_test, fit_set}
        val_names = set(labelled_validation.values()) if isinstance(labelled_validation, dict) else {labelled_validation}
        self.test_sets = [n for n in self.datasets if n not in role_sets | val_names]
        if isinstance(labelled_validation, dict):
            self.labelled_validation = dict(labelled_validation)
        else:
            self.labelled_validation = {n: labelled_validation for n in self.test_sets if labelled_validation}
        for name in [*role_sets, *val_names, *self.labelled_validation]:
            if name is not None and name not in self.datasets:
                raise ValueError(f"data set '{name}' is named in the params but not under data_loader.datasets "
                                 f"(have: {', '.join(self.datasets)})")
        if not self.test_sets:
            raise ValueError("no test set left after the validation / healthy / fit roles; add one under data_loader.datasets")
        if hasattr(scorer, "fit") and fit_set is None:
            raise ValueError(f"{type(scorer).__name__} must be fitted on healthy data: set fit_set to a healthy data set")
        self.fpr_levels = [float(p) for p in fpr_levels]
        self.threshold_search = threshold_search
        self.bisection_steps = bisection_steps
        self.oracle = oracle
        self.detection_min_fraction = detection_min_fraction
        self.sample_score = sample_score
        self.slice_batch_size = slice_batch_size
        self.figure_cases = figure_cases
        self.save_maps = save_maps
        self.detection_per_slice = detection_per_slice  # RA paper: lesions as 2D components per slice
        self.detection_unit = parse_option(DetectionUnit, detection_unit, "detection_unit")  # box: RA's per-image box hits
        self.fixed_thresholds = [float(t) for t in fixed_thresholds]  # reported as fixed_<t> (RA's code: 0.009)
        self.search_with_binary_postprocessing = search_with_binary_postprocessing  # false: originals' search on raw maps
        self.precision = Precision(precision).value
        Reduction(sample_score)
        # UNet batch cap (slices x samples x levels): an int; None: the model's own; "auto": no cap on
        # CUDA (a whole volume's N reconstructions in one batch, halved on out-of-memory), the model's on CPU
        if not (unet_batch_size is None or unet_batch_size == "auto" or isinstance(unet_batch_size, int)):
            raise ValueError(f"unet_batch_size must be an integer, null or 'auto', got {unet_batch_size!r}")
        self.unet_batch_size = unet_batch_size
        self.channels_last = channels_last  # model memory layout at test time; None: auto (use_channels_last)
        self.compile_unet = check_setting(compile_unet)  # torch.compile the UNet: auto = where it pays off (core.evaluation.unet_compile)
        self.compile_min_tflop = float(compile_min_tflop)
        self.keep_scratch = keep_scratch

    def run(self, run_dir: Path, logger: RunLogger | None = None) -> dict[str, dict[str, float]]:
        if self.unavailable:
            LOG.warning("skipped: %s", self.unavailable)
            return {name: {"skipped": self.unavailable} for name in self.test_sets}
        ctx = context_from_env()
        run_dir = Path(run_dir)
        if self.fit_set is not None and hasattr(self.scorer, "fit"):
            self.scorer.fit(self.datasets[self.fit_set])  # every rank: deterministic, the same fit
        if hasattr(self.model, "max_batch_size") and isinstance(self.unet_batch_size, int):
            self.model.max_batch_size = self.unet_batch_size
        elif hasattr(self.model, "max_batch_size") and self.unet_batch_size == "auto" and self.device.type == "cuda":
            self.model.max_batch_size = None
        channels_last = use_channels_last(self.model, self.channels_last)
        model = prepare_model(self.model, channels_last)
        scored = [self.datasets[n] for n in dict.fromkeys([*self.test_sets, *self.labelled_validation.values(),
                                                           self.healthy_validation, self.healthy_test]) if n]
        num_samples = int(getattr(self.scorer, "num_reconstructions", 1))
        if should_compile(self.compile_unet, model, self.device, scored, num_samples, self.compile_min_tflop,
                          ctx.world_size):
            compile_unet(model)
        setup = ScoringSetup(model, self.scorer, self.map_steps, self.device, self.slice_batch_size, self.precision,
                             channels_last, self.sample_score, self.seed, self.figure_cases)
        # rank 0 keeps maps in the run folder; other ranks (maybe on other nodes) only score and send
        scratch = run_dir / ".scratch" if ctx.is_main else Path(tempfile.mkdtemp(prefix="uad-eval-"))
        try:
            return self._evaluate(setup, ctx, run_dir, scratch, logger)
        finally:
            if not self.keep_scratch or not ctx.is_main:
                shutil.rmtree(scratch, ignore_errors=True)

    def _evaluate(self, setup: ScoringSetup, ctx: Any, run_dir: Path, scratch: Path,
                  logger: RunLogger | None) -> dict[str, dict[str, float]]:
        scored: dict[str, ScoredSet | None] = {}
        summaries: dict[str, tuple[RankingSummary, RankingSummary]] = {}

        def get(name: str | None, maps: bool = False) -> ScoredSet | None:
            if name is None:
                return None
            if name not in scored:
                folder = run_dir / "anomaly_maps" / name if maps and self.save_maps and ctx.is_main else None
                scored[name] = score_set(setup, name, self.datasets[name], ctx, scratch, folder)
            return scored[name]

        def brain_summary(s: ScoredSet) -> RankingSummary:
            if s.name not in summaries:
                quantiles = [1.0 - p for p in self.fpr_levels]
                summaries[s.name] = (s.brain.summary(n_target=s.lesion_voxels_total, quantiles=quantiles), s.whole.summary())
            return summaries[s.name][0]

        healthy_val = get(self.healthy_validation)
        healthy_test = get(self.healthy_test)
        results: dict[str, dict[str, float]] = {}
        rows: list[dict[str, object]] = []
        for name in self.test_sets:
            test = get(name, maps=True)
            val_name = self.labelled_validation.get(name)
            labelled_val = get(val_name)
            if not ctx.is_main:
                continue
            found = fit_thresholds(labelled_val, healthy_val, test, self.fpr_levels, self.threshold_search,
                                   self.bisection_steps, self.binary_steps, self.oracle, brain_summary,
                                   self.search_with_binary_postprocessing)
            found.update({f"fixed_{t:g}": t for t in self.fixed_thresholds})
            brain = brain_summary(test)
            metrics = set_metrics(test, found, self.binary_steps, healthy_test, self.detection_min_fraction,
                                  brain, summaries[name][1], self.detection_per_slice, self.detection_unit)
            if getattr(self.scorer, "uses_random_backbone", False):
                metrics["random_backbone"] = 1.0
            results[name] = metrics
            rows += per_volume_rows(test)
            if logger is not None:
                logger.log_metrics({f"{name}/{k}": v for k, v in metrics.items()})
            healthy = brain_summary(healthy_test) if healthy_test is not None and healthy_test.records else None
            write_figures(name, test, brain, healthy, found, run_dir / "figures")
        if not ctx.is_main:
            return {}
        for healthy_name in dict.fromkeys([self.healthy_validation, self.healthy_test]):
            healthy = scored.get(healthy_name) if healthy_name else None
            quality = mean_reconstruction_quality(healthy) if healthy else {}
            if quality:  # how well healthy anatomy is reconstructed (cDDPM paper: SSIM / PSNR)
                results[healthy_name] = {"volumes": float(len(healthy.records)), **quality}
            if healthy:
                rows += per_volume_rows(healthy)
        write_per_volume(rows, run_dir / "per_volume.csv")
        for s in scored.values():
            if s is not None:
                s.brain.close()
                s.whole.close()
        return results


def _unavailable_reason(scorer: Any, skip_if_unavailable: bool) -> str | None:
    """Check a scorer's external files now; with `skip_if_unavailable` the task is reported as
    skipped (with the reason) instead of stopping the run."""
    try:
        if hasattr(scorer, "check_available"):
            scorer.check_available()
    except UserInputError as exc:
        if not skip_if_unavailable:
            raise
        return str(exc)
    return None

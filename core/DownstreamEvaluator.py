"""Downstream evaluation: the base class, and the evaluation core shared by every method.

`AnomalyDetectionEvaluator`: data sets -> model reconstructions -> scorer -> map
post-processing -> thresholds (validation Dice, healthy FPR, oracle) -> metrics ->
results, figures and NIfTI anomaly maps.
"""
from __future__ import annotations

import enum
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from core.evaluation_metrics import fit_thresholds, mean_reconstruction_quality, set_metrics
from core.evaluation_outputs import write_figures, write_maps
from core.inference import ScoredVolume, score_volumes
from dl_utils.errors import UserInputError
from dl_utils.options import parse_option
from dl_utils.run_logger import RunLogger

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
        """Evaluate and return {data set name: {metric: value}}; files go to `run_dir`."""
        raise NotImplementedError


class AnomalyDetectionEvaluator(DownstreamEvaluator):
    """The evaluation core (methods.md section 8) for any reconstruction model and scorer.

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

    def _scored(self, name: str, cache: dict[str, list[ScoredVolume]]) -> list[ScoredVolume]:
        if name not in cache:
            LOG.info("scoring data set '%s' (%d volumes)", name, len(self.datasets[name]))
            cache[name] = score_volumes(self.model, self.datasets[name], self.scorer, self.map_steps, self.device,
                                        self.slice_batch_size, keep_images=self.figure_cases, set_name=name)
        return cache[name]

    def run(self, run_dir: Path, logger: RunLogger | None = None) -> dict[str, dict[str, float]]:
        if self.unavailable:
            LOG.warning("skipped: %s", self.unavailable)
            return {name: {"skipped": self.unavailable} for name in self.test_sets}
        run_dir = Path(run_dir)
        if self.fit_set is not None and hasattr(self.scorer, "fit"):
            self.scorer.fit(self.datasets[self.fit_set])
        torch.manual_seed(self.seed)  # stochastic reconstructions (diffusion noise) repeat for a fixed seed
        cache: dict[str, list[ScoredVolume]] = {}
        healthy_val = self._scored(self.healthy_validation, cache) if self.healthy_validation else None
        healthy_test = self._scored(self.healthy_test, cache) if self.healthy_test else None
        results: dict[str, dict[str, float]] = {}
        for name in self.test_sets:
            test = self._scored(name, cache)
            val_name = self.labelled_validation.get(name)
            labelled_val = self._scored(val_name, cache) if val_name else None
            found = fit_thresholds(labelled_val, healthy_val, test, self.fpr_levels, self.threshold_search,
                                   self.bisection_steps, self.binary_steps, self.oracle)
            metrics = set_metrics(test, found, self.binary_steps, healthy_test, self.detection_min_fraction,
                                  self.sample_score, self.detection_per_slice)
            if getattr(self.scorer, "uses_random_backbone", False):
                metrics["random_backbone"] = 1.0
            results[name] = metrics
            if logger is not None:
                logger.log_metrics({f"{name}/{k}": v for k, v in metrics.items()})
            write_figures(name, test, healthy_test, found, run_dir / "figures")
            if self.save_maps:
                write_maps(test, run_dir / "anomaly_maps" / name)
        for healthy_name, healthy in ((self.healthy_validation, healthy_val), (self.healthy_test, healthy_test)):
            quality = mean_reconstruction_quality(healthy) if healthy else {}
            if quality:  # how well healthy anatomy is reconstructed (cDDPM paper: SSIM / PSNR)
                results[healthy_name] = {"volumes": float(len(healthy)), **quality}
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

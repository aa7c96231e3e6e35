"""Downstream evaluation: the base class, and the evaluation protocol shared by every method.

`AnomalyDetectionEvaluator`: data sets -> scoring pipeline (model, scorer, map
post-processing) -> threshold rules (validation Dice, healthy FPR, oracle, fixed) -> metrics
-> an `EvaluationResult` (the run writes its results.json and per_volume.csv), figures and NIfTI
anomaly maps. Memory does not
grow with the number of volumes (maps are spilled to a scratch folder in the run folder,
every metric stays exact), and under torchrun each rank scores its share of the volumes.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from core.evaluation import legacy
from core.evaluation.metrics import mean_reconstruction_quality, pooled_dice_at, set_metrics
from core.evaluation.outputs import per_volume_rows, write_figures
from core.evaluation.pipeline import ScoringPipeline, ScoringSpec
from core.evaluation.result import EvaluationResult, InputGrid, ScoredWith, SetResult
from core.evaluation.scored_sets import ScoredSet, score_set
from core.evaluation.settings import DataRoles, DetectionSettings, OutputSettings
from core.evaluation.thresholds import FitData, ThresholdSettings, fit_all
from data.volume import Volume
from dl_utils.distributed import DistributedContext, context_from_env
from dl_utils.param_groups import group_flat_params
from dl_utils.param_ranges import Seed
from dl_utils.run_logger import RunLogger
from dl_utils.seeding import DEFAULT_SEED
from optim.metrics.streaming import RankingSummary

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluationContext:
    """What the framework gives an evaluator (core.run.assembly), never the YAML: the model, the
    device and the task's named data sets (built from its `data_loader`)."""

    model: nn.Module
    device: torch.device
    datasets: Mapping[str, Sequence[Volume]]


class DownstreamEvaluator:
    """Holds the model, the device and the named data sets (`context`) and the seed of the volumes'
    noise (the task's `params.seed`, else the run's); subclasses implement `run`."""

    def __init__(self, *, context: EvaluationContext, seed: Seed = DEFAULT_SEED):
        self.model = context.model
        self.device = context.device
        self.datasets = dict(context.datasets)
        self.seed = seed

    def run(self, run_dir: Path, logger: RunLogger | None = None) -> EvaluationResult:
        """Evaluate; files go to `run_dir`. Called on every rank of a torchrun job; rank 0's
        result is the run's (other ranks return an empty one)."""
        raise NotImplementedError

    def grid_problem(self, height: int, width: int, depth: int | None = None) -> str | None:
        """Why this task cannot evaluate axial slices of height x width, or volumes of `depth` of them (e.g.
        too small for its scorer), or None; the run asks it of every data set's grid and thinnest volume
        before anything is written (core.run.assembly)."""
        return None


class AnomalyDetectionEvaluator(DownstreamEvaluator):
    """The evaluation protocol (docs/methods.md section 8) for any reconstruction model and scorer.

    context: the model, device and data sets (the framework's); seed: of the volumes' noise;
    scoring: the task's scorer, post-processing and inference settings (a `ScoringPipeline`
    is built from it); roles: which data sets are validation / healthy / fit sets (every
    other data set is a test set); thresholds: the threshold rules; detection: the detection
    rate; outputs: figures, maps, scratch. Flat keys of earlier configs (`scorer`,
    `fpr_levels`, ...) are moved into these groups by `upgrade_params` (core.evaluation.legacy).
    """

    SCORING_PARAM: ClassVar[str] = "scoring"  # what `uad predict` builds of a task (core.commands.predict)

    def __init__(self, *, context: EvaluationContext, scoring: ScoringSpec, roles: DataRoles = DataRoles(),
                 thresholds: ThresholdSettings = ThresholdSettings(), detection: DetectionSettings = DetectionSettings(),
                 outputs: OutputSettings = OutputSettings(), seed: Seed = DEFAULT_SEED):
        super().__init__(context=context, seed=seed)
        self.roles, self.threshold_settings, self.detection, self.outputs = roles, thresholds, detection, outputs
        self.pipeline = ScoringPipeline(self.model, scoring, self.device, self.seed)
        self.unavailable = self.pipeline.unavailable_reason()  # now, before any run output
        self.test_sets = roles.test_sets(list(self.datasets))
        self.labelled_validation = roles.validation_of(self.test_sets)
        for name in sorted(roles.named()):
            if name not in self.datasets:
                raise ValueError(f"data set '{name}' is named in roles but not under data_loader.datasets "
                                 f"(have: {', '.join(self.datasets)})")
        if not self.test_sets:
            raise ValueError("no test set left after the validation / healthy / fit roles; add one under data_loader.datasets")
        if self.pipeline.needs_fit and roles.fit_set is None:
            raise ValueError(f"{type(scoring.scorer).__name__} must be fitted on healthy data: set roles.fit_set to a healthy data set")

    def grid_problem(self, height: int, width: int, depth: int | None = None) -> str | None:
        """Slices, or volumes of `depth` slices, too small for the scorer (`NeedsMinimumSlice`), or None."""
        return self.pipeline.slice_problem(height, width, depth)

    @staticmethod
    def upgrade_params(params: Mapping[str, Any]) -> dict[str, Any]:
        """This evaluator's params of an earlier config version (flat keys) in today's groups."""
        return group_flat_params(params, legacy.FLAT_KEYS, "AnomalyDetectionEvaluator")

    def _scored_names(self) -> list[str]:
        roles = self.roles
        return [n for n in dict.fromkeys([*self.test_sets, *self.labelled_validation.values(),
                                          roles.healthy_validation, roles.healthy_test]) if n]

    def run(self, run_dir: Path, logger: RunLogger | None = None) -> EvaluationResult:
        if self.unavailable:
            LOG.warning("skipped: %s", self.unavailable)
            return EvaluationResult.skipped(self.test_sets, self.unavailable)
        ctx = context_from_env()
        run_dir = Path(run_dir)
        if self.roles.fit_set is not None:
            self.pipeline.fit(self.datasets[self.roles.fit_set])  # every rank: deterministic, the same fit
        planned = [self.datasets[n] for n in self._scored_names()]
        # rank 0 keeps maps in the run folder; other ranks (maybe on other nodes) only score and send
        scratch = run_dir / ".scratch" if ctx.is_main else Path(tempfile.mkdtemp(prefix="uad-eval-"))
        try:
            with self.pipeline.prepared(planned, ctx.world_size):
                return self._evaluate(ctx, run_dir, scratch, logger)
        finally:
            if not self.outputs.keep_scratch or not ctx.is_main:
                shutil.rmtree(scratch, ignore_errors=True)

    def _evaluate(self, ctx: DistributedContext, run_dir: Path, scratch: Path, logger: RunLogger | None) -> EvaluationResult:
        rules = self.threshold_settings.rules()
        quantiles = sorted({q for rule in rules for q in rule.healthy_quantiles})
        scored: dict[str, ScoredSet | None] = {}
        summaries: dict[str, tuple[RankingSummary, RankingSummary]] = {}
        search_post = self.pipeline.binary_chain() if self.threshold_settings.search_with_binary_postprocessing else None

        def get(name: str | None, maps: bool = False) -> ScoredSet | None:
            if name is None:
                return None
            if name not in scored:
                keep = maps and self.outputs.save_maps
                folder = run_dir / "anomaly_maps" / name if keep and ctx.is_main else None
                scored[name] = score_set(self.pipeline, name, self.datasets[name], ctx, scratch, folder,
                                         self.outputs.figure_cases, keep_volumes=keep)
            return scored[name]

        def summary(s: ScoredSet) -> RankingSummary:
            if s.name not in summaries:
                summaries[s.name] = (s.brain.summary(n_target=s.lesion_voxels_total, quantiles=quantiles), s.whole.summary())
            return summaries[s.name][0]

        healthy_val = get(self.roles.healthy_validation)
        healthy_test = get(self.roles.healthy_test)
        result = EvaluationResult()
        scored_with = ScoredWith(self.pipeline.seed, self.pipeline.compiled_unet, self.pipeline.autocast)
        for name in self.test_sets:
            test = get(name, maps=True)
            labelled_val = get(self.labelled_validation.get(name))
            if not ctx.is_main:
                continue
            fitted = fit_all(rules, FitData(test, labelled_val, healthy_val, lambda s, t: pooled_dice_at(s, t, search_post), summary))
            brain = summary(test)
            metrics = set_metrics(test, fitted, self.pipeline.binarize, healthy_test, self.detection, brain, summaries[name][1])
            if self.pipeline.uses_stand_in_weights:
                metrics["random_backbone"] = 1.0
            result.sets[name] = SetResult(metrics, fitted, InputGrid.of(self.datasets[name]), scored_with)
            result.per_volume += per_volume_rows(test)
            if logger is not None:
                logger.log_metrics({f"{name}/{k}": v for k, v in metrics.items()})
            healthy = summary(healthy_test) if healthy_test is not None and healthy_test.records else None
            write_figures(name, test, brain, healthy, {k: t.value for k, t in fitted.items()}, run_dir / "figures")
        if not ctx.is_main:
            return EvaluationResult()
        for healthy_name in dict.fromkeys([self.roles.healthy_validation, self.roles.healthy_test]):
            healthy = scored.get(healthy_name) if healthy_name else None
            quality = mean_reconstruction_quality(healthy) if healthy else {}
            if quality:  # how well healthy anatomy is reconstructed (cDDPM paper: SSIM / PSNR)
                result.sets[healthy_name] = SetResult({"volumes": float(len(healthy.records)), **quality})
            if healthy:
                result.per_volume += per_volume_rows(healthy)
        for row in result.per_volume:  # the volumes of per_volume.csv, per data set in scoring order
            result.volumes.setdefault(str(row["dataset"]), []).append(str(row["name"]))
        for s in scored.values():
            if s is not None:
                s.brain.close()
                s.whole.close()
        return result

"""A self-describing checkpoint as a predictor: its stored task's `ScoringPipeline`, fitted thresholds, input grid
and what it was trained on (`uad predict`, core/commands/predict.py)."""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.evaluation.evaluator import AnomalyDetectionEvaluator
from core.evaluation.pipeline import ScoringPipeline
from core.evaluation.thresholds import fpr_key
from core.run import checkpoint_metadata
from core.run.assembly import evaluation_seed, evaluation_set_params
from core.run.checkpoint_metadata import TaskRecord
from data.image_list_dataset import MaskKind
from data.image_reading import ImageReading
from data.preprocessing import VolumePreprocessor
from data.trained_on import TrainedOn
from dl_utils.checkpoint import load_checkpoint
from dl_utils.device import resolve_device
from dl_utils.errors import UserInputError

LOG = logging.getLogger(__name__)

DEFAULT_RULE = fpr_key(0.05)
PREDICT_SET = "predict"  # the seed key's data set for scans the run did not evaluate


# ---- the checkpoint as a predictor -------------------------------------------------------
@dataclass
class Predictor:
    """One downstream task of a self-describing checkpoint: its scoring pipeline (the
    evaluator's, built from the stored task) and what its evaluation recorded."""

    pipeline: ScoringPipeline
    task: str
    record: TaskRecord
    config: dict[str, Any] = field(default_factory=dict)
    trained_on: TrainedOn | None = None  # the checkpoint's `trained_on` (None: written before it existed)

    def threshold(self, choice: str, test_set: str | None = None) -> tuple[str, float]:
        """(label, value): a number, or the value of a rule the run fitted (for `test_set`, or
        the first test set that has it); the oracle is never offered."""
        try:
            given = float(choice)
        except ValueError:
            given = None
        if given is not None:
            if not math.isfinite(given):
                raise UserInputError(f"--threshold {choice}: give a finite number or a fitted rule (e.g. {DEFAULT_RULE})")
            return "given", given
        fitted = self.record.thresholds
        if not fitted:
            raise UserInputError(f"the checkpoint holds no fitted thresholds for task '{self.task}'; "
                                 "give --threshold NUMBER, or evaluate the run first")
        if test_set is not None and test_set not in fitted:
            raise UserInputError(f"--test-set {test_set}: no thresholds fitted for it (have: {', '.join(fitted)})")
        for name in [test_set] if test_set else list(fitted):
            found = fitted[name].get(choice)
            if found is not None and found.usable_by_predict:
                return found.protocol_label(name), found.value
        have = sorted({k for values in fitted.values() for k, t in values.items() if t.usable_by_predict})
        raise UserInputError(f"--threshold '{choice}' was not fitted for task '{self.task}' "
                             f"(have: {', '.join(have)}); choose one of them or give a number")

    def seed_key(self, scan_name: str, test_set: str | None = None) -> tuple[str, int | str]:
        """(data set, index) the evaluator seeded this volume with, when the run scored a volume
        of that name (in `test_set`, else in the first set that has it); else (`predict`, name)."""
        volumes = self.record.volumes
        order = [*([test_set] if test_set else []), *self.record.thresholds, *volumes]
        for name in dict.fromkeys(order):
            names = volumes.get(name, [])
            if scan_name in names:
                return name, names.index(scan_name)
        return PREDICT_SET, scan_name

    @property
    def input_shape(self) -> list[int] | None:
        grid = self.record.input_grid
        return None if grid is None else list(grid.shape)

    @property
    def reading(self) -> ImageReading | None:
        """How the evaluation read its 2D image files (None: it scored volumes, or did not record it)."""
        grid = self.record.input_grid
        return None if grid is None or grid.reading is None else ImageReading(**grid.reading)

    @property
    def mask_kind(self) -> MaskKind | None:
        """What the mask files of its 2D image lists marked (None: not an image-list evaluation)."""
        grid = self.record.input_grid
        return None if grid is None else grid.mask_kind

    @property
    def image_masks_given(self) -> bool:
        """Whether its evaluation's image lists had mask files: as the evaluation recorded it with the grid, else
        (a checkpoint from before it was recorded) whether a data set of its stored config names a `mask_dir`."""
        grid = self.record.input_grid
        if grid is not None and grid.masks_given is not None:
            return grid.masks_given
        return any(params.get("mask_dir") for params in evaluation_set_params(self.config, self.task).values())

    @property
    def preprocessor(self) -> VolumePreprocessor:
        """The evaluated grid's preprocessing (the defaults where the checkpoint recorded none)."""
        grid = self.record.input_grid
        return VolumePreprocessor(**(grid.preprocessing or {})) if grid is not None else VolumePreprocessor()


def resolve_checkpoint(model: str | Path) -> Path:
    """A checkpoint file, or a run folder's `checkpoints/best_model.pt`."""
    path = Path(model)
    if path.is_dir():
        path = path / "checkpoints" / "best_model.pt"
    if not path.is_file():
        raise UserInputError(f"{model}: no checkpoint there; give a .pt file or a run folder holding checkpoints/best_model.pt")
    return path


def load_predictor(model: str | Path, task: str | None = None, device: str = "auto",
                   allow_external_modules: bool = False) -> Predictor:
    """Build the model and the task's scoring pipeline from the checkpoint's own config (project
    classes of the right role only; `allow_external_modules` is the command-line flag, never the file's)."""
    path = resolve_checkpoint(model)
    state = load_checkpoint(path)
    config, builder, net = checkpoint_metadata.open_checkpoint(state, path, allow_external_modules)
    torch_device = resolve_device(device if device != "auto" else config.get("device", "auto"))
    net = net.to(torch_device)
    records = checkpoint_metadata.task_records(state, config, path)
    tasks = config.get("downstream_tasks") or {}
    if task and task not in tasks:
        raise UserInputError(f"{path}: no downstream task '{task}' in its config (have: {', '.join(tasks)})")
    fitted = [t for t in tasks if t in records and records[t].thresholds]  # the default: the first with thresholds
    candidates = [task] if task else fitted + [t for t in tasks if t not in fitted]
    last_error = None
    skipped: list[str] = []  # warned about only when another task is used; else the error line says it
    for name in candidates:
        key = f"downstream_tasks.{name}"
        try:
            if not issubclass(builder.resolve_class(tasks[name], key), AnomalyDetectionEvaluator):
                continue  # not a scoring task (e.g. the benchmark's orchestrator)
            scoring = builder.build_param(tasks[name], key, AnomalyDetectionEvaluator.SCORING_PARAM)
            record = records.get(name, TaskRecord())
            seed = record.scored_with.seed if record.scored_with is not None else evaluation_seed(config, name)
            pipeline = ScoringPipeline(net, scoring, torch_device, seed)  # the evaluator's seed: its volumes' noise
            reason = pipeline.unavailable_reason()
            if reason:
                raise UserInputError(reason)
        except UserInputError as exc:
            last_error = exc
            skipped.append(f"task {name} unavailable: {exc}")
            continue
        if pipeline.needs_fit:
            last_error = UserInputError(f"task '{name}': its scorer {type(scoring.scorer).__name__} is fitted on healthy "
                                        "volumes at evaluation time; predict supports scorers without fit")
            continue
        trained = checkpoint_metadata.stored_trained_on(state, path)
        for message in skipped:
            LOG.warning("%s", message)
        return Predictor(pipeline, name, record, config, trained)
    raise last_error or UserInputError(f"{path}: its config has no downstream task to score with")

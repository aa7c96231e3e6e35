"""What one evaluation returns, typed: metrics and fitted thresholds per data set, the input grid, per-volume rows.

The run writes it as it is: `results.json` holds, per task and data set, the metrics, and
for test sets the fitted thresholds (records, see `core.evaluation.thresholds`), the
input grid and how the volumes were scored (`ScoredWith`); the run's checkpoint gets the thresholds, grids and scored volume names
(`core.run.checkpoint_metadata`), so `uad predict` reads values, never metric names.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from core.evaluation.contracts import ImageReadingSet, PreprocessedSet
from core.evaluation.reconstruction import Precision
from core.evaluation.thresholds import FittedThreshold, thresholds_from_json, thresholds_to_json
from data.image_list_dataset import MaskKind
from data.volume import Volume
from dl_utils.param_ranges import GridSide
from dl_utils.param_types import check_fields

THRESHOLDS_KEY = "thresholds"
INPUT_GRID_KEY = "input_grid"
SCORED_WITH_KEY = "scored_with"
SKIPPED_KEY = "skipped"


@dataclass(frozen=True)
class InputGrid:
    """The grid a data set was evaluated on: volume shape (H, W, D) and the preprocessing
    (its data module's `VolumePreprocessor` settings) that brought scans onto it; for 2D
    image lists instead how each image file was read (`reading`: `ImageReading` settings)
    and what its mask files marked (`mask_kind`) and whether it had any (`masks_given`; None: not recorded,
    an earlier run), so `uad predict` reads an image alike."""

    shape: tuple[GridSide, GridSide, GridSide]
    preprocessing: dict[str, Any] | None = None
    reading: dict[str, Any] | None = None
    mask_kind: MaskKind | None = None
    masks_given: bool | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shape": list(self.shape), "preprocessing": self.preprocessing}
        if self.reading is not None:  # (a volume grid is written as before this entry existed)
            out["reading"] = self.reading
            out["mask_kind"] = None if self.mask_kind is None else str(self.mask_kind)
            if self.masks_given is not None:
                out["masks_given"] = self.masks_given
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InputGrid:
        """A stored grid: three sides in range and a mapping of preprocessing settings (or none), reading
        settings (or none) and a mask kind (or none), else a ValueError naming the field. The settings'
        names and ranges are checked by whoever builds them (`core.run.checkpoint_metadata`, through the
        component builder)."""
        shape, preprocessing = data.get("shape"), data.get("preprocessing")
        reading, mask_kind, masks_given = data.get("reading"), data.get("mask_kind"), data.get("masks_given")
        if not isinstance(shape, (list, tuple)) or len(shape) != 3 or not all(_is_int(s) for s in shape):
            raise ValueError(f"shape: expected 3 integers (H, W, D), got {shape!r:.60}")
        if preprocessing is not None and not isinstance(preprocessing, Mapping):
            raise ValueError(f"preprocessing: expected a mapping of VolumePreprocessor settings, got {preprocessing!r:.60}")
        if reading is not None and not isinstance(reading, Mapping):
            raise ValueError(f"reading: expected a mapping of ImageReading settings, got {reading!r:.60}")
        if mask_kind is not None and mask_kind not in [k.value for k in MaskKind]:
            raise ValueError(f"mask_kind: expected one of {', '.join(MaskKind)}, got {mask_kind!r:.60}")
        if masks_given is not None and not isinstance(masks_given, bool):
            raise ValueError(f"masks_given: expected true or false, got {masks_given!r:.60}")
        grid = cls((shape[0], shape[1], shape[2]), None if preprocessing is None else dict(preprocessing),
                   None if reading is None else dict(reading), None if mask_kind is None else MaskKind(mask_kind),
                   masks_given)
        check_fields(grid)
        return grid

    @classmethod
    def of(cls, datasets: Sequence[Volume]) -> InputGrid | None:
        """The grid of a data set's first volume, with its preprocessing settings when it is a `PreprocessedSet`,
        its reading settings and mask kind when it is an `ImageReadingSet`."""
        if not len(datasets):
            return None
        shape = tuple(int(s) for s in datasets[0].image.shape)
        settings = None
        if isinstance(datasets, PreprocessedSet):
            settings = json.loads(json.dumps(dataclasses.asdict(datasets.preprocessor)))  # plain values (enums -> str)
        if isinstance(datasets, ImageReadingSet):
            return cls(shape, settings, datasets.reading.to_plain(), MaskKind(datasets.mask_kind), bool(datasets.masks_given))
        return cls(shape, settings)


RESOLVED_PRECISIONS = tuple(p for p in Precision if p is not Precision.AUTO)  # what an evaluation can have run at


@dataclass(frozen=True)
class ScoredWith:
    """What a later scoring (`uad predict`) must repeat to give the evaluator's maps to the last
    digit: the seed the per-volume seeds derive from, whether the UNet ran compiled
    (`compile_unet` as resolved for the whole evaluation) and the precision it ran at
    (`precision` as resolved once for it: `fp32`, `bf16` or `fp16`; None = not recorded, an
    older run: predict resolves the task's setting anew)."""

    seed: int
    compiled_unet: bool = False
    autocast: Precision | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seed": self.seed, "compiled_unet": self.compiled_unet}
        if self.autocast is not None:
            out["autocast"] = str(self.autocast)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ScoredWith:
        seed, compiled, autocast = data.get("seed"), data.get("compiled_unet", False), data.get("autocast")
        if not _is_int(seed) or not 0 <= seed < 2**63:
            raise ValueError(f"seed: expected an integer from 0 to 2**63 - 1 (a run's seed), got {seed!r:.60}")
        if not isinstance(compiled, bool):
            raise ValueError(f"compiled_unet: expected true or false, got {compiled!r:.60}")
        if autocast is not None and autocast not in [p.value for p in RESOLVED_PRECISIONS]:
            raise ValueError(f"autocast: expected one of {', '.join(RESOLVED_PRECISIONS)} (the precision the "
                             f"evaluation ran at), got {autocast!r:.60}")
        return cls(seed, compiled, None if autocast is None else Precision(autocast))


def _named(key: str, read: Any, value: Any) -> Any:
    """`read(value)`, its ValueError naming the entry `key` it came from."""
    try:
        return read(value)
    except ValueError as exc:
        raise ValueError(f"{key}.{exc}") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class SetResult:
    """One data set's metrics; for a test set also its fitted thresholds, input grid and how it was scored."""

    metrics: dict[str, Any]
    thresholds: dict[str, FittedThreshold] = field(default_factory=dict)
    input_grid: InputGrid | None = None
    scored_with: ScoredWith | None = None

    def to_json(self) -> dict[str, Any]:
        out = dict(self.metrics)
        if self.thresholds:
            out[THRESHOLDS_KEY] = thresholds_to_json(self.thresholds)
        if self.input_grid is not None:
            out[INPUT_GRID_KEY] = self.input_grid.to_json()
        if self.scored_with is not None:
            out[SCORED_WITH_KEY] = self.scored_with.to_json()
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SetResult:
        metrics = {k: v for k, v in data.items() if k not in (THRESHOLDS_KEY, INPUT_GRID_KEY, SCORED_WITH_KEY)}
        grid, scored_with = data.get(INPUT_GRID_KEY), data.get(SCORED_WITH_KEY)
        thresholds = _named(THRESHOLDS_KEY, thresholds_from_json, data.get(THRESHOLDS_KEY) or {})
        input_grid = _named(INPUT_GRID_KEY, InputGrid.from_json, grid) if isinstance(grid, Mapping) else None
        scored = _named(SCORED_WITH_KEY, ScoredWith.from_json, scored_with) if isinstance(scored_with, Mapping) else None
        return cls(metrics, thresholds, input_grid, scored)


@dataclass
class EvaluationResult:
    """A task's result: per data set (test sets, then healthy sets), the per-volume rows, and
    the names of their volumes per data set in scoring order (how predict finds a volume's seed)."""

    sets: dict[str, SetResult] = field(default_factory=dict)
    per_volume: list[dict[str, Any]] = field(default_factory=list)
    volumes: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def skipped(cls, test_sets: Sequence[str], reason: str) -> EvaluationResult:
        return cls({name: SetResult({SKIPPED_KEY: reason}) for name in test_sets})

    @property
    def is_skipped(self) -> bool:
        """Whether the task was skipped (its scorer's files missing): nothing scored, no per_volume.csv."""
        return bool(self.sets) and all(SKIPPED_KEY in r.metrics for r in self.sets.values())

    def to_json(self) -> dict[str, dict[str, Any]]:
        """`results.json`'s entry of the task: {data set: metrics (+ thresholds, input grid)}."""
        return {name: result.to_json() for name, result in self.sets.items()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvaluationResult:
        return cls({name: SetResult.from_json(value) for name, value in data.items() if isinstance(value, Mapping)})

    def thresholds(self) -> dict[str, dict[str, FittedThreshold]]:
        """{test set: {rule key: fitted}} for the sets that have thresholds."""
        return {name: dict(r.thresholds) for name, r in self.sets.items() if r.thresholds}

    def input_grid(self) -> InputGrid | None:
        """The grid of the first test set (the one predict brings scans onto)."""
        return next((r.input_grid for r in self.sets.values() if r.input_grid is not None), None)

    def scored_with(self) -> ScoredWith | None:
        """How the task's volumes were scored (one pipeline for every set: the first test set's record)."""
        return next((r.scored_with for r in self.sets.values() if r.scored_with is not None), None)

"""The evaluated grid a result records (`InputGrid.of`): the volumes' shape, and the preprocessing
settings of a `PreprocessedSet` (what `uad predict` repeats); a plain sequence of volumes records
the shape alone."""
from __future__ import annotations

import json

import numpy as np
import torch

from core.evaluation.contracts import PreprocessedSet
from core.evaluation.result import InputGrid
from data.preprocessing import Pipeline, VolumePreprocessor
from data.volume import Volume


def _volume(shape=(8, 6, 3)) -> Volume:
    return Volume(name="v", image=torch.zeros(shape), mask=torch.ones(shape, dtype=torch.bool), seg=None, label=0,
                  affine=np.eye(4))


class _Preprocessed(list):
    def __init__(self, volumes, preprocessor: VolumePreprocessor):
        super().__init__(volumes)
        self.preprocessor = preprocessor


def test_a_plain_sequence_records_its_shape_alone():
    assert InputGrid.of([_volume()]) == InputGrid((8, 6, 3), None)
    assert InputGrid.of([]) is None and not isinstance([_volume()], PreprocessedSet)


def test_a_preprocessed_set_records_its_settings_as_plain_values():
    pre = VolumePreprocessor(crop_shape=None, target_shape=(8, 6, 3), pipeline=Pipeline.ZOOM)
    volumes = _Preprocessed([_volume()], pre)
    assert isinstance(volumes, PreprocessedSet)
    grid = InputGrid.of(volumes)
    assert grid.shape == (8, 6, 3) and grid.preprocessing["target_shape"] == [8, 6, 3]
    assert grid.preprocessing["pipeline"] == "zoom" and json.loads(json.dumps(grid.preprocessing)) == grid.preprocessing
    assert VolumePreprocessor(**grid.preprocessing) == pre  # predict rebuilds the same preprocessing from it
    assert InputGrid.from_json(grid.to_json()) == grid


def test_a_volume_set_knows_its_slice_grids_and_a_plain_sequence_does_not():
    """The run's grid check (core.run.assembly) asks a `SliceGridSet` for its grids without loading
    anything; any other set is read at its first item."""
    from core.evaluation.contracts import SliceGridSet
    from data.volume_dataset import VolumeSet
    assert issubclass(VolumeSet, SliceGridSet) and not isinstance([_volume()], SliceGridSet)


def test_stored_records_refuse_values_predict_cannot_use():
    """A threshold record must be finite with a level in (0, 1), a grid three sides in range: a results.json
    or checkpoint from someone else is refused naming the entry, never used (a NaN threshold masks nothing)."""
    import math

    import pytest

    from core.evaluation.result import InputGrid, SetResult
    from core.evaluation.thresholds import FittedThreshold

    good = {"kind": "healthy_fpr", "value": 0.25, "fitted_on": "val", "level": 0.05}
    assert FittedThreshold.from_json("fpr_5%", good).value == 0.25
    for change, field in (({"value": math.nan}, "value"), ({"value": math.inf}, "value"), ({"level": 7}, "level"),
                          ({"level": 0.0}, "level"), ({"value": "0.5"}, "value"), ({"kind": "bogus"}, "kind")):
        with pytest.raises(ValueError, match=f"fpr_5%.{field}"):
            FittedThreshold.from_json("fpr_5%", {**good, **change})
    for shape in ([16, 16], [-1, 0, 10**9], [16.0, 16, 8], [True, 16, 8]):
        with pytest.raises(ValueError, match="shape"):
            InputGrid.from_json({"shape": shape})
    with pytest.raises(ValueError, match="masks_given"):
        InputGrid.from_json({"shape": [16, 16, 1], "reading": {}, "mask_kind": "brain", "masks_given": "yes"})
    with pytest.raises(ValueError, match="thresholds.fpr_5%.value"):
        SetResult.from_json({"thresholds": {"fpr_5%": {**good, "value": math.nan}}})


def test_how_a_set_was_scored_round_trips_and_refuses_what_predict_cannot_repeat():
    """`ScoredWith`: seed, compile decision and the precision the evaluation ran at, through results.json and
    the checkpoint's task record alike; a record without a precision (an older run) loads as not recorded
    (predict resolves the task's setting anew); a value no evaluation runs at is one line naming the field."""
    import pytest

    from core.evaluation.reconstruction import Precision
    from core.evaluation.result import ScoredWith, SetResult
    from core.run.checkpoint_metadata import TaskRecord

    scored = ScoredWith(7, True, Precision.BF16)
    assert scored.to_json() == {"seed": 7, "compiled_unet": True, "autocast": "bf16"}
    assert ScoredWith.from_json(scored.to_json()) == scored
    assert SetResult.from_json(SetResult({"AUROC": 0.5}, scored_with=scored).to_json()).scored_with == scored
    record = TaskRecord(scored_with=scored)
    assert TaskRecord.from_json(record.to_json()).scored_with == scored
    older = ScoredWith.from_json({"seed": 7, "compiled_unet": False})
    assert older.autocast is None and "autocast" not in older.to_json()
    for bad in ("auto", "fp8", 16, True, ["bf16"]):
        with pytest.raises(ValueError, match="^autocast: expected one of fp32, bf16, fp16") as caught:
            ScoredWith.from_json({"seed": 7, "autocast": bad})
        assert "\n" not in str(caught.value)
    with pytest.raises(ValueError, match="^record.scored_with.autocast: expected one of"):
        TaskRecord.from_json({**record.to_json(), "scored_with": {"seed": 7, "autocast": "fp64"}})

"""The paper protocol's metrics equal the originals' on a fixed map / label pair.

Reference values recorded by running the originals' own functions (`compute_roc`,
`compute_prc`, `find_best_val`, `filter_3d_connected_components`, `dice`, and the
`np.nanmean` of `_test_end`) from FinnBehrendt/Conditioned-Diffusion-Models-UAD,
src/utils/utils_eval.py at commit c5904a7 (HEAD of the fetched snapshot), in a scratch
folder outside this repository, on the fixture below: maps times a disk-shaped brain mask
(their maps are 0 outside the brain), so the papers' all-voxel AUPRC (0.391) and a
brain-voxel AUPRC (0.410) differ (issue 18). Their code is not part of this project; only
the numbers are.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.evaluation.evaluator import AnomalyDetectionEvaluator, EvaluationContext
from core.evaluation.outputs import write_per_volume
from core.evaluation.pipeline import ScoringSpec
from core.evaluation.settings import DataRoles, OutputSettings
from core.evaluation.thresholds import ThresholdSettings
from data.volume import Volume
from optim.postprocessing import RemoveSmallComponents

# Originals, per test volume: AUCPerVol, AUPRCPerVol; their means / stds; the validation
# threshold of find_best_val on the pooled raw maps (10 steps); DiceScorePerVol mean.
ORIGINAL_AUROC_PER_VOLUME = (0.7858579384724187, 0.8226485906862745)
ORIGINAL_AUPRC_PER_VOLUME = (0.3839468533218247, 0.39796317926664015)
ORIGINAL_AUROC_MEAN, ORIGINAL_AUROC_STD = 0.8042532645793465, 0.0183953261069279
ORIGINAL_AUPRC_MEAN, ORIGINAL_AUPRC_STD = 0.39095501629423246, 0.007008162972407722
ORIGINAL_VAL_THRESHOLD = 0.59072268  # float32 in their search
ORIGINAL_DICE_MEAN = 0.3492537313432836
# Their functions composed the other way (our default): find_best_val with `x > q` replaced by
# the pooled validation maps thresholded per volume and passed through their
# filter_3d_connected_components; then their test chain at that threshold.
ORIGINAL_COMPOSED_THRESHOLD = 0.45326170  # float32
ORIGINAL_COMPOSED_DICE_MEAN = 0.2654376583169153
# Not theirs, for contrast: the same AUPRC over brain voxels only (sklearn average_precision_score).
BRAIN_VOXEL_AUPRC_MEAN = 0.4101029386046531


def brain_mask() -> np.ndarray:
    """(12, 12, 6): a disk of radius 5.6 per slice; the second lesion of volumes 0 and 2 lies
    partly outside it."""
    y, x = np.mgrid[0:12, 0:12]
    disk = (y - 5.5) ** 2 + (x - 5.5) ** 2 <= 5.6**2
    return np.repeat(disk[:, :, None], 6, axis=2)


def fixture() -> tuple[list, list]:
    """Two validation and two test volumes (12, 12, 6): map in [0, 1] (2 decimals, ties), lesion cubes."""
    rng = np.random.default_rng(7)
    vols = []
    for k in range(4):
        seg = np.zeros((12, 12, 6), bool)
        seg[2 + k : 6 + k, 3:7, 1:4] = True
        seg[9:11, 9:11, 4:6] = k % 2 == 0  # a second lesion of 8 voxels in volumes 0 and 2
        amap = rng.random((12, 12, 6)) * 0.6 + 0.35 * seg * rng.random((12, 12, 6))
        amap[0, 0, 0] = 0.97  # outside the brain (zeroed by the mask)
        vols.append((np.round(amap, 2).astype(np.float32), seg))
    return vols[:2], vols[2:]


class MapIsImage:
    """Test scorer: the 'image' is the anomaly map itself (no model)."""

    num_reconstructions = 0

    def __call__(self, x, recs, mask):
        return x * mask


def _volumes(pairs, prefix):
    return [Volume(name=f"{prefix}{i}", image=torch.from_numpy(a), mask=torch.from_numpy(brain_mask()),
                   seg=torch.from_numpy(s), label=1, affine=np.eye(4)) for i, (a, s) in enumerate(pairs)]


def test_paper_protocol_equals_the_originals(tmp_path):
    val, test = fixture()
    evaluator = AnomalyDetectionEvaluator(
        context=EvaluationContext(torch.nn.Identity(), torch.device("cpu"), {"val": _volumes(val, "v"), "test": _volumes(test, "t")}),
        seed=0,
        scoring=ScoringSpec(MapIsImage(), binary_postprocessing=[RemoveSmallComponents(min_size=8, connectivity=26)]),
        roles=DataRoles(labelled_validation="val"),
        thresholds=ThresholdSettings(search="bisection", bisection_steps=10, oracle=False, fpr_levels=(),
                                     search_with_binary_postprocessing=False),
        outputs=OutputSettings(figure_cases=0, save_maps=False))
    result = evaluator.run(tmp_path)
    metrics = result.sets["test"].metrics
    assert metrics["AUROC"] == pytest.approx(ORIGINAL_AUROC_MEAN, abs=1e-12)
    assert metrics["AUPRC"] == pytest.approx(ORIGINAL_AUPRC_MEAN, abs=1e-12)
    assert metrics["AUROC_std"] == pytest.approx(ORIGINAL_AUROC_STD, abs=1e-12)
    assert metrics["AUPRC_std"] == pytest.approx(ORIGINAL_AUPRC_STD, abs=1e-12)
    assert metrics["threshold@val_dice"] == pytest.approx(ORIGINAL_VAL_THRESHOLD, abs=1e-6)
    assert metrics["Dice@val_dice"] == pytest.approx(ORIGINAL_DICE_MEAN, abs=1e-12)
    assert metrics["AUPRC_per_volume_brain"] == pytest.approx(BRAIN_VOXEL_AUPRC_MEAN, abs=1e-12)
    assert abs(metrics["AUPRC"] - metrics["AUPRC_per_volume_brain"]) > 0.01  # the mask decides which is which
    write_per_volume(result.per_volume, tmp_path / "per_volume.csv")  # what the run writes from the result
    rows = (tmp_path / "per_volume.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 and rows[0].startswith("dataset,name,label,lesion_voxels,AUPRC,AUROC")
    test_rows = [r.split(",") for r in rows[1:] if r.startswith("test,")]
    np.testing.assert_allclose([float(r[5]) for r in test_rows], ORIGINAL_AUROC_PER_VOLUME, atol=1e-12)
    np.testing.assert_allclose([float(r[4]) for r in test_rows], ORIGINAL_AUPRC_PER_VOLUME, atol=1e-12)


def test_component_removal_inside_the_search_is_one_flag_away(tmp_path):
    """Ours (default): the bisection thresholds post-processed maps (their functions composed
    that way give ORIGINAL_COMPOSED_*); one flag gives the originals' raw-map search. On this
    fixture the two searches pick different thresholds, so a flag that did nothing fails."""
    val, test = fixture()
    kwargs = dict(context=EvaluationContext(torch.nn.Identity(), torch.device("cpu"),
                                            {"val": _volumes(val, "v"), "test": _volumes(test, "t")}), seed=0,
                  scoring=ScoringSpec(MapIsImage(), binary_postprocessing=[RemoveSmallComponents(min_size=8, connectivity=26)]),
                  roles=DataRoles(labelled_validation="val"), outputs=OutputSettings(figure_cases=0, save_maps=False))
    ours = AnomalyDetectionEvaluator(**kwargs, thresholds=ThresholdSettings(oracle=False, fpr_levels=())).run(tmp_path / "a").sets["test"].metrics
    original = AnomalyDetectionEvaluator(**kwargs, thresholds=ThresholdSettings(
        oracle=False, fpr_levels=(), search_with_binary_postprocessing=False)).run(tmp_path / "b").sets["test"].metrics
    assert original["threshold@val_dice"] == pytest.approx(ORIGINAL_VAL_THRESHOLD, abs=1e-6)
    assert original["Dice@val_dice"] == pytest.approx(ORIGINAL_DICE_MEAN, abs=1e-12)
    assert ours["threshold@val_dice"] == pytest.approx(ORIGINAL_COMPOSED_THRESHOLD, abs=1e-6)
    assert ours["Dice@val_dice"] == pytest.approx(ORIGINAL_COMPOSED_DICE_MEAN, abs=1e-12)
    assert abs(ours["threshold@val_dice"] - original["threshold@val_dice"]) > 0.1
    assert ours["AUPRC"] == original["AUPRC"]  # threshold-free metrics do not depend on the flag

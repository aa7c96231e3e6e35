"""RA's detection rate on annotation boxes equals the published per-image rule (issue 9, item 7).

tests/fixtures/parity_data/ra_boxes.json holds the TP / FP lists that the published lines of
ci-ber/RA (9b7a255) `object_localization` gave, executed verbatim on ra_boxes.npz (see the
JSON's `source`), at the code's fixed threshold 0.009 and three others, with the precision,
recall and F1 per image and the per-set figures their code logs (issue 18).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from optim.metrics.detection import (
    DetectionCounter,
    DetectionUnit,
    UnboxedImages,
    box_detection_rate,
    box_false_positives,
    box_hit,
    box_localization,
    box_localization_summary,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity_data"
REF = json.loads((FIXTURES / "ra_boxes.json").read_text())["per_threshold"]
DATA = dict(np.load(FIXTURES / "ra_boxes.npz"))


@pytest.mark.parametrize("threshold", sorted(REF, key=float))
def test_box_hits_and_fp_equal_published_code(threshold):
    th = float(threshold)
    maps, boxes, negative = DATA["maps"], DATA["boxes"], DATA["negative"]
    hits = [int(box_hit(a, b, th)) for a, b in zip(maps, boxes)]
    assert hits == REF[threshold]["TP"]
    assert [box_false_positives(a, b, n, th) for a, b, n in zip(maps, boxes, negative)] == REF[threshold]["FP"]
    rate = box_detection_rate(list(maps), list(boxes), th)
    assert rate.detected == REF[threshold]["tps"] and rate.total == len(maps)
    assert rate.rate == pytest.approx(REF[threshold]["tps"] / len(maps))


@pytest.mark.parametrize("threshold", sorted(REF, key=float))
def test_precision_recall_f1_and_set_figures_equal_published_code(threshold):
    ref = REF[threshold]
    images = [box_localization(a, b, n, float(threshold)) for a, b, n in zip(DATA["maps"], DATA["boxes"], DATA["negative"])]
    np.testing.assert_allclose([i.precision for i in images], ref["Precision"], rtol=0, atol=1e-15)
    np.testing.assert_allclose([i.recall for i in images], ref["Recall"], rtol=0, atol=0)
    np.testing.assert_allclose([i.f1 for i in images], ref["F1"], rtol=0, atol=1e-15)
    got = box_localization_summary(images)
    assert (got["TP"], got["FP"]) == (ref["set"]["TP"]["sum"], ref["set"]["FP"]["sum"])
    for ours, theirs in (("FP_mean", "FP"), ("Precision", "Precision"), ("Recall", "Recall"), ("F1", "F1")):
        assert got[ours] == pytest.approx(ref["set"][theirs]["mean"], abs=1e-15)
        assert got[f"{theirs}_std"] == pytest.approx(ref["set"][theirs]["std"], abs=1e-15)


def test_hit_rule_by_hand():
    """10 box pixels: 1 reaching the threshold is 10 % (not more), 2 are a hit; zeros never count."""
    boxes = np.zeros((4, 5)); boxes[0, :5] = 1; boxes[1, :5] = 1
    amap = np.zeros((4, 5)); amap[0, 0] = 0.5
    assert not box_hit(amap, boxes, 0.1)
    amap[0, 1] = 0.1  # == threshold reaches it
    assert box_hit(amap, boxes, 0.1)
    assert not box_hit(np.zeros((4, 5)), boxes, 0.0)
    assert np.isnan(box_detection_rate([amap], [np.zeros((4, 5))], 0.1).rate)


UNBOXED = json.loads((FIXTURES / "ra_boxes_unboxed.json").read_text())["per_threshold"]
UNBOXED_DATA = {k: np.concatenate([DATA[k], v]) for k, v in np.load(FIXTURES / "ra_boxes_unboxed.npz").items()}


@pytest.mark.parametrize("threshold", sorted(UNBOXED, key=float))
def test_images_without_boxes_counted_as_ra_with_unboxed_count(threshold):
    """Issue 18: RA's object_localization counts an image without box pixels as a miss with its FP
    figure (ra_boxes_unboxed.json, recorded from their lines on 6 boxed + 2 unboxed images):
    `unboxed: count` (ra_paper.yaml) reproduces every per-set figure and their TP / n; `skip`
    (ours) leaves those two images out, giving the 6-image figures of ra_boxes.json."""
    ref, th = UNBOXED[threshold], float(threshold)
    maps, boxes, negative = UNBOXED_DATA["maps"], UNBOXED_DATA["boxes"], UNBOXED_DATA["negative"]
    assert not boxes[6:].any() and boxes[:6].reshape(6, -1).any(1).all()
    counters = {mode: DetectionCounter(DetectionUnit.BOX, unboxed=mode) for mode in UnboxedImages}
    for counter in counters.values():
        for a, b, n in zip(maps, boxes, negative):
            counter.add(a, b > 0, th, regions=(b, n))
    count = counters[UnboxedImages.COUNT]
    assert [i.tp for i in count.localized] == ref["TP"] and [i.fp for i in count.localized] == ref["FP"]
    assert (count.result().detected, count.result().total) == (ref["tps"], 8)
    got = count.box_figures()
    assert (got["TP"], got["FP"]) == (ref["set"]["TP"]["sum"], ref["set"]["FP"]["sum"])
    for ours, theirs in (("FP_mean", "FP"), ("Precision", "Precision"), ("Recall", "Recall"), ("F1", "F1")):
        assert got[ours] == pytest.approx(ref["set"][theirs]["mean"], abs=1e-15)
        assert got[f"{theirs}_std"] == pytest.approx(ref["set"][theirs]["std"], abs=1e-15)
    skip, six = counters[UnboxedImages.SKIP], REF[threshold]
    assert (skip.result().detected, skip.result().total) == (six["tps"], 6)
    assert (skip.box_figures()["FP"], skip.box_figures()["Recall"]) == (six["set"]["FP"]["sum"], pytest.approx(six["set"]["Recall"]["mean"]))
    assert box_detection_rate(list(maps), list(boxes), th, unboxed="count").total == 8

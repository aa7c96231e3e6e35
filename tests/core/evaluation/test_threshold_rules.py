"""Threshold rules: each fits what its protocol says (checked by hand on small sets), spells its
key once, and knows whether it counts detections and whether predict may use it. The common
test runs over every `ThresholdRule` of core/evaluation/thresholds.py, discovered."""
from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest

from core.evaluation import thresholds
from core.evaluation.thresholds import (
    BestDice,
    FitData,
    FittedThreshold,
    FixedValue,
    HealthyFPR,
    OracleDice,
    RuleKind,
    ThresholdRule,
    ThresholdSettings,
    ValidationDice,
    fit_all,
    legacy_fitted,
    legacy_thresholds_from_metrics,
    metric_key,
)
from tests.project_classes import classes_in, satisfies


@dataclass
class FakeSet:
    name: str
    maps: list[np.ndarray] = field(default_factory=list)
    segs: list[np.ndarray] = field(default_factory=list)
    lesion_voxels_total: int = 0

    @property
    def records(self):
        return [SimpleNamespace(map_max=float(m.max())) for m in self.maps]

    @property
    def labelled(self):
        return self.records if self.segs else []


def _pooled_dice(s: FakeSet, t: float) -> float:
    pred = np.concatenate([m.ravel() > t for m in s.maps])
    seg = np.concatenate([g.ravel() for g in s.segs])
    return 2 * (pred & seg).sum() / max(pred.sum() + seg.sum(), 1)


def _data(test=None, val=None, healthy=None, quantiles=None) -> FitData:
    summary = SimpleNamespace(quantiles=quantiles or {}, best_dice_threshold=0.42)
    return FitData(test or FakeSet("test"), val, healthy, _pooled_dice, lambda s: summary)


RULES = list(classes_in("core", lambda cls: satisfies(cls, ThresholdRule)).values())  # whatever their shape
INSTANCES = {"ValidationDice": ValidationDice(), "HealthyFPR": HealthyFPR(0.05), "OracleDice": OracleDice(),
             "FixedValue": FixedValue(0.009)}


def test_every_rule_is_covered():
    assert {cls.__name__ for cls in RULES} == set(INSTANCES) and set(thresholds.RULES) == set(RULES)
    assert dict(thresholds.RULES_BY_KIND) == {cls.kind: cls for cls in RULES} and set(thresholds.RULES_BY_KIND) == set(RuleKind)


@pytest.mark.parametrize("name", sorted(INSTANCES))
def test_rule_contract(name):
    rule = INSTANCES[name]
    val = FakeSet("val", [np.array([0.1, 0.9, 0.8])], [np.array([False, True, True])])
    test = FakeSet("test", [np.array([0.2, 0.7])], [np.array([False, True])], lesion_voxels_total=1)
    fitted = rule.fit(_data(test, val, FakeSet("healthy", [np.zeros(3)]), {0.95: 0.3}))
    assert isinstance(fitted, FittedThreshold) and fitted.key == rule.key and fitted.kind is rule.kind
    assert FittedThreshold.from_json(fitted.key, fitted.to_json()) == fitted  # travels as data
    assert fitted.usable_by_predict is type(rule).usable_by_predict == (rule.kind is not RuleKind.ORACLE)
    assert fitted.counts_detections is type(rule).counts_detections == (rule.kind in (RuleKind.HEALTHY_FPR, RuleKind.FIXED))
    assert all(0 < q < 1 for q in rule.healthy_quantiles)
    assert legacy_fitted(rule.key, fitted.value) is not None and legacy_fitted(rule.key, fitted.value).kind is rule.kind


def test_keys():
    assert [r.key for r in ThresholdSettings(fixed=[0.009]).rules()] == ["val_dice", "fpr_1%", "fpr_5%", "oracle_dice", "fixed_0.009"]
    assert metric_key("Dice", HealthyFPR(0.05).key) == "Dice@fpr_5%"


def test_validation_dice_bisects_the_pooled_dice_by_hand():
    # maps in [0, 1]; the best pooled Dice is for thresholds in [0.3, 0.8): the bisection over
    # [0, 0.9] (10 steps) lands inside that interval
    val = FakeSet("val", [np.array([0.1, 0.2, 0.8, 0.9]), np.array([0.3, 0.85])],
                  [np.array([False, False, True, True]), np.array([False, True])])
    fitted = ValidationDice().fit(_data(val=val))
    assert fitted.fitted_on == "val" and 0.3 <= fitted.value < 0.8
    assert _pooled_dice(val, fitted.value) == 1.0
    assert ValidationDice(BestDice(search="exact")).fit(_data(val=val)).value == 0.42  # the exact sweep's
    assert ValidationDice().fit(_data(val=None)) is None


def test_healthy_fpr_reads_its_quantile_and_checks_its_level():
    fitted = HealthyFPR(0.01).fit(_data(healthy=FakeSet("h", [np.zeros(2)]), quantiles={0.99: 0.7}))
    assert fitted.value == 0.7 and fitted.level == 0.01 and fitted.fitted_on == "h"
    assert HealthyFPR(0.01).healthy_quantiles == (0.99,)
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="false-positive rate"):
            HealthyFPR(bad)
    with pytest.raises(ValueError):
        ThresholdSettings(fpr_levels=[1.5])
    with pytest.raises(ValueError, match="bisection_steps"):
        ThresholdSettings(bisection_steps=0)


def test_oracle_needs_lesions_and_fit_all_keeps_rule_order():
    assert OracleDice().fit(_data(FakeSet("test"))) is None
    found = fit_all(ThresholdSettings(fixed=[0.5]).rules(), _data(healthy=FakeSet("h", [np.zeros(2)]),
                                                                  quantiles={0.99: 0.7, 0.95: 0.6}))
    assert list(found) == ["fpr_1%", "fpr_5%", "fixed_0.5"]


def test_results_of_before_version_2_are_read_off_their_metric_names():
    found = legacy_thresholds_from_metrics({"threshold@val_dice": 0.2, "threshold@fpr_5%": 0.3, "Dice@fpr_5%": 0.5,
                                            "threshold@fixed_0.009": 0.009, "threshold@oracle_dice": 0.25})
    assert {k: (t.kind, t.value, t.level) for k, t in found.items()} == {
        "val_dice": (RuleKind.VAL_DICE, 0.2, None), "fpr_5%": (RuleKind.HEALTHY_FPR, 0.3, 0.05),
        "fixed_0.009": (RuleKind.FIXED, 0.009, None), "oracle_dice": (RuleKind.ORACLE, 0.25, None)}


def test_discovery_finds_a_rule_whatever_its_shape():
    """A rule written as a plain class (kind set in __init__, key an attribute) is found, so it
    cannot escape `test_every_rule_is_covered`; a class lacking `fit` is not a rule."""
    class _PlainRule:
        counts_detections = usable_by_predict = False
        healthy_quantiles = ()

        def __init__(self):
            self.kind, self.key = RuleKind.FIXED, "fixed_1"

        def fit(self, data):
            return None

    class _NoFit(_PlainRule):
        fit = None

    assert satisfies(_PlainRule, ThresholdRule) and not satisfies(_NoFit, ThresholdRule)

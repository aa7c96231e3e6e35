"""Threshold rules: how each protocol fits one global threshold per test set, and its name.

Every rule spells its own key here, and only here: `val_dice` (best pooled Dice on the
labelled validation set), `fpr_<p>%` (the share p of healthy validation brain voxels lies
above it), `oracle_dice` (best Dice on the test set itself: an upper bound, never a result)
and `fixed_<t>` (a given value, e.g. RA's 0.009). A rule knows whether detections are counted
at its threshold and whether `uad predict` may use it (not the oracle: it was fitted on the
labels it is scored against). What a rule fits is a `FittedThreshold` record, which travels
as data into results.json and the checkpoint; nothing parses a key back into a rule, except
`legacy_fitted` for checkpoints of metadata version 1, which held bare {key: value} maps.
"""
from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Protocol

from dl_utils.options import parse_option
from dl_utils.param_ranges import MAX_RULES, OpenFraction
from dl_utils.param_types import Finite, Ge, Le, MaxItems, check_fields
from optim.metrics import thresholds as threshold_search
from optim.metrics.streaming import RankingSummary

# Halvings of [0, max map value]: the originals use 10; 64 exhaust a double's precision, so more only costs time.
BisectionSteps = Annotated[int, Ge(1), Le(64)]
METRIC_SEPARATOR = "@"  # metric names at a threshold: `Dice@fpr_5%`, `threshold@val_dice`


class RuleKind(enum.StrEnum):
    """The threshold protocols."""

    VAL_DICE = "val_dice"
    HEALTHY_FPR = "healthy_fpr"
    ORACLE = "oracle"
    FIXED = "fixed"


class ThresholdSearch(enum.StrEnum):
    """How the best-Dice rules search: the originals' bisection, or the exact sweep."""

    BISECTION = "bisection"
    EXACT = "exact"


@dataclass(frozen=True)
class FittedThreshold:
    """One fitted threshold: its rule's key and kind, the value, and what it was fitted on."""

    key: str
    kind: RuleKind
    value: Annotated[float, Finite()]
    fitted_on: str | None = None  # the data set; None for a fixed value
    level: OpenFraction | None = None    # the false-positive rate of a healthy-FPR rule

    @property
    def usable_by_predict(self) -> bool:
        """Whether `uad predict` may use it: its rule says (`RULES_BY_KIND`)."""
        return RULES_BY_KIND[self.kind].usable_by_predict

    @property
    def counts_detections(self) -> bool:
        """Whether detections are counted at it: its rule says."""
        return RULES_BY_KIND[self.kind].counts_detections

    def protocol_label(self, set_name: str) -> str:
        """How a prediction names the threshold it used: the key, with the test set it was fitted
        for where the value depends on that set (`val_dice@<set>`, fitted on its labelled validation set)."""
        return f"{self.key}@{set_name}" if self.kind is RuleKind.VAL_DICE else self.key

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "value": self.value, "fitted_on": self.fitted_on, "level": self.level}

    @classmethod
    def from_json(cls, key: str, data: Mapping[str, Any]) -> FittedThreshold:
        """A stored record (results.json, a checkpoint), checked against the field ranges: a NaN or infinite
        value, a level outside (0, 1) or a value that is not a number is a ValueError naming `key` and the field."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{key}: expected a mapping {{kind, value, fitted_on, level}}, got {type(data).__name__}")
        if "kind" not in data or "value" not in data:
            raise ValueError(f"{key}: expected a mapping with 'kind' and 'value'")
        kind = data["kind"]
        if not isinstance(kind, str) or kind not in set(RuleKind):
            raise ValueError(f"{key}.kind: expected one of {', '.join(RuleKind)}, got {kind!r:.60}")
        level, fitted_on = data.get("level"), data.get("fitted_on")
        if fitted_on is not None and not isinstance(fitted_on, str):
            raise ValueError(f"{key}.fitted_on: expected a data set name, got {fitted_on!r:.60}")
        fitted = cls(key=str(key), kind=RuleKind(kind), value=_number(data["value"], f"{key}.value"), fitted_on=fitted_on,
                     level=None if level is None else _number(level, f"{key}.level"))
        try:
            check_fields(fitted)
        except ValueError as exc:
            raise ValueError(f"{key}.{exc}") from None
        return fitted


def _number(value: Any, where: str) -> float:
    """A stored number as a float (a bool or a string is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: expected a number, got {value!r:.60}")
    return float(value)


def metric_key(metric: str, rule_key: str) -> str:
    """The name of `metric` computed at the threshold of `rule_key`, e.g. `Dice@fpr_5%`."""
    return f"{metric}{METRIC_SEPARATOR}{rule_key}"


def fpr_key(level: float) -> str:
    return f"fpr_{level * 100:g}%"


def fixed_key(value: float) -> str:
    return f"fixed_{value:g}"


VAL_DICE_KEY = "val_dice"
ORACLE_KEY = "oracle_dice"


@dataclass(frozen=True)
class FitData:
    """What the rules of one test set may fit on (rank 0, after scoring).

    `pooled_dice(set, threshold)` is the pooled Dice of a labelled set at a threshold (the
    bisection's objective); `summary(set)` the exact brain-voxel ranking summary (healthy
    quantiles, the exact best-Dice threshold)."""

    test: Any
    labelled_validation: Any | None
    healthy_validation: Any | None
    pooled_dice: Callable[[Any, float], float]
    summary: Callable[[Any], RankingSummary]


class ThresholdRule(Protocol):
    """A threshold protocol: fits one `FittedThreshold` (or None when its data are missing)."""

    kind: ClassVar[RuleKind]
    counts_detections: ClassVar[bool]  # the detection rate is reported at its threshold
    usable_by_predict: ClassVar[bool]  # `uad predict` may binarize with it

    @property
    def key(self) -> str: ...

    @property
    def healthy_quantiles(self) -> tuple[float, ...]:
        """Quantiles of healthy brain voxels it needs (streamed once for all rules)."""
        ...

    def fit(self, data: FitData) -> FittedThreshold | None: ...


@dataclass(frozen=True)
class BestDice:
    """Best pooled Dice: `bisection` of [0, max map value] (the originals) or the `exact` sweep."""

    search: ThresholdSearch = ThresholdSearch.BISECTION
    bisection_steps: BisectionSteps = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "search", parse_option(ThresholdSearch, self.search, "thresholds.search"))
        check_fields(self)

    def threshold(self, scored: Any, data: FitData) -> float:
        if self.search is ThresholdSearch.EXACT:
            return data.summary(scored).best_dice_threshold
        high = max((r.map_max for r in scored.labelled), default=0.0)
        return threshold_search.bisection_search(lambda t: data.pooled_dice(scored, t), high, self.bisection_steps)


@dataclass(frozen=True)
class ValidationDice:
    """The best-Dice threshold on the test set's labelled validation set."""

    search: BestDice = BestDice()
    kind: ClassVar[RuleKind] = RuleKind.VAL_DICE
    counts_detections: ClassVar[bool] = False
    usable_by_predict: ClassVar[bool] = True

    @property
    def key(self) -> str:
        return VAL_DICE_KEY

    @property
    def healthy_quantiles(self) -> tuple[float, ...]:
        return ()

    def fit(self, data: FitData) -> FittedThreshold | None:
        val = data.labelled_validation
        if val is None or not val.labelled:
            return None
        return FittedThreshold(self.key, self.kind, float(self.search.threshold(val, data)), fitted_on=val.name)


@dataclass(frozen=True)
class HealthyFPR:
    """The threshold that leaves `level` of the healthy validation brain voxels above it."""

    level: float
    kind: ClassVar[RuleKind] = RuleKind.HEALTHY_FPR
    counts_detections: ClassVar[bool] = True
    usable_by_predict: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not 0.0 < self.level < 1.0:
            raise ValueError(f"a false-positive rate must lie in (0, 1), got {self.level}")

    @property
    def key(self) -> str:
        return fpr_key(self.level)

    @property
    def healthy_quantiles(self) -> tuple[float, ...]:
        return (1.0 - self.level,)

    def fit(self, data: FitData) -> FittedThreshold | None:
        healthy = data.healthy_validation
        if healthy is None or not healthy.records:
            return None
        value = data.summary(healthy).quantiles[1.0 - self.level]
        return FittedThreshold(self.key, self.kind, float(value), fitted_on=healthy.name, level=self.level)


@dataclass(frozen=True)
class OracleDice:
    """The best-Dice threshold on the test set itself: an upper bound, marked as such."""

    search: BestDice = BestDice()
    kind: ClassVar[RuleKind] = RuleKind.ORACLE
    counts_detections: ClassVar[bool] = False
    usable_by_predict: ClassVar[bool] = False  # fitted on the labels it is scored against

    @property
    def key(self) -> str:
        return ORACLE_KEY

    @property
    def healthy_quantiles(self) -> tuple[float, ...]:
        return ()

    def fit(self, data: FitData) -> FittedThreshold | None:
        if data.test.lesion_voxels_total <= 0:
            return None
        return FittedThreshold(self.key, self.kind, float(self.search.threshold(data.test, data)), fitted_on=data.test.name)


@dataclass(frozen=True)
class FixedValue:
    """A given threshold (RA's code: 0.009), reported beside the fitted ones."""

    value: float
    kind: ClassVar[RuleKind] = RuleKind.FIXED
    counts_detections: ClassVar[bool] = True
    usable_by_predict: ClassVar[bool] = True

    @property
    def key(self) -> str:
        return fixed_key(self.value)

    @property
    def healthy_quantiles(self) -> tuple[float, ...]:
        return ()

    def fit(self, data: FitData) -> FittedThreshold:
        return FittedThreshold(self.key, self.kind, float(self.value))


RULES: tuple[type[ThresholdRule], ...] = (ValidationDice, HealthyFPR, OracleDice, FixedValue)
RULES_BY_KIND: Mapping[RuleKind, type[ThresholdRule]] = MappingProxyType({cls.kind: cls for cls in RULES})
# what a fitted threshold of each kind may be used for; tests/core/evaluation/test_threshold_rules.py
# discovers every ThresholdRule class and checks that RULES holds each, one per kind


@dataclass(frozen=True)
class ThresholdSettings:
    """Which threshold rules an evaluation fits (YAML `thresholds:`), paper defaults.

    fpr_levels: healthy false-positive rates (one `fpr_<p>%` rule each); search /
    bisection_steps: how the best-Dice rules search; oracle: also report the oracle upper
    bound; fixed: given values (`fixed_<t>`); search_with_binary_postprocessing: apply the
    binary steps (small-component removal) inside the Dice search (false: the originals'
    search on the raw thresholded maps)."""

    fpr_levels: Annotated[Sequence[OpenFraction], MaxItems(MAX_RULES)] = (0.01, 0.05)
    search: ThresholdSearch = ThresholdSearch.BISECTION
    bisection_steps: BisectionSteps = 10
    oracle: bool = True
    fixed: Annotated[Sequence[Annotated[float, Finite()]], MaxItems(MAX_RULES)] = ()
    search_with_binary_postprocessing: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "search", parse_option(ThresholdSearch, self.search, "thresholds.search"))
        object.__setattr__(self, "fpr_levels", tuple(float(p) for p in self.fpr_levels))
        object.__setattr__(self, "fixed", tuple(float(t) for t in self.fixed))
        check_fields(self)  # the ranges of the signature, for a direct Python caller (the config check came first)
        keys = [rule.key for rule in self.rules()]
        for key in dict.fromkeys(k for k in keys if keys.count(k) > 1):  # one would overwrite the other's threshold and metrics
            raise ValueError(f"two threshold rules share the key '{key}' (fpr_levels / fixed list one value twice, "
                             "or values equal to 6 significant digits); list each once")

    def rules(self) -> list[ThresholdRule]:
        """The rules in reporting order: val_dice, fpr levels, oracle, fixed values."""
        best = BestDice(self.search, self.bisection_steps)
        rules: list[ThresholdRule] = [ValidationDice(best), *(HealthyFPR(p) for p in self.fpr_levels)]
        if self.oracle:
            rules.append(OracleDice(best))
        return rules + [FixedValue(t) for t in self.fixed]


def fit_all(rules: Sequence[ThresholdRule], data: FitData) -> dict[str, FittedThreshold]:
    """{key: fitted} for every rule whose data are there, in rule order."""
    fitted = {}
    for rule in rules:
        found = rule.fit(data)
        if found is not None:
            fitted[found.key] = found
    return fitted


def thresholds_to_json(fitted: Mapping[str, FittedThreshold]) -> dict[str, dict[str, Any]]:
    return {key: t.to_json() for key, t in fitted.items()}


def thresholds_from_json(data: Mapping[str, Any]) -> dict[str, FittedThreshold]:
    return {key: FittedThreshold.from_json(key, value) for key, value in data.items()}


_LEGACY_FPR = re.compile(r"fpr_([0-9.eE+-]+)%")
_LEGACY_FIXED = re.compile(r"fixed_([0-9.eE+-]+)")


def legacy_fitted(key: str, value: float, fitted_on: str | None = None) -> FittedThreshold | None:
    """A bare `{key: value}` threshold of a metadata-version-1 checkpoint as a record (None:
    not a usable rule). The only place a key is read back, for files written before v2."""
    value = float(value)
    if not math.isfinite(value):
        return None
    if key == VAL_DICE_KEY:
        return FittedThreshold(key, RuleKind.VAL_DICE, value, fitted_on)
    if key == ORACLE_KEY:
        return FittedThreshold(key, RuleKind.ORACLE, value, fitted_on)
    match = _LEGACY_FPR.fullmatch(key)
    if match:
        level = float(match[1]) / 100
        return FittedThreshold(key, RuleKind.HEALTHY_FPR, value, fitted_on, level=level) if 0 < level < 1 else None
    match = _LEGACY_FIXED.fullmatch(key)
    if match:
        return FittedThreshold(key, RuleKind.FIXED, value)
    return None


def legacy_thresholds_from_metrics(metrics: Mapping[str, Any]) -> dict[str, FittedThreshold]:
    """The thresholds of a results.json written before version 2, read off its
    `threshold@<key>` metrics (the only other place a key is read back)."""
    prefix = metric_key("threshold", "")
    found = {}
    for name, value in metrics.items():
        if name.startswith(prefix) and isinstance(value, (int, float)) and not isinstance(value, bool):
            fitted = legacy_fitted(name[len(prefix):], value)
            if fitted is not None:
                found[fitted.key] = fitted
    return found

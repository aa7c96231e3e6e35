"""The evaluator's typed settings besides scoring and thresholds: data set roles, detection, outputs.

Each is one YAML mapping of the evaluator's `params` (`roles:`, `detection:`, `outputs:`),
built and checked by the configurator against these signatures before a run folder exists.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

from dl_utils.options import parse_option
from dl_utils.param_types import Ge, Le, Lt, check_fields
from optim.metrics.detection import DetectionUnit, UnboxedImages


@dataclass(frozen=True)
class DataRoles:
    """Which named data sets play which part; every other data set is a test set.

    labelled_validation: the labelled set each test set's Dice threshold is fitted on, as
    {test set: validation set}, or one name for all; healthy_validation: healthy volumes of
    the false-positive-rate thresholds; healthy_test: healthy volumes of the sample-level
    AUROC; fit_set: healthy volumes for scorers fitted on healthy data."""

    labelled_validation: str | Mapping[str, str] | None = None
    healthy_validation: str | None = None
    healthy_test: str | None = None
    fit_set: str | None = None

    def named(self) -> set[str]:
        """Every data set name these roles mention."""
        names = {self.healthy_validation, self.healthy_test, self.fit_set}
        if isinstance(self.labelled_validation, Mapping):
            names |= set(self.labelled_validation) | set(self.labelled_validation.values())
        else:
            names.add(self.labelled_validation)
        return {n for n in names if n is not None}

    def test_sets(self, datasets: list[str]) -> list[str]:
        """The data sets that play no role (in the config's order)."""
        val = set(self.labelled_validation.values()) if isinstance(self.labelled_validation, Mapping) \
            else {self.labelled_validation}
        roles = {self.healthy_validation, self.healthy_test, self.fit_set} | val
        return [n for n in datasets if n not in roles]

    def validation_of(self, test_sets: list[str]) -> dict[str, str]:
        """{test set: its labelled validation set} for the test sets that have one."""
        if isinstance(self.labelled_validation, Mapping):
            return dict(self.labelled_validation)
        return {n: self.labelled_validation for n in test_sets if self.labelled_validation}


@dataclass(frozen=True)
class DetectionSettings:
    """Detection rate at the thresholds that count detections (healthy FPR, fixed values).

    unit: `lesion` (a lesion is detected when more than `min_fraction` of its voxels exceed
    the threshold; `per_slice`: lesions as 2D components of each axial slice, the RA paper's
    2D protocol) or `box` (RA's rule: an image is detected when more than `min_fraction` of
    its box pixels reach the threshold). unboxed_images (unit `box`): an image of a labelled set
    without box pixels is left out (`skip`, ours: nothing to detect) or counted as a miss with its
    false positives (`count`, RA's object_localization)."""

    min_fraction: Annotated[float, Ge(0), Lt(1)] = 0.1
    per_slice: bool = False
    unit: DetectionUnit = DetectionUnit.LESION
    unboxed_images: UnboxedImages = UnboxedImages.SKIP

    def __post_init__(self) -> None:
        object.__setattr__(self, "unit", parse_option(DetectionUnit, self.unit, "detection.unit"))
        object.__setattr__(self, "unboxed_images",
                           parse_option(UnboxedImages, self.unboxed_images, "detection.unboxed_images"))
        check_fields(self)  # the ranges of the signature, for a direct Python caller (the config check came first)


@dataclass(frozen=True)
class OutputSettings:
    """Files an evaluation writes besides its metrics.

    figure_cases: example cases drawn per test set; save_maps: anomaly maps as NIfTI;
    keep_scratch: keep the scratch folder of spilled maps (debugging)."""

    figure_cases: Annotated[int, Ge(0), Le(1000)] = 3  # PNGs per test set; more is a typo
    save_maps: bool = True
    keep_scratch: bool = False

    def __post_init__(self) -> None:
        check_fields(self)  # the ranges of the signature, for a direct Python caller (the config check came first)

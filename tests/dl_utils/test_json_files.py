"""Every JSON file a run writes is standard JSON: undefined metrics are null, and read back as NaN."""
import json
import math

import numpy as np
import pytest

from core.run.results import read_results, write_results
from dl_utils.figures import read_curve_points, write_curve_points
from dl_utils.json_files import finite_or_null, json_text


def _strict(text: str):
    """json.loads that refuses NaN / Infinity, as JavaScript's JSON.parse and R's jsonlite do."""
    def refuse(name: str):
        raise ValueError(f"non-standard JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_become_null_at_any_depth() -> None:
    value = {"a": math.nan, "b": [1.0, math.inf, {"c": -math.inf}], "d": "nan", "e": 2, "f": (0.5, math.nan)}
    assert finite_or_null(value) == {"a": None, "b": [1.0, None, {"c": None}], "d": "nan", "e": 2, "f": [0.5, None]}
    assert _strict(json_text(value)) == finite_or_null(value)
    assert _strict(json_text({"x": np.float32("nan"), "y": np.float64(0.25)}, default=float)) == {"x": None, "y": 0.25}
    with pytest.raises(ValueError):
        _strict('{"a": NaN}')


def test_results_and_curves_are_standard_json_and_read_back_nan(tmp_path) -> None:
    results = {"detection": {"test": {"AUROC": math.nan, "AUPRC": 0.5, "seconds_per_volume": math.inf},
                             "healthy": {"FPR": 0.1}}}
    write_results(results, tmp_path)
    for name in ("results.json", "timing.json"):
        _strict((tmp_path / name).read_text())
    back = read_results(tmp_path)["detection"]["test"]
    assert math.isnan(back["AUROC"]) and math.isnan(back["seconds_per_volume"]) and back["AUPRC"] == 0.5
    write_curve_points(tmp_path / "c.json", (np.array([0.0, 1.0]), np.array([0.0, 1.0])),
                       (np.array([1.0, 0.5]), np.array([0.0, 1.0])), AUROC=float("nan"), AUPRC=0.25)
    _strict((tmp_path / "c.json").read_text())
    points = read_curve_points(tmp_path / "c.json")
    assert math.isnan(points["AUROC"]) and points["AUPRC"] == 0.25 and points["roc"]["tpr"] == [0.0, 1.0]

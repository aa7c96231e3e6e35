"""The benchmark's comparison: mean +- std over volumes and paired Wilcoxon p-values (scipy)."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from projects.benchmark.comparison import compare, comparison_table


def _rows(values, dataset="test_a"):
    return [{"dataset": dataset, "name": f"v{i}", "lesion_voxels": "10", "AUPRC": str(v), "Dice@val_dice": ""}
            for i, v in enumerate(values)]


def test_mean_std_and_paired_wilcoxon_against_the_baseline():
    base = [0.10, 0.20, 0.15, 0.30, 0.25, 0.12]
    better = [0.31, 0.28, 0.40, 0.35, 0.52, 0.22]
    rows = compare({"Threshold": _rows(base), "DDPM": _rows(better)}, "Threshold", ["AUPRC", "Dice@val_dice"])
    ddpm = rows["DDPM: test_a"]
    assert ddpm["AUPRC"] == pytest.approx(np.mean(better)) and ddpm["AUPRC_std"] == pytest.approx(np.std(better))
    expected = stats.wilcoxon(np.array(better) - np.array(base)).pvalue  # exact two-sided test, n = 6
    assert ddpm["AUPRC_p_vs_baseline"] == pytest.approx(expected) and expected == pytest.approx(2 / 2**6)
    assert np.isnan(rows["Threshold: test_a"]["AUPRC_p_vs_baseline"])
    assert "Dice@val_dice" not in ddpm  # undefined for every volume: left out, not 0
    table = comparison_table(rows, ["AUPRC", "Dice@val_dice"], "Threshold")
    assert "| DDPM | test_a | 6 | 0.347 ± 0.096 | 0.031 |" in table


def test_pairs_are_matched_by_volume_name_not_order():
    base = _rows([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    method = _rows([0.2, 0.3, 0.4, 0.5, 0.6, 0.7])  # +0.1 on every volume
    shuffled = method[::-1]
    a = compare({"B": base, "M": method}, "B", ["AUPRC"])["M: test_a"]["AUPRC_p_vs_baseline"]
    b = compare({"B": base, "M": shuffled}, "B", ["AUPRC"])["M: test_a"]["AUPRC_p_vs_baseline"]
    assert a == b == pytest.approx(2 / 2**6)

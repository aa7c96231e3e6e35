"""`nan_mean_std` against numpy's nanmean / nanstd (population std), and the NaN edge cases."""
import math
import warnings

import numpy as np
import pytest

from optim.metrics import nan_mean_std


@pytest.mark.parametrize("values", [[0.25, float("nan"), 0.75, 1.0], [0.5], [1, 2, 3, 4], np.array([0.1, 0.2])])
def test_matches_numpy_nanmean_and_nanstd(values):
    mean, std = nan_mean_std(values)
    assert mean == pytest.approx(np.nanmean(values), abs=1e-15) and std == pytest.approx(np.nanstd(values), abs=1e-15)


def test_hand_values():
    assert nan_mean_std([1.0, float("nan"), 3.0]) == (2.0, 1.0)  # mean 2, population std sqrt(((1-2)^2 + (3-2)^2) / 2)


@pytest.mark.parametrize("values", [[], [float("nan"), float("nan")]])
def test_no_finite_value_gives_nan_without_a_warning(values):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean, std = nan_mean_std(values)
    assert math.isnan(mean) and math.isnan(std)

"""Aggregating per-volume (or per-image) values into a set's figures."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def nan_mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population std of the values that are not NaN (``numpy.nanmean`` / ``numpy.nanstd``,
    ddof 0, as the originals' per-volume figures); (NaN, NaN) when none is, without numpy's warning."""
    finite = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = finite[~np.isnan(finite)]
    return (float(finite.mean()), float(finite.std())) if finite.size else (float("nan"), float("nan"))

"""How a resampled volume is interpolated: one option set for torchio's affine augmentation
(`data.augmentation`) and SimpleITK's resampling of raw scans (`data.raw_preprocessing.resample`)."""
from __future__ import annotations

from enum import StrEnum


class Interpolation(StrEnum):
    """Image interpolation of a resampling: nearest neighbour (labels, masks), linear, B-spline (order 3)."""

    NEAREST = "nearest"  # torchvision's RandomAffine default (RA)
    LINEAR = "linear"
    BSPLINE = "bspline"

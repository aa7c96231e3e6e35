"""Crop a volume to the bounding box of its brain mask plus a margin; the affine follows."""
from __future__ import annotations

import numpy as np

from dl_utils.errors import UserInputError


def brain_box(mask: np.ndarray, margin: int = 4, name: str = "scan") -> tuple[slice, slice, slice]:
    """Index box of the mask's voxels grown by `margin` voxels, clipped to the array."""
    idx = np.argwhere(mask)
    if idx.size == 0:
        raise UserInputError(f"{name}: the brain mask is empty after registration; check the scan and the template")
    lo = np.maximum(idx.min(0) - int(margin), 0)
    hi = np.minimum(idx.max(0) + 1 + int(margin), mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def crop_affine(affine: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """Affine of `array[box]`: the index origin moves to the box start."""
    shift = np.eye(4)
    shift[:3, 3] = [s.start for s in box]
    return np.asarray(affine, float) @ shift

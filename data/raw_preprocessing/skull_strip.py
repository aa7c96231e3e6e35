"""Skull stripping with deepbet (MIT; its T1 weights ship in the wheel, so it runs offline)."""
from __future__ import annotations

import nibabel as nib
import numpy as np


def deepbet_mask(array: np.ndarray, affine: np.ndarray, use_gpu: bool = False, threshold: float = 0.5) -> np.ndarray:
    """Brain mask (bool, same grid) of a T1 head scan (X, Y, Z, RAS) by deepbet."""
    import warnings

    from deepbet import BrainExtraction  # heavy import: only when skull stripping runs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load deprecation inside deepbet
        bet = BrainExtraction(no_gpu=not use_gpu)
        _, mask, _ = bet.run(nib.Nifti1Image(array.astype(np.float32), affine), threshold=threshold)
    return np.asarray(mask.dataobj) > 0

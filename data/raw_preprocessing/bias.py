"""N4 bias field correction inside the brain mask (SimpleITK)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from data.raw_preprocessing.geometry import to_sitk


def n4_correct(image: np.ndarray, mask: np.ndarray, affine: np.ndarray, shrink: int = 4,
               iterations: Sequence[int] = (50, 50, 30, 20)) -> np.ndarray:
    """Bias-corrected image (float32), estimated on a `shrink`-times coarser grid inside `mask`;
    zero outside the mask."""
    img = to_sitk(np.clip(image, 0, None).astype(np.float32), affine)
    msk = to_sitk(mask.astype(np.uint8), affine)
    small_img = sitk.Shrink(img, [int(shrink)] * 3) if shrink > 1 else img
    small_msk = sitk.Shrink(msk, [int(shrink)] * 3) if shrink > 1 else msk
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([int(i) for i in iterations])
    n4.Execute(small_img, small_msk)
    log_field = n4.GetLogBiasFieldAsImage(img)
    corrected = sitk.GetArrayFromImage(img / sitk.Exp(log_field))
    return (np.transpose(corrected, (2, 1, 0)) * mask).astype(np.float32)

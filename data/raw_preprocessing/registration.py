"""Affine registration of a skull-stripped subject to a template brain (SimpleITK, Mattes MI)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import SimpleITK as sitk

from data.raw_preprocessing.geometry import to_sitk, transform_to_ras_matrix
from dl_utils.errors import UserInputError


def register_affine(moving: np.ndarray, moving_affine: np.ndarray, fixed: np.ndarray, fixed_affine: np.ndarray,
                    iterations: int = 100, shrink_factors: Sequence[int] = (4, 2, 1), sampling: float = 0.2,
                    seed: int = 0, name: str = "scan") -> np.ndarray:
    """4x4 RAS-world matrix mapping template points to subject points (fixed -> moving, ITK's sense).

    Initialisation by image moments, then a 12-parameter affine, multi-resolution (Gaussian
    smoothing of shrink / 2 mm at each level, none at full resolution).
    A failed optimisation raises UserInputError naming the scan.
    """
    fixed_img = to_sitk(fixed.astype(np.float32), fixed_affine)
    moving_img = to_sitk(moving.astype(np.float32), moving_affine)
    initial = sitk.CenteredTransformInitializer(fixed_img, moving_img, sitk.AffineTransform(3),
                                                sitk.CenteredTransformInitializerFilter.MOMENTS)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(float(sampling), seed)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4, numberOfIterations=int(iterations),
                                                 gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([int(s) for s in shrink_factors])
    reg.SetSmoothingSigmasPerLevel([s / 2.0 if s > 1 else 0.0 for s in shrink_factors])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(initial, inPlace=False)
    try:
        transform = reg.Execute(fixed_img, moving_img)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[-160:]
        raise UserInputError(f"{name}: affine registration to the template failed ({detail}); "
                             "check the scan is a T1 head and its header orientation is right") from None
    if isinstance(transform, sitk.CompositeTransform):
        transform = transform.GetBackTransform() if transform.GetNumberOfTransforms() == 1 else transform.GetNthTransform(0)
    matrix = transform_to_ras_matrix(sitk.AffineTransform(transform))
    if not np.isfinite(matrix).all() or abs(np.linalg.det(matrix[:3, :3])) < 1e-3:
        raise UserInputError(f"{name}: affine registration to the template gave a degenerate transform; "
                             "check the scan and its brain mask")
    return matrix

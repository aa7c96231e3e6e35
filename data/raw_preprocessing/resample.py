"""Resampling onto 1 mm (or any) isotropic grids and onto a reference grid, in world space."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from data.interpolation import Interpolation
from data.raw_preprocessing.geometry import from_sitk, ras_matrix_to_transform, to_sitk
from dl_utils.options import parse_option

INTERPOLATORS = {Interpolation.BSPLINE: sitk.sitkBSpline, Interpolation.LINEAR: sitk.sitkLinear,
                 Interpolation.NEAREST: sitk.sitkNearestNeighbor}


def resample_isotropic(array: np.ndarray, affine: np.ndarray, spacing: float = 1.0,
                       interpolation: Interpolation = Interpolation.BSPLINE) -> tuple[np.ndarray, np.ndarray]:
    """Resample an (X, Y, Z) RAS volume to `spacing` mm voxels covering the same extent."""
    image = to_sitk(array.astype(np.float32), affine)
    old_spacing = np.asarray(image.GetSpacing(), float)
    size = [max(1, int(round(n * s / spacing))) for n, s in zip(image.GetSize(), old_spacing)]
    # voxel-centre aligned: the first output centre sits half an output voxel inside the input's edge
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    edge = np.asarray(image.GetOrigin(), float) - direction @ (old_spacing / 2.0)
    origin = edge + direction @ np.full(3, spacing / 2.0)
    out = sitk.Resample(image, size, sitk.Transform(), INTERPOLATORS[parse_option(Interpolation, interpolation, "interpolation")], origin.tolist(),
                        [float(spacing)] * 3, image.GetDirection(), 0.0, sitk.sitkFloat32)
    return from_sitk(out)


def resample_to_grid(array: np.ndarray, affine: np.ndarray, ref_shape: tuple[int, ...], ref_affine: np.ndarray,
                     ref_to_source: np.ndarray | None = None, interpolation: Interpolation = Interpolation.LINEAR) -> np.ndarray:
    """Values of (array, affine) on the grid (ref_shape, ref_affine).

    `ref_to_source` (4x4, RAS world) maps a reference-grid world point to the source's world
    (e.g. the inverse registration); identity when None.
    """
    source = to_sitk(array.astype(np.float32), affine)
    reference = to_sitk(np.zeros(ref_shape, np.float32), ref_affine)
    transform = ras_matrix_to_transform(np.eye(4) if ref_to_source is None else ref_to_source)
    how = INTERPOLATORS[parse_option(Interpolation, interpolation, "interpolation")]
    out = sitk.Resample(source, reference, transform, how, 0.0, sitk.sitkFloat32)
    return from_sitk(out)[0]

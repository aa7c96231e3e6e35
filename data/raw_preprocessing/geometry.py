"""Bridges between nibabel's RAS world (arrays (X, Y, Z) + 4x4 affine) and SimpleITK (LPS)."""
from __future__ import annotations

import numpy as np
import SimpleITK as sitk

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def to_sitk(array: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """(X, Y, Z) array with a RAS affine -> SimpleITK image in LPS physical space."""
    lps = RAS_TO_LPS @ np.asarray(affine, float)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0))))
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in (lps[:3, :3] / spacing).ravel()])
    image.SetOrigin([float(v) for v in lps[:3, 3]])
    return image


def from_sitk(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """SimpleITK image -> ((X, Y, Z) array, RAS affine)."""
    array = np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0))
    direction = np.asarray(image.GetDirection(), float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction * np.asarray(image.GetSpacing(), float)
    lps[:3, 3] = image.GetOrigin()
    return array, RAS_TO_LPS @ lps


def transform_to_ras_matrix(transform: sitk.Transform) -> np.ndarray:
    """4x4 matrix in RAS world of an affine SimpleITK transform (which maps LPS points)."""
    matrix = np.asarray(transform.GetMatrix(), float).reshape(3, 3)
    center = np.asarray(transform.GetCenter(), float)
    translation = np.asarray(transform.GetTranslation(), float)
    lps = np.eye(4)
    lps[:3, :3] = matrix
    lps[:3, 3] = translation + center - matrix @ center  # y = A (x - c) + c + t
    return RAS_TO_LPS @ lps @ RAS_TO_LPS


def ras_matrix_to_transform(matrix: np.ndarray) -> sitk.AffineTransform:
    """Inverse of `transform_to_ras_matrix`."""
    lps = RAS_TO_LPS @ np.asarray(matrix, float) @ RAS_TO_LPS
    transform = sitk.AffineTransform(3)
    transform.SetMatrix([float(v) for v in lps[:3, :3].ravel()])
    transform.SetTranslation([float(v) for v in lps[:3, 3]])
    return transform

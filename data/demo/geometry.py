"""Demo subject preprocessing: brain mask, crop box, oblique resampling, variants.

Inputs are canonical (RAS) 1 mm arrays, so axis 2 is inferior -> superior and the
output's last axis holds axial slices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

from data.preprocessing import percentile_rescale


def fill_holes(mask: np.ndarray, axial_only: bool = False) -> np.ndarray:
    """Fill background pockets not connected to the array border (3D, or per axial slice)."""
    structure = ndimage.generate_binary_structure(3, 1)
    if axial_only:
        structure[:, :, 0] = structure[:, :, 2] = False
    labels, _ = ndimage.label(~mask, structure)
    border = np.zeros(mask.shape, bool)
    border[[0, -1], :, :] = border[:, [0, -1], :] = True
    if not axial_only:
        border[:, :, [0, -1]] = True
    outside = np.unique(labels[border & (labels > 0)])
    return ~np.isin(labels, outside) | mask


def brain_mask_from_image(image: np.ndarray, threshold_fraction: float = 0.02) -> np.ndarray:
    """Mask of a skull-stripped image: > fraction x 99.5th percentile of the non-zero
    voxels, largest component, holes filled (3D, then per axial slice)."""
    ref = np.percentile(image[image > 0], 99.5)
    mask = image > threshold_fraction * ref
    labels, n = ndimage.label(mask)
    if n > 1:
        mask = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    return fill_holes(fill_holes(mask), axial_only=True)


@dataclass(frozen=True)
class SubjectGrid:
    """Normalised 1 mm subject, its spline coefficients and the output box."""

    coeffs: np.ndarray  # B-spline coefficients of the normalised image
    mask: np.ndarray  # bool, input grid
    center: np.ndarray  # (3,) input voxel coordinates of the box centre
    spacing: float  # output voxel size in input voxels (mm)
    affine: np.ndarray  # (4, 4) canonical affine of the input grid


def prepare_subject(
    image: np.ndarray, mask: np.ndarray, affine: np.ndarray, out_shape: Sequence[int],
    margin: float = 4.0, percentiles: Sequence[float] = (1.0, 99.0),
) -> SubjectGrid:
    """Percentile-normalise in the brain and choose the box: in-plane the brain
    bounding box plus `margin` (square), axially the out_shape[2] slices centred on
    the brain's median axial position (the central brain)."""
    norm = percentile_rescale(image, mask, percentiles)
    idx = np.argwhere(mask)
    lo, hi = idx.min(0), idx.max(0)
    side = float(max(hi[0] - lo[0], hi[1] - lo[1]) + 1 + 2 * margin)
    spacing = side / max(out_shape[0], out_shape[1])
    z_counts = mask.sum((0, 1)).cumsum()
    z_mid = float(np.searchsorted(z_counts, z_counts[-1] / 2.0))
    center = np.array([(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0, z_mid])
    sigma = max((spacing - 1.0) / 2.0, 0.0)  # mild anti-aliasing before downsampling
    smooth = ndimage.gaussian_filter(norm, sigma) if sigma > 0 else norm
    coeffs = ndimage.spline_filter(smooth, order=3, mode="grid-constant")
    return SubjectGrid(coeffs, mask.astype(bool), center, spacing, np.asarray(affine, float))


@dataclass(frozen=True)
class Variant:
    """A rigid-plus-scale perturbation, LR flip and smooth intensity change."""

    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    scale: float = 1.0
    shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    flip_lr: bool = False
    log_gamma: float = 0.0
    bias: tuple[float, ...] = ()  # coefficients of a linear + quadratic log field


def random_variant(rng: np.random.Generator, flip_lr: bool) -> Variant:
    """Small random pose (rotation <= 6 deg, scale 1 +- 0.05, shift <= 3 mm), gamma, bias."""
    return Variant(
        rotation_deg=tuple(float(v) for v in rng.uniform(-1, 1, 3) * np.array([3.0, 3.0, 6.0])),
        scale=float(rng.uniform(0.95, 1.05)),
        shift_mm=tuple(float(v) for v in rng.uniform(-1, 1, 3) * np.array([3.0, 3.0, 2.0])),
        flip_lr=flip_lr,
        log_gamma=float(rng.uniform(-0.15, 0.15)),
        bias=tuple(float(v) for v in rng.normal(0.0, 0.06, 6)),
    )


def sample_variant(
    grid: SubjectGrid, out_shape: Sequence[int], variant: Variant
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Resample the subject onto the output box -> image float32 [0, 1], mask bool, affine (4, 4)."""
    out_shape = tuple(int(n) for n in out_shape)
    rot = Rotation.from_euler("xyz", variant.rotation_deg, degrees=True).as_matrix()
    flip = np.diag([-1.0 if variant.flip_lr else 1.0, 1.0, 1.0])
    matrix = rot @ flip * (grid.spacing * variant.scale)
    half = (np.array(out_shape, float) - 1.0) / 2.0
    offset = grid.center + np.array(variant.shift_mm) - matrix @ half
    image = ndimage.affine_transform(grid.coeffs, matrix, offset, out_shape, order=3,
                                     mode="grid-constant", prefilter=False)
    mask = ndimage.affine_transform(grid.mask.astype(np.uint8), matrix, offset, out_shape, order=0,
                                    mode="grid-constant") > 0
    image = _intensity(np.clip(image, 0.0, 1.0), variant) * mask
    # A mirrored variant is a new (mirrored) subject: its affine carries no flip, so that
    # loading reoriented to RAS (data.nifti_io) keeps it mirrored.
    unflipped = rot * (grid.spacing * variant.scale)
    index_map = np.eye(4)
    index_map[:3, :3] = unflipped
    index_map[:3, 3] = grid.center + np.array(variant.shift_mm) - unflipped @ half  # same box centre
    return image.astype(np.float32), mask, grid.affine @ index_map


def _intensity(image: np.ndarray, variant: Variant) -> np.ndarray:
    out = image ** np.exp(variant.log_gamma)
    if variant.bias:
        x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in image.shape], indexing="ij", sparse=True)
        terms = (x, y, z, x * x - 1 / 3, y * y - 1 / 3, x * y)
        out = out * np.exp(sum(c * t for c, t in zip(variant.bias, terms)))
    return np.clip(out, 0.0, 1.0)

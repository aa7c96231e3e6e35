"""Synthetic anomalies with exact masks, pure numpy (MOOD toy set; FPI of Tan et al.).

Every function takes an image (X, Y, Z) float in [0, 1], its brain mask (bool) and a
`numpy.random.Generator`, and returns (new image float32, anomaly mask bool). The mask
is where the image changed by more than `tol` inside the brain; outside it the image
is exactly the input.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage


def _finalize(image: np.ndarray, changed: np.ndarray, region: np.ndarray, tol: float):
    new = np.clip(changed, 0.0, 1.0).astype(np.float32)
    mask = region & (np.abs(new - image) > tol)
    return np.where(mask, new, image).astype(np.float32), mask


def _random_center(brain: np.ndarray, rng: np.random.Generator, margin: int = 2) -> np.ndarray:
    """A random brain voxel, preferably at least `margin` voxels inside the brain."""
    inner = ndimage.binary_erosion(brain, iterations=margin) if margin > 0 else brain
    idx = np.argwhere(inner if inner.any() else brain)
    return idx[rng.integers(len(idx))].astype(float)


def _grid(shape: Sequence[int]) -> list[np.ndarray]:
    return np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij", sparse=True)


def soft_ellipsoid(
    shape: Sequence[int], center: Sequence[float], radii: Sequence[float], softness: float
) -> np.ndarray:
    """Weight 1 inside the ellipsoid core, cosine ramp to 0 at its surface (float32)."""
    grid = _grid(shape)
    dist = np.sqrt(sum(((g - c) / r) ** 2 for g, c, r in zip(grid, center, radii)))
    core = 1.0 - softness
    ramp = np.clip((1.0 - dist) / max(softness, 1e-6), 0.0, 1.0)
    return np.where(dist <= core, 1.0, 0.5 - 0.5 * np.cos(np.pi * ramp)).astype(np.float32)


def _spheres(image, brain, rng, sign, radius_range, contrast_range, softness, tol):
    center = _random_center(brain, rng)
    radii = rng.uniform(radius_range[0], radius_range[1], size=3)
    weight = soft_ellipsoid(image.shape, center, radii, softness)
    contrast = rng.uniform(contrast_range[0], contrast_range[1])
    return _finalize(image, image + sign * contrast * weight, brain & (weight > 0), tol)


def hyper_spheres(
    image: np.ndarray, brain: np.ndarray, rng: np.random.Generator,
    radius_range: Sequence[float] = (3.0, 8.0), contrast_range: Sequence[float] = (0.25, 0.6),
    softness: float = 0.4, tol: float = 0.02,
) -> tuple[np.ndarray, np.ndarray]:
    """Soft-edged ellipsoid (radii in voxels) with intensity raised by a random contrast."""
    return _spheres(image, brain.astype(bool), rng, +1.0, radius_range, contrast_range, softness, tol)


def hypo_spheres(
    image: np.ndarray, brain: np.ndarray, rng: np.random.Generator,
    radius_range: Sequence[float] = (3.0, 8.0), contrast_range: Sequence[float] = (0.25, 0.6),
    softness: float = 0.4, tol: float = 0.02,
) -> tuple[np.ndarray, np.ndarray]:
    """Soft-edged ellipsoid (radii in voxels) with intensity lowered by a random contrast."""
    return _spheres(image, brain.astype(bool), rng, -1.0, radius_range, contrast_range, softness, tol)


def fpi(
    image: np.ndarray, brain: np.ndarray, rng: np.random.Generator, donor: np.ndarray,
    size_range: Sequence[float] = (8, 20), alpha_range: Sequence[float] = (0.3, 1.0), tol: float = 0.05,
) -> tuple[np.ndarray, np.ndarray]:
    """Foreign Patch Interpolation: blend the same box of another subject's volume
    `donor` (same shape) in with factor alpha: x' = (1 - alpha) x + alpha donor.
    The mask is box & brain & alpha |donor - x| > tol.
    """
    brain = brain.astype(bool)
    center = _random_center(brain, rng)
    size = rng.integers(int(size_range[0]), int(size_range[1]) + 1, size=3)
    box = np.zeros(image.shape, bool)
    lo = np.maximum(np.round(center - size / 2).astype(int), 0)
    hi = np.minimum(lo + size, image.shape)
    box[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    alpha = rng.uniform(alpha_range[0], alpha_range[1])
    blended = (1.0 - alpha) * image + alpha * donor.astype(np.float32)
    return _finalize(image, blended, box & brain, tol)


def deformation(
    image: np.ndarray, brain: np.ndarray, rng: np.random.Generator,
    radius_range: Sequence[float] = (6.0, 12.0), strength_range: Sequence[float] = (0.5, 0.9),
    min_displacement: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Local sink or source (random) in a ball of random radius: a point at distance
    r < R samples from radius r (1 -/+ s (1 - r/R)) (source expands, sink shrinks;
    one-to-one for s < 1).
    The mask is the brain part displaced by at least `min_displacement` voxels.
    """
    brain = brain.astype(bool)
    center = _random_center(brain, rng)
    radius = rng.uniform(radius_range[0], radius_range[1])
    strength = rng.uniform(strength_range[0], strength_range[1])
    sign = -1.0 if rng.random() < 0.5 else 1.0  # -1 source, +1 sink
    grid = _grid(image.shape)
    offsets = [g - c for g, c in zip(grid, center)]
    dist = np.sqrt(sum(o**2 for o in offsets))
    u = np.clip(dist / radius, 0.0, 1.0)
    factor = sign * strength * (1.0 - u)  # relative radial displacement
    coords = [np.broadcast_to(c + o * (1.0 + factor), image.shape) for c, o in zip(center, offsets)]
    displaced = dist * np.abs(factor) >= min_displacement
    warped = ndimage.map_coordinates(image, coords, order=1, mode="nearest")
    return _finalize(image, warped, displaced & brain, -1.0)

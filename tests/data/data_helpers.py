"""Helpers for the data tests: tiny NIfTI phantoms and CSVs."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


def write_nifti(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(np.asarray(array), np.eye(4) if affine is None else affine), str(path))
    return path


def brain_phantom(shape=(20, 22, 12), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An ellipsoid 'brain' with random texture in [0, 1] and its mask."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    mask = sum(g**2 for g in grid) < 0.7
    image = np.where(mask, 0.3 + 0.6 * rng.random(shape), 0.0).astype(np.float32)
    return image, mask


def write_volume_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    cols = ["img_name", "age", "label", "img_path", "mask_path", "seg_path"]
    lines = [",".join(cols)] + [",".join(r.get(c, "") for c in cols) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path

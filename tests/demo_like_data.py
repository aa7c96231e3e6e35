"""A tiny stand-in for `data/demo` (same split CSV names, 1-2 small volumes each), so every
project config can run end to end in seconds without the prepared demo data."""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

SPLITS_HEALTHY = ("train_healthy", "val_healthy", "test_healthy")
FAMILIES = ("hyper_spheres", "hypo_spheres", "fpi", "deformation")
HEADER = "img_name,age,label,img_path,mask_path,seg_path"


def _brain(shape: tuple[int, int, int]) -> np.ndarray:
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    return (x**2 / 0.7 + y**2 / 0.8 + z**2 / 1.5) < 1


def _image(brain: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = np.linspace(0, 6, brain.shape[0])[:, None, None]
    texture = 0.55 + 0.25 * np.sin(x + np.linspace(0, 4, brain.shape[1])[None, :, None])
    return np.clip((texture + 0.03 * rng.standard_normal(brain.shape)) * brain, 0, 1).astype(np.float32)


def write_demo_like(
    root: Path, shape: tuple[int, int, int] = (64, 64, 6), per_split: int = 2, spacings: tuple[float, ...] = (1.0,),
) -> Path:
    """The stand-in under `root`; volume k of the whole set has isotropic voxels of spacings[k % len]
    mm (the real demo's vary per subject, 2.7-3.0 mm: data/demo/geometry.py's box spacing)."""
    volumes = root / "volumes"
    splits = root / "splits"
    volumes.mkdir(parents=True)
    splits.mkdir()
    rng = np.random.default_rng(0)
    brain = _brain(shape)
    names = [*SPLITS_HEALTHY] + [f"{s}_{f}" for s in ("val", "test") for f in FAMILIES]
    count = 0
    for split in names:
        rows = []
        for i in range(per_split):
            name = f"{split}_{i}"
            affine = np.diag([spacings[count % len(spacings)]] * 3 + [1.0])
            count += 1
            image = _image(brain, rng)
            lesion = split not in SPLITS_HEALTHY
            seg_rel = ""
            if lesion:
                seg = np.zeros(shape, np.uint8)
                seg[28:36, 28:36, 2:4] = 1
                image[seg > 0] = 1.0 if "hyper" in split else 0.1
                nib.save(nib.Nifti1Image(seg, affine), volumes / f"{name}_seg.nii.gz")
                seg_rel = f"volumes/{name}_seg.nii.gz"
            nib.save(nib.Nifti1Image(image, affine), volumes / f"{name}.nii.gz")
            nib.save(nib.Nifti1Image(brain.astype(np.uint8), affine), volumes / f"{name}_mask.nii.gz")
            rows.append(f"{name},,{int(lesion)},volumes/{name}.nii.gz,volumes/{name}_mask.nii.gz,{seg_rel}")
        (splits / f"{split}.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return root

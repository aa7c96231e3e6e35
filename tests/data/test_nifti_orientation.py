"""NIfTI loading reorients to RAS everywhere, or refuses an orientation it cannot read."""
import nibabel as nib
import numpy as np
import pytest

from data.nifti_io import load_nifti
from dl_utils.errors import UserInputError


def test_lps_sagittal_first_scan_is_loaded_as_ras(tmp_path):
    data = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    # axes stored as (S, L, P): a sagittal-first scan, axial slices not on the last axis
    affine = np.array([[0, -1.2, 0, 10], [0, 0, -1.0, 20], [2.0, 0, 0, -30], [0, 0, 0, 1]], float)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "scan.nii.gz")
    loaded = load_nifti(tmp_path / "scan.nii.gz")
    assert nib.aff2axcodes(loaded.affine) == ("R", "A", "S")
    assert loaded.data.shape == (5, 6, 4)
    assert loaded.spacing == pytest.approx((1.2, 1.0, 2.0))
    # every voxel keeps its world position: compare a voxel through both affines
    i, j, k = 1, 2, 3
    world = affine @ [i, j, k, 1]
    r = np.linalg.solve(loaded.affine, world).round().astype(int)[:3]
    assert loaded.data[tuple(r)] == data[i, j, k]
    raw = load_nifti(tmp_path / "scan.nii.gz", reorient=False)
    assert raw.data.shape == (4, 5, 6)


def test_unreadable_orientation_is_one_line(tmp_path):
    img = nib.Nifti1Image(np.ones((3, 3, 3), np.float32), np.eye(4))
    header = img.header
    header["qform_code"], header["sform_code"] = 0, 1
    for row in ("srow_x", "srow_y", "srow_z"):
        header[row] = [0.0, 0.0, 0.0, 0.0]  # a header whose axes point nowhere
    nib.save(nib.Nifti1Image(np.ones((3, 3, 3), np.float32), None, header), tmp_path / "bad.nii.gz")
    with pytest.raises(UserInputError, match="unreadable orientation") as info:
        load_nifti(tmp_path / "bad.nii.gz")
    assert "\n" not in str(info.value)

"""Validated NIfTI loading: every bad input names the file."""
from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest
from data_helpers import brain_phantom, write_nifti

from data.nifti_io import load_nifti, load_subject, save_nifti
from dl_utils.errors import UserInputError


def test_load_valid_subject(subject_files):
    image, mask, seg = load_subject(subject_files["image"], subject_files["mask"], subject_files["seg"])
    assert image.data.shape == mask.shape == seg.shape == (20, 22, 12)
    assert image.data.dtype == np.float32 and mask.dtype == bool and seg.sum() == 18
    assert image.spacing == (1.0, 1.0, 1.0)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.nii.gz"
    with pytest.raises(UserInputError, match="nope.nii.gz"):
        load_nifti(path)


def test_truncated_gz(tmp_path, subject_files):
    data = subject_files["image"].read_bytes()
    bad = tmp_path / "truncated.nii.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserInputError, match="truncated.nii.gz") as err:
        load_nifti(bad)
    assert "\n" not in str(err.value)  # one readable line


def test_garbage_file(tmp_path):
    bad = tmp_path / "garbage.nii"
    bad.write_bytes(b"not a nifti at all" * 30)
    with pytest.raises(UserInputError, match="garbage.nii"):
        load_nifti(bad)


def test_wrong_dimensionality(tmp_path):
    path = write_nifti(tmp_path / "fourd.nii.gz", np.zeros((4, 4, 4, 2), np.float32))
    with pytest.raises(UserInputError, match="fourd.nii.gz"):
        load_nifti(path)
    path2 = write_nifti(tmp_path / "twod.nii.gz", np.zeros((4, 4), np.float32))
    with pytest.raises(UserInputError, match="twod.nii.gz"):
        load_nifti(path2)


def test_zero_size_axis_is_named(tmp_path):
    """A (16, 16, 0) file reads as a flat (0,) array: the message names its header shape, not (0,) and 4D series."""
    path = write_nifti(tmp_path / "flat.nii.gz", np.zeros((16, 16, 0), np.float32))
    with pytest.raises(UserInputError, match=r"flat.nii.gz has a zero-size axis \(shape \(16, 16, 0\)\): no voxels") as info:
        load_nifti(path, "T1 image")
    assert "4D" not in str(info.value) and "(0,)" not in str(info.value)


def test_trailing_singleton_is_squeezed(tmp_path):
    path = write_nifti(tmp_path / "single.nii.gz", np.ones((4, 5, 6, 1), np.float32))
    assert load_nifti(path).data.shape == (4, 5, 6)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf(tmp_path, bad):
    arr = np.ones((4, 4, 4), np.float32)
    arr[1, 2, 3] = bad
    path = write_nifti(tmp_path / "nanvol.nii.gz", arr)
    with pytest.raises(UserInputError, match="nanvol.nii.gz"):
        load_nifti(path)


def test_empty_mask(tmp_path, subject_files):
    path = write_nifti(tmp_path / "emptymask.nii.gz", np.zeros((20, 22, 12), np.uint8))
    with pytest.raises(UserInputError, match="emptymask.nii.gz"):
        load_subject(subject_files["image"], path)


def test_shape_mismatch(tmp_path, subject_files):
    mask = write_nifti(tmp_path / "smallmask.nii.gz", np.ones((20, 22, 11), np.uint8))
    with pytest.raises(UserInputError, match="smallmask.nii.gz"):
        load_subject(subject_files["image"], mask)
    seg = write_nifti(tmp_path / "smallseg.nii.gz", np.ones((19, 22, 12), np.uint8))
    with pytest.raises(UserInputError, match="smallseg.nii.gz"):
        load_subject(subject_files["image"], subject_files["mask"], seg)


def test_save_roundtrip_atomic(tmp_path):
    image, _ = brain_phantom()
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    out = tmp_path / "sub" / "map.nii.gz"
    save_nifti(out, image, affine)
    loaded = nib.load(str(out))
    np.testing.assert_allclose(loaded.get_fdata(), image, atol=1e-6)
    np.testing.assert_allclose(loaded.affine, affine)
    assert [p.name for p in out.parent.iterdir()] == ["map.nii.gz"]  # no temp file left
    with gzip.open(out) as handle:
        assert handle.read(4)  # a real gzip file

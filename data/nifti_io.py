"""Validated NIfTI loading (reoriented to RAS) and atomic NIfTI saving."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from dl_utils.checkpoint import atomic_path
from dl_utils.errors import UserInputError


@dataclass(frozen=True)
class NiftiArray:
    """A loaded 3D array with its (4, 4) affine and voxel spacing in mm."""

    data: np.ndarray  # (X, Y, Z)
    affine: np.ndarray  # (4, 4)
    spacing: tuple[float, float, float]


def zero_size_axis(shape: tuple[int, ...]) -> str | None:
    """'has a zero-size axis (shape ...): no voxels' when an axis of `shape` (a header's) is 0, else None."""
    shape = tuple(int(s) for s in shape)
    return f"has a zero-size axis (shape {shape}): no voxels" if 0 in shape else None


def load_nifti(path: str | os.PathLike, role: str = "image", reorient: bool = True) -> NiftiArray:
    """Load a 3D NIfTI as float32 (X, Y, Z); a trailing singleton 4th dim is squeezed.

    With `reorient` (the default everywhere) the array is brought to the closest RAS
    orientation (nibabel.as_closest_canonical: axis 0 -> Right, 1 -> Anterior, 2 ->
    Superior, so axis 2 holds axial slices whatever the scanner's storage order) and
    the affine follows. Raises UserInputError (one line naming the file and the fix) for
    a missing file, an unreadable file, an axis of size 0, an orientation that cannot be
    read, a non-3D array or NaN/Inf voxels. `role` only words messages.
    """
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{role} file not found: {path}; fix the path in the split CSV or data_root")
    try:
        img = nib.load(str(path))
        empty = zero_size_axis(img.shape)
        if empty:  # nibabel reads such a file as a flat (0,) array: say what is wrong with it
            raise UserInputError(f"{role} file {path} {empty}; re-export it as a 3D volume (X, Y, Z) with voxels")
        if reorient:
            img = _canonical(img, path, role)
        data = np.asarray(img.dataobj, dtype=np.float32)
    except UserInputError:
        raise
    except Exception as exc:  # nibabel raises many types for corrupt files
        detail = " ".join(str(exc).split())[:200]
        raise UserInputError(
            f"{role} file {path} is not a readable NIfTI ({type(exc).__name__}: {detail}); "
            "re-export or re-download it"
        ) from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise UserInputError(
            f"{role} file {path} has shape {data.shape}; expected a 3D volume (X, Y, Z), "
            "split 4D series into 3D files"
        )
    if not np.isfinite(data).all():
        raise UserInputError(
            f"{role} file {path} contains NaN or Inf voxels; replace them (e.g. by 0) before use"
        )
    zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
    return NiftiArray(data=data, affine=np.asarray(img.affine, dtype=np.float64), spacing=zooms)


def _canonical(img: nib.spatialimages.SpatialImage, path: Path, role: str) -> nib.spatialimages.SpatialImage:
    """`img` reoriented to the closest RAS; refuses an affine whose axes cannot be read."""
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.isfinite(affine).all() or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise UserInputError(
            f"{role} file {path} has an unreadable orientation (singular or non-finite affine); "
            "fix its header (qform/sform) before use"
        )
    if len(img.shape) == 4 and img.shape[3] == 1:
        img = img.slicer[..., 0]
    if len(img.shape) != 3:
        return img  # the dimensionality check below words the error
    return nib.as_closest_canonical(img)


def load_subject(
    image_path: str | os.PathLike,
    mask_path: str | os.PathLike,
    seg_path: str | os.PathLike | None = None,
    reorient: bool = True,
) -> tuple[NiftiArray, np.ndarray, np.ndarray | None]:
    """Load image, brain mask (bool) and optional seg (bool), all of one shape
    (`reorient`: to RAS, see load_nifti; false: as stored).

    Raises UserInputError for an empty brain mask or mismatched shapes.
    """
    image = load_nifti(image_path, "image", reorient)
    mask_file = load_nifti(mask_path, "brain mask", reorient)
    mask = _binary(mask_file.data, mask_path, "brain mask")
    if not mask.any():
        raise UserInputError(
            f"brain mask {mask_path} is empty; provide a mask with brain voxels > 0"
        )
    _check_shape(image.data.shape, mask.shape, mask_path, image_path)
    if not reorient:
        _check_voxel_order(image.affine, mask_file.affine, mask_path, image_path, "brain mask")
    seg = None
    if seg_path is not None:
        seg_file = load_nifti(seg_path, "segmentation", reorient)
        seg = _binary(seg_file.data, seg_path, "segmentation")
        _check_shape(image.data.shape, seg.shape, seg_path, image_path)
        if not reorient:
            _check_voxel_order(image.affine, seg_file.affine, seg_path, image_path, "segmentation")
    return image, mask, seg


def _check_voxel_order(image_affine: np.ndarray, affine: np.ndarray, path: str | os.PathLike,
                       image_path: str | os.PathLike, role: str) -> None:
    """Read as stored (`orientation: as_stored`, the originals), a mask or segmentation is compared
    with its image voxel by voxel: one stored in another axis order (e.g. LPS beside an RAS image)
    would label the mirrored voxels. Refused (RAS reorientation aligns such files by their affines)."""
    ours, theirs = nib.aff2axcodes(image_affine), nib.aff2axcodes(affine)
    if ours != theirs:
        raise UserInputError(
            f"{role} {path} is stored in {''.join(theirs)} voxel order but its image {image_path} in "
            f"{''.join(ours)}; read as stored (orientation: as_stored) voxel i of one is not voxel i of the other: "
            "store both in one order (if their voxels already match, give it the image's affine), or set the data "
            "loader's orientation: ras (each file reoriented by its affine)"
        )


def _binary(data: np.ndarray, path: str | os.PathLike, role: str) -> np.ndarray:
    """`data > 0` for a binary volume (0 and one other value, e.g. 1 or 255); other volumes are refused."""
    values = np.unique(data)
    if values.size > 2 or (values.size == 2 and values[0] != 0) or (values < 0).any():
        shown = ", ".join(f"{v:g}" for v in values[:5]) + (", ..." if values.size > 5 else "")
        raise UserInputError(f"{role} {path} is not binary (values {shown}); write 0 outside and one value "
                             "(e.g. 1) inside, e.g. binarise multi-label segmentations with seg > 0")
    return data > 0


def _check_shape(ref: tuple[int, ...], got: tuple[int, ...], path: os.PathLike | str, ref_path) -> None:
    if tuple(ref) != tuple(got):
        raise UserInputError(
            f"{path} has shape {tuple(got)} but image {ref_path} has shape {tuple(ref)}; "
            "resample both onto the same grid"
        )


def save_nifti(path: str | os.PathLike, array: np.ndarray, affine: np.ndarray) -> None:
    """Write a 3D array (float maps as float32, bool as uint8) atomically (dl_utils.checkpoint's
    temp file + os.replace); `.nii.gz` is gzipped."""
    path = Path(path)
    arr = np.asarray(array)
    arr = arr.astype(np.uint8) if arr.dtype == bool else arr.astype(np.float32)
    img = nib.Nifti1Image(arr, np.asarray(affine, dtype=np.float64))
    with atomic_path(path, suffix="".join(path.suffixes) or ".nii.gz") as tmp:
        nib.save(img, tmp)


def header_description(img: nib.spatialimages.SpatialImage) -> str:
    """A NIfTI header's free-text description (`descrip`; scanners often name the sequence there), '' if none."""
    description = img.header.get("descrip") if hasattr(img.header, "get") else None
    return description.item().decode("latin-1", "replace").strip("\x00 ") if description is not None else ""

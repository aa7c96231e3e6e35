"""Array transforms of the volume pipeline (docs/methods.md section 1) and their composition.

Order as in the originals (Behrendt et al., `src/datamodules/create_dataset.py`):
SimpleITK CurvatureFlow on the image -> crop or pad -> percentile rescale in the brain ->
resample. `Pipeline.TORCHIO` runs the originals' torchio transforms themselves (voxel-centre
aligned B-spline, nearest for labels, no clipping after resampling); `Pipeline.ZOOM` is our
earlier corner-aligned `ndimage.zoom` variant (output clipped to [0, 1]).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

import numpy as np
import SimpleITK as sitk
import torch
import torchio as tio
from scipy import ndimage

from dl_utils.errors import UserInputError
from dl_utils.options import parse_option
from dl_utils.param_ranges import GridSide, PositiveFloat
from dl_utils.param_types import Ge, Le


class Pipeline(StrEnum):
    """How crop/pad, rescale and resampling are computed."""

    TORCHIO = "torchio"  # the originals: tio.CropOrPad, tio.RescaleIntensity, tio.Resample / tio.Resize
    ZOOM = "zoom"  # ours before: centred crop, clipped rescale, corner-aligned ndimage.zoom


class Orientation(StrEnum):
    """The voxel order a volume is read in (before any other step)."""

    RAS = "ras"  # reoriented to the closest RAS (axis 2 = axial whatever the storage order; ours)
    AS_STORED = "as_stored"  # the voxel order of the file (the originals: SimpleITK array, identity affine)


class VoxelSpacing(StrEnum):
    """The voxel size that crop/pad, rescale and resampling take the file to have."""

    HEADER = "header"  # the file's own voxel size (ours): target_spacing is in mm of the scan
    UNIT = "unit"  # every voxel 1 mm (the originals: `sitk_reader` returns no affine, torchio takes the identity), so
    # target_spacing 2 halves every axis whatever the scan's voxel size; CurvatureFlow still sees the real spacing


LOG = logging.getLogger(__name__)
_TIO_INTERPOLATION = {0: "nearest", 1: "linear", 3: "bspline"}


def curvature_flow(
    image: np.ndarray, spacing: Sequence[float] = (1.0, 1.0, 1.0), time_step: float = 0.125, iterations: int = 3,
) -> np.ndarray:
    """SimpleITK CurvatureFlow edge-preserving smoothing of a (X, Y, Z) volume, float32.

    As the originals' `sitk_reader`: float32 image, `timeStep` 0.125, 3 iterations.
    """
    itk = sitk.GetImageFromArray(np.ascontiguousarray(image, dtype=np.float32).transpose(2, 1, 0))
    itk.SetSpacing(tuple(float(s) for s in spacing))
    out = sitk.CurvatureFlow(image1=itk, timeStep=float(time_step), numberOfIterations=int(iterations))
    return sitk.GetArrayFromImage(out).transpose(2, 1, 0).astype(np.float32)


def crop_or_pad_slices(
    in_shape: Sequence[int], target_shape: Sequence[int], center: Sequence[float] | None = None
) -> list[tuple[int, int]]:
    """Per axis (start, stop) in input indices of a target-sized window centred on `center`.

    Starts may be negative and stops may exceed the input (those parts are padded).
    """
    out = []
    for axis, (n, t) in enumerate(zip(in_shape, target_shape)):
        if center is None:
            start = (n - t) // 2
        else:
            start = int(np.floor(float(center[axis]) - (t - 1) / 2.0 + 0.5))
        out.append((start, start + int(t)))
    return out


def crop_or_pad(
    array: np.ndarray, target_shape: Sequence[int], center: Sequence[float] | None = None,
    fill: float = 0.0,
) -> np.ndarray:
    """Crop or pad (with `fill`) an N-D array to `target_shape`, centred (or on `center`)."""
    if len(target_shape) != array.ndim:
        raise ValueError(f"target_shape {tuple(target_shape)} does not match array ndim {array.ndim}")
    windows = crop_or_pad_slices(array.shape, target_shape, center)
    out = np.full(tuple(int(t) for t in target_shape), fill, dtype=array.dtype)
    src, dst = [], []
    for (start, stop), n in zip(windows, array.shape):
        lo, hi = max(start, 0), min(stop, n)
        if hi <= lo:
            return out
        src.append(slice(lo, hi))
        dst.append(slice(lo - start, hi - start))
    out[tuple(dst)] = array[tuple(src)]
    return out


class FlatIntensities(UserInputError):
    """An image whose brain intensities have no range to rescale (`VolumePreprocessor(...)(..., strict=True)`);
    the message names no file: the caller adds it."""


def flat_intensities(image: np.ndarray, mask: np.ndarray | None, percentiles: Sequence[float]) -> str | None:
    """Why rescaling `image` between its `percentiles` inside `mask` (None: every voxel) has no range: an empty
    mask, or both percentiles one value (a uniform scan); None when it has a range. torchio's RescaleIntensity
    then leaves the image as it is (with a RuntimeWarning), `percentile_rescale` divides by 1."""
    values = np.asarray(image, np.float32)
    if mask is not None:
        values = values[np.asarray(mask, bool)]
        if values.size == 0:
            return "its brain mask holds no voxel (inside the crop)"
    lo, hi = np.percentile(values, [float(percentiles[0]), float(percentiles[1])])
    if np.float32(hi) > np.float32(lo):
        return None
    return (f"its intensity percentiles {float(percentiles[0]):g} and {float(percentiles[1]):g} inside the brain mask "
            f"are both {float(lo):g} (a uniform scan)")


def percentile_rescale(
    image: np.ndarray, mask: np.ndarray | None = None, percentiles: Sequence[float] = (1.0, 99.0)
) -> np.ndarray:
    """Map the low/high percentiles (inside `mask`) to 0/1 linearly and clip to [0, 1]."""
    values = image[mask.astype(bool)] if mask is not None else image.ravel()
    if values.size == 0:
        values = image.ravel()
    lo, hi = np.percentile(values, [float(percentiles[0]), float(percentiles[1])])
    scale = hi - lo if hi > lo else 1.0
    return np.clip((image.astype(np.float32) - lo) / scale, 0.0, 1.0).astype(np.float32)


def resample_to_shape(array: np.ndarray, target_shape: Sequence[int], order: int = 3) -> np.ndarray:
    """Resample to `target_shape` with scipy.ndimage.zoom (order 3 = B-spline, 0 = nearest).

    Corner voxels map onto corner voxels (zoom's default grid), see `resampled_affine`.
    """
    factors = [t / n for t, n in zip(target_shape, array.shape)]
    if all(f == 1.0 for f in factors):
        return array.copy()
    src = array.astype(np.float32) if order > 0 else array
    out = ndimage.zoom(src, factors, order=order, mode="nearest", grid_mode=False)
    return out.astype(array.dtype) if order == 0 else out.astype(np.float32)


def shape_for_spacing(
    shape: Sequence[int], spacing: Sequence[float], target_spacing: Sequence[float]
) -> tuple[int, ...]:
    """Output shape that gives `target_spacing` (mm) from `shape` at `spacing`."""
    return tuple(max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target_spacing))


def resampled_affine(
    affine: np.ndarray, in_shape: Sequence[int], windows: Sequence[tuple[int, int]] | None,
    out_shape: Sequence[int],
) -> np.ndarray:
    """(4, 4) affine of the output grid after a crop/pad window and a zoom to `out_shape`."""
    start = np.array([w[0] for w in windows], float) if windows is not None else np.zeros(3)
    mid = [w[1] - w[0] for w in windows] if windows is not None else list(in_shape)
    step = np.array([(m - 1) / (o - 1) if o > 1 else 1.0 for m, o in zip(mid, out_shape)])
    index_map = np.eye(4)
    index_map[:3, :3] = np.diag(step)
    index_map[:3, 3] = start
    return np.asarray(affine, float) @ index_map


def _tuple_or_none(value, length: int, key: str, kind=int):
    if value is None:
        return None
    if not isinstance(value, Sequence) or len(value) != length:
        raise UserInputError(f"preprocessing key '{key}' = {value!r}; give a list of {length} numbers or null")
    return tuple(kind(v) for v in value)


@dataclass(frozen=True)
class VolumePreprocessor:
    """(image, mask, seg) (X, Y, Z) -> the preprocessed triple; paper geometry.

    pipeline: `torchio` (the originals' transforms) or `zoom` (ours before, see Pipeline).
    curvature_flow: SimpleITK CurvatureFlow on the image first (the originals: on, time step
    0.125, 3 iterations; off by default because the demo volumes are already preprocessed).
    crop_shape: crop or pad (with 0) centred, at input resolution; null to skip.
    percentiles: rescale to [0, 1] between these brain percentiles, clipping; null to skip.
    target_shape / target_spacing (mm): resample (B-spline `image_order` for the image,
    nearest for mask and seg); give at most one, null for neither. The originals use
    target_spacing 2 (their `rescaleFactor`) on 1 mm volumes.
    orientation: `ras` (ours: every file reoriented to RAS first, so the same crop and axial
    axis for any storage order) or `as_stored` (the originals: the file's voxel order; equal
    for RAS files, an LPS file comes out mirrored in x and y, and an odd crop margin falls on
    the other side; a mask or segmentation stored in another voxel order than its image is
    refused there, since its voxels would not match). Read by `data.volume_dataset.load_volume`.
    voxel_spacing: `header` (ours: the file's voxel size, so target_spacing is in mm) or `unit`
    (the originals: every voxel 1 mm for crop/pad and resampling, an identity affine; equal for
    1 mm files). Either way `output_affine` maps the output grid to the scan's true world
    coordinates, and `output_grid` also gives the voxel size the pipeline gave the output grid.
    """

    crop_shape: Sequence[GridSide] | None = (192, 192, 100)
    percentiles: Sequence[Annotated[float, Ge(0), Le(100)]] | None = (1.0, 99.0)
    target_shape: Sequence[GridSide] | None = (96, 96, 50)
    target_spacing: Sequence[PositiveFloat] | None = None
    image_order: int = 3
    pipeline: Pipeline = Pipeline.TORCHIO
    curvature_flow: bool = False
    curvature_flow_time_step: PositiveFloat = 0.125
    curvature_flow_iterations: Annotated[int, Ge(0), Le(1000)] = 3  # each a pass over the volume (the originals: 3)
    orientation: Orientation = Orientation.RAS
    voxel_spacing: VoxelSpacing = VoxelSpacing.HEADER

    def __post_init__(self) -> None:
        object.__setattr__(self, "crop_shape", _tuple_or_none(self.crop_shape, 3, "crop_shape"))
        object.__setattr__(self, "percentiles", _tuple_or_none(self.percentiles, 2, "percentiles", float))
        object.__setattr__(self, "target_shape", _tuple_or_none(self.target_shape, 3, "target_shape"))
        object.__setattr__(
            self, "target_spacing", _tuple_or_none(self.target_spacing, 3, "target_spacing", float)
        )
        if self.target_shape is not None and self.target_spacing is not None:
            raise UserInputError("preprocessing sets both 'target_shape' and 'target_spacing'; keep one")
        if self.percentiles is not None and not 0 <= self.percentiles[0] < self.percentiles[1] <= 100:
            raise UserInputError(f"preprocessing key 'percentiles' = {self.percentiles}; need 0 <= low < high <= 100")
        object.__setattr__(self, "pipeline", parse_option(Pipeline, self.pipeline, "preprocessing key 'pipeline'"))
        object.__setattr__(self, "orientation", parse_option(Orientation, self.orientation, "preprocessing key 'orientation'"))
        object.__setattr__(
            self, "voxel_spacing", parse_option(VoxelSpacing, self.voxel_spacing, "preprocessing key 'voxel_spacing'")
        )
        if self.pipeline is Pipeline.TORCHIO and self.image_order not in _TIO_INTERPOLATION:
            raise UserInputError(
                f"preprocessing key 'image_order' = {self.image_order}; the torchio pipeline takes 0, 1 or 3"
            )

    def _torchio_transform(self, with_intensity: bool = True) -> tio.Compose:
        """The originals' `get_transform`: CropOrPad(pad 0) -> RescaleIntensity(mask) -> Resample."""
        steps: list[tio.Transform] = []
        if self.crop_shape is not None:
            steps.append(tio.CropOrPad(self.crop_shape, padding_mode=0))
        if self.percentiles is not None and with_intensity:
            steps.append(tio.RescaleIntensity((0, 1), percentiles=self.percentiles, masking_method="mask"))
        interpolation = _TIO_INTERPOLATION[self.image_order]
        if self.target_spacing is not None:
            steps.append(tio.Resample(self.target_spacing, image_interpolation=interpolation))
        elif self.target_shape is not None:
            steps.append(tio.Resize(self.target_shape, image_interpolation=interpolation))
        return tio.Compose(steps)

    def _torchio_geometry(self, in_shape: Sequence[int], spacing: Sequence[float]) -> tuple[tuple[int, ...], np.ndarray]:
        """Output shape and (index -> input-index) affine of the torchio pipeline, from a label-only run."""
        grid = np.diag([*map(float, spacing), 1.0])
        dummy = tio.Subject(mask=tio.LabelMap(tensor=torch.zeros((1, *map(int, in_shape)), dtype=torch.uint8), affine=grid))
        out = self._torchio_transform(with_intensity=False)(dummy)["mask"]
        return tuple(int(n) for n in out.spatial_shape), np.linalg.inv(grid) @ np.asarray(out.affine, float)

    def assumed_spacing(self, spacing: Sequence[float]) -> tuple[float, float, float]:
        """The voxel size (mm) crop/pad and resampling take a file of voxel size `spacing` to have."""
        if self.voxel_spacing is VoxelSpacing.UNIT:
            return (1.0, 1.0, 1.0)
        return tuple(float(s) for s in spacing)

    @property
    def is_identity(self) -> bool:
        """Nothing cropped, rescaled, resampled or smoothed: volumes are read as stored (already on the model grid)."""
        return not self.curvature_flow and all(v is None for v in (self.crop_shape, self.percentiles, self.target_shape,
                                                                   self.target_spacing))

    @property
    def reorients(self) -> bool:
        """Whether volumes are reoriented to RAS on loading (`orientation: ras`)."""
        return self.orientation is Orientation.RAS

    def output_shape(self, in_shape: Sequence[int], spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> tuple[int, ...]:
        """Shape the triple will have for an input of `in_shape` at `spacing` (mm, the header's)."""
        spacing = self.assumed_spacing(spacing)
        if self.pipeline is Pipeline.TORCHIO:
            return self._torchio_geometry(in_shape, spacing)[0]
        mid = self.crop_shape or tuple(in_shape)
        if self.target_shape is not None:
            return self.target_shape
        if self.target_spacing is not None:
            return shape_for_spacing(mid, spacing, self.target_spacing)
        return tuple(mid)

    def output_affine(self, affine: np.ndarray, in_shape: Sequence[int], spacing=(1.0, 1.0, 1.0)) -> np.ndarray:
        """(4, 4) affine of the preprocessed grid for an input with `affine`: output voxel -> the
        input's world coordinates (whatever `voxel_spacing`), so maps written with it lie on the scan."""
        if self.pipeline is Pipeline.TORCHIO:
            return np.asarray(affine, float) @ self._torchio_geometry(in_shape, self.assumed_spacing(spacing))[1]
        windows = crop_or_pad_slices(in_shape, self.crop_shape) if self.crop_shape else None
        return resampled_affine(affine, in_shape, windows, self.output_shape(in_shape, spacing))

    def output_grid(
        self, affine: np.ndarray, in_shape: Sequence[int], spacing=(1.0, 1.0, 1.0),
    ) -> tuple[np.ndarray, tuple[float, float, float]]:
        """`output_affine` and the voxel size (mm) the pipeline gave the output grid, from one
        geometry run: the true size with `header`; with `unit` the size in the 1 mm frame (e.g.
        2 mm after target_spacing 2, as the originals' augmentation saw it, whatever the scan's)."""
        if self.pipeline is Pipeline.TORCHIO:
            index_map = self._torchio_geometry(in_shape, self.assumed_spacing(spacing))[1]
            out = np.asarray(affine, float) @ index_map
        else:
            out = self.output_affine(affine, in_shape, spacing)
            index_map = self.output_affine(np.eye(4), in_shape, spacing)
        frame = index_map if self.voxel_spacing is VoxelSpacing.UNIT else out
        return out, tuple(float(v) for v in np.linalg.norm(frame[:3, :3], axis=0))

    def __call__(
        self, image: np.ndarray, mask: np.ndarray, seg: np.ndarray | None = None,
        spacing: Sequence[float] = (1.0, 1.0, 1.0), *, strict: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """image float (X, Y, Z), mask/seg bool (X, Y, Z) -> float32, bool, bool | None.

        The zoom pipeline clips the image to [0, 1]; the torchio one, as the originals,
        leaves B-spline over/undershoot. Intensities without a range to rescale (a uniform scan,
        `flat_intensities`) are kept as the pipeline leaves them, with one log line, or, with
        `strict` (`uad predict`: nothing to score), refused as `FlatIntensities`.
        """
        mask = mask.astype(bool)
        seg = None if seg is None else seg.astype(bool)
        if self.curvature_flow:  # the scan's real spacing, as SimpleITK in the originals' reader
            image = curvature_flow(image, spacing, self.curvature_flow_time_step, self.curvature_flow_iterations)
        spacing = self.assumed_spacing(spacing)
        if self.pipeline is Pipeline.TORCHIO:
            return self._apply_torchio(image, mask, seg, spacing, strict)
        out_shape = self.output_shape(image.shape, spacing)  # `spacing` already the grid's
        if self.crop_shape is not None:
            image = crop_or_pad(image, self.crop_shape)
            mask = crop_or_pad(mask, self.crop_shape)
            seg = None if seg is None else crop_or_pad(seg, self.crop_shape)
        image = image.astype(np.float32)
        if self.percentiles is not None:
            self._check_range(image, mask if mask.any() else None, strict)  # percentile_rescale: all voxels for an empty mask
            image = percentile_rescale(image, mask, self.percentiles)
        if tuple(out_shape) != image.shape:
            image = np.clip(resample_to_shape(image, out_shape, self.image_order), 0.0, 1.0)
            mask = resample_to_shape(mask, out_shape, order=0)
            seg = None if seg is None else resample_to_shape(seg, out_shape, order=0)
        return image.astype(np.float32), mask, seg

    def _check_range(self, image: np.ndarray, mask: np.ndarray | None, strict: bool) -> None:
        """Nothing when the intensities have a range to rescale; else one log line, or `FlatIntensities` with `strict`."""
        problem = flat_intensities(image, mask, self.percentiles)
        if problem is None:
            return
        if strict:
            raise FlatIntensities(f"{problem}, so its intensities cannot be rescaled to [0, 1] as the model's were; "
                                  "give a scan with contrast inside its brain mask")
        LOG.warning("intensities not rescaled to [0, 1]: %s; the %s pipeline keeps them as they are", problem, self.pipeline)

    def _apply_torchio(
        self, image: np.ndarray, mask: np.ndarray, seg: np.ndarray | None, spacing: Sequence[float], strict: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """The originals' torchio transforms on (image, mask, seg); the grid is diag(spacing). A flat image (checked
        on the crop RescaleIntensity sees) is `_check_range`'s one line, not torchio's two-line RuntimeWarning; the
        transforms still run as one tio.Compose (each draws a torch random number: the RNG stream stays the same)."""
        if self.percentiles is not None:
            crop = (lambda a: crop_or_pad(a, self.crop_shape)) if self.crop_shape is not None else (lambda a: a)
            self._check_range(crop(np.asarray(image, np.float32)), crop(mask), strict)
        grid = np.diag([*map(float, spacing), 1.0])
        images = {
            "image": tio.ScalarImage(tensor=torch.from_numpy(np.asarray(image, np.float32)[None].copy()), affine=grid),
            "mask": tio.LabelMap(tensor=torch.from_numpy(mask[None].astype(np.uint8)), affine=grid),
        }
        if seg is not None:
            images["seg"] = tio.LabelMap(tensor=torch.from_numpy(seg[None].astype(np.uint8)), affine=grid)
        with warnings.catch_warnings():  # said above in one line; RescaleIntensity leaves such an image as it is
            warnings.filterwarnings("ignore", message=r'Rescaling image ".*" not possible', category=RuntimeWarning)
            out = self._torchio_transform()(tio.Subject(images))
        img = out["image"].data[0].numpy().astype(np.float32)
        msk = out["mask"].data[0].numpy() > 0
        sg = None if seg is None else out["seg"].data[0].numpy() > 0
        return img, msk, sg

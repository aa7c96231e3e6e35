"""How one 2D image file becomes a model slice, and a map on that slice goes back onto the file's pixels.

`ImageReading` holds the settings (target size, padding to square, intensity scaling, resize and
antialias, where label files land), the same for training, evaluation (`data.image_list_dataset`)
and `uad predict`, which reads each image by the settings its checkpoint recorded; the file readers
(`load_image_2d`, `image_shape_2d`: PNG / JPEG / TIFF or a 2D NIfTI) and RA's intensity steps
(`to01`, `pad_to_square`) beside it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from skimage import io as skio
from skimage.transform import resize as sk_resize

from data.interpolation import Interpolation
from dl_utils.errors import UserInputError
from dl_utils.options import parse_option
from dl_utils.param_ranges import GridSide

LOG = logging.getLogger(__name__)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")  # 2D image files (a NIfTI may be 2D or a 3D scan)


def is_image_2d(path: Path) -> bool:
    """Whether `path` names a 2D image file (PNG, JPEG, TIFF) by its suffix."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def load_image_2d(path: Path, mid_axial: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) float32 array and (4, 4) affine from a PNG/JPEG/TIFF (identity affine) or a 2D NIfTI; with
    `mid_axial` a 3D NIfTI gives its slice D // 2, with that slice's affine (its place in the scan)."""
    if not path.is_file():
        raise UserInputError(f"image file not found: {path}; fix the path in the CSV or data_root")
    try:
        if path.name.endswith((".nii", ".nii.gz")):
            img = nib.load(str(path))
            data, affine = np.asarray(img.dataobj, dtype=np.float32), np.asarray(img.affine, float)
        else:
            data, affine = skio.imread(str(path)).astype(np.float32), np.eye(4)
    except Exception as exc:  # readers raise many types for corrupt files
        raise UserInputError(f"image file {path} is unreadable ({type(exc).__name__}); re-export it") from exc
    if data.ndim == 3 and data.shape[-1] in (3, 4) and not path.name.endswith((".nii", ".nii.gz")):
        data = data[..., :3].mean(-1)  # RGB(A) PNG -> gray
    while data.ndim > 2 and data.shape[-1] == 1:  # a 2D NIfTI stored as (H, W, 1); a 1-pixel-high image stays 2D
        data = data[..., 0]
    if mid_axial and data.ndim == 3:
        middle = data.shape[2] // 2
        data, affine = data[:, :, middle], affine @ _translation(0.0, 0.0, float(middle))
    if data.ndim != 2:
        raise UserInputError(f"image file {path} has shape {data.shape}; expected a 2D image")
    if not np.isfinite(data).all():
        raise UserInputError(f"image file {path} contains NaN or Inf; replace them before use")
    return data, affine


def image_shape_2d(path: Path) -> tuple[int, int] | None:
    """(H, W) of a 2D image file from its header alone (PIL / nibabel, nothing decoded); None where it cannot
    be read so (a missing or unreadable file: `load_image_2d` then says why) or is not 2D."""
    try:
        if path.name.endswith((".nii", ".nii.gz")):
            shape = tuple(nib.load(str(path)).shape)
            while len(shape) > 2 and shape[-1] == 1:
                shape = shape[:-1]
        else:
            from PIL import Image  # scikit-image's reader's own dependency

            with Image.open(path) as image:
                shape = (image.height, image.width)
    except Exception:  # readers raise many types for corrupt files; load_image_2d names the problem
        return None
    return (int(shape[0]), int(shape[1])) if len(shape) == 2 else None


def _translation(*shift: float) -> np.ndarray:
    matrix = np.eye(4)
    matrix[:3, 3] = shift
    return matrix


@dataclass(frozen=True)
class SourceGrid:
    """The pixel grid an image file has: its (H, W) and affine (a PNG's is the identity), which a
    slice read by `ImageReading` came from and which `uad predict` writes its outputs on."""

    shape: tuple[int, int]
    affine: np.ndarray


class Intensity(StrEnum):
    """How a loaded image is scaled to [0, 1]."""

    MIN_MAX = "min_max"  # by the image's own min and max (ours)
    TO01 = "to01"  # divided by 255 unless already <= 1 (RA's To01)


class Resize(StrEnum):
    """How images and masks reach `target_size`."""

    SKIMAGE = "skimage"  # skimage bilinear with Gaussian anti-aliasing; masks nearest (ours)
    BILINEAR = "bilinear"  # torchvision Resize (bilinear; `antialias` as set) on images and masks (RA);
    # lesion labels keep every pixel > 0 (RA counts non-zero), other masks those > 0.5


class LabelGeometry(StrEnum):
    """Where a label or mask file (`label_dir`, `mask_dir`) lands on the image's grid."""

    AS_IMAGE = "as_image"  # padded to square like the image when `square` is set, then resized: aligned (ours)
    STRETCHED = "stretched"  # resized to target_size without the image's padding (RA's test loader:
    # FastLoader has no get_label_transform_test): misaligned with a padded non-square image


def pad_to_square(image: np.ndarray, value: float | None = None) -> np.ndarray:
    """Pad an (H, W) image to (S, S), S = max(H, W), centred (the odd pixel after), with
    `value` (default: the image minimum), as RA's `Pad` before resizing, so nothing is stretched."""
    h, w = image.shape
    size = max(h, w)
    fill = float(image.min()) if value is None else float(value)
    widths = [((size - n) // 2, size - n - (size - n) // 2) for n in (h, w)]
    return np.pad(image, widths, mode="constant", constant_values=fill)


def to01(image: np.ndarray) -> np.ndarray:
    """RA's To01: divide by 255 if the maximum exceeds 1, else unchanged."""
    return (image / 255.0 if float(image.max()) > 1 else image).astype(np.float32)


def min_max(image: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the image's own min and max (constant -> 0)."""
    lo, hi = float(image.min()), float(image.max())
    return ((image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)).astype(np.float32)


@dataclass(frozen=True)
class ImageReading:
    """How an image file becomes a `target_size` slice in [0, 1], the same for training and evaluation.

    square: pad to square before resizing (RA's Pad) instead of stretching; intensity: `min_max`
    or `to01` (RA); resize: `skimage` or `bilinear` (RA's torchvision Resize); antialias: low-pass
    before downsizing (false: plain bilinear sampling, as the tensor Resize of RA's pinned
    torchvision 0.10.1); labels: `as_image` puts label and mask files on the image's grid (padded
    to square like the image, then resized), `stretched` resizes them without the padding, as RA's
    evaluation loader read its boxes and non-lesion masks (off the image on non-square files)."""

    target_size: Sequence[GridSide] = (128, 128)
    square: bool = False
    intensity: Intensity = Intensity.MIN_MAX
    resize: Resize = Resize.SKIMAGE
    antialias: bool = True
    labels: LabelGeometry = LabelGeometry.AS_IMAGE
    _warned: set[Path] = field(default_factory=set, init=False, repr=False, compare=False)  # files warned about once

    def __post_init__(self) -> None:
        if len(self.target_size) != 2:
            raise UserInputError(f"key 'reading.target_size' = {self.target_size}; give [H, W]")
        object.__setattr__(self, "target_size", tuple(int(t) for t in self.target_size))
        object.__setattr__(self, "square", bool(self.square))
        object.__setattr__(self, "intensity", parse_option(Intensity, self.intensity, "reading.intensity"))
        object.__setattr__(self, "resize", parse_option(Resize, self.resize, "reading.resize"))
        object.__setattr__(self, "antialias", bool(self.antialias))
        object.__setattr__(self, "labels", parse_option(LabelGeometry, self.labels, "reading.labels"))

    def to_plain(self) -> dict[str, Any]:
        """The settings as plain values (a checkpoint's input grid records them: `uad predict` reads alike)."""
        return {"target_size": list(self.target_size), "square": self.square, "intensity": str(self.intensity),
                "resize": str(self.resize), "antialias": self.antialias, "labels": str(self.labels)}

    def summary(self) -> str:
        """One line for a person, e.g. `128 x 128, padded to square, to01, bilinear without antialias`."""
        size = " x ".join(map(str, self.target_size))
        square = ", padded to square" if self.square else ""
        aliasing = "with" if self.antialias else "without"
        return f"{size}{square}, {self.intensity}, {self.resize} {aliasing} antialias"

    def geometry(self, data: np.ndarray, value: float | None = None) -> np.ndarray:
        """Padded to square (`square`), else as it is."""
        return pad_to_square(data, value) if self.square else data

    def resized(self, data: np.ndarray) -> np.ndarray:
        """(H, W) float -> target_size, by `resize` (no clipping)."""
        if self.resize is Resize.BILINEAR:
            tensor = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))[None]
            # imported here: torchvision's import pulls in torch._dynamo (seconds), which no volume run needs
            import torchvision.transforms.functional as tvf

            return tvf.resize(tensor, list(self.target_size), antialias=self.antialias)[0].numpy()
        return sk_resize(data, self.target_size, order=1, anti_aliasing=self.antialias)

    def image(self, path: Path, mid_axial: bool = False) -> tuple[np.ndarray, SourceGrid]:
        """(the image file as a target_size slice in [0, 1], the file's own grid): scaled (`intensity`), padded,
        resized, clipped. `grid_affine` places the slice's pixels, `to_source` takes a map back."""
        data, affine = load_image_2d(path, mid_axial)
        if self.intensity is Intensity.TO01 and float(data.max()) > 255 and path not in self._warned:
            self._warned.add(path)
            LOG.warning("%s: values up to %.6g (not an 8-bit image?) saturate under `intensity: to01` (divided by 255, "
                        "clipped at 1): convert it to 8 bits as the training images were, or read with min_max", path, data.max())
        scaled = to01(data) if self.intensity is Intensity.TO01 else min_max(data)
        return np.clip(self.resized(self.geometry(scaled)), 0, 1), SourceGrid((int(data.shape[0]), int(data.shape[1])), affine)

    def _placement(self, source: SourceGrid) -> tuple[tuple[int, int], tuple[int, int]]:
        """(the resized grid's size in source pixels: the padded square or the image, the padding before each axis)."""
        h, w = source.shape
        if not self.square:
            return (h, w), (0, 0)
        size = max(h, w)
        return (size, size), ((size - h) // 2, (size - w) // 2)

    def grid_affine(self, source: SourceGrid) -> np.ndarray:
        """The affine of the target_size slice (pixel centres as the resize samples them: half-pixel aligned,
        in the padded square when `square`), so its maps overlay the file in a viewer."""
        (ph, pw), (top, left) = self._placement(source)
        th, tw = self.target_size
        to_source = np.eye(4)  # target pixel index -> source pixel index
        to_source[0, 0], to_source[1, 1] = ph / th, pw / tw
        to_source[:2, 3] = (0.5 * ph / th - 0.5 - top, 0.5 * pw / tw - 0.5 - left)
        return np.asarray(source.affine, float) @ to_source

    def to_source(self, array: np.ndarray, source: SourceGrid, interpolation: Interpolation) -> np.ndarray:
        """A (target_size) map or mask back on the file's (H, W) pixels: resized to the padded square (or the
        image) by `interpolation` (linear or nearest, no low-pass), its padding cut off; the inverse of the
        reading's geometry, for `uad predict`'s outputs on the scan's own grid."""
        (ph, pw), (top, left) = self._placement(source)
        order = 0 if interpolation is Interpolation.NEAREST else 1
        data = np.asarray(array, np.float32)
        if data.shape != (ph, pw):
            data = sk_resize(data, (ph, pw), order=order, preserve_range=True, anti_aliasing=False).astype(np.float32)
        h, w = source.shape
        return np.ascontiguousarray(data[top:top + h, left:left + w])

    def label(self, path: Path, mid_axial: bool = False) -> np.ndarray:
        """A label or mask file (pixels > 0) at target_size as float: fractional at edges with `bilinear`
        (RA's boxes as read), 0/1 (nearest) with `skimage`; padded like the image unless `labels` is `stretched`."""
        data, _ = load_image_2d(path, mid_axial)
        data = data > 0
        if self.labels is LabelGeometry.AS_IMAGE:
            data = self.geometry(data, 0.0)
        if self.resize is Resize.BILINEAR:
            return self.resized(data.astype(np.float32))
        return sk_resize(data, self.target_size, order=0, preserve_range=True, anti_aliasing=False).astype(np.float32)

    def binary(self, path: Path, mid_axial: bool = False, lesion: bool = False) -> np.ndarray:
        """A mask (or, `lesion`, a label) file as booleans at target_size: lesion labels keep every pixel > 0
        with `bilinear` (RA counts non-zero), other masks those > 0.5."""
        return self.label(path, mid_axial) > (0.0 if lesion and self.resize is Resize.BILINEAR else 0.5)

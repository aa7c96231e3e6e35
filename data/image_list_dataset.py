"""iml-dl layout: CSVs with a `filename` column of 2D images (PNG or NIfTI), with
row-parallel label (lesion) and mask CSVs. Images become volumes with D = 1.

A volume-layout split CSV (img_path, mask_path, seg_path columns) is read as the
mid-axial slice of each volume, its mask and its seg (the RA paper's 2D protocol on volumes).
"""

from __future__ import annotations

import csv as csv_module
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import nibabel as nib
import numpy as np
import torch
from skimage import io as skio
from skimage.transform import resize as sk_resize

from data.augmentation import Augmentation
from data.csv_splits import SplitRow, read_file_list, read_volume_split, resolve
from data.interpolation import Interpolation
from data.volume import Volume
from data.volume_dataset import EpochSeededDataset
from dl_utils.errors import UserInputError
from dl_utils.options import parse_option
from dl_utils.param_groups import group_flat_params
from dl_utils.param_ranges import BatchSize, GridSide, SamplesPerEpoch, Seed, Workers
from dl_utils.param_types import ParamsOf, build_part
from dl_utils.paths import flat_name

CsvArg = str | Sequence[str] | None
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


class MaskKind(StrEnum):
    """What the images of a `mask_dir` CSV mark."""

    BRAIN = "brain"  # the brain: maps are evaluated inside it (ours)
    NON_LESION = "non_lesion"  # regions annotated as not anomalous (RA's `*_neg.csv`): kept as
    # Volume.negative for RA's false-positive count; the whole image is evaluated


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


def quantize_8bit(image: torch.Tensor) -> torch.Tensor:
    """RA's training transform: ToPILImage on a float tensor (``mul(255).byte()``, truncating)
    then ToTensor (``/ 255``): intensities in [0, 1] become k / 255."""
    return image.clamp(0, 1).mul(255).to(torch.uint8).to(torch.float32).div(255)


def min_max(image: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] by the image's own min and max (constant -> 0)."""
    lo, hi = float(image.min()), float(image.max())
    return ((image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)).astype(np.float32)


def volume_rows(csv: str | Sequence[str], data_root) -> list[SplitRow] | None:
    """The rows if `csv` is (a list of) volume-layout split CSV(s) (an `img_path` column), else None."""
    paths = [csv] if isinstance(csv, str) else list(csv)
    first = resolve(str(paths[0]), data_root)
    if not first.is_file():
        return None  # read_file_list reports the missing file
    with first.open(newline="", encoding="utf-8-sig") as handle:
        header = [h.strip() for h in next(csv_module.reader(handle), [])]
    if "img_path" not in header or "filename" in header:
        return None
    return [row for p in paths for row in read_volume_split(p, data_root)]


def parallel_files(files: list[Path], csv: CsvArg, data_root, what: str) -> list[Path] | None:
    """The files of a `label_dir` / `mask_dir` CSV (or a list of them), row-parallel to the image
    files `files` (None: no CSV); a different row count is one line naming the CSV."""
    if csv is None:
        return None
    return check_parallel(files, read_file_list(csv, data_root), f"{what} CSV {csv}")


def check_parallel(files: list[Path], other: list[Path], source: str) -> list[Path]:
    """`other`, checked to pair one to one with the image files `files` (the i-th with the i-th)."""
    if len(other) != len(files):
        raise UserInputError(
            f"{source} lists {len(other)} files but there are {len(files)} images; "
            "they must match one to one, in order (the i-th file is the i-th image's)"
        )
    return other


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


# Config version 1: the reading options were flat keys of ImageListSet and ImageListDataModule
# (`labels` came later, only ever inside `reading`).
READING_FLAT_KEYS: dict[str, tuple[str, ...]] = {
    name: ("reading", name) for name in ("target_size", "square", "intensity", "resize", "antialias")
}


class ImageListSet(Sequence):
    """Sequence[Volume] with D = 1 from iml-dl CSVs; label = 1 if the label image has any lesion."""

    def __init__(
        self, csv: str | Sequence[str], data_root: str | None = None, label_dir: CsvArg = None,
        mask_dir: CsvArg = None, mask_kind: MaskKind = MaskKind.BRAIN, reading: ImageReading = ImageReading(),
    ) -> None:
        """csv / label_dir / mask_dir: CSV file(s) with a `filename` column, row-parallel;
        no mask_dir means the whole image is brain. mask_kind: `brain` or `non_lesion` (RA's
        `mask_dir` CSVs); reading: how each file becomes a slice (`ImageReading`). With a
        volume-layout split CSV the masks are its brain masks whatever `mask_kind` says. Flat
        reading keys of earlier configs (`target_size`, ...) are moved by `upgrade_params`."""
        self.reading = reading
        self.target_size = reading.target_size
        self.mask_kind = parse_option(MaskKind, mask_kind, "mask_kind")
        self.square = reading.square
        self.intensity = reading.intensity
        self.resize = reading.resize
        self.antialias = reading.antialias
        rows = volume_rows(csv, data_root)
        self.mid_axial = rows is not None
        if rows is not None:
            if label_dir is not None or mask_dir is not None:
                raise UserInputError(f"{csv} is a volume-layout split: its mask_path / seg_path columns "
                                     "are used, so drop label_dir and mask_dir")
            self.files = [r.img_path for r in rows]
            self.names = [r.img_name for r in rows]
            self.masks = [r.mask_path for r in rows]
            self.labels = [r.seg_path for r in rows] if any(r.seg_path for r in rows) else None
            self.row_labels: list[int] | None = [r.label for r in rows]
        else:
            self.files = read_file_list(csv, data_root)
            self.names = [flat_name(f, data_root) for f in self.files]  # one plain name: it names the map file
            self.labels = parallel_files(self.files, label_dir, data_root, "label_dir")
            self.masks = parallel_files(self.files, mask_dir, data_root, "mask_dir")
            self.row_labels = None
        self.mask_csv = mask_dir
        self.masks_given = self.masks is not None  # recorded with the grid: predict warns when a scan comes without one
        self._cache: dict[int, Volume] = {}
        self._size_warned = False

    def _check_sizes(self, index: int, source: SourceGrid) -> None:
        """One warning per set where a label or mask file's pixel grid is not its image's: it is resized onto the
        image as the originals did, but a list out of order pairs files that way (headers only)."""
        if self._size_warned or self.mid_axial:
            return
        for kind, files in (("label_dir", self.labels), ("mask_dir", self.masks)):
            other = image_shape_2d(Path(files[index])) if files else None
            if other is not None and other != source.shape:
                self._size_warned = True
                LOG.warning("%s: %s is %d x %d pixels but its image %s is %d x %d; it is resized onto the image (and any "
                            "other such file of this set, without another warning): check that the lists pair each image "
                            "with its own file", kind, files[index], *other, self.files[index], *source.shape)
                return

    @staticmethod
    def upgrade_params(params: Mapping[str, Any]) -> dict[str, Any]:
        """This set's params of an earlier config version (flat reading keys) in today's groups."""
        return group_flat_params(params, READING_FLAT_KEYS, "ImageListSet")

    def __len__(self) -> int:
        return len(self.files)

    def _binary(self, path: Path | None, lesion: bool = False) -> np.ndarray | None:
        return None if path is None else self.reading.binary(path, self.mid_axial, lesion)

    def _check_brain_mask(self, mask: np.ndarray, seg: np.ndarray | None, index: int) -> None:
        """A 'brain mask' that holds no pixel of a present lesion is RA's non-lesion mask:
        used as a brain mask it would give NaN AUROC without a word."""
        if seg is not None and seg.any() and not (mask & seg).any():
            raise UserInputError(
                f"mask_dir {self.mask_csv}: {self.masks[index]} holds none of the lesion pixels of "
                f"{self.labels[index]}; it marks non-lesion regions (as RA's *_neg.csv), not the brain: "
                "set mask_kind: non_lesion, or give brain masks"
            )

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = range(len(self))[index]
        if index not in self._cache:
            image, source = self.reading.image(self.files[index], self.mid_axial)
            self._check_sizes(index, source)
            label_values = self.reading.label(self.labels[index], self.mid_axial) if self.labels else None
            seg = None if label_values is None else label_values > (0.0 if self.resize is Resize.BILINEAR else 0.5)
            given = self._binary(self.masks[index]) if self.masks else None
            negative = seg_weights = None
            if given is not None and self.mask_kind is MaskKind.NON_LESION and not self.mid_axial:
                mask, negative = np.ones(self.target_size, bool), given
                if label_values is not None:  # RA's boxes as read: their FP figure weighs the map by them
                    seg_weights = torch.from_numpy(np.where(seg, label_values, 0).astype(np.float32))[..., None]
            elif given is not None:
                self._check_brain_mask(given, seg, index)
                mask = given
            else:
                mask = np.ones(self.target_size, bool)
            self._cache[index] = Volume(
                name=self.names[index],
                image=torch.from_numpy(image.astype(np.float32))[..., None],
                mask=torch.from_numpy(mask)[..., None],
                seg=None if seg is None else torch.from_numpy(seg)[..., None],
                # the slice's own lesion pixels decide (a volume's lesion may miss its mid slice)
                label=int(bool(seg.any())) if seg is not None else int(bool(self.row_labels and self.row_labels[index])),
                affine=self.reading.grid_affine(source),  # its maps overlay the file in a viewer
                negative=None if negative is None else torch.from_numpy(negative)[..., None],
                seg_weights=seg_weights,
            )
        return self._cache[index]


class ImageListSliceDataset(EpochSeededDataset):
    """Items {"image": (1, H, W), "mask": (1, H, W)}; item i is image i % n, augmented
    when `augmentation` is given."""

    def __init__(self, images: ImageListSet, samples_per_epoch: int | None = None,
                 augmentation: Augmentation | None = None, seed: int = 0, quantize: bool = False) -> None:
        """quantize: intensities to k / 255 before the augmentation (`quantize_8bit`, RA's training transform)."""
        super().__init__(len(images), samples_per_epoch, augmentation, seed)
        self.images = images
        self.quantize = bool(quantize)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        volume = self.images[index % len(self.images)]
        image = volume.image[..., 0].unsqueeze(0)
        mask = volume.mask[..., 0].unsqueeze(0).float()
        if self.quantize:
            image = quantize_8bit(image)
        if self.augmentation is not None:
            image, mask = self.augmentation(image, mask, self.seed, self.epoch, index)
        return {"image": image.contiguous(), "mask": mask.contiguous()}


@dataclass(frozen=True)
class MaskLists:
    """Mask CSV(s) row-parallel to the training and validation image CSV(s), and what their images
    mark (`kind`: `brain` or `non_lesion`, see ImageListSet); none: the whole image is brain."""

    train: CsvArg = None
    val: CsvArg = None
    kind: MaskKind = MaskKind.BRAIN

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", parse_option(MaskKind, self.kind, "masks.kind"))


# Config version 1 of ImageListDataModule: flat keys, moved into today's groups by `upgrade_params`.
IMAGE_LIST_DATA_FLAT_KEYS: dict[str, tuple[str, ...]] = {
    **READING_FLAT_KEYS,
    "train_mask_dir": ("masks", "train"),
    "val_mask_dir": ("masks", "val"),
    "mask_kind": ("masks", "kind"),
}


class ImageListDataModule:
    """Training/validation 2D images in the iml-dl layout."""

    def __init__(
        self, train_csv: str | Sequence[str], val_csv: str | Sequence[str], data_root: str | None = None,
        batch_size: BatchSize = 8, num_workers: Workers = 0, samples_per_epoch: SamplesPerEpoch | None = None,
        augmentation: Annotated[Mapping[str, Any] | None, ParamsOf(Augmentation)] = None, seed: Seed = 0,
        reading: ImageReading = ImageReading(),
        masks: MaskLists = MaskLists(), drop_last: bool = False, quantize_training: bool = False,
    ) -> None:
        """reading: how each image file becomes a slice (`ImageReading`, as ImageListSet);
        masks: the mask CSVs of both splits and their kind (`MaskLists`); augmentation:
        Augmentation params (applied to training items only); drop_last: the Trainer drops the
        last incomplete batch; quantize_training: training images to k / 255 before augmentation
        (RA's ToPILImage on a float tensor; validation images are not quantised, as theirs).
        Flat keys of earlier configs (`target_size`, `train_mask_dir`, ...) are moved by `upgrade_params`."""
        if int(batch_size) < 1:
            raise UserInputError(f"data_loader key 'batch_size' = {batch_size}; must be >= 1")
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.reading, self.masks = reading, masks
        self.data_root = data_root  # (what `data.trained_on` reads of the training split)
        self._args = dict(data_root=data_root, mask_kind=masks.kind, reading=reading)
        self.drop_last = bool(drop_last)
        self.quantize_training = bool(quantize_training)
        self.train_csv, self.val_csv = train_csv, val_csv
        self.train_mask_dir, self.val_mask_dir = masks.train, masks.val
        self.samples_per_epoch = samples_per_epoch
        self.augmentation = build_part(Augmentation, augmentation, "augmentation")
        self.seed = int(seed)
        self._train: ImageListSliceDataset | None = None
        self._val: ImageListSliceDataset | None = None

    @staticmethod
    def upgrade_params(params: Mapping[str, Any]) -> dict[str, Any]:
        """This data module's params of an earlier config version (flat keys) in today's groups."""
        return group_flat_params(params, IMAGE_LIST_DATA_FLAT_KEYS, "ImageListDataModule")

    def train_dataset(self) -> ImageListSliceDataset:
        """Augmented training images; has set_epoch(epoch)."""
        if self._train is None:
            images = ImageListSet(self.train_csv, mask_dir=self.train_mask_dir, **self._args)
            self._train = ImageListSliceDataset(images, self.samples_per_epoch, self.augmentation, self.seed,
                                                self.quantize_training)
        return self._train

    def val_dataset(self) -> ImageListSliceDataset:
        """Validation images without augmentation."""
        if self._val is None:
            images = ImageListSet(self.val_csv, mask_dir=self.val_mask_dir, **self._args)
            self._val = ImageListSliceDataset(images, None, None, self.seed)
        return self._val

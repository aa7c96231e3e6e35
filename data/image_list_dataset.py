"""iml-dl layout: CSVs with a `filename` column of 2D images (PNG or NIfTI), with
row-parallel label (lesion) and mask CSVs. Images become volumes with D = 1.

A volume-layout split CSV (img_path, mask_path, seg_path columns) is read as the
mid-axial slice of each volume, its mask and its seg (the RA paper's 2D protocol on volumes).
"""

from __future__ import annotations

import csv as csv_module
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch

from data.augmentation import Augmentation
from data.csv_splits import SplitRow, read_file_list, read_volume_split, resolve
from data.image_reading import ImageReading, Resize, SourceGrid, image_shape_2d
from data.volume import Volume
from data.volume_dataset import EpochSeededDataset
from dl_utils.errors import UserInputError
from dl_utils.options import parse_option
from dl_utils.param_groups import group_flat_params
from dl_utils.param_ranges import BatchSize, SamplesPerEpoch, Seed, Workers
from dl_utils.param_types import ParamsOf, build_part
from dl_utils.paths import flat_name

CsvArg = str | Sequence[str] | None
LOG = logging.getLogger(__name__)


class MaskKind(StrEnum):
    """What the images of a `mask_dir` CSV mark."""

    BRAIN = "brain"  # the brain: maps are evaluated inside it (ours)
    NON_LESION = "non_lesion"  # regions annotated as not anomalous (RA's `*_neg.csv`): kept as
    # Volume.negative for RA's false-positive count; the whole image is evaluated


def quantize_8bit(image: torch.Tensor) -> torch.Tensor:
    """RA's training transform: ToPILImage on a float tensor (``mul(255).byte()``, truncating)
    then ToTensor (``/ 255``): intensities in [0, 1] become k / 255."""
    return image.clamp(0, 1).mul(255).to(torch.uint8).to(torch.float32).div(255)


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

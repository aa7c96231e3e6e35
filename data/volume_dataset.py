"""Volume layout: evaluation sets of whole volumes and 2D slice datasets for training."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

import numpy as np
import torch
from torch.utils.data import Dataset

from data.augmentation import Augmentation, item_generator
from data.csv_splits import Contrast, SplitRow, read_volume_split
from data.nifti_io import load_subject
from data.preprocessing import FlatIntensities, VolumePreprocessor
from data.volume import Volume
from dl_utils.errors import UserInputError
from dl_utils.options import parse_option
from dl_utils.param_groups import group_flat_params
from dl_utils.param_ranges import BatchSize, GridSide, Probability, SamplesPerEpoch, Seed, Workers
from dl_utils.param_types import ParamsOf, build_part

# Mappings the data sets build their parts from (`build_part`), checked key by key against these classes.
PreprocessingParams = Annotated[Mapping[str, Any] | None, ParamsOf(VolumePreprocessor)]
AugmentationParams = Annotated[Mapping[str, Any] | None, ParamsOf(Augmentation)]


def load_volume(row: SplitRow, preprocessor: VolumePreprocessor, strict: bool = False) -> Volume:
    """Load and preprocess one CSV row into a Volume (image (H, W, D) float32 in [0, 1]); `strict`: intensities
    without a range to rescale (a uniform scan) are a UserInputError naming the file (else one log line)."""
    image, mask, seg = load_subject(row.img_path, row.mask_path, row.seg_path, reorient=preprocessor.reorients)
    try:
        img, msk, sg = preprocessor(image.data, mask, seg, spacing=image.spacing, strict=strict)
    except FlatIntensities as exc:
        raise UserInputError(f"{row.img_path}: {exc}") from None
    affine, grid_spacing = preprocessor.output_grid(image.affine, image.data.shape, image.spacing)
    return Volume(
        name=row.img_name,
        image=torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)),
        mask=torch.from_numpy(np.ascontiguousarray(msk, dtype=bool)),
        seg=None if sg is None else torch.from_numpy(np.ascontiguousarray(sg, dtype=bool)),
        label=row.label,
        affine=affine,
        grid_spacing=grid_spacing,
    )


class VolumeSet(Sequence):
    """Sequence[Volume] from a volume-layout CSV.

    `cache: true` loads every volume once and keeps it (small sets, demo). `cache: false`
    keeps only the rows: every file is still read and checked at construction (so bad data
    stops the run before anything is written), and a volume is loaded again when indexed, so
    memory does not grow with the number of volumes (paper-scale test sets)."""

    def __init__(
        self, csv: str, data_root: str | None = None, preprocessing: PreprocessingParams = None,
        mode: Contrast = Contrast.T1, cache: bool = True, keep_list: str | None = None,
    ) -> None:
        """csv: split file (relative to data_root); preprocessing: VolumePreprocessor params;
        mode: t1 | t2, the contrast of img_path (t2: its `t1` folder and file-name suffix -> t2, `contrast_path`);
        keep_list: with t2, the originals' avail_t2.csv (rows without a T2 scan are dropped)."""
        self.csv = csv
        self.data_root = data_root
        self.preprocessor = build_part(VolumePreprocessor, preprocessing, "preprocessing")
        self._rows = read_volume_split(csv, data_root, mode, keep_list)
        if cache:
            self._volumes: list[Volume] | None = [load_volume(r, self.preprocessor) for r in self._rows]
            self._shapes = [tuple(v.image.shape[:3]) for v in self._volumes]
        else:
            self._volumes = None
            self._shapes = []
            for row in self._rows:  # the same checks as loading, nothing kept but each grid
                image, _, _ = load_subject(row.img_path, row.mask_path, row.seg_path, reorient=self.preprocessor.reorients)
                self._shapes.append(tuple(self.preprocessor.output_shape(image.data.shape, image.spacing)[:3]))

    def __len__(self) -> int:
        return len(self._rows)

    def slice_shapes(self) -> dict[tuple[int, int], tuple[int, str]]:
        """{(H, W) of axial slices after preprocessing: (index, file) of the first volume with it}, in CSV
        order (recorded when the set was read: nothing is loaded again)."""
        shapes: dict[tuple[int, int], tuple[int, str]] = {}
        for index, (row, shape) in enumerate(zip(self._rows, self._shapes)):
            shapes.setdefault(shape[:2], (index, str(row.img_path)))
        return shapes

    def thinnest_volume(self) -> tuple[tuple[int, int, int], int, str] | None:
        """((H, W, D), index, file) of the volume with the fewest axial slices after preprocessing (the first
        such in CSV order), None for an empty set; recorded when the set was read, like `slice_shapes`."""
        if not self._shapes:
            return None
        index = min(range(len(self._shapes)), key=lambda i: self._shapes[i][2])
        return self._shapes[index], index, str(self._rows[index].img_path)

    def slice_shape(self) -> tuple[int, int]:
        """(H, W) of every volume's axial slices (after preprocessing); a one-line UserInputError naming
        both files when two differ, since training batches stack slices of one size."""
        first = self._shapes[0][:2]
        for row, shape in zip(self._rows, (s[:2] for s in self._shapes)):
            if shape != first:
                raise UserInputError(
                    f"split CSV {self.csv}: {row.img_path} has {shape[0]}x{shape[1]} slices but {self._rows[0].img_path} "
                    f"has {first[0]}x{first[1]} (after preprocessing); training batches need one slice size: use "
                    "volumes of one grid or set preprocessing crop_shape / target_shape")
        return first

    def __getitem__(self, index):
        if self._volumes is not None:
            return self._volumes[index]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return load_volume(self._rows[index], self.preprocessor)


def eligible_slices(mask: torch.Tensor, min_brain_fraction: float) -> np.ndarray:
    """Axial indices whose brain area is >= min_brain_fraction x the largest slice's area."""
    area = mask.reshape(-1, mask.shape[-1]).sum(0).numpy().astype(float)
    keep = np.flatnonzero(area >= max(min_brain_fraction * area.max(), 1.0))
    return keep if keep.size else np.array([int(area.argmax())])


class SliceSampling(StrEnum):
    """Which axial slices a training item draws from."""

    BRAIN = "brain"  # slices with at least min_brain_fraction of the largest brain area (ours)
    ALL = "all"  # uniformly from all D slices (the originals' vol2slice)


class Validation(StrEnum):
    """What the validation loss (and so the best checkpoint) is computed on."""

    FIXED = "fixed"  # evenly spaced eligible slices of every volume, no augmentation (ours)
    AS_TRAINING = "as_training"  # one random, augmented slice per volume and epoch (the originals)


def voxel_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel size (mm) along each array axis of a (4, 4) affine."""
    return tuple(float(v) for v in np.linalg.norm(np.asarray(affine, float)[:3, :3], axis=0))


class EpochSeededDataset(Dataset):
    """Training items that are a pure function of (seed, epoch, index), so runs are
    reproducible across worker counts and resumes; `samples_per_epoch` items per epoch."""

    def __init__(
        self, num_sources: int, samples_per_epoch: int | None, augmentation: Augmentation | None, seed: int,
    ) -> None:
        self.length = int(samples_per_epoch) if samples_per_epoch else num_sources
        self.augmentation = augmentation
        self.seed = int(seed)
        self.epoch = 0
        self.followers: list[EpochSeededDataset] = []

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose randomness items are drawn from (also for `followers`,
        e.g. a validation set drawn anew each epoch as the training set)."""
        self.epoch = int(epoch)
        for follower in self.followers:
            follower.set_epoch(epoch)

    def __len__(self) -> int:
        return self.length


class SliceTrainDataset(EpochSeededDataset):
    """Item i: one random axial slice of volume i % n, augmented.
    Yields {"image": (1, H, W), "mask": (1, H, W)}.

    slice_sampling: `brain` (eligible slices, see eligible_slices) or `all` (uniform over D);
    augment_volume: augment the whole (H, W, D) volume at its grid spacing (`Volume.grid_spacing`:
    with `voxel_spacing: unit` the originals' 1 mm-frame size, e.g. 2 mm), then slice (the
    originals), instead of augmenting the 2D slice.
    """

    def __init__(
        self, volumes: Sequence[Volume], samples_per_epoch: int | None, augmentation: Augmentation,
        seed: int, min_brain_fraction: float, slice_sampling: SliceSampling = SliceSampling.BRAIN,
        augment_volume: bool = False,
    ) -> None:
        super().__init__(len(volumes), samples_per_epoch, augmentation, seed)
        self.volumes = list(volumes)
        if parse_option(SliceSampling, slice_sampling, "slice_sampling") is SliceSampling.ALL:
            self.slices = [np.arange(v.image.shape[-1]) for v in self.volumes]
        else:
            self.slices = [eligible_slices(v.mask, min_brain_fraction) for v in self.volumes]
        self.augment_volume = bool(augment_volume)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        vol_idx = index % len(self.volumes)
        volume = self.volumes[vol_idx]
        rng = item_generator(self.seed, self.epoch, index)
        z = int(rng.choice(self.slices[vol_idx]))
        if self.augment_volume and self.augmentation.enabled:
            image, mask = self.augmentation(
                volume.image.float(), volume.mask.float(), self.seed, self.epoch, index,
                volume.grid_spacing or voxel_spacing(volume.affine),
            )
            image, mask = image[..., z].unsqueeze(0), mask[..., z].unsqueeze(0)
        else:
            image = volume.image[..., z].unsqueeze(0).float()
            mask = volume.mask[..., z].unsqueeze(0).float()
            image, mask = self.augmentation(image, mask, self.seed, self.epoch, index)
        return {"image": image.contiguous(), "mask": mask.contiguous()}


class SliceValDataset(Dataset):
    """Fixed slices (evenly spaced among the eligible ones) of every volume, no augmentation."""

    def __init__(
        self, volumes: Sequence[Volume], min_brain_fraction: float, slices_per_volume: int | None = None,
    ) -> None:
        self.items: list[tuple[Volume, int]] = []
        for volume in volumes:
            idx = eligible_slices(volume.mask, min_brain_fraction)
            if slices_per_volume and slices_per_volume < idx.size:
                idx = idx[np.linspace(0, idx.size - 1, int(slices_per_volume)).round().astype(int)]
            self.items += [(volume, int(z)) for z in idx]

    def set_epoch(self, epoch: int) -> None:
        """No-op: validation items do not depend on the epoch."""

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        volume, z = self.items[index]
        return {
            "image": volume.image[..., z].unsqueeze(0).float().contiguous(),
            "mask": volume.mask[..., z].unsqueeze(0).float().contiguous(),
        }


@dataclass(frozen=True)
class Slicing:
    """How volumes become 2D items: which axial slices, and whether augmentation comes before slicing.

    sampling: training slices from the `brain` slices (at least `min_brain_fraction` of the
    largest slice's brain area) or from `all` D (the originals); augment_volume: augment the 3D
    volume at its voxel spacing, then slice (the originals), instead of augmenting the slice;
    validation: `fixed` (evenly spaced brain slices, at most `val_per_volume` per volume, no
    augmentation) or `as_training` (the originals: one random augmented slice per validation
    volume and epoch, which the best checkpoint is chosen on)."""

    sampling: SliceSampling = SliceSampling.BRAIN
    min_brain_fraction: Probability = 0.25
    augment_volume: bool = False
    validation: Validation = Validation.FIXED
    val_per_volume: GridSide | None = None  # slices of one volume: at most a grid side

    def __post_init__(self) -> None:
        object.__setattr__(self, "sampling", parse_option(SliceSampling, self.sampling, "slices.sampling"))
        object.__setattr__(self, "validation", parse_option(Validation, self.validation, "slices.validation"))
        if not 0.0 <= float(self.min_brain_fraction) <= 1.0:
            raise UserInputError(f"data_loader key 'slices.min_brain_fraction' = {self.min_brain_fraction}; must be in [0, 1]")


@dataclass(frozen=True)
class ContrastSelection:
    """Which scan of each subject is read: `mode` t1 | t2 (t2 rewrites img_path's `t1` folder and
    file-name suffix, as the originals do); keep_list: with t2, the originals' avail_t2.csv (subjects without T2 dropped)."""

    mode: Contrast = Contrast.T1
    keep_list: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", parse_option(Contrast, self.mode, "contrast.mode"))


# Config version 1 of VolumeDataModule: flat keys, moved into today's groups by `upgrade_params`.
VOLUME_DATA_FLAT_KEYS: dict[str, tuple[str, ...]] = {
    "slice_sampling": ("slices", "sampling"),
    "min_brain_fraction": ("slices", "min_brain_fraction"),
    "augment_volume": ("slices", "augment_volume"),
    "validation": ("slices", "validation"),
    "val_slices_per_volume": ("slices", "val_per_volume"),
    "mode": ("contrast", "mode"),
    "keep_list": ("contrast", "keep_list"),
}


class VolumeDataModule:
    """Training/validation slices from volume-layout CSVs (config `trainer.params.data_loader`)."""

    def __init__(
        self, train_csv: str, val_csv: str, data_root: str | None = None, batch_size: BatchSize = 32,
        num_workers: Workers = 0, samples_per_epoch: SamplesPerEpoch | None = None,
        preprocessing: PreprocessingParams = None, augmentation: AugmentationParams = None,
        seed: Seed = 0, slices: Slicing = Slicing(), contrast: ContrastSelection = ContrastSelection(),
        drop_last: bool = False,
    ) -> None:
        """samples_per_epoch: virtual epoch length (default: number of training volumes);
        preprocessing: VolumePreprocessor params; augmentation: Augmentation params;
        slices: which slices become training / validation items (`Slicing`); contrast: which
        scan of each subject is read (`ContrastSelection`); drop_last: the Trainer drops the
        last incomplete training batch (the originals: on). Flat keys of earlier configs
        (`slice_sampling`, `mode`, ...) are moved into these groups by `upgrade_params`."""
        if int(batch_size) < 1:
            raise UserInputError(f"data_loader key 'batch_size' = {batch_size}; must be >= 1")
        self.train_csv, self.val_csv, self.data_root = train_csv, val_csv, data_root
        self.batch_size = int(batch_size)
        self.num_workers = int(num_workers)
        self.samples_per_epoch = samples_per_epoch
        self.preprocessing = dict(preprocessing or {})
        self.augmentation = build_part(Augmentation, augmentation, "augmentation")
        self.seed = int(seed)
        self.slices, self.contrast = slices, contrast
        self.min_brain_fraction = float(slices.min_brain_fraction)
        self.val_slices_per_volume = slices.val_per_volume
        self.mode = contrast.mode  # the contrast VolumeSet reads (data.trained_on reads it too)
        self.keep_list = contrast.keep_list
        self.slice_sampling = slices.sampling
        self.augment_volume = bool(slices.augment_volume)
        self.validation = slices.validation
        self.drop_last = bool(drop_last)
        self._train: SliceTrainDataset | None = None
        self._train_shape: tuple[int, int] | None = None
        self._val: SliceValDataset | SliceTrainDataset | None = None

    @staticmethod
    def upgrade_params(params: Mapping[str, Any]) -> dict[str, Any]:
        """This data module's params of an earlier config version (flat keys) in today's groups."""
        return group_flat_params(params, VOLUME_DATA_FLAT_KEYS, "VolumeDataModule")

    def _slices(self, volumes: Sequence[Volume], samples: int | None, seed: int) -> SliceTrainDataset:
        return SliceTrainDataset(
            volumes, samples, self.augmentation, seed, self.min_brain_fraction, self.slice_sampling,
            self.augment_volume,
        )

    def _link(self) -> None:
        """A validation set drawn as training follows the training set's epoch."""
        if self._train is not None and isinstance(self._val, SliceTrainDataset) and self._val not in self._train.followers:
            self._train.followers.append(self._val)

    def train_dataset(self) -> SliceTrainDataset:
        """Random augmented slices; has set_epoch(epoch). Built once, volumes cached."""
        if self._train is None:
            volumes = VolumeSet(self.train_csv, self.data_root, self.preprocessing, self.mode, keep_list=self.keep_list)
            self._train_shape = volumes.slice_shape()
            self._train = self._slices(volumes, self.samples_per_epoch, self.seed)
            self._link()
        return self._train

    def val_dataset(self) -> SliceValDataset | SliceTrainDataset:
        """Validation slices: deterministic (`fixed`) or drawn as training (`as_training`)."""
        if self._val is None:
            volumes = VolumeSet(self.val_csv, self.data_root, self.preprocessing, self.mode, keep_list=self.keep_list)
            shape = volumes.slice_shape()
            if self._train_shape is not None and shape != self._train_shape:
                raise UserInputError(f"split CSV {self.val_csv}: validation slices are {shape[0]}x{shape[1]} but training slices "
                                     f"{self._train_shape[0]}x{self._train_shape[1]} (from {self.train_csv}); the model sees "
                                     "both: use volumes of one grid or set preprocessing crop_shape / target_shape")
            if self.validation is Validation.AS_TRAINING:
                self._val = self._slices(volumes, None, self.seed + 1)
            else:
                self._val = SliceValDataset(volumes, self.min_brain_fraction, self.val_slices_per_volume)
            self._link()
        return self._val

"""What the evaluation needs of a model, as Protocols (models in `model_zoo/` satisfy them structurally).

`tests/model_zoo/test_model_contract.py` discovers every `nn.Module` of `model_zoo/`
with a `reconstruct` method and checks it against `ReconstructionModel` at a tiny size.
What the evaluation reads of a data set beyond its volumes is one of the set contracts below: `PreprocessedSet`
(its preprocessing), `ImageReadingSet` (how a 2D image list was read) and `SliceGridSet` (its slice grids);
`tests/core/evaluation/test_evaluation_set_contracts.py` discovers every set that declares one and checks it.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from torch import Tensor, nn

from data.image_list_dataset import MaskKind
from data.image_reading import ImageReading
from data.preprocessing import VolumePreprocessor


@runtime_checkable
class ReconstructionModel(Protocol):
    """What the evaluation needs of a model (`model_zoo/`): in eval mode, x (B, 1, H, W) in
    [0, 1] -> (N, B, 1, H, W) in [0, 1], deterministic for a given torch RNG state."""

    def reconstruct(self, x: Tensor, num_samples: int = 1) -> Tensor: ...


@runtime_checkable
class BatchCappedModel(Protocol):
    """A model that splits its network batch (slices x samples x levels) at `max_batch_size` (None: no cap)."""

    max_batch_size: int | None


@runtime_checkable
class DiffusionModel(Protocol):
    """A model whose cost is its UNet: channels-last and compiling apply to it."""

    unet: nn.Module


@runtime_checkable
class PreprocessedSet(Protocol):
    """An evaluation set whose volumes a `VolumePreprocessor` brought onto the model grid (data/'s
    `VolumeSet`): its settings are recorded with the grid, so `uad predict` brings a scan there alike.
    Other sets (a list of volumes) record the shape alone; 2D image lists their `ImageReadingSet` settings."""

    preprocessor: VolumePreprocessor


@runtime_checkable
class ImageReadingSet(Protocol):
    """An evaluation set of 2D images read by `ImageReading` settings (data/'s `ImageListSet`): they, what
    its mask files mark (`mask_kind`) and whether it had mask files at all (`masks_given`) are recorded with
    the grid, so `uad predict` reads an image file alike (and says so when a scan comes without its mask)."""

    reading: ImageReading
    mask_kind: MaskKind
    masks_given: bool


@runtime_checkable
class SliceGridSet(Protocol):
    """An evaluation set that knows its volumes' axial slice grids without loading them again (data/'s
    `VolumeSet`): {(H, W): (index, file) of the first volume with it}, and its thinnest volume, ((H, W,
    D), index, file). Other sets are read at their first item."""

    def slice_shapes(self) -> dict[tuple[int, int], tuple[int, str]]: ...

    def thinnest_volume(self) -> tuple[tuple[int, int, int], int, str] | None: ...

"""Every evaluation set of the project fills the set contracts it declares (core/evaluation/contracts.py):
`PreprocessedSet` (its preprocessing recorded with the grid, as `uad predict` rebuilds it), `ImageReadingSet`
(its 2D image reading and mask kind recorded likewise; each image one (H, W, 1) slice of the reading's
size) and `SliceGridSet` (the slice grids and thinnest volume it reports are those of its volumes).

The sets are discovered (every project class with `__len__` and `__getitem__` whose instances have a
contract's members), so a new one cannot skip this test: it fails until it has a tiny instance here."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from skimage import io as skio

from core.evaluation.contracts import ImageReadingSet, PreprocessedSet, SliceGridSet
from core.evaluation.result import InputGrid
from data.image_list_dataset import ImageListSet, MaskKind
from data.image_reading import ImageReading
from data.preprocessing import VolumePreprocessor
from data.volume_dataset import VolumeSet
from tests.core.tiny_project import write_split, write_volume
from tests.project_classes import PACKAGES, classes_in, satisfies

CONTRACTS = (PreprocessedSet, ImageReadingSet, SliceGridSet)


def _is_set(cls: type) -> bool:
    """A sequence (of volumes): what the evaluator scores."""
    return callable(getattr(cls, "__len__", None)) and callable(getattr(cls, "__getitem__", None))


IMPLEMENTATIONS = {(contract.__name__, name): cls for contract in CONTRACTS for package in PACKAGES
                   for name, cls in classes_in(package, lambda c, p=contract: _is_set(c) and satisfies(c, p)).items()}


def _volume_set(root: Path) -> VolumeSet:
    """Three 16 x 16 x 8 volumes (one with a lesion) brought onto 16 x 12 x 8."""
    rng = np.random.default_rng(0)
    rows = [write_volume(root, f"v{i}", rng, lesion=i == 1) for i in range(3)]
    write_split(root / "test.csv", rows)
    return VolumeSet("test.csv", str(root), {"crop_shape": None, "percentiles": None, "target_shape": [16, 12, 8]})


def _image_list_set(root: Path) -> ImageListSet:
    """Two non-square PNGs read onto 12 x 12, with non-lesion masks."""
    (root / "png").mkdir()
    for i in range(2):
        skio.imsave(root / "png" / f"i{i}.png", np.full((10, 14), 40 * (i + 1), np.uint8), check_contrast=False)
        skio.imsave(root / "png" / f"i{i}_neg.png", np.full((10, 14), 255, np.uint8), check_contrast=False)
    (root / "list.csv").write_text("filename\npng/i0.png\npng/i1.png\n")
    (root / "neg.csv").write_text("filename\npng/i0_neg.png\npng/i1_neg.png\n")
    return ImageListSet("list.csv", str(root), mask_dir="neg.csv", mask_kind=MaskKind.NON_LESION,
                        reading=ImageReading([12, 12]))


TINY: dict[str, Callable[[Path], object]] = {"VolumeSet": _volume_set, "ImageListSet": _image_list_set}


def test_every_evaluation_set_has_a_tiny_instance_here():
    found = {name for _, name in IMPLEMENTATIONS}
    assert {"VolumeSet", "ImageListSet"} <= found
    assert found == set(TINY), f"add a tiny instance for {sorted(found - set(TINY))}"


def _check_preprocessed(volumes: PreprocessedSet) -> None:
    grid = InputGrid.of(volumes)
    assert isinstance(volumes.preprocessor, VolumePreprocessor)
    assert grid.shape == tuple(volumes[0].image.shape) and VolumePreprocessor(**grid.preprocessing) == volumes.preprocessor
    assert InputGrid.from_json(grid.to_json()) == grid


def _check_image_reading(images: ImageReadingSet) -> None:
    grid = InputGrid.of(images)
    assert isinstance(images.reading, ImageReading) and MaskKind(images.mask_kind) == images.mask_kind
    assert ImageReading(**grid.reading) == images.reading and grid.mask_kind == images.mask_kind  # predict reads alike
    assert grid.masks_given is images.masks_given and isinstance(images.masks_given, bool)  # predict warns from it
    assert all(tuple(image.image.shape) == (*images.reading.target_size, 1) for image in images)  # one 2D slice each
    assert InputGrid.from_json(grid.to_json()) == grid


def _check_slice_grids(volumes: SliceGridSet) -> None:
    shapes = [tuple(v.image.shape) for v in volumes]
    grids = volumes.slice_shapes()
    assert set(grids) == {s[:2] for s in shapes}
    for (h, w), (index, _file) in grids.items():
        assert shapes[index][:2] == (h, w) and all(s[:2] != (h, w) for s in shapes[:index])  # the first with it
    shape, index, _file = volumes.thinnest_volume()
    assert shapes[index] == shape and shape[2] == min(s[2] for s in shapes)


CHECKS = {"PreprocessedSet": _check_preprocessed, "ImageReadingSet": _check_image_reading, "SliceGridSet": _check_slice_grids}


@pytest.mark.parametrize("contract, name", sorted(IMPLEMENTATIONS))
def test_every_evaluation_set_fills_the_contracts_it_declares(contract, name, tmp_path):
    volumes = TINY[name](tmp_path)
    protocol = next(p for p in CONTRACTS if p.__name__ == contract)
    assert isinstance(volumes, protocol)
    CHECKS[contract](volumes)

"""Config version 1 of the data modules (flat keys) builds the same objects as today's typed parts."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from skimage import io as skio

from core.config.builder import ComponentBuilder
from data.image_list_dataset import ImageListDataModule, ImageListSet, MaskLists
from data.image_reading import ImageReading
from data.volume_dataset import ContrastSelection, SliceSampling, Slicing, Validation, VolumeDataModule

VOLUME = {"module_name": "data.volume_dataset", "class_name": "VolumeDataModule"}
IMAGE_MODULE = {"module_name": "data.image_list_dataset", "class_name": "ImageListDataModule"}
IMAGE_SET = {"module_name": "data.image_list_dataset", "class_name": "ImageListSet"}

VOLUME_FLAT = {"train_csv": "t.csv", "val_csv": "v.csv", "batch_size": 4, "min_brain_fraction": 0.4,
               "val_slices_per_volume": 3, "mode": "t2", "slice_sampling": "all", "augment_volume": True,
               "validation": "as_training", "drop_last": True, "keep_list": "splits/avail_t2.csv"}
VOLUME_GROUPED = {"train_csv": "t.csv", "val_csv": "v.csv", "batch_size": 4, "drop_last": True,
                  "slices": {"sampling": "all", "min_brain_fraction": 0.4, "augment_volume": True,
                             "validation": "as_training", "val_per_volume": 3},
                  "contrast": {"mode": "t2", "keep_list": "splits/avail_t2.csv"}}
READING = {"target_size": [32, 32], "square": True, "intensity": "to01", "resize": "bilinear", "antialias": False}
IMAGE_FLAT = {"train_csv": "t.csv", "val_csv": "v.csv", "train_mask_dir": "tm.csv", "val_mask_dir": "vm.csv",
              "mask_kind": "non_lesion", "quantize_training": True, **READING}
IMAGE_GROUPED = {"train_csv": "t.csv", "val_csv": "v.csv", "quantize_training": True, "reading": READING,
                 "masks": {"train": "tm.csv", "val": "vm.csv", "kind": "non_lesion"}}


def _build(spec: dict, params: dict):
    builder = ComponentBuilder("cfg.yaml")
    return builder.build({**spec, "params": params}, "trainer.data_loader")


def test_volume_data_module_flat_and_grouped_build_the_same_object():
    assert VolumeDataModule.upgrade_params(VOLUME_FLAT) == VOLUME_GROUPED
    flat, grouped = _build(VOLUME, VOLUME_FLAT), _build(VOLUME, VOLUME_GROUPED)
    assert vars(flat) == vars(grouped)  # every attribute, the typed parts included
    assert grouped.slices == Slicing(SliceSampling.ALL, 0.4, True, Validation.AS_TRAINING, 3)
    assert grouped.contrast == ContrastSelection("t2", "splits/avail_t2.csv")
    # the attributes other code reads (the Trainer, data.trained_on) keep their names
    assert (grouped.mode, grouped.keep_list, grouped.slice_sampling, grouped.validation) == \
        ("t2", "splits/avail_t2.csv", "all", "as_training")
    assert (grouped.min_brain_fraction, grouped.val_slices_per_volume, grouped.augment_volume) == (0.4, 3, True)


def test_image_list_data_module_flat_and_grouped_build_the_same_object():
    assert ImageListDataModule.upgrade_params(IMAGE_FLAT) == IMAGE_GROUPED
    flat, grouped = _build(IMAGE_MODULE, IMAGE_FLAT), _build(IMAGE_MODULE, IMAGE_GROUPED)
    assert vars(flat) == vars(grouped)  # every attribute, the typed parts included
    assert grouped.reading == ImageReading((32, 32), True, "to01", "bilinear", False)
    assert grouped.masks == MaskLists("tm.csv", "vm.csv", "non_lesion")
    assert (grouped.train_mask_dir, grouped.val_mask_dir, grouped.quantize_training) == ("tm.csv", "vm.csv", True)


def test_image_list_set_flat_and_grouped_read_the_same(tmp_path):
    image = (np.random.default_rng(0).random((20, 30)) * 255).astype(np.uint8)
    skio.imsave(tmp_path / "a.png", image, check_contrast=False)
    (tmp_path / "a.csv").write_text("filename\na.png\n")
    common = {"csv": "a.csv", "data_root": str(tmp_path)}
    assert ImageListSet.upgrade_params({**common, **READING}) == {**common, "reading": READING}
    flat = ComponentBuilder("cfg.yaml").build({**IMAGE_SET, "params": {**common, **READING}}, "data_loader")
    grouped = ComponentBuilder("cfg.yaml").build({**IMAGE_SET, "params": {**common, "reading": READING}}, "data_loader")
    assert flat.reading == grouped.reading and (grouped.target_size, grouped.square) == ((32, 32), True)
    np.testing.assert_array_equal(flat[0].image.numpy(), grouped[0].image.numpy())


def test_a_flat_key_over_a_grouped_base_overrides_it_with_a_warning(caplog):
    """A flat `--set` (or an old config's key) over today's grouped base config wins, naming the grouped key."""
    with caplog.at_level(logging.WARNING):
        module = _build(VOLUME, {**VOLUME_GROUPED, "augment_volume": False})
    assert module.augment_volume is False and module.slices.validation is Validation.AS_TRAINING
    assert "slices.augment_volume" in caplog.text


@pytest.mark.parametrize("params, where", [
    ({"slices": {"sampling": "middle"}}, "trainer.data_loader.params.slices.sampling"),
    ({"slice_sampling": "middle"}, "trainer.data_loader.params.slices.sampling"),
    ({"contrast": {"mode": "flair"}}, "trainer.data_loader.params.contrast.mode"),
    ({"slices": {"min_brain_fraction": 1.5}}, "trainer.data_loader.params.slices.min_brain_fraction"),
])
def test_a_bad_grouped_value_names_its_key_path(params, where):
    from core.config.configurator import ConfigError

    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        ComponentBuilder("cfg.yaml").check({**VOLUME, "params": {"train_csv": "t.csv", "val_csv": "v.csv", **params}},
                                           "trainer.data_loader")

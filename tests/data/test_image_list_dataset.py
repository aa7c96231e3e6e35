"""iml-dl layout: filename CSVs of PNG / NIfTI images with parallel label and mask CSVs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from data_helpers import write_nifti
from skimage import io as skio

from data.image_list_dataset import ImageListDataModule, ImageListSet
from dl_utils.errors import UserInputError


def _csv(path, names):
    path.write_text("filename\n" + "\n".join(names) + "\n")
    return path


@pytest.fixture
def root(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        skio.imsave(tmp_path / f"img{i}.png", (rng.random((20, 24)) * 255).astype(np.uint8), check_contrast=False)
        mask = np.zeros((20, 24), np.uint8)
        mask[2:18, 2:22] = 255
        skio.imsave(tmp_path / f"mask{i}.png", mask, check_contrast=False)
        label = np.zeros((20, 24), np.uint8)
        if i == 2:
            label[5:9, 5:9] = 255
        skio.imsave(tmp_path / f"label{i}.png", label, check_contrast=False)
    write_nifti(tmp_path / "img3.nii.gz", rng.random((20, 24, 1)).astype(np.float32) * 7)
    _csv(tmp_path / "images.csv", [f"img{i}.png" for i in range(3)] + ["img3.nii.gz"])
    _csv(tmp_path / "masks.csv", [f"mask{i}.png" for i in range(3)] + ["mask0.png"])
    _csv(tmp_path / "labels.csv", [f"label{i}.png" for i in range(3)] + ["label0.png"])
    return tmp_path


def test_image_list_set(root):
    iset = ImageListSet("images.csv", str(root), label_dir="labels.csv", mask_dir=["masks.csv"], target_size=[16, 16])
    assert len(iset) == 4
    vols = [iset[i] for i in range(4)]
    assert [v.label for v in vols] == [0, 0, 1, 0]
    for v in vols:
        assert v.image.shape == v.mask.shape == v.seg.shape == (16, 16, 1)
        assert v.image.dtype == torch.float32 and 0 <= v.image.min() and v.image.max() <= 1
        assert v.mask.dtype == torch.bool and v.seg.dtype == torch.bool
    assert len({v.name for v in vols}) == 4 and iset[-1].name == vols[3].name


def test_image_list_data_module(root):
    dm = ImageListDataModule("images.csv", "images.csv", str(root), batch_size=2, target_size=[16, 16],
                             train_mask_dir="masks.csv", samples_per_epoch=6, seed=1)
    train, val = dm.train_dataset(), dm.val_dataset()
    assert len(train) == 6 and len(val) == 4
    item = train[5]
    assert item["image"].shape == item["mask"].shape == (1, 16, 16)
    assert torch.equal(train[5]["image"], item["image"])
    assert val[0]["mask"].all()  # no val mask CSV: whole image is brain


def test_errors(root):
    with pytest.raises(UserInputError, match="nothere.csv"):
        ImageListSet("nothere.csv", str(root))
    (root / "wrong.csv").write_text("path\nimg0.png\n")
    with pytest.raises(UserInputError, match="wrong.csv.*filename"):
        ImageListSet("wrong.csv", str(root))
    _csv(root / "short.csv", ["mask0.png"])
    with pytest.raises(UserInputError, match="short.csv"):
        ImageListSet("images.csv", str(root), mask_dir="short.csv")
    _csv(root / "ghost.csv", ["ghost.png"])
    with pytest.raises(UserInputError, match="ghost.png"):
        ImageListSet("ghost.csv", str(root))[0]

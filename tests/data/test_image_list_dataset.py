"""iml-dl layout: filename CSVs of PNG / NIfTI images with parallel label and mask CSVs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from data_helpers import write_nifti
from skimage import io as skio

from data.image_list_dataset import ImageListDataModule, ImageListSet, ImageReading, MaskLists
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
    iset = ImageListSet("images.csv", str(root), label_dir="labels.csv", mask_dir=["masks.csv"], reading=ImageReading(target_size=[16, 16]))
    assert len(iset) == 4
    vols = [iset[i] for i in range(4)]
    assert [v.label for v in vols] == [0, 0, 1, 0]
    for v in vols:
        assert v.image.shape == v.mask.shape == v.seg.shape == (16, 16, 1)
        assert v.image.dtype == torch.float32 and 0 <= v.image.min() and v.image.max() <= 1
        assert v.mask.dtype == torch.bool and v.seg.dtype == torch.bool
    assert len({v.name for v in vols}) == 4 and iset[-1].name == vols[3].name


def test_image_list_data_module(root):
    dm = ImageListDataModule("images.csv", "images.csv", str(root), batch_size=2, reading=ImageReading(target_size=[16, 16]),
                             masks=MaskLists(train="masks.csv"), samples_per_epoch=6, seed=1)
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


def test_non_lesion_masks_need_their_option(root):
    """RA's mask_dir CSVs mark non-lesion regions; read as brain masks they would exclude every
    lesion pixel (NaN AUROC), so that is refused with the option to set."""
    neg = np.full((20, 24), 255, np.uint8)
    neg[4:10, 4:10] = 0  # everything but (around) the lesion box of label2
    skio.imsave(root / "neg2.png", neg, check_contrast=False)
    _csv(root / "negs.csv", ["mask0.png", "mask1.png", "neg2.png", "mask0.png"])
    iset = ImageListSet("images.csv", str(root), label_dir="labels.csv", mask_dir="negs.csv", reading=ImageReading(target_size=[20, 24]))
    with pytest.raises(UserInputError, match="mask_kind: non_lesion"):
        iset[2]
    ra = ImageListSet("images.csv", str(root), label_dir="labels.csv", mask_dir="negs.csv", reading=ImageReading(target_size=[20, 24]),
                      mask_kind="non_lesion")
    vol = ra[2]
    assert vol.mask.all() and vol.negative is not None
    assert np.array_equal(vol.negative[..., 0].numpy(), neg > 0) and not (vol.negative & vol.seg).any()
    assert iset[0].negative is None


def test_square_padding_keeps_aspect(tmp_path):
    """A non-square slice is padded to square (RA's Pad, value = image min) before resizing."""
    img = np.zeros((20, 40), np.uint8)
    img[5:15, 15:25] = 200  # a 10 x 10 square
    skio.imsave(tmp_path / "wide.png", img, check_contrast=False)
    _csv(tmp_path / "wide.csv", ["wide.png"])
    padded = ImageListSet("wide.csv", str(tmp_path), reading=ImageReading(target_size=[40, 40], square=True, intensity="to01"))[0]
    region = padded.image[..., 0].numpy() > 0.4
    rows, cols = np.flatnonzero(region.any(1)), np.flatnonzero(region.any(0))
    assert rows.size == cols.size == 10  # still square; stretched it would be 20 x 10
    assert rows[0] == 15 and cols[0] == 15  # 10 rows of padding above, centred
    assert padded.image.max() == pytest.approx(200 / 255, abs=1e-6)  # to01: divided by 255
    stretched = ImageListSet("wide.csv", str(tmp_path), reading=ImageReading(target_size=[40, 40]))[0].image[..., 0].numpy() > 0.4
    assert np.flatnonzero(stretched.any(1)).size > 15


def test_bad_image_list_options(root):
    with pytest.raises(UserInputError, match="mask_kind"):
        ImageListSet("images.csv", str(root), mask_kind="healthy")


def test_volume_split_gives_mid_axial_slices(tmp_path):
    """A volume-layout split CSV is read as mid-axial slices (RA's 2D protocol on volumes)."""
    from data_helpers import brain_phantom, write_volume_csv
    image, mask = brain_phantom((20, 24, 7), seed=0)
    seg = np.zeros(mask.shape, np.uint8)
    seg[8:12, 8:12, 3] = 1
    write_nifti(tmp_path / "v.nii.gz", image)
    write_nifti(tmp_path / "v_mask.nii.gz", mask.astype(np.uint8))
    write_nifti(tmp_path / "v_seg.nii.gz", seg)
    write_volume_csv(tmp_path / "split.csv", [{"img_name": "v", "label": "1", "img_path": "v.nii.gz",
                                               "mask_path": "v_mask.nii.gz", "seg_path": "v_seg.nii.gz"}])
    vol = ImageListSet("split.csv", str(tmp_path), reading=ImageReading(target_size=[20, 24]))[0]
    assert vol.label == 1 and vol.image.shape == (20, 24, 1)
    assert np.array_equal(vol.mask[..., 0].numpy(), mask[:, :, 3]) and vol.seg[..., 0].numpy().sum() == 16
    with pytest.raises(UserInputError, match="volume-layout"):
        ImageListSet("split.csv", str(tmp_path), mask_dir="split.csv")

"""iml-dl layout: filename CSVs of PNG / NIfTI images with parallel label and mask CSVs."""
from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from data_helpers import write_nifti
from skimage import io as skio

from data.image_list_dataset import ImageListDataModule, ImageListSet, MaskLists
from data.image_reading import ImageReading, SourceGrid
from data.interpolation import Interpolation
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


def _resampled_by_nibabel(target: np.ndarray, target_affine: np.ndarray, source: SourceGrid, order: int) -> np.ndarray:
    """Independent reference: nibabel (scipy) resamples the target-grid slice, placed by its affine, onto the
    source pixels (edge values extended, as skimage's resize)."""
    from nibabel.processing import resample_from_to

    image = nib.Nifti1Image(target.astype(np.float32)[..., None], target_affine)
    return np.asarray(resample_from_to(image, ((*source.shape, 1), source.affine), order=order, mode="nearest").dataobj)[..., 0]


@pytest.mark.parametrize("square", [True, False])
def test_maps_go_back_onto_the_files_own_pixels(tmp_path, square):
    """`grid_affine` places the target_size slice on the file (a 2D NIfTI with its own affine, 30 x 46 pixels,
    1.5 x 0.8 mm): `to_source` equals nibabel's resampling of the slice through that affine; with `square` the
    padding is cut off; an image read and taken back is the image (smooth content)."""
    affine = np.diag([1.5, 0.8, 3.0, 1.0])
    affine[:3, 3] = (-20.0, 7.0, 2.0)
    y, x = np.mgrid[:30, :46]
    picture = 0.5 + 0.4 * np.sin(x / 9.0) * np.cos(y / 7.0)
    write_nifti(tmp_path / "slice.nii.gz", picture.astype(np.float32)[..., None], affine)
    reading = ImageReading(target_size=[64, 64], square=square, intensity="to01")
    target, source = reading.image(tmp_path / "slice.nii.gz")
    assert source.shape == (30, 46) and np.allclose(source.affine, affine)
    grid = reading.grid_affine(source)
    for order, interpolation in ((1, Interpolation.LINEAR), (0, Interpolation.NEAREST)):
        back = reading.to_source(target, source, interpolation)
        assert back.shape == (30, 46)
        expected = _resampled_by_nibabel(target, grid, source, order)
        inner = (slice(1, -1), slice(1, -1))  # nearest: ties at the exact half-pixel may round either way
        if order == 1:
            np.testing.assert_allclose(back, expected, atol=1e-5)
        else:
            assert np.mean(back[inner] == expected[inner]) > 0.97
    np.testing.assert_allclose(reading.to_source(target, source, Interpolation.LINEAR)[inner], picture[inner], atol=0.01)
    if square:  # the padded square is 46 x 46: 8 rows above the image
        assert np.allclose(grid @ [0, 0, 0, 1], affine @ [46 / 64 / 2 - 0.5 - 8, 46 / 64 / 2 - 0.5, 0, 1])


def test_a_mid_axial_slice_keeps_its_place_in_the_scan(tmp_path):
    """A volume's mid-axial slice (D // 2) carries that slice's affine, so its maps overlay the scan."""
    affine = np.diag([1.0, 1.0, 2.5, 1.0])
    affine[:3, 3] = (5.0, -3.0, 10.0)
    write_nifti(tmp_path / "v.nii.gz", np.random.default_rng(0).random((12, 14, 7)).astype(np.float32), affine)
    _, source = ImageReading(target_size=[12, 14]).image(tmp_path / "v.nii.gz", mid_axial=True)
    assert source.shape == (12, 14) and np.allclose(source.affine @ [0, 0, 0, 1], affine @ [0, 0, 3, 1])


def test_a_one_pixel_high_image_is_still_2d_and_16_bits_under_to01_warn(tmp_path, caplog):
    skio.imsave(tmp_path / "thin.png", np.arange(30, dtype=np.uint8)[None] * 8, check_contrast=False)
    image, source = ImageReading(target_size=[8, 8], square=True).image(tmp_path / "thin.png")
    assert source.shape == (1, 30) and image.shape == (8, 8)
    skio.imsave(tmp_path / "deep.png", (np.arange(64, dtype=np.uint16) * 1000).reshape(8, 8), check_contrast=False)
    reading = ImageReading(target_size=[8, 8], intensity="to01")
    for _ in range(2):  # once per file and reading (a data set's, a checkpoint's), not once per epoch
        reading.image(tmp_path / "deep.png")
    warned = [r.getMessage() for r in caplog.records if "saturate" in r.getMessage()]
    assert len(warned) == 1 and "deep.png" in warned[0]
    caplog.clear()
    ImageReading(target_size=[8, 8]).image(tmp_path / "deep.png")  # min_max: nothing saturates
    assert not caplog.records


def test_image_shape_2d_reads_headers(tmp_path):
    from data.image_reading import image_shape_2d

    skio.imsave(tmp_path / "a.png", np.zeros((7, 9, 3), np.uint8), check_contrast=False)
    write_nifti(tmp_path / "b.nii.gz", np.zeros((5, 6, 1), np.float32))
    write_nifti(tmp_path / "c.nii.gz", np.zeros((5, 6, 4), np.float32))
    (tmp_path / "d.png").write_bytes(b"not a png")
    assert image_shape_2d(tmp_path / "a.png") == (7, 9) and image_shape_2d(tmp_path / "b.nii.gz") == (5, 6)
    assert image_shape_2d(tmp_path / "c.nii.gz") is None and image_shape_2d(tmp_path / "d.png") is None
    assert image_shape_2d(tmp_path / "missing.png") is None


def test_a_label_of_another_size_is_resized_with_one_warning_per_set(tmp_path, caplog):
    """Label / mask files of another pixel size than their images are resized onto them (as the originals did),
    with one warning per set naming the first pair: a list out of order would pair files so."""
    for i in range(2):
        skio.imsave(tmp_path / f"img{i}.png", np.full((20, 24), 100, np.uint8), check_contrast=False)
        label = np.zeros((10, 12), np.uint8)
        label[2:5, 3:6] = 255
        skio.imsave(tmp_path / f"lab{i}.png", label, check_contrast=False)
    _csv(tmp_path / "images.csv", ["img0.png", "img1.png"])
    _csv(tmp_path / "labels.csv", ["lab0.png", "lab1.png"])
    iset = ImageListSet("images.csv", str(tmp_path), label_dir="labels.csv", reading=ImageReading(target_size=[20, 24]))
    assert iset[0].seg.sum() > 0 and iset[1].seg.sum() > 0  # still read, resized onto the image
    warned = [r.getMessage() for r in caplog.records if "pixels but its image" in r.getMessage()]
    assert len(warned) == 1 and warned[0].startswith("label_dir: ") and "10 x 12 pixels" in warned[0] and "20 x 24" in warned[0]
    caplog.clear()
    _csv(tmp_path / "same.csv", ["img0.png", "img1.png"])
    ImageListSet("images.csv", str(tmp_path), mask_dir="same.csv", reading=ImageReading(target_size=[20, 24]))[0]
    assert not caplog.records  # same size: nothing to say

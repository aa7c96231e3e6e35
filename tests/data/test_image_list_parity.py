"""RA's 2D loader (issue 9 item 7, issue 12, issue 18): non-square slices padded to square,
To01, torchvision Resize; the annotation boxes and non-lesion masks as its two label chains
read them.

tests/fixtures/parity_data/ra_loader.npz was recorded by running ci-ber/RA's own transforms
on the PNGs below (see ra_loader.json) with today's antialiased Resize; ra_loader_tv010.npz
with the Resize / ToPILImage of their pinned torchvision 0.10.1 (no antialias on tensors;
see ra_loader_tv010.json). The boxes and masks of both are FastLoader.get_label_transform's
(padded like the image: their training loader's chain, `labels: as_image`). Their evaluation
loaders (test=True) read labels through get_label_transform_test, which FastLoader does not
override: resized without the Pad (`labels: stretched`); ra_loader_test_labels.npz was recorded
by running their FastLoader(test=True) with torchvision 0.10.1's transforms (see its JSON).
Only the recorded arrays live here.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from skimage import io as skio

from data.image_list_dataset import ImageListDataModule, ImageListSet, MaskLists
from data.image_reading import ImageReading

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "parity_data" / "ra_loader.npz"
FIXTURE_TV010 = FIXTURE.with_name("ra_loader_tv010.npz")
FIXTURE_TEST_LABELS = FIXTURE.with_name("ra_loader_test_labels.npz")
RA_READING = ImageReading(target_size=[128, 128], square=True, intensity="to01", resize="bilinear")
RA_OPTIONS = {"reading": RA_READING, "mask_kind": "non_lesion"}
PAPER_READING = replace(RA_READING, antialias=False)  # ra_paper.yaml: torchvision 0.10.1's tensor Resize
PAPER_OPTIONS = dict(RA_OPTIONS, reading=PAPER_READING)


@pytest.fixture
def pngs(tmp_path):
    h, w = 100, 140
    y, x = np.mgrid[0:h, 0:w]
    img = (127 + 100 * np.sin(x / 9.0) * np.cos(y / 13.0)).astype(np.uint8)
    img[30:60, 50:90] = 240
    box = np.zeros((h, w), np.uint8)
    box[30:60, 50:90] = 255
    for name, a in (("img", img), ("box", box), ("neg", (255 - box).astype(np.uint8))):
        skio.imsave(tmp_path / f"{name}.png", a, check_contrast=False)
        (tmp_path / f"{name}.csv").write_text(f"filename\n{name}.png\n")
    y2, x2 = np.mgrid[0:256, 0:320]  # fine texture, padded to 320 and resized 2.5 x down
    big = (120 + 90 * np.sin(x2 / 2.3) * np.cos(y2 / 3.1) + 30 * np.sin((x2 + y2) / 1.7)).clip(0, 255).astype(np.uint8)
    skio.imsave(tmp_path / "big.png", big, check_contrast=False)
    (tmp_path / "big.csv").write_text("filename\nbig.png\n")
    return tmp_path


def test_loader_equals_ra_transforms(pngs):
    ref = np.load(FIXTURE)
    vol = ImageListSet("img.csv", str(pngs), label_dir="box.csv", mask_dir="neg.csv", **RA_OPTIONS)[0]
    np.testing.assert_array_equal(vol.image[..., 0].numpy(), ref["image"])  # padded with the minimum, not stretched
    assert np.array_equal(vol.seg[..., 0].numpy(), ref["box_nonzero"])
    assert np.array_equal(vol.negative[..., 0].numpy(), ref["negative"])
    assert vol.mask.all() and vol.label == 1


def test_our_default_resize_differs(pngs):
    ref = np.load(FIXTURE)
    ours = ImageListSet("img.csv", str(pngs), **dict(RA_OPTIONS, reading=replace(RA_READING, resize="skimage")))[0]
    assert np.abs(ours.image[..., 0].numpy() - ref["image"]).max() > 1e-3


def test_paper_loader_equals_ras_pinned_torchvision(pngs):
    """antialias: false is their torchvision 0.10.1 tensor Resize, bitwise; the boxes keep
    their resized values (fractional at the edges) for the FP figure."""
    ref = np.load(FIXTURE_TV010)
    vol = ImageListSet("img.csv", str(pngs), label_dir="box.csv", mask_dir="neg.csv", **PAPER_OPTIONS)[0]
    np.testing.assert_array_equal(vol.image[..., 0].numpy(), ref["image"])
    np.testing.assert_array_equal(vol.seg_weights[..., 0].numpy(), ref["boxes"])
    assert np.array_equal(vol.seg[..., 0].numpy(), ref["boxes"] != 0)
    assert np.array_equal(vol.negative[..., 0].numpy(), ref["negative"])
    big = ImageListSet("big.csv", str(pngs), **PAPER_OPTIONS)[0].image[..., 0].numpy()
    np.testing.assert_array_equal(big, ref["image_big"])
    antialiased = ImageListSet("big.csv", str(pngs), **RA_OPTIONS)[0].image[..., 0].numpy()
    assert np.abs(antialiased - ref["image_big"]).mean() > 0.01  # the option matters on a 2.5 x downsize


def test_stretched_labels_equal_ras_evaluation_loader(pngs):
    """`labels: stretched` is their test=True label chain (no Pad before the Resize), bitwise:
    box values, box pixels and the thresholded non-lesion mask, beside the padded image."""
    ref = np.load(FIXTURE_TEST_LABELS)
    reading = replace(PAPER_READING, labels="stretched")
    vol = ImageListSet("img.csv", str(pngs), label_dir="box.csv", mask_dir="neg.csv", **dict(PAPER_OPTIONS, reading=reading))[0]
    np.testing.assert_array_equal(vol.image[..., 0].numpy(), ref["image"])  # the image is padded either way
    np.testing.assert_array_equal(vol.seg_weights[..., 0].numpy(), ref["boxes"])
    assert np.array_equal(vol.seg[..., 0].numpy(), ref["boxes"] != 0)
    assert np.array_equal(vol.negative[..., 0].numpy(), ref["negative"])


def test_as_image_labels_are_not_ras_evaluation_labels(pngs):
    """`labels: as_image` (the default) pads them like the image: aligned, and not what their
    evaluation read on a non-square file (their training chain instead, ra_loader_tv010.npz)."""
    ref, padded = np.load(FIXTURE_TEST_LABELS), np.load(FIXTURE_TV010)
    assert PAPER_READING.labels == "as_image"
    vol = ImageListSet("img.csv", str(pngs), label_dir="box.csv", mask_dir="neg.csv", **PAPER_OPTIONS)[0]
    assert not np.array_equal(vol.seg[..., 0].numpy(), ref["boxes"] != 0)
    assert not np.array_equal(vol.negative[..., 0].numpy(), ref["negative"])
    np.testing.assert_array_equal(vol.seg_weights[..., 0].numpy(), padded["boxes"])
    # aligned: the box PNG marks the image's bright 240 rectangle; padded, the box covers it
    bright = vol.image[..., 0].numpy() > 0.9
    assert vol.seg[..., 0].numpy()[bright].all()
    rows = np.nonzero(bright.any(1))[0]
    stretched_rows = np.nonzero((ref["boxes"] != 0).any(1))[0]  # theirs: stretched 1.28 x in H, the image 0.91 x
    assert stretched_rows[0] < rows[0] - 5 and stretched_rows[-1] > rows[-1] + 2  # off the rectangle


def test_training_items_are_quantised_to_8_bits_as_ras_to_pil_image(pngs):
    ref = np.load(FIXTURE_TV010)
    off = {k: 0.0 for k in ("affine_p", "flip_p", "gamma_p", "bias_field_p", "blur_p", "ghosting_p", "noise_p")}
    data = ImageListDataModule("img.csv", "img.csv", str(pngs), quantize_training=True, augmentation=off,
                               reading=PAPER_READING, masks=MaskLists(kind="non_lesion"))
    item = data.train_dataset()[0]["image"][0].numpy()
    np.testing.assert_array_equal(item, ref["train_quantised"])
    assert np.abs(item - ref["image"]).max() > 0  # it did something
    np.testing.assert_array_equal(data.val_dataset()[0]["image"][0].numpy(), ref["image"])  # validation: not quantised


def test_ra_paper_config_states_the_pinned_pipeline():
    """ra_paper.yaml: no antialias (torchvision 0.10.1), 8-bit training items, last batch dropped,
    evaluation labels stretched; each one flag from ours."""
    from core.config.configurator import load_config

    config = load_config(Path(__file__).resolve().parents[2] / "projects/RA/configs/ra_paper.yaml")
    train = config["trainer"]["data_loader"]["params"]
    assert (train["reading"]["antialias"], train["quantize_training"], train["drop_last"]) == (False, True, True)
    evaluation = config["downstream_tasks"]["anomaly_detection"]["data_loader"]["params"]
    assert evaluation["reading"]["antialias"] is False and evaluation["mask_kind"] == "non_lesion"
    assert evaluation["reading"]["labels"] == "stretched"  # their test=True label chain (no Pad)
    assert train["reading"].get("labels", "as_image") == "as_image"  # their training reads no labels
    assert config["downstream_tasks"]["anomaly_detection"]["params"]["detection"]["unit"] == "box"

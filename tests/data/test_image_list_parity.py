"""RA's 2D loader (issue 9 item 7, issue 12): non-square slices padded to square, To01,
torchvision Resize; the annotation boxes and non-lesion masks as its evaluation reads them.

tests/fixtures/parity_data/ra_loader.npz was recorded by running ci-ber/RA's own transforms
on the PNGs below (see ra_loader.json); only the recorded arrays live here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage import io as skio

from data.image_list_dataset import ImageListSet

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "parity_data" / "ra_loader.npz"
RA_OPTIONS = {"target_size": [128, 128], "square": True, "intensity": "to01", "resize": "bilinear",
              "mask_kind": "non_lesion"}


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
    ours = ImageListSet("img.csv", str(pngs), **dict(RA_OPTIONS, resize="skimage"))[0]
    assert np.abs(ours.image[..., 0].numpy() - ref["image"]).max() > 1e-3

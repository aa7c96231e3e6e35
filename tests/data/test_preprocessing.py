"""Crop/pad, percentile rescale, resampling and the composed preprocessor."""
from __future__ import annotations

import numpy as np
import pytest
from data_helpers import brain_phantom

from data.preprocessing import (
    FlatIntensities,
    VolumePreprocessor,
    crop_or_pad,
    percentile_rescale,
    resample_to_shape,
    resampled_affine,
)
from dl_utils.errors import UserInputError


def test_crop_or_pad_shapes_and_centering():
    arr = np.arange(5 * 6 * 7, dtype=np.float32).reshape(5, 6, 7)
    out = crop_or_pad(arr, (9, 4, 7))
    assert out.shape == (9, 4, 7)
    # pad 4 on axis 0 -> 2 each side; crop 2 on axis 1 -> 1 each side
    np.testing.assert_array_equal(out[2:7], arr[:, 1:5])
    assert (out[:2] == 0).all() and (out[7:] == 0).all()


def test_crop_or_pad_around_center():
    arr = np.zeros((10, 10, 10))
    arr[7, 7, 7] = 1
    out = crop_or_pad(arr, (3, 3, 3), center=(7, 7, 7))
    assert out[1, 1, 1] == 1 and out.sum() == 1


def test_percentile_rescale_matches_numpy():
    rng = np.random.default_rng(0)
    image = rng.normal(5, 2, (10, 10, 10)).astype(np.float32)
    mask = np.zeros(image.shape, bool)
    mask[2:8, 2:8, 2:8] = True
    lo, hi = np.percentile(image[mask], [1, 99])
    expected = np.clip((image - lo) / (hi - lo), 0, 1)
    np.testing.assert_allclose(percentile_rescale(image, mask, (1, 99)), expected, rtol=1e-5, atol=1e-6)


def test_resample_orders():
    mask = np.zeros((8, 8, 8), bool)
    mask[2:6, 2:6, 2:6] = True
    out = resample_to_shape(mask, (4, 4, 4), order=0)
    assert out.dtype == bool and out.shape == (4, 4, 4)
    img = resample_to_shape(np.ones((8, 8, 8), np.float32), (5, 6, 7), order=3)
    np.testing.assert_allclose(img, 1.0, atol=1e-5)


def test_resampled_affine_maps_corners():
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    out = resampled_affine(affine, (10, 10, 10), [(0, 10)] * 3, (4, 4, 4))
    np.testing.assert_allclose(out @ [3, 3, 3, 1], [9, 9, 9, 1])


def test_preprocessor_paper_geometry():
    image, mask = brain_phantom((30, 34, 16))
    seg = np.zeros_like(mask)
    seg[12:18, 13:19, 5:11] = True
    pre = VolumePreprocessor(crop_shape=[32, 32, 20], target_shape=[16, 16, 10], pipeline="zoom")
    img, msk, sg = pre(image * 50.0, mask, seg)
    assert img.shape == msk.shape == sg.shape == (16, 16, 10)
    assert img.dtype == np.float32 and 0.0 <= img.min() and img.max() <= 1.0
    assert msk.dtype == bool and sg.dtype == bool and sg.any()
    assert pre.output_shape((30, 34, 16)) == (16, 16, 10)


def test_preprocessor_target_spacing():
    image, mask = brain_phantom((20, 20, 10))
    pre = VolumePreprocessor(crop_shape=None, target_shape=None, target_spacing=[2, 2, 2])
    img, msk, seg = pre(image, mask, None, spacing=(1.0, 1.0, 1.0))
    assert img.shape == (10, 10, 5) and seg is None


@pytest.mark.parametrize("kwargs", [{"crop_shape": [1, 2]}, {"percentiles": [99, 1]},
                                    {"target_shape": [4, 4, 4], "target_spacing": [2, 2, 2]}])
def test_preprocessor_bad_params(kwargs):
    with pytest.raises(UserInputError):
        VolumePreprocessor(**kwargs)


def test_is_identity_when_nothing_is_cropped_rescaled_resampled_or_smoothed():
    """What `uad predict` asks before it re-creates an already-preprocessed grid (the demo's brain box)."""
    none = {"crop_shape": None, "percentiles": None, "target_shape": None}
    assert VolumePreprocessor(**none).is_identity
    assert not VolumePreprocessor().is_identity  # the paper geometry: crop, rescale, resample
    for key, value in (("crop_shape", (8, 8, 8)), ("percentiles", (1, 99)), ("target_shape", (4, 4, 4)),
                       ("target_spacing", (2.0, 2.0, 2.0)), ("curvature_flow", True)):
        assert not VolumePreprocessor(**{**none, key: value}).is_identity, key


@pytest.mark.parametrize("pipeline", ["torchio", "zoom"])
def test_uniform_scan_is_one_log_line_or_refused_when_strict(pipeline, caplog):
    """A uniform brain has no intensity range to rescale: evaluation keeps the image as the pipeline leaves it
    (torchio: unchanged) with one log line and no RuntimeWarning (torchio's is two lines); `strict` (predict)
    refuses it."""
    import warnings

    image = np.zeros((12, 12, 6), np.float32)
    image[2:10, 2:10, 1:5] = 0.5
    mask = image > 0
    pre = VolumePreprocessor(crop_shape=None, percentiles=(1, 99), target_shape=None, pipeline=pipeline)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        img, _, _ = pre(image, mask)
    if pipeline == "torchio":
        np.testing.assert_array_equal(img, image)  # what RescaleIntensity returns for it
    assert [r.getMessage() for r in caplog.records] == [
        "intensities not rescaled to [0, 1]: its intensity percentiles 1 and 99 inside the brain mask are both 0.5 "
        f"(a uniform scan); the {pipeline} pipeline keeps them as they are"]
    with pytest.raises(FlatIntensities, match="are both 0.5 .a uniform scan., so its intensities cannot be rescaled"):
        pre(image, mask, strict=True)
    image[2:6] *= 2.0  # a range (the percentiles differ): no message
    caplog.clear()
    pre(image, mask, strict=True)
    assert not caplog.records

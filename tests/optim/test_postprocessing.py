import numpy as np
import pytest
import torch
from scipy import ndimage

from optim.postprocessing import (
    BrainMaskErosion,
    MedianFilter,
    RemoveSmallComponents,
    apply_map_steps,
)


def _volume(seed: int = 0, shape=(20, 18, 6)):
    rng = np.random.default_rng(seed)
    amap = rng.random(shape).astype(np.float32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    disc = (yy - shape[0] / 2) ** 2 + (xx - shape[1] / 2) ** 2 < (min(shape[:2]) / 2.5) ** 2
    mask = np.repeat(disc[:, :, None], shape[2], axis=2)
    mask[:, :, 0] = False  # an empty slice
    mask[0, :, 1] = True  # touches the image border
    return amap, mask


@pytest.mark.parametrize("structure, rank", [("cross", 1), ("square", 2)])
def test_erosion_matches_scipy_per_slice(structure, rank):
    amap, mask = _volume()
    expected = np.stack(
        [
            amap[:, :, d]
            * ndimage.binary_erosion(mask[:, :, d], ndimage.generate_binary_structure(2, rank), iterations=3)
            for d in range(amap.shape[2])
        ],
        axis=2,
    )
    np.testing.assert_array_equal(BrainMaskErosion(iterations=3, structure=structure)(amap, mask), expected)


def test_median_filter_matches_scipy():
    amap, mask = _volume(1)
    expected = ndimage.median_filter(amap, size=5) * mask
    np.testing.assert_array_equal(MedianFilter(kernel_size=5)(amap, mask), expected)



@pytest.mark.parametrize("step", [BrainMaskErosion(), MedianFilter()])
def test_map_steps_torch_numpy_and_inputs_unchanged(step):
    amap, mask = _volume(3)
    amap_t, mask_t = torch.from_numpy(amap.copy()), torch.from_numpy(mask.copy())
    out_np, out_t = step(amap, mask), step(amap_t, mask_t)
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32 and out_t.device == amap_t.device
    np.testing.assert_array_equal(out_t.numpy(), out_np)
    assert torch.equal(amap_t, torch.from_numpy(amap)) and torch.equal(mask_t, torch.from_numpy(mask))
    assert np.all(out_np[~mask] == 0)


def test_apply_map_steps_order():
    amap, mask = _volume(4)
    steps = [BrainMaskErosion(), MedianFilter()]
    expected = MedianFilter()(BrainMaskErosion()(amap, mask), mask)
    np.testing.assert_array_equal(apply_map_steps(steps, amap, mask), expected)
    assert apply_map_steps([], amap, mask) is amap


def test_remove_small_components_7_and_8_voxels():
    binary = np.zeros((12, 12, 12), dtype=bool)
    binary[1, 1, 1:8] = True  # 7 voxels: removed (originals remove <= 7)
    binary[6:8, 6:8, 6:8] = True  # 8 voxels: kept
    expected = np.zeros_like(binary)
    expected[6:8, 6:8, 6:8] = True
    out = RemoveSmallComponents()(binary)
    np.testing.assert_array_equal(out, expected)
    assert binary[1, 1, 1]  # input unchanged


def test_remove_small_components_connectivity():
    binary = np.zeros((10, 10, 10), dtype=bool)
    for i in range(8):
        binary[i, i, i] = True  # 8 voxels touching only at corners
    # hand: one component under 26-connectivity (kept), eight 1-voxel components under 6 (removed)
    np.testing.assert_array_equal(RemoveSmallComponents(connectivity=26)(binary), binary)
    assert not RemoveSmallComponents(connectivity=6)(binary).any()
    out_t = RemoveSmallComponents()(torch.from_numpy(binary))
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.bool


def test_invalid_options_raise():
    with pytest.raises(ValueError, match="diamond"):
        BrainMaskErosion(structure="diamond")
    with pytest.raises(ValueError, match="connectivity"):
        RemoveSmallComponents(connectivity=8)
    with pytest.raises(ValueError, match="kernel_size"):
        MedianFilter(kernel_size=0)


@pytest.mark.parametrize("step", [MedianFilter(), BrainMaskErosion()])
def test_half_precision_tensor_keeps_dtype(step):
    amap, mask = _volume(5)
    out = step(torch.from_numpy(amap).half(), torch.from_numpy(mask))
    assert out.dtype == torch.float16
    np.testing.assert_allclose(out.float().numpy(), step(amap.astype(np.float16), mask), rtol=1e-3)

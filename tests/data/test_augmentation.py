"""Augmentation: determinism per (seed, epoch, index), alignment, range."""
from __future__ import annotations

import pytest
import torch

from data.augmentation import Affine, Augmentation, Flip, Gamma, Noise, item_seed
from dl_utils.errors import UserInputError
from dl_utils.param_types import build_part

ALL_ON = dict(gamma_p=1.0, bias_field_p=1.0, blur_p=1.0, ghosting_p=1.0, noise_p=1.0, affine_p=1.0)


def flat(**params) -> Augmentation:
    """An Augmentation from config-version-1 flat params, as a data module builds it."""
    return build_part(Augmentation, params, "augmentation")


def _pair(shape):
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(shape, generator=gen)
    mask = torch.zeros(shape)
    mask[..., 4:12, 4:12] = 1.0
    return image, mask


@pytest.mark.parametrize("shape", [(1, 16, 16), (16, 16, 8)])
def test_same_key_same_result_and_rng_untouched(shape):
    aug = flat(**ALL_ON)
    image, mask = _pair(shape)
    torch.manual_seed(123)
    before = torch.rand(3)
    torch.manual_seed(123)
    a_img, a_msk = aug(image, mask, seed=7, epoch=2, index=5)
    after = torch.rand(3)
    b_img, b_msk = aug(image, mask, seed=7, epoch=2, index=5)
    assert torch.equal(before, after)  # global RNG state not consumed
    assert torch.equal(a_img, b_img) and torch.equal(a_msk, b_msk)
    assert a_img.shape == image.shape and a_msk.shape == mask.shape
    assert 0.0 <= a_img.min() and a_img.max() <= 1.0
    assert set(a_msk.unique().tolist()) <= {0.0, 1.0}  # nearest for the mask
    c_img, _ = aug(image, mask, seed=7, epoch=3, index=5)
    assert not torch.equal(a_img, c_img)


def test_item_seed_pure_function():
    assert item_seed(1, 2, 3) == item_seed(1, 2, 3)
    assert len({item_seed(1, e, i) for e in range(3) for i in range(3)}) == 9


def test_disabled_is_identity():
    aug = flat(gamma_p=0, bias_field_p=0, blur_p=0, ghosting_p=0)
    image, mask = _pair((1, 8, 8))
    out_img, out_msk = aug(image, mask, 0, 0, 0)
    assert torch.equal(out_img, image) and torch.equal(out_msk, mask)


def test_affine_keeps_mask_aligned_in_2d():
    aug = flat(gamma_p=0, bias_field_p=0, blur_p=0, ghosting_p=0, affine_p=1.0, affine_degrees=10)
    image, mask = _pair((1, 16, 16))
    image = mask.clone()  # image equal to mask: an aligned warp keeps them equal (up to interpolation)
    out_img, out_msk = aug(image, mask, 0, 0, 1)
    assert out_msk.sum() > 0.8 * mask.sum()
    assert ((out_img > 0.5) == (out_msk > 0.5)).float().mean() > 0.95


def test_bad_probability():
    with pytest.raises(UserInputError, match=r"gamma\.p"):  # config version 1's gamma_p, now gamma.p
        flat(gamma_p=1.5)


def test_flip_mirrors_the_width_axis():
    """flip_p: RA's horizontal flip (torchvision RandomHorizontalFlip flips the last, W, axis)."""
    image = torch.arange(12, dtype=torch.float32).reshape(1, 3, 4) / 12
    mask = torch.ones(1, 3, 4)
    off = {k: 0.0 for k in ("gamma_p", "bias_field_p", "blur_p", "ghosting_p", "noise_p", "affine_p")}
    out, out_mask = flat(**off, flip_p=1.0)(image, mask, 0, 0, 0)
    assert torch.equal(out, image.flip(-1)) and torch.equal(out_mask, mask)


def test_clip_off_keeps_overshoot():
    image = torch.full((1, 4, 4), 0.5)
    off = {k: 0.0 for k in ("bias_field_p", "blur_p", "ghosting_p", "affine_p")}
    noisy = dict(off, gamma_p=0.0, noise_p=1.0, noise_std_max=5.0)
    clipped, _ = flat(**noisy)(image, image, 1, 0, 0)
    raw, _ = flat(**noisy, clip=False)(image, image, 1, 0, 0)
    assert 0 <= clipped.min() and clipped.max() <= 1 and (raw.min() < 0 or raw.max() > 1)


def test_flat_params_build_the_same_parts_as_grouped_ones():
    grouped = Augmentation(affine=Affine(p=1.0, degrees=10.0, interpolation="nearest"), flip=Flip(p=0.5),
                           gamma=Gamma(p=0.0), noise=Noise(p=0.25, std_max=0.1))
    assert flat(affine_p=1.0, affine_degrees=10.0, affine_interpolation="nearest", flip_p=0.5, gamma_p=0.0,
                noise_p=0.25, noise_std_max=0.1) == grouped
    assert build_part(Augmentation, {"affine": {"p": 1.0, "degrees": 10.0, "interpolation": "nearest"}, "flip": {"p": 0.5},
                                     "gamma": {"p": 0.0}, "noise": {"p": 0.25, "std_max": 0.1}}, "augmentation") == grouped

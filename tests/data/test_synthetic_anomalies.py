"""Synthetic anomalies: exact masks inside the brain, expected intensity change."""
from __future__ import annotations

import numpy as np
import pytest
from data_helpers import brain_phantom

from data import synthetic_anomalies as sa


@pytest.fixture
def phantom():
    image, mask = brain_phantom((32, 32, 20), seed=1)
    return image, mask


@pytest.mark.parametrize("family", ["hyper_spheres", "hypo_spheres", "fpi", "deformation"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mask_nonempty_inside_brain_unchanged_outside(phantom, family, seed):
    image, brain = phantom
    rng = np.random.default_rng(seed)
    if family == "fpi":
        donor, _ = brain_phantom((32, 32, 20), seed=9)
        new, mask = sa.fpi(image, brain, rng, donor)
    else:
        new, mask = getattr(sa, family)(image, brain, rng)
    assert mask.dtype == bool and mask.any()
    assert not (mask & ~brain).any()
    np.testing.assert_array_equal(new[~mask], image[~mask])
    assert new.dtype == np.float32 and new.min() >= 0 and new.max() <= 1


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hyper_raises_hypo_lowers(phantom, seed):
    image, brain = phantom
    hyper, m1 = sa.hyper_spheres(image, brain, np.random.default_rng(seed))
    hypo, m2 = sa.hypo_spheres(image, brain, np.random.default_rng(seed))
    assert hyper[m1].mean() > image[m1].mean() + 0.02
    assert hypo[m2].mean() < image[m2].mean() - 0.02


def test_same_rng_same_anomaly(phantom):
    image, brain = phantom
    a = sa.deformation(image, brain, np.random.default_rng(4))
    b = sa.deformation(image, brain, np.random.default_rng(4))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_fpi_mask_is_where_blend_differs(phantom):
    image, brain = phantom
    new, mask = sa.fpi(image, brain, np.random.default_rng(3), np.zeros_like(image), tol=0.05)
    # donor 0: x' = (1 - alpha) x, so every masked voxel got darker by more than tol
    assert (image[mask] - new[mask] > 0.05).all()


def test_soft_ellipsoid_profile():
    w = sa.soft_ellipsoid((21, 21, 21), (10, 10, 10), (8, 8, 8), softness=0.5)
    assert w[10, 10, 10] == 1.0 and w[10, 10, 20] == 0.0 and 0 < w[10, 10, 16] < 1

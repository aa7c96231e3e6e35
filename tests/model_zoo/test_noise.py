"""Noise generators: statistics, independence per sample, the originals' flags."""

import pytest
import torch

from model_zoo.noise import GaussianNoise, NoiseSource, SimplexNoise
from tests.project_classes import classes_in, provides, satisfies


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_simplex_shape_and_unit_statistics():
    z = SimplexNoise().sample((6, 2, 48, 40), generator=_g())
    assert z.shape == (6, 2, 48, 40) and z.dtype == torch.float32
    per_field = z.flatten(2)
    torch.testing.assert_close(per_field.mean(-1), torch.zeros(6, 2), atol=1e-5, rtol=0)
    torch.testing.assert_close(per_field.var(-1), torch.ones(6, 2), atol=1e-4, rtol=0)


def test_simplex_fields_differ_per_sample_and_channel():
    z = SimplexNoise().sample((4, 2, 32, 32), generator=_g()).flatten(2)
    assert (z[0, 0] - z[1, 0]).abs().mean() > 0.3
    assert (z[0, 0] - z[0, 1]).abs().mean() > 0.3


def test_shared_field_repeats_over_the_batch():
    z = SimplexNoise(share_field_across_batch=True).sample((3, 1, 32, 32), generator=_g())
    assert torch.equal(z[0], z[1]) and torch.equal(z[0], z[2])


def test_raw_octave_sum_is_not_unit_variance():
    z = SimplexNoise(normalize_variance=False).sample((4, 1, 64, 64), generator=_g())
    assert abs(z.var().item() - 1.0) > 0.2  # the originals' unscaled noise
    assert z.abs().max() < 1 / (1 - 0.8)  # |octave| <= ~1, amplitudes sum < 1 / (1 - persistence)


def test_deterministic_given_generator():
    a = SimplexNoise().sample((2, 1, 16, 16), generator=_g(3))
    b = SimplexNoise().sample((2, 1, 16, 16), generator=_g(3))
    c = SimplexNoise().sample((2, 1, 16, 16), generator=_g(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_simplex_is_spatially_smooth_compared_to_gaussian():
    # neighbouring pixels of simplex noise (first wavelength 64 px) are strongly correlated
    z = SimplexNoise().sample((4, 1, 64, 64), generator=_g())
    n = GaussianNoise().sample((4, 1, 64, 64), generator=_g())

    def lag1(v):
        return torch.corrcoef(torch.stack([v[..., 1:].flatten(), v[..., :-1].flatten()]))[0, 1]

    assert lag1(z) > 0.5 and abs(lag1(n)) < 0.1


def test_gaussian_statistics():
    n = GaussianNoise().sample((8, 1, 64, 64), generator=_g())
    assert abs(n.mean().item()) < 0.02 and abs(n.var().item() - 1) < 0.03


def test_invalid_simplex_parameters_raise():
    with pytest.raises(ValueError):
        SimplexNoise(octaves=0)


# ---- the NoiseSource contract, over every noise source of model_zoo/ (discovered) ----------------
def _draws_noise(cls: type) -> bool:
    """A class of model_zoo/ with a `sample` method: a noise source, whose contract is `NoiseSource`
    (discovered by `sample` alone, so one lacking `shared_per_call` is found and fails below)."""
    return provides(cls, "sample", method=True) and not getattr(cls, "_is_protocol", False)


NOISE_SOURCES = classes_in("model_zoo", _draws_noise)
SHARED = {"GaussianNoise": False, "SimplexNoise": False, "OpenSimplexNoise": True}  # default construction


def test_every_noise_source_is_listed_here():
    assert set(NOISE_SOURCES) == set(SHARED), f"add {sorted(set(NOISE_SOURCES) - set(SHARED))} to SHARED"


def test_discovery_finds_a_noise_source_missing_a_member():
    class _NoFlag:
        def sample(self, shape, *, device=None, dtype=torch.float32, generator=None):
            return torch.zeros(shape)

    assert _draws_noise(_NoFlag) and not satisfies(_NoFlag, NoiseSource) and not isinstance(_NoFlag(), NoiseSource)


@pytest.mark.parametrize("name", sorted(SHARED))
def test_noise_source_contract(name):
    cls = NOISE_SOURCES[name]
    assert satisfies(cls, NoiseSource)
    noise = cls()
    assert isinstance(noise, NoiseSource) and noise.shared_per_call is SHARED[name]
    for dtype in (torch.float32, torch.float64):
        a = noise.sample((3, 1, 16, 16), dtype=dtype, generator=_g(7))
        assert a.shape == (3, 1, 16, 16) and a.dtype == dtype and torch.isfinite(a).all()
        assert torch.equal(a, noise.sample((3, 1, 16, 16), dtype=dtype, generator=_g(7)))  # the generator decides
    shared = torch.equal(a[0], a[1]) and torch.equal(a[0], a[2])
    assert shared is noise.shared_per_call  # the flag says what a draw does

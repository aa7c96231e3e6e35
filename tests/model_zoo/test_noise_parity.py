"""Simplex noise = the originals' field (recorded from their generate_noise module, see
tests/fixtures/parity/SOURCES.md): same values for a seed, one field per call shared by
every slice, fp16, unscaled (std ~0.54), one draw per noise level and MC sample."""

from pathlib import Path

import numpy as np
import pytest
import torch

from model_zoo.diffusion_models import DDPM, NoiseSettings, ReconstructionSettings
from model_zoo.noise import OpenSimplexNoise, opensimplex_octaves
from model_zoo.unet_adm import UNetArchitecture

FIXTURE = Path(__file__).parents[1] / "fixtures" / "parity" / "opensimplex_field_seed123456789.npz"
# Their gen_noise over 200 calls (96 x 96): per-field std mean 0.5438, min 0.416, max 0.726.
ORIGINAL_STD_MEAN = 0.5438
TINY_UNET = UNetArchitecture(base_channels=8, channel_mult=(1, 2), num_res_blocks=1, num_head_channels=8, num_groups=4)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: threads only add overhead
    yield
    torch.set_num_threads(threads)


def test_field_equals_the_originals_for_a_seed():
    ref = np.load(FIXTURE)["field"]  # Simplex_CLASS.newSeed(123456789); rand_2d_octaves((96, 96), 6, 0.8, 64)
    ours = opensimplex_octaves(96, 96, 123456789, octaves=6, persistence=0.8, frequency=64.0).numpy()
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


# Their Simplex_CLASS().newSeed(seed).rand_2d_octaves((20, 20), 6, 0.8, 64)[::4, ::5]
# (negative, small and > 2**32 seeds: the LCG's int64 overflow path).
SEED_VALUES_ALL = {
    -987654321: [
        0.0, 0.44633809325122, 0.467524010807437, 0.44814168669047, 0.320031861948912,
        1.264116820040637, 0.993238700378136, 1.113017848904922, 0.532463898871611, 1.235691449794605,
        1.309631380083768, 1.372703841613536, 0.222243510986362, 0.64448098183818, 1.134450692190052,
        1.412564777704799, 0.482845173134838, 1.079616029382963, 1.384526663348728, 1.518279186116849,
    ],
    1: [
        0.0, -0.600984662508304, -0.611718424086906, -0.383619174035479, 0.674966518325619,
        -0.101699177301636, 0.04593851645556, -0.461193267655284, 0.547465652440701, 1.010951050873934,
        -0.136241454994621, -0.218299238384252, 0.351734033905516, 0.985185638454769, 0.650096194569698,
        -0.35129160496995, 0.529712942513128, 1.103562958041451, 1.1324572669484, 0.301442475924434,
    ],
    9999999999: [
        0.0, -0.456837078227779, -0.473763140145358, -0.694690106679501, -0.849063066601039,
        -1.0555702615708, -1.139259674948763, -0.386456464844106, -0.793451501529195, -1.49689357444582,
        -1.243608987411468, -1.390801108019527, -0.860104334497935, -1.653542042295684, -1.082285131294762,
        -1.613280633485547, -0.685611817168363, -1.159277074146515, -1.399425330858769, -1.320545444688486,
    ],
}


def test_field_equals_the_originals_for_more_seeds():
    for seed, ref in SEED_VALUES_ALL.items():
        ours = opensimplex_octaves(20, 20, seed)[::4, ::5].ravel().numpy()
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


def test_one_unscaled_fp16_field_per_call_shared_by_the_batch():
    noise = OpenSimplexNoise()
    gen = torch.Generator().manual_seed(0)
    a = noise.sample((32, 1, 96, 96), generator=gen)
    b = noise.sample((32, 1, 96, 96), generator=gen)
    assert a.dtype == torch.float32 and a.shape == (32, 1, 96, 96)
    assert torch.equal(a, a[:1].expand_as(a))  # every slice of the call: the same field
    assert not torch.equal(a[0], b[0])  # a new field per call
    assert torch.equal(a, a.half().float())  # fp16 values, as .half() in the originals
    stds = torch.stack([noise.sample((1, 1, 96, 96), generator=gen).std() for _ in range(60)])
    assert abs(float(stds.mean()) - ORIGINAL_STD_MEAN) < 0.04  # never normalised to 1


def test_generator_makes_draws_reproducible():
    noise = OpenSimplexNoise()
    a = noise.sample((2, 1, 16, 16), generator=torch.Generator().manual_seed(3))
    b = noise.sample((2, 1, 16, 16), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


class _Recorder:
    """Wraps a noise source and records the shape of every draw."""

    def __init__(self, inner):
        self.inner, self.shapes, self.draws = inner, [], []
        self.shared_per_call = inner.shared_per_call

    def sample(self, shape, **kw):
        out = self.inner.sample(shape, **kw)
        self.shapes.append(tuple(shape))
        self.draws.append(out)
        return out


@pytest.mark.parametrize("mode, draws", [("ensemble", 3 * 2), ("one_step", 2)])
def test_reconstruct_draws_once_per_level_and_sample_for_all_slices(mode, draws):
    """The originals: gen_noise(input.shape) per ENS level / MC sample, input = all slices."""
    model = DDPM(image_size=16, unet=TINY_UNET, noise_source=NoiseSettings(kind="opensimplex"),
                 reconstruction=ReconstructionSettings(mode=mode, clamp=False)).eval()
    model.noise = rec = _Recorder(model.noise)
    model.reconstruct(torch.rand(5, 1, 16, 16), num_samples=2)
    assert rec.shapes == [(5, 1, 16, 16)] * draws
    assert all(torch.equal(d, d[:1].expand_as(d)) for d in rec.draws)


def test_unshared_noise_is_still_drawn_in_one_call():
    """Per-pixel or per-slice noise needs no per-group draws (same RNG use as before)."""
    model = DDPM(image_size=16, unet=TINY_UNET, noise_source=NoiseSettings(kind="gaussian"),
                 reconstruction=ReconstructionSettings(mode="ensemble")).eval()
    model.noise = rec = _Recorder(model.noise)
    model.reconstruct(torch.rand(5, 1, 16, 16), num_samples=2)
    assert rec.shapes == [(3 * 2 * 5, 1, 16, 16)]


def test_training_draws_one_field_for_the_whole_batch():
    model = DDPM(image_size=16, unet=TINY_UNET, noise_source=NoiseSettings(kind="opensimplex"))
    model.noise = rec = _Recorder(model.noise)
    model.training_loss(torch.rand(6, 1, 16, 16))
    assert rec.shapes == [(6, 1, 16, 16)]


def test_reconstructions_unclamped_when_asked():
    model = DDPM(image_size=16, unet=TINY_UNET, noise_source=NoiseSettings(kind="opensimplex"),
                 reconstruction=ReconstructionSettings(clamp=False)).eval()
    with torch.no_grad():
        model.unet.out[-1].bias.fill_(5.0)  # the network predicts x0 = 5 everywhere
    rec = model.reconstruct(torch.rand(2, 1, 16, 16))
    torch.testing.assert_close(rec, torch.full_like(rec, 3.0))  # (5 + 1) / 2, not clipped to 1

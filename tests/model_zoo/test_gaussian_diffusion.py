"""GaussianDiffusion: schedules against hand computations, q_sample statistics,
targets, losses and every reconstruction mode with an oracle network."""

import math

import pytest
import torch

from model_zoo.gaussian_diffusion import GaussianDiffusion, ReconstructionMode
from model_zoo.noise import GaussianNoise


def _cosine_alpha_bar(index: int, T: int = 1000, s: float = 0.008) -> float:
    # Nichol & Dhariwal: f(u) = cos(((u / T + s) / (1 + s)) * pi / 2) ** 2,
    # alpha_bar at index i (i + 1 noising steps) = f(i + 1) / f(0) (no beta clipping before the last steps)
    f = lambda u: math.cos(((u / T + s) / (1 + s)) * math.pi / 2) ** 2  # noqa: E731
    return f(index + 1) / f(0)


@pytest.mark.parametrize("index", [0, 249, 499, 749])
def test_cosine_alpha_bar_matches_hand_computation(index):
    d = GaussianDiffusion(1000, "cosine")
    assert d.alphas_cumprod[index].item() == pytest.approx(_cosine_alpha_bar(index), rel=1e-5, abs=1e-7)


def test_cosine_betas_are_clipped_at_0_999():
    d = GaussianDiffusion(1000, "cosine")
    assert d.betas.max().item() == pytest.approx(0.999)


def test_linear_alpha_bar_matches_hand_computation():
    # beta_i = 1e-4 * k + i * (0.02 - 1e-4) * k / (T - 1), k = 1000 / T; alpha_bar_i = prod_{j<=i} (1 - beta_j)
    T, k = 200, 1000 / 200
    d = GaussianDiffusion(T, "linear")
    expected = 1.0
    for j in range(100):
        expected *= 1 - (1e-4 * k + j * (0.02 - 1e-4) * k / (T - 1))
    assert d.alphas_cumprod[99].item() == pytest.approx(expected, rel=1e-5)


def test_q_sample_mean_and_variance():
    d = GaussianDiffusion()
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((4000, 1, 4, 4), 0.5)
    t = torch.full((4000,), 499, dtype=torch.long)
    x_t = d.q_sample(x0, t, torch.randn(x0.shape, generator=g))
    ab = _cosine_alpha_bar(499)
    assert x_t.mean().item() == pytest.approx(math.sqrt(ab) * 0.5, abs=0.01)
    assert x_t.var().item() == pytest.approx(1 - ab, abs=0.01)


def test_predict_x0_recovers_x0_for_both_targets():
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.rand(3, 1, 8, 8, generator=g) * 2 - 1, torch.randn(3, 1, 8, 8, generator=g)
    t = torch.tensor([0, 400, 900])
    eps_model = GaussianDiffusion(target="noise")
    x_t = eps_model.q_sample(x0, t, noise)
    torch.testing.assert_close(eps_model.predict_x0(noise, x_t, t), x0, atol=1e-4, rtol=0)
    torch.testing.assert_close(eps_model.predict_noise(x0, x_t, t), noise, atol=1e-3, rtol=0)
    x0_model = GaussianDiffusion(target="x0")
    torch.testing.assert_close(x0_model.predict_x0(x0, x_t, t), x0)


def _oracle(d: GaussianDiffusion, x0: torch.Tensor):
    """A perfect network for inputs built from x0 (repeated to the batch as needed)."""

    def net(x_t, t, cond):
        ref = x0.repeat(x_t.shape[0] // x0.shape[0], 1, 1, 1)
        if d.target == "x0":
            return ref
        return d.predict_noise(ref, x_t, t)

    return net


@pytest.mark.parametrize("target, loss", [("x0", "l1"), ("noise", "l2")])
def test_training_loss_is_zero_for_an_oracle(target, loss):
    d = GaussianDiffusion(target=target, loss=loss)
    x0 = torch.rand(4, 1, 8, 8) * 2 - 1
    value = d.training_loss(_oracle(d, x0), x0, torch.randn_like(x0), generator=torch.Generator().manual_seed(0))
    assert value.item() < 1e-4


@pytest.mark.parametrize("mode", list(ReconstructionMode))
@pytest.mark.parametrize("target", ["x0", "noise"])
def test_reconstruction_modes_with_oracle_return_x0(mode, target):
    d = GaussianDiffusion(target=target)
    x0 = torch.rand(2, 1, 8, 8) * 1.8 - 0.9
    rec = d.noise_and_denoise(_oracle(d, x0), x0, GaussianNoise(), mode=mode, t_test=300, sampling_steps=7, eta=0.5)
    assert rec.shape == x0.shape
    torch.testing.assert_close(rec, x0, atol=2e-3, rtol=0)


def test_ensemble_runs_all_levels_in_one_batch():
    d = GaussianDiffusion()
    x0 = torch.zeros(2, 1, 8, 8)
    calls = []

    def net(x_t, t, cond):
        calls.append(t.tolist())
        return torch.zeros_like(x_t)

    d.noise_and_denoise(net, x0, GaussianNoise(), mode="ensemble", ensemble_levels=(250, 500, 750))
    assert calls == [[249, 249, 499, 499, 749, 749]]  # levels count steps 1..T, index = level - 1


def test_step_indices_and_max_batch():
    d = GaussianDiffusion()
    assert d.step_indices(500, 5) == [499, 374, 250, 125, 0]
    assert d.step_indices(3, 50) == [2, 1, 0]
    sizes = []

    def net(x_t, t, cond):
        sizes.append(x_t.shape[0])
        return x_t

    d.noise_and_denoise(net, torch.zeros(5, 1, 4, 4), GaussianNoise(), max_batch=2)
    assert sizes == [2, 2, 1]


def test_invalid_options_raise():
    with pytest.raises(ValueError, match="beta_schedule"):
        GaussianDiffusion(beta_schedule="quadratic")
    with pytest.raises(ValueError, match="reconstruction_mode"):
        GaussianDiffusion().noise_and_denoise(lambda *a: a[0], torch.zeros(1, 1, 4, 4), GaussianNoise(), mode="magic")
    with pytest.raises(ValueError, match="outside"):
        GaussianDiffusion().noise_and_denoise(lambda *a: a[0], torch.zeros(1, 1, 4, 4), GaussianNoise(), t_test=0)

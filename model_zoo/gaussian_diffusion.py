"""The Gaussian diffusion process: schedule, forward noising, loss and reconstruction.

The process owns the schedule; the network (any ``net(x_t, t, cond) -> Tensor``) knows
none. Everything here works on images in [-1, 1]; the model wrapper
(``model_zoo.diffusion_models``) converts from and to [0, 1].

Timesteps: ``t`` arguments of ``q_sample``/``predict_x0``/the network are indices
0..T-1 (index i = i + 1 noising steps). Reconstruction levels (``t_test``, the ensemble
list) count noising steps 1..T and run at index ``level - 1``, as the DDPM/cDDPM code
does (``t=t-1``): ``t_test=500`` is index 499.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import Tensor, nn

from dl_utils.options import parse_option
from dl_utils.param_ranges import DiffusionSteps
from dl_utils.pixel_loss import PixelLoss, pixel_loss
from dl_utils.progress import progress
from model_zoo.noise import NoiseSource

Net = Callable[[Tensor, Tensor, Tensor | None], Tensor]


class BetaSchedule(StrEnum):
    COSINE = "cosine"
    LINEAR = "linear"


class Target(StrEnum):
    X0 = "x0"
    NOISE = "noise"


class ReconstructionMode(StrEnum):
    ONE_STEP = "one_step"
    ENSEMBLE = "ensemble"
    DDPM = "ddpm"
    DDIM = "ddim"


def cosine_betas(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Nichol & Dhariwal: alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) * pi/2) / alpha_bar(0),
    beta_t = min(1 - alpha_bar(t) / alpha_bar(t-1), max_beta). -> (T,) float64."""
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((steps + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(0, max_beta)


def linear_betas(timesteps: int, start: float = 1e-4, end: float = 0.02) -> Tensor:
    """Ho et al.: linear from start to end, both scaled by 1000 / T. -> (T,) float64."""
    scale = 1000.0 / timesteps
    return torch.linspace(start * scale, end * scale, timesteps, dtype=torch.float64)


def _at(values: Tensor, t: Tensor, ndim: int) -> Tensor:
    """values (T,), t (B,) long -> (B, 1, ..., 1) with ndim dims."""
    return values[t].reshape(-1, *([1] * (ndim - 1)))


@dataclass(frozen=True)
class DiffusionProcess:
    """The diffusion process a model trains and reconstructs with (``GaussianDiffusion``'s arguments).

    timesteps: T; beta_schedule: ``cosine`` (the papers) or ``linear``; target: what the network
    predicts, ``x0`` (the papers) or ``noise``; loss: ``l1`` (the papers) or ``l2``."""

    timesteps: DiffusionSteps = 1000
    beta_schedule: BetaSchedule = BetaSchedule.COSINE
    target: Target = Target.X0
    loss: PixelLoss = PixelLoss.L1

    def build(self) -> GaussianDiffusion:
        return GaussianDiffusion(self.timesteps, self.beta_schedule, self.target, self.loss)


class GaussianDiffusion(nn.Module):
    """DDPM forward process and denoising, images in [-1, 1].

    Args:
        timesteps: T.
        beta_schedule: "cosine" (s = 0.008, max beta 0.999) or "linear" (1e-4..0.02 x 1000/T).
        target: what the network predicts, "x0" (DDPM/cDDPM) or "noise".
        loss: "l1" (DDPM/cDDPM) or "l2", mean over pixels and batch.

    Buffers (float32, not saved in checkpoints; rebuilt from the arguments): betas,
    alphas_cumprod (T,).
    """

    def __init__(
        self,
        timesteps: DiffusionSteps = 1000,
        beta_schedule: BetaSchedule = BetaSchedule.COSINE,
        target: Target = Target.X0,
        loss: PixelLoss = PixelLoss.L1,
    ) -> None:
        super().__init__()
        if timesteps < 1:
            raise ValueError(f"GaussianDiffusion: timesteps={timesteps} must be >= 1")
        self.timesteps = timesteps
        self.beta_schedule = parse_option(BetaSchedule, beta_schedule, "beta_schedule")
        self.target = parse_option(Target, target, "target")
        self.loss_type = parse_option(PixelLoss, loss, "loss")
        betas = cosine_betas(timesteps) if self.beta_schedule == BetaSchedule.COSINE else linear_betas(timesteps)
        alphas_cumprod = torch.cumprod(1 - betas, dim=0)
        self.register_buffer("betas", betas.float(), persistent=False)
        self.register_buffer("alphas_cumprod", alphas_cumprod.float(), persistent=False)

    # ----------------------------------------------------------------- process
    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
        """x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) noise. x0, noise (B, ...), t (B,) -> (B, ...)."""
        ab = _at(self.alphas_cumprod, t, x0.ndim)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def predict_x0(self, model_out: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """The network output as an x0 estimate (B, ...) for either target."""
        if self.target == Target.X0:
            return model_out
        ab = _at(self.alphas_cumprod, t, x_t.ndim)
        return (x_t - (1 - ab).sqrt() * model_out) / ab.sqrt()

    def predict_noise(self, x0_hat: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """The noise implied by an x0 estimate: (x_t - sqrt(ab) x0_hat) / sqrt(1 - ab)."""
        ab = _at(self.alphas_cumprod, t, x_t.ndim)
        return (x_t - ab.sqrt() * x0_hat) / (1 - ab).sqrt()

    def training_loss(
        self,
        net: Net,
        x0: Tensor,
        noise: Tensor,
        cond: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Loss at t ~ U{0..T-1}: x0, noise (B, C, H, W) in [-1, 1] -> scalar."""
        gen_device = generator.device if generator is not None else x0.device
        t = torch.randint(0, self.timesteps, (x0.shape[0],), generator=generator, device=gen_device).to(x0.device)
        out = net(self.q_sample(x0, t, noise), t, cond)
        target = x0 if self.target == Target.X0 else noise
        return pixel_loss(self.loss_type, out, target)

    # ---------------------------------------------------------- reconstruction
    def _index(self, level: int) -> int:
        if not 1 <= level <= self.timesteps:
            raise ValueError(f"noise level {level} outside 1..{self.timesteps}")
        return level - 1

    @staticmethod
    def _run(net: Net, x: Tensor, t: Tensor, cond: Tensor | None, max_batch: int | None) -> Tensor:
        """net over the batch in chunks of at most max_batch (None: one call)."""
        if max_batch is None or x.shape[0] <= max_batch:
            return net(x, t, cond)
        parts = []
        for s in range(0, x.shape[0], max_batch):
            c = cond[s : s + max_batch] if cond is not None else None
            parts.append(net(x[s : s + max_batch], t[s : s + max_batch], c))
        return torch.cat(parts)

    def denoise_once(
        self, net: Net, x_t: Tensor, t: Tensor, cond: Tensor | None, clip: bool = True, max_batch: int | None = None
    ) -> Tensor:
        """One network pass: x_t (B, ...), t (B,) -> x0_hat (B, ...), clamped to [-1, 1] if clip."""
        x0_hat = self.predict_x0(self._run(net, x_t, t, cond, max_batch), x_t, t)
        return x0_hat.clamp(-1, 1) if clip else x0_hat

    def noise_and_denoise(
        self,
        net: Net,
        x0: Tensor,
        noise: NoiseSource,
        cond: Tensor | None = None,
        mode: ReconstructionMode = ReconstructionMode.ONE_STEP,
        t_test: int = 500,
        ensemble_levels: Sequence[int] = (250, 500, 750),
        sampling_steps: int | None = None,
        eta: float = 0.0,
        clip: bool = True,
        max_batch: int | None = None,
        generator: torch.Generator | None = None,
        groups: int = 1,
    ) -> Tensor:
        """Noise x0 (B, C, H, W) in [-1, 1] to a level and denoise it with `net` -> x0_hat (B, C, H, W).

        (Not `reconstruct`: that name is the models' `ReconstructionModel` contract, x in [0, 1]
        alone; this is the process step a model's `reconstruct` runs its network through.)

        groups: x0 stacks this many copies (e.g. MC samples) of B / groups slices; a noise
        whose draw shares one field over the batch (``shared_per_call``) is drawn per copy
        and per ensemble level, as the originals called their noise once per reconstruction.
        clip: clamp x0_hat to [-1, 1] (the originals' one-step reconstructions: no clamp).

        one_step: x_t = q_sample(x0, t_test), x0_hat = net(x_t, t_test) (one pass).
        ensemble: mean of one_step over ``ensemble_levels``, all levels in one batch.
        ddpm / ddim: iterative from t_test to 0 over ``sampling_steps`` evenly spaced
            steps (None: every step for ddpm, 50 for ddim); ddpm samples the posterior,
            ddim is deterministic for eta = 0.
        """
        mode = parse_option(ReconstructionMode, mode, "reconstruction_mode")

        if groups < 1 or x0.shape[0] % groups:
            raise ValueError(f"groups={groups} must divide the batch of {x0.shape[0]}")

        def draw(shape: tuple[int, ...]) -> Tensor:
            """Noise for shape; a batch-shared noise draws once per group of shape[0] / parts slices."""
            parts = groups * (shape[0] // x0.shape[0]) if noise.shared_per_call else 1
            part = (shape[0] // parts, *shape[1:])
            kw = {"device": x0.device, "dtype": x0.dtype, "generator": generator}
            return torch.cat([noise.sample(part, **kw) for _ in range(parts)]) if parts > 1 else noise.sample(shape, **kw)

        if mode == ReconstructionMode.ENSEMBLE:
            k, b = len(ensemble_levels), x0.shape[0]
            idx = torch.tensor([self._index(lv) for lv in ensemble_levels], device=x0.device)
            t = idx.repeat_interleave(b)
            x_rep = x0.repeat(k, *([1] * (x0.ndim - 1)))
            c_rep = cond.repeat(k, 1) if cond is not None else None
            x_t = self.q_sample(x_rep, t, draw(tuple(x_rep.shape)))
            x0_hat = self.denoise_once(net, x_t, t, c_rep, clip, max_batch)
            return x0_hat.reshape(k, *x0.shape).mean(0)
        t = torch.full((x0.shape[0],), self._index(t_test), device=x0.device, dtype=torch.long)
        x_t = self.q_sample(x0, t, draw(tuple(x0.shape)))
        if mode == ReconstructionMode.ONE_STEP:
            return self.denoise_once(net, x_t, t, cond, clip, max_batch)
        if sampling_steps is None:
            sampling_steps = t_test if mode == ReconstructionMode.DDPM else 50
        step_eta = 1.0 if mode == ReconstructionMode.DDPM else eta
        return self.sample_from(net, x_t, t_test, cond, sampling_steps, step_eta, draw, clip, max_batch)

    def step_indices(self, t_test: int, sampling_steps: int) -> list[int]:
        """Decreasing indices from t_test - 1 towards 0, ``sampling_steps`` of them (at most t_test)."""
        start = self._index(t_test)
        steps = max(1, min(sampling_steps, t_test))
        grid = torch.linspace(start, 0, steps, dtype=torch.float64).round().long().tolist()
        return sorted(set(grid), reverse=True)

    def sample_from(
        self,
        net: Net,
        x_t: Tensor,
        t_test: int,
        cond: Tensor | None,
        sampling_steps: int,
        eta: float,
        draw: Callable[[tuple[int, ...]], Tensor],
        clip: bool = True,
        max_batch: int | None = None,
    ) -> Tensor:
        """Generalised DDIM sampling (eta = 1: the DDPM posterior) from x_t at level t_test.

        Step from index s to the next index p (ab_p = 1 after the last):
        x_p = sqrt(ab_p) x0_hat + sqrt(1 - ab_p - sigma^2) eps_hat + sigma z,
        sigma = eta sqrt((1 - ab_p) / (1 - ab_s) (1 - ab_s / ab_p)). Returns x0 (B, ...).
        """
        indices = self.step_indices(t_test, sampling_steps)
        x = x_t
        for i, s in enumerate(progress(indices, desc="denoising steps", unit="step")):  # bar on a TTY only
            t = torch.full((x.shape[0],), s, device=x.device, dtype=torch.long)
            x0_hat = self.denoise_once(net, x, t, cond, clip, max_batch)
            if i == len(indices) - 1:
                return x0_hat
            eps_hat = self.predict_noise(x0_hat, x, t)
            ab_s, ab_p = self.alphas_cumprod[s], self.alphas_cumprod[indices[i + 1]]
            sigma = eta * ((1 - ab_p) / (1 - ab_s) * (1 - ab_s / ab_p)).clamp_min(0).sqrt()
            x = ab_p.sqrt() * x0_hat + (1 - ab_p - sigma**2).clamp_min(0).sqrt() * eps_hat
            if eta > 0:
                x = x + sigma * draw(tuple(x.shape))
        return x

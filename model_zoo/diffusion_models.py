"""DDPM and cDDPM reconstruction models (Behrendt et al.): UNetADM + GaussianDiffusion + noise.

Constructor arguments are flat plain values (the YAML ``params``):
- UNet: the ``UNetADM`` argument names (``base_channels``, ``channel_mult``, ...).
- Process: ``timesteps``, ``beta_schedule``, ``target``, ``loss``.
- Noise: ``noise`` ("opensimplex" = the originals' shared unscaled field | "simplex" |
  "gaussian") and ``simplex_*`` for ``OpenSimplexNoise`` / ``SimplexNoise``.
- Test: ``reconstruction_mode``, ``t_test``, ``ensemble_timesteps``, ``sampling_steps``,
  ``ddim_eta``, ``max_batch_size``.
- Output: ``clamp_reconstruction`` (the originals return x0_hat unclamped).
- cDDPM adds ``encoder_arch``, ``cond_dim``, ``encoder_drop_path_rate``, ``encoder_zero_init_last``.

Inputs and outputs are slices (B, 1, H, W) in [0, 1]; the process runs in [-1, 1].
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated

import torch
from torch import Tensor, nn

from dl_utils.errors import UserInputError
from dl_utils.options import parse_option
from dl_utils.param_types import Ge, Lt, NonNegativeFloat, PositiveFloat, PositiveInt
from dl_utils.pixel_loss import PixelLoss
from dl_utils.weights import load_strict
from model_zoo.condition_encoder import ConditionEncoder, ResNetArch
from model_zoo.gaussian_diffusion import BetaSchedule, GaussianDiffusion, ReconstructionMode, Target
from model_zoo.noise import GaussianNoise, NoiseSource, OpenSimplexNoise, SimplexNoise
from model_zoo.unet_adm import UNetADM

ORIGINAL_UNET_PREFIX = "diffusion.model."
"""Where the originals' DDPM_2D (cDDPM and MHD code alike) keeps the OpenAI UNet."""
ORIGINAL_SCHEDULE_PREFIX = "diffusion."
"""The originals' GaussianDiffusion buffers (betas, alphas_cumprod, ...): recomputed here, so dropped."""
ORIGINAL_ENCODER_PREFIX = "encoder."
"""The originals' cDDPM condition encoder (timm ResNet, or SparK_2D_encoder wrapping one)."""
ORIGINAL_SPARK_TRUNK = ".sparse_encoder.sp_cnn."
"""A SparK pre-training checkpoint (their Spark_2D: ``model.sparse_encoder.sp_cnn.`` + timm ResNet)."""


class NoiseType(StrEnum):
    OPENSIMPLEX = "opensimplex"  # the originals: one 2D OpenSimplex field per draw, fp16, unscaled
    SIMPLEX = "simplex"
    GAUSSIAN = "gaussian"


def _params(scope: dict, exclude: Sequence[str] = ()) -> dict:
    """Constructor arguments from ``locals()`` (without self and ``exclude``)."""
    return {k: v for k, v in scope.items() if k not in ("self", "__class__", *exclude)}


class DDPM(nn.Module):
    """Denoising diffusion model for reconstruction-based anomaly detection.

    Paper defaults: 37.5 M-parameter UNet (128, (1, 2, 2), 3 res blocks), cosine schedule
    with T = 1000, x0 target, L1 loss, simplex noise, one-step reconstruction at
    t_test = 500. ``max_batch_size`` caps the UNet batch at test time (None: no cap); it
    changes memory and speed only, not the result (ENS with 10 samples of a 50-slice
    volume is a batch of 1500 slices).
    """

    def __init__(
        self,
        in_channels: PositiveInt = 1,
        image_size: PositiveInt = 96,
        base_channels: PositiveInt = 128,
        channel_mult: Sequence[PositiveInt] = (1, 2, 2),
        num_res_blocks: PositiveInt = 3,
        attention_resolutions: Sequence[PositiveInt] = (),
        num_head_channels: PositiveInt = 64,
        dropout: Annotated[float, Ge(0), Lt(1)] = 0.0,
        use_scale_shift_norm: bool = True,
        resblock_updown: bool = True,
        num_groups: PositiveInt = 32,
        timesteps: PositiveInt = 1000,
        beta_schedule: BetaSchedule = BetaSchedule.COSINE,
        target: Target = Target.X0,
        loss: PixelLoss = PixelLoss.L1,
        noise: NoiseType = NoiseType.SIMPLEX,
        simplex_octaves: PositiveInt = 6,
        simplex_persistence: PositiveFloat = 0.8,
        simplex_frequency: PositiveFloat = 64.0,
        simplex_share_field_across_batch: bool = False,
        simplex_normalize_variance: bool = True,
        simplex_fp16: bool = True,
        reconstruction_mode: ReconstructionMode = ReconstructionMode.ONE_STEP,
        t_test: PositiveInt = 500,
        ensemble_timesteps: Sequence[PositiveInt] = (250, 500, 750),
        sampling_steps: PositiveInt | None = None,
        ddim_eta: NonNegativeFloat = 0.0,
        max_batch_size: PositiveInt | None = 64,
        clamp_reconstruction: bool = True,
    ) -> None:
        super().__init__()
        self._build(cond_dim=None, **_params(locals()))

    def _build(
        self,
        cond_dim: int | None,
        in_channels: int,
        image_size: int,
        base_channels: int,
        channel_mult: Sequence[int],
        num_res_blocks: int,
        attention_resolutions: Sequence[int],
        num_head_channels: int,
        dropout: float,
        use_scale_shift_norm: bool,
        resblock_updown: bool,
        num_groups: int,
        timesteps: int,
        beta_schedule: str,
        target: str,
        loss: str,
        noise: str,
        simplex_octaves: int,
        simplex_persistence: float,
        simplex_frequency: float,
        simplex_share_field_across_batch: bool,
        simplex_normalize_variance: bool,
        simplex_fp16: bool,
        reconstruction_mode: str,
        t_test: int,
        ensemble_timesteps: Sequence[int],
        sampling_steps: int | None,
        ddim_eta: float,
        max_batch_size: int | None,
        clamp_reconstruction: bool,
    ) -> None:
        self.unet = UNetADM(
            in_channels=in_channels,
            out_channels=in_channels,
            base_channels=base_channels,
            channel_mult=tuple(channel_mult),
            num_res_blocks=num_res_blocks,
            attention_resolutions=tuple(attention_resolutions),
            image_size=image_size,
            num_head_channels=num_head_channels,
            dropout=dropout,
            use_scale_shift_norm=use_scale_shift_norm,
            resblock_updown=resblock_updown,
            num_groups=num_groups,
            cond_dim=cond_dim,
        )
        self.diffusion = GaussianDiffusion(timesteps, beta_schedule, target, loss)
        noise_type = parse_option(NoiseType, noise, "noise")
        self.noise: NoiseSource
        if noise_type == NoiseType.OPENSIMPLEX:
            self.noise = OpenSimplexNoise(simplex_octaves, simplex_persistence, simplex_frequency, simplex_fp16)
        elif noise_type == NoiseType.SIMPLEX:
            self.noise = SimplexNoise(
                octaves=simplex_octaves,
                persistence=simplex_persistence,
                frequency=simplex_frequency,
                share_field_across_batch=simplex_share_field_across_batch,
                normalize_variance=simplex_normalize_variance,
            )
        else:
            self.noise = GaussianNoise()
        self.reconstruction_mode = parse_option(ReconstructionMode, reconstruction_mode, "reconstruction_mode")
        for level in (t_test, *ensemble_timesteps):
            if not 1 <= level <= timesteps:
                raise UserInputError(f"DDPM: noise level {level} (t_test / ensemble_timesteps) outside 1..{timesteps}")
        self.t_test = t_test
        self.ensemble_timesteps = tuple(ensemble_timesteps)
        self.sampling_steps = sampling_steps
        self.ddim_eta = ddim_eta
        self.max_batch_size = max_batch_size
        self.clamp_reconstruction = clamp_reconstruction

    def condition(self, x: Tensor) -> Tensor | None:
        """Condition vector of clean slices x (B, C, H, W) in [0, 1]; None for the DDPM."""
        return None

    def training_loss(self, x: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """x (B, C, H, W) in [0, 1] -> {"loss": scalar} (diffusion loss at a random t)."""
        x0 = x * 2 - 1
        noise = self.noise.sample(tuple(x0.shape), device=x0.device, dtype=x0.dtype, generator=generator)
        loss = self.diffusion.training_loss(self.unet, x0, noise, self.condition(x), generator)
        return {"loss": loss}

    @torch.no_grad()
    def reconstruct(self, x: Tensor, num_samples: int = 1) -> Tensor:
        """x (B, C, H, W) in [0, 1] -> (N, B, C, H, W), N = num_samples (in [0, 1] if clamped).

        The N noisy copies go through the network as one batch of N * B (split by
        ``max_batch_size``); the condition is computed once per slice. Noise is drawn once
        per sample and noise level for all B slices, so a shared-field noise
        (``opensimplex``) is shared by every slice of one call: pass a whole volume.
        """
        if num_samples < 1:
            raise ValueError(f"num_samples={num_samples} must be >= 1")
        cond = self.condition(x)
        x_rep = (x * 2 - 1).repeat(num_samples, *([1] * (x.ndim - 1)))
        cond_rep = cond.repeat(num_samples, 1) if cond is not None else None
        rec = self.diffusion.reconstruct(
            self.unet,
            x_rep,
            self.noise,
            cond_rep,
            mode=self.reconstruction_mode,
            t_test=self.t_test,
            ensemble_levels=self.ensemble_timesteps,
            sampling_steps=self.sampling_steps,
            eta=self.ddim_eta,
            max_batch=self.max_batch_size,
            clip=self.clamp_reconstruction,
            groups=num_samples,
        )
        rec = (rec + 1) / 2
        return (rec.clamp(0, 1) if self.clamp_reconstruction else rec).reshape(num_samples, *x.shape)

    def state_dict_from_original(self, theirs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The originals' DDPM_2D Lightning ``state_dict`` -> ours, fp32 (pure; no I/O).

        Their UNet (``diffusion.model.``, OpenAI names) goes through
        ``UNetADM.state_dict_from_original``; their schedule buffers (the rest of
        ``diffusion.``) are dropped, ours computes them. Any other key keeps its name, so a
        strict load reports it (e.g. a cDDPM's ``encoder.`` given to a DDPM).
        """
        unet: dict[str, Tensor] = {}
        out: dict[str, Tensor] = {}
        for key, value in theirs.items():
            if key.startswith(ORIGINAL_UNET_PREFIX):
                unet[key[len(ORIGINAL_UNET_PREFIX):]] = value
            elif not key.startswith(ORIGINAL_SCHEDULE_PREFIX):
                out[key] = value
        out |= {"unet." + k: v for k, v in self.unet.state_dict_from_original(unet).items()}
        return {k: v.float() if v.is_floating_point() else v for k, v in out.items()}


_DDPM_DEFAULTS = {
    name: p.default for name, p in inspect.signature(DDPM.__init__).parameters.items() if name != "self"
}


class ConditionalDDPM(DDPM):
    """cDDPM: the DDPM conditioned on a ResNet encoding of the clean input slice.

    The encoder (``encoder_arch``, output ``cond_dim``) is trained end to end with the
    UNet; its vector enters every res block through the embedding (FiLM). Paper:
    ENS reconstruction over (250, 500, 750) and cond_dim 128 (the code used 512), a
    timm-style ResNet-50 with stochastic depth ``encoder_drop_path_rate`` 0.05 and
    ``encoder_zero_init_last``. All other arguments as ``DDPM``.
    """

    def __init__(
        self,
        *,
        encoder_arch: ResNetArch = ResNetArch.RESNET50,
        cond_dim: PositiveInt = 128,
        encoder_drop_path_rate: Annotated[float, Ge(0), Lt(1)] = 0.0,
        encoder_zero_init_last: bool = False,
        reconstruction_mode: ReconstructionMode = ReconstructionMode.ENSEMBLE,
        **ddpm_params: object,
    ) -> None:
        nn.Module.__init__(self)
        unknown = set(ddpm_params) - set(_DDPM_DEFAULTS)
        if unknown:
            raise TypeError(f"ConditionalDDPM got unexpected arguments {sorted(unknown)}")
        params = {**_DDPM_DEFAULTS, **ddpm_params, "reconstruction_mode": reconstruction_mode}
        self._build(cond_dim=cond_dim, **params)
        self.encoder = ConditionEncoder(
            encoder_arch,
            cond_dim,
            in_channels=self.unet.input_conv.in_channels,
            drop_path_rate=encoder_drop_path_rate,
            zero_init_last=encoder_zero_init_last,
        )

    def condition(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) in [0, 1] -> (B, cond_dim)."""
        return self.encoder(x)

    def state_dict_from_original(self, theirs: dict[str, Tensor]) -> dict[str, Tensor]:
        """The originals' cDDPM (DDPM_2D with a condition) ``state_dict`` -> ours, fp32 (pure).

        As ``DDPM``, plus their encoder (``encoder.``) through
        ``ConditionEncoder.state_dict_from_original``. A SparK pre-training state dict
        gives only ``encoder.backbone.*``: what their DDPM_2D loads from it (``sp_cnn``, no fc).
        """
        encoder = {k[len(ORIGINAL_ENCODER_PREFIX):]: v for k, v in theirs.items() if k.startswith(ORIGINAL_ENCODER_PREFIX)}
        spark = {"sp_cnn." + k.split(ORIGINAL_SPARK_TRUNK, 1)[1]: v for k, v in theirs.items() if ORIGINAL_SPARK_TRUNK in k}
        rest = {k: v for k, v in theirs.items()
                if not k.startswith(ORIGINAL_ENCODER_PREFIX) and ORIGINAL_SPARK_TRUNK not in k}
        out = super().state_dict_from_original(rest)
        for part in (encoder, spark):
            if part:
                mapped = self.encoder.state_dict_from_original(part)
                out |= {"encoder." + k: v.float() if v.is_floating_point() else v for k, v in mapped.items()}
        return out

    def load_encoder_weights(self, state_dict: Mapping[str, Tensor]) -> None:
        """Load a backbone state dict (e.g. ``SparkPretrainer.encoder_state_dict()``) strictly.

        Raises ``UserInputError`` listing missing, unexpected and shape-mismatched keys.
        """
        load_strict(self.encoder.backbone, state_dict, "encoder weights", "the condition encoder backbone",
                    hint="check encoder_arch / in_channels")

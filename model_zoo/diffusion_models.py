"""DDPM and cDDPM reconstruction models (Behrendt et al.): UNetADM + GaussianDiffusion + noise.

Constructor arguments are plain values and typed parts (YAML mappings of their fields):
- ``in_channels``, ``image_size``: the slices.
- ``unet``: the UNet's ``UNetArchitecture`` (``base_channels``, ``channel_mult``, ...).
- ``diffusion``: the ``DiffusionProcess`` (``timesteps``, ``beta_schedule``, ``target``, ``loss``).
- ``noise_source``: ``NoiseSettings`` (``kind``: "opensimplex" = the originals' shared unscaled
  field | "simplex" | "gaussian"; ``octaves``, ... for ``OpenSimplexNoise`` / ``SimplexNoise``).
- ``reconstruction``: ``ReconstructionSettings`` (``mode``, ``t_test``, ``ensemble_timesteps``,
  ``sampling_steps``, ``ddim_eta``, ``clamp``: the originals return x0_hat unclamped).
- ``max_batch_size``: the UNet batch cap at test time.
- cDDPM adds ``encoder``: ``EncoderSettings`` (``arch``, ``cond_dim``, ``drop_path_rate``,
  ``zero_init_last``).
Configs of an earlier version give these flat (``base_channels``, ``t_test``, ``simplex_octaves``,
``encoder_arch``, ...): ``upgrade_params`` moves them into the parts (``DDPM_FLAT_KEYS``).

Inputs and outputs are slices (B, 1, H, W) in [0, 1]; the process runs in [-1, 1].
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Annotated, Any, ClassVar

import torch
from torch import Tensor, nn

from dl_utils.errors import UserInputError
from dl_utils.options import parse_option
from dl_utils.param_groups import group_flat_params
from dl_utils.param_ranges import MAX_RECONSTRUCTIONS, DiffusionSteps, NonNegativeFloat, PositiveFloat, PositiveInt
from dl_utils.param_types import Ge, Lt, MaxItems
from dl_utils.weights import load_strict
from model_zoo.gaussian_diffusion import DiffusionProcess, ReconstructionMode
from model_zoo.noise import GaussianNoise, NoiseSource, OpenSimplexNoise, SimplexNoise
from model_zoo.resnet_arch import ResNetArch
from model_zoo.unet_adm import UNetADM, UNetArchitecture

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


@dataclass(frozen=True)
class NoiseSettings:
    """The noise of the forward process (training and reconstruction).

    kind: ``opensimplex`` (the originals: one 2D OpenSimplex field per draw shared by the batch,
    fp16, unscaled), ``simplex`` (AnoDDPM simplex noise, ours: one field per slice) or
    ``gaussian``; octaves, persistence, frequency: the simplex fields (AnoDDPM: 6, 0.8, 64);
    share_field_across_batch, normalize_variance: ``simplex`` only (one field per batch; unit
    variance per field); fp16: ``opensimplex`` only (round the field to fp16, as the originals)."""

    kind: NoiseType = NoiseType.SIMPLEX
    octaves: PositiveInt = 6
    persistence: PositiveFloat = 0.8
    frequency: PositiveFloat = 64.0
    share_field_across_batch: bool = False
    normalize_variance: bool = True
    fp16: bool = True

    def build(self) -> NoiseSource:
        kind = parse_option(NoiseType, self.kind, "noise_source.kind")
        if kind == NoiseType.OPENSIMPLEX:
            return OpenSimplexNoise(self.octaves, self.persistence, self.frequency, self.fp16)
        if kind == NoiseType.SIMPLEX:
            return SimplexNoise(octaves=self.octaves, persistence=self.persistence, frequency=self.frequency,
                                share_field_across_batch=self.share_field_across_batch,
                                normalize_variance=self.normalize_variance)
        return GaussianNoise()


@dataclass(frozen=True)
class ReconstructionSettings:
    """How a test slice is reconstructed.

    mode: ``one_step`` (noise to t_test, predict x0 in one pass), ``ensemble`` (mean over
    ensemble_timesteps), ``ddpm`` / ``ddim`` (iterative denoising from t_test in sampling_steps
    steps; ddim_eta for ddim); null: the model's own (DDPM one_step, cDDPM ensemble).
    t_test, ensemble_timesteps: noise levels in 1..timesteps. clamp: clamp x0_hat to [-1, 1]
    (the originals return it unclamped)."""

    mode: ReconstructionMode | None = None
    t_test: DiffusionSteps = 500
    ensemble_timesteps: Annotated[Sequence[DiffusionSteps], MaxItems(MAX_RECONSTRUCTIONS)] = (250, 500, 750)
    sampling_steps: DiffusionSteps | None = None
    ddim_eta: NonNegativeFloat = 0.0
    clamp: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "ensemble_timesteps", tuple(self.ensemble_timesteps))


@dataclass(frozen=True)
class EncoderSettings:
    """cDDPM's condition encoder: a ResNet (``arch``) whose output vector (``cond_dim``) enters
    every UNet res block; drop_path_rate: stochastic depth (the originals 0.05);
    zero_init_last: zero-initialise each block's last BN (timm)."""

    arch: ResNetArch = ResNetArch.RESNET50
    cond_dim: PositiveInt = 128
    drop_path_rate: Annotated[float, Ge(0), Lt(1)] = 0.0
    zero_init_last: bool = False


UNET, DIFFUSION, NOISE, RECONSTRUCTION, ENCODER = "unet", "diffusion", "noise_source", "reconstruction", "encoder"

DDPM_FLAT_KEYS: dict[str, tuple[str, ...]] = {
    **{f.name: (UNET, f.name) for f in fields(UNetArchitecture)},
    **{f.name: (DIFFUSION, f.name) for f in fields(DiffusionProcess)},
    "noise": (NOISE, "kind"),
    **{f"simplex_{f.name}": (NOISE, f.name) for f in fields(NoiseSettings) if f.name != "kind"},
    "reconstruction_mode": (RECONSTRUCTION, "mode"),
    "t_test": (RECONSTRUCTION, "t_test"),
    "ensemble_timesteps": (RECONSTRUCTION, "ensemble_timesteps"),
    "sampling_steps": (RECONSTRUCTION, "sampling_steps"),
    "ddim_eta": (RECONSTRUCTION, "ddim_eta"),
    "clamp_reconstruction": (RECONSTRUCTION, "clamp"),
}
"""An earlier config version's flat DDPM params -> today's parts (e.g. ``simplex_octaves`` ->
``noise_source.octaves``, ``clamp_reconstruction`` -> ``reconstruction.clamp``)."""

CDDPM_FLAT_KEYS: dict[str, tuple[str, ...]] = {
    **DDPM_FLAT_KEYS,
    "encoder_arch": (ENCODER, "arch"),
    "cond_dim": (ENCODER, "cond_dim"),
    "encoder_drop_path_rate": (ENCODER, "drop_path_rate"),
    "encoder_zero_init_last": (ENCODER, "zero_init_last"),
}
"""The flat ConditionalDDPM params of an earlier config version: the DDPM's and the encoder's."""


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

    The reconstruction settings are kept as attributes (``reconstruction_mode``, ``t_test``,
    ``ensemble_timesteps``, ``sampling_steps``, ``ddim_eta``, ``clamp_reconstruction``,
    ``max_batch_size``) that callers may change between calls.
    """

    RECONSTRUCTION_MODE: ClassVar[ReconstructionMode] = ReconstructionMode.ONE_STEP
    """The mode when ``reconstruction.mode`` is null."""

    def __init__(
        self,
        in_channels: PositiveInt = 1,
        image_size: PositiveInt = 96,
        unet: UNetArchitecture = UNetArchitecture(),
        diffusion: DiffusionProcess = DiffusionProcess(),
        noise_source: NoiseSettings = NoiseSettings(),
        reconstruction: ReconstructionSettings = ReconstructionSettings(),
        max_batch_size: PositiveInt | None = 64,
    ) -> None:
        super().__init__()
        self._build(cond_dim=None, **_params(locals()))

    @staticmethod
    def upgrade_params(params: Mapping[str, Any]) -> dict[str, Any]:
        """This model's params of an earlier config version (flat keys) in today's parts."""
        return group_flat_params(params, DDPM_FLAT_KEYS, "DDPM")

    def _build(
        self,
        cond_dim: int | None,
        in_channels: int,
        image_size: int,
        unet: UNetArchitecture,
        diffusion: DiffusionProcess,
        noise_source: NoiseSettings,
        reconstruction: ReconstructionSettings,
        max_batch_size: int | None,
    ) -> None:
        self.unet = UNetADM(in_channels, in_channels, image_size, unet, cond_dim=cond_dim)
        self.diffusion = diffusion.build()
        self.noise: NoiseSource = noise_source.build()
        rec = reconstruction
        mode = self.RECONSTRUCTION_MODE if rec.mode is None else rec.mode
        self.reconstruction_mode = parse_option(ReconstructionMode, mode, "reconstruction_mode")
        for level in (rec.t_test, *rec.ensemble_timesteps):
            if not 1 <= level <= diffusion.timesteps:
                raise UserInputError(f"DDPM: noise level {level} (reconstruction.t_test / ensemble_timesteps) "
                                     f"outside 1..{diffusion.timesteps}")
        self.t_test = rec.t_test
        self.ensemble_timesteps = tuple(rec.ensemble_timesteps)
        self.sampling_steps = rec.sampling_steps
        self.ddim_eta = rec.ddim_eta
        self.max_batch_size = max_batch_size
        self.clamp_reconstruction = rec.clamp

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
        rec = self.diffusion.noise_and_denoise(
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

    The encoder (``encoder.arch``, output ``encoder.cond_dim``) is trained end to end with the
    UNet; its vector enters every res block through the embedding (FiLM). Paper:
    ENS reconstruction over (250, 500, 750) (the default mode here) and cond_dim 128 (the code
    used 512), a timm-style ResNet-50 with stochastic depth ``encoder.drop_path_rate`` 0.05 and
    ``encoder.zero_init_last``. All other arguments as ``DDPM``.
    """

    RECONSTRUCTION_MODE: ClassVar[ReconstructionMode] = ReconstructionMode.ENSEMBLE

    def __init__(self, *, encoder: EncoderSettings = EncoderSettings(), **ddpm_params: Any) -> None:
        nn.Module.__init__(self)
        unknown = set(ddpm_params) - set(_DDPM_DEFAULTS)
        if unknown:
            raise TypeError(f"ConditionalDDPM got unexpected arguments {sorted(unknown)}")
        self._build(cond_dim=encoder.cond_dim, **{**_DDPM_DEFAULTS, **ddpm_params})
        # imported here: torchvision's import takes seconds, which a DDPM without a condition never needs
        from model_zoo.condition_encoder import ConditionEncoder

        self.encoder = ConditionEncoder(
            encoder.arch,
            encoder.cond_dim,
            in_channels=self.unet.input_conv.in_channels,
            drop_path_rate=encoder.drop_path_rate,
            zero_init_last=encoder.zero_init_last,
        )

    @staticmethod
    def upgrade_params(params: Mapping[str, Any]) -> dict[str, Any]:
        """This model's params of an earlier config version (flat keys) in today's parts."""
        return group_flat_params(params, CDDPM_FLAT_KEYS, "ConditionalDDPM")

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
                    hint="check encoder.arch / in_channels")

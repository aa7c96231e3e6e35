"""Reconstructing a volume slice by slice, test-time precision, and reconstruction quality.

`core.evaluation.pipeline.ScoringPipeline` calls `reconstruct_volume` for evaluation and
prediction alike; everything here runs under `torch.inference_mode`.
"""
from __future__ import annotations

import contextlib
import enum

import numpy as np
import torch
from torch import Tensor, nn

from core.evaluation.contracts import DiffusionModel
from dl_utils.device import cpu_bf16_native, warn_if_cpu_bf16_emulated
from dl_utils.options import parse_option
from optim.scoring.ssim import ssim_maps


class Precision(enum.StrEnum):
    """UNet precision at test time. `auto` = bf16 autocast on CUDA; on CPU bf16 autocast for a
    diffusion model (`core.evaluation.contracts.DiffusionModel`) where the CPU has bf16 units
    (`dl_utils.device.cpu_bf16_native`): its maps differ from fp32's far less than two noise
    draws' maps do (README, bf16 on CPU: one-step 1.15 % against 63 % with the trained demo DDPM,
    0.3-2 % against 29-65 % over the methods; 0.56-0.91x the CPU time;
    `python -m benchmarks.bench_diffusion --cpu-precision`); else fp32 (a deterministic model has
    no noise to hide a difference; a CPU without bf16 units emulates bf16, slower). `bf16`: bf16
    autocast on CPU too; `fp16`: on CUDA only (fp32 on CPU). `resolve_precision` says which runs."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


def resolve_precision(precision: Precision, device: torch.device, diffusion: bool) -> Precision:
    """The precision that runs on `device` (never `auto`): what `ScoringPipeline.prepared` records
    (`ScoredWith.autocast`) for `uad predict` to repeat. `diffusion`: the model is a diffusion
    model, whose maps carry the reconstruction's noise (`auto` picks bf16 for it on a bf16 CPU)."""
    choice = parse_option(Precision, precision, "precision")
    if device.type == "cuda":
        return Precision.BF16 if choice is Precision.AUTO else choice
    if device.type == "cpu" and (choice is Precision.BF16 or (choice is Precision.AUTO and diffusion
                                                               and cpu_bf16_native() is True)):
        return Precision.BF16
    return Precision.FP32


def autocast_dtype(precision: Precision, device: torch.device, diffusion: bool = False) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device` (`resolve_precision`); None = plain fp32."""
    resolved = resolve_precision(precision, device, diffusion)
    if resolved is Precision.BF16 and device.type == "cpu":
        warn_if_cpu_bf16_emulated()  # once per process, where this CPU has no bf16 units
    return {Precision.FP32: None, Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}[resolved]


def reconstruction_quality(image: Tensor, reconstruction: Tensor, mask: Tensor) -> dict[str, float]:
    """MAE, PSNR (data range 1) and mean SSIM (2D per slice, Gaussian sigma 1.5) inside the brain."""
    diff = (image - reconstruction)[mask]
    mse = float(diff.square().mean())
    ssim = ssim_maps(image.double(), reconstruction.double(), sigmas=(1.5,), spatial_dims=2, data_range=1.0)[0]
    return {
        "rec_MAE": float(diff.abs().mean()),
        "rec_PSNR": float(10 * np.log10(1.0 / max(mse, 1e-12))),
        "rec_SSIM": float(ssim[mask].mean()),
    }


@torch.inference_mode()
def reconstruct_volume(model: nn.Module, image: Tensor, num_samples: int, slice_batch_size: int,
                       device: torch.device, precision: Precision = Precision.AUTO, channels_last: bool = True) -> Tensor:
    """image (H, W, D) -> recs (N, H, W, D) float32: the volume runs through the model as
    (D, 1, H, W) slices, `slice_batch_size` slices (x N samples, all in one UNet batch up
    to the model's `max_batch_size`) per call; on a CUDA out-of-memory error the slice
    batch is halved and the call repeated. `precision` as `resolve_precision` resolves it for this model."""
    slices = image.permute(2, 0, 1).unsqueeze(1)  # (D, 1, H, W)
    dtype = autocast_dtype(precision, device, isinstance(model, DiffusionModel))
    chunks = []
    start = 0
    while start < slices.shape[0]:
        batch = slices[start : start + slice_batch_size].to(device)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        cast = torch.autocast(device_type=device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()
        try:
            with cast:
                recs = model.reconstruct(batch, num_samples=num_samples)
        except torch.cuda.OutOfMemoryError:  # GPU: as large as memory allows, halving on OOM
            if slice_batch_size == 1:
                raise
            slice_batch_size = max(1, slice_batch_size // 2)
            torch.cuda.empty_cache()
            continue
        start += batch.shape[0]
        if recs.dim() != 5 or recs.shape[0] != num_samples or recs.shape[1:] != batch.shape:
            raise RuntimeError(
                f"{type(model).__name__}.reconstruct returned shape {tuple(recs.shape)}; expected "
                f"({num_samples}, {', '.join(map(str, batch.shape))})"
            )
        chunks.append(recs.float().cpu())
    recs = torch.cat(chunks, dim=1)  # (N, D, 1, H, W)
    return recs[:, :, 0].permute(0, 2, 3, 1).contiguous()

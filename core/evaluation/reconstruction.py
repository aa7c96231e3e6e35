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

from dl_utils.device import warn_if_cpu_bf16_emulated
from dl_utils.options import parse_option
from optim.scoring.ssim import ssim_maps


class Precision(enum.StrEnum):
    """UNet precision at test time: `auto` = bf16 autocast on CUDA, fp32 on CPU; `bf16` also on
    CPU (autocast; `python -m benchmarks.bench_diffusion --cpu-precision` measures it); `fp16` on CUDA only."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`; None = plain fp32 (CPU: unless `bf16` is asked for)."""
    choice = parse_option(Precision, precision, "precision")
    if device.type != "cuda":
        if choice is Precision.BF16 and device.type == "cpu":
            warn_if_cpu_bf16_emulated()  # once per process, where this CPU has no bf16 units
            return torch.bfloat16
        return None
    if choice is Precision.FP32:
        return None
    return torch.float16 if choice is Precision.FP16 else torch.bfloat16


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
    batch is halved and the call repeated."""
    slices = image.permute(2, 0, 1).unsqueeze(1)  # (D, 1, H, W)
    dtype = autocast_dtype(precision, device)
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

"""Run a reconstruction model over whole volumes and score them."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from dl_utils.errors import UserInputError
from optim.scoring.ssim import ssim_maps


@dataclass
class ScoredVolume:
    """One evaluated volume: its anomaly map after post-processing, plus what metrics need."""

    name: str
    amap: np.ndarray            # (H, W, D) float32
    mask: np.ndarray            # (H, W, D) bool brain mask
    seg: np.ndarray | None      # (H, W, D) bool lesion labels
    label: int
    affine: np.ndarray
    seconds: float
    image: np.ndarray | None = None           # kept only for figure cases
    reconstruction: np.ndarray | None = None  # mean reconstruction, figure cases only
    reconstruction_quality: dict[str, float] | None = None  # MAE / PSNR / SSIM in the brain


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


@torch.no_grad()
def reconstruct_volume(model: nn.Module, image: Tensor, num_samples: int, slice_batch_size: int,
                       device: torch.device) -> Tensor:
    """image (H, W, D) -> recs (N, H, W, D): the volume runs through the model as (D, 1, H, W) slices."""
    slices = image.permute(2, 0, 1).unsqueeze(1)  # (D, 1, H, W)
    chunks = []
    for start in range(0, slices.shape[0], slice_batch_size):
        batch = slices[start : start + slice_batch_size].to(device)
        recs = model.reconstruct(batch, num_samples=num_samples)
        if recs.dim() != 5 or recs.shape[0] != num_samples or recs.shape[1:] != batch.shape:
            raise RuntimeError(
                f"{type(model).__name__}.reconstruct returned shape {tuple(recs.shape)}; expected "
                f"({num_samples}, {', '.join(map(str, batch.shape))})"
            )
        chunks.append(recs.float().cpu())
    recs = torch.cat(chunks, dim=1)  # (N, D, 1, H, W)
    return recs[:, :, 0].permute(0, 2, 3, 1).contiguous()


def score_volumes(model: nn.Module, volumes: Sequence[Any], scorer: Callable[[Tensor, Tensor, Tensor], Tensor],
                  map_steps: Sequence[Callable], device: torch.device, slice_batch_size: int,
                  keep_images: int = 0, set_name: str = "") -> list[ScoredVolume]:
    """Model -> reconstructions -> scorer -> map post-processing, for every volume of a set."""
    model.eval()
    num_samples = int(getattr(scorer, "num_reconstructions", 1))  # 0: the scorer needs no model
    scored = []
    for index, volume in enumerate(volumes):
        started = time.perf_counter()
        image = volume.image.float()
        mask = volume.mask.bool()
        if num_samples > 0:
            recs = reconstruct_volume(model, image, num_samples, slice_batch_size, device)
        else:
            recs = image.new_zeros((0, *image.shape))
        if not torch.isfinite(recs).all():
            raise UserInputError(f"{set_name}/{volume.name}: the model produced NaN or Inf reconstructions; check the weights")
        amap = scorer(image.to(device), recs.to(device), mask.to(device)).float().cpu()
        for step in map_steps:
            amap = torch.as_tensor(step(amap, mask)).float()
        keep = index < keep_images
        quality = reconstruction_quality(image, recs.mean(0), mask) if num_samples > 0 and mask.any() else None
        scored.append(ScoredVolume(
            name=volume.name, amap=amap.numpy(), mask=mask.numpy(), label=int(volume.label),
            seg=None if volume.seg is None else volume.seg.bool().numpy(), affine=np.asarray(volume.affine),
            seconds=time.perf_counter() - started,
            image=image.numpy() if keep else None,
            reconstruction=recs.mean(0).numpy() if keep and num_samples > 0 else None,
            reconstruction_quality=quality,
        ))
    return scored

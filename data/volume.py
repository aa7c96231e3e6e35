"""The evaluation record shared by data/, optim/ and core/ (by duck typing)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Volume:
    """One evaluation volume; 2D images of the iml-dl layout have D = 1."""

    name: str  # unique within the set
    image: torch.Tensor  # (H, W, D) float32 in [0, 1] (torchio pipeline: B-spline overshoot kept, as the originals)
    mask: torch.Tensor  # (H, W, D) bool brain mask
    seg: torch.Tensor | None  # (H, W, D) bool lesion labels, None if unlabelled
    label: int  # 0 healthy, 1 anomalous (sample level)
    affine: np.ndarray  # (4, 4) for writing maps as NIfTI aligned with the input
    # (H, W, D) bool regions annotated as not anomalous (RA's `mask_dir` CSVs, used there to
    # count false positives); None when the data set has none
    negative: torch.Tensor | None = None
    # (H, W, D) float32 lesion annotation as resized, before binarising (RA's boxes: fractional at
    # the edges, 0 outside seg; their FP figure weighs the map by it); None: seg itself
    seg_weights: torch.Tensor | None = None
    # voxel size (mm) the preprocessing gave the grid, which training augmentation (blur, affine)
    # works in: the true one, or with `voxel_spacing: unit` the originals' 1 mm-frame one (2 mm after
    # their Resample, whatever the scan's voxel size); None: the affine's
    grid_spacing: tuple[float, float, float] | None = None

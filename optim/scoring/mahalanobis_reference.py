"""Dense reference of the pixel-wise Mahalanobis scores: explicit P x P inverse per slice.

O(P^3) per slice as the original code; kept for tests and benchmarks, not for scoring.
"""

from collections.abc import Sequence

import torch
from torch import Tensor

from optim.scoring._checks import check_inputs


def dense_mahalanobis_pixel_scores(
    x: Tensor,
    recs: Tensor,
    mask: Tensor,
    regularization: float = 0.01,
    slices: Sequence[int] | None = None,
) -> Tensor:
    """Same as mahalanobis_pixel_scores(diagonal=False), by inverting S + lambda I -> (H, W, D).

    x (H, W, D), recs (N >= 2, H, W, D), mask (H, W, D). Only the axial `slices` are
    scored (all if None); the others are 0. Computed in the dtype of x.
    """
    check_inputs(x, recs, mask, min_recs=2)
    n = recs.shape[0]
    out = torch.zeros_like(x)
    for k in range(x.shape[-1]) if slices is None else slices:
        inside = mask[..., k].bool()
        if not inside.any():
            continue
        rows = recs[..., k][:, inside]  # (N, P)
        mu = rows.mean(0)
        centred = rows - mu
        eye = torch.eye(rows.shape[1], dtype=x.dtype, device=x.device)
        inverse = torch.linalg.inv(centred.T @ centred / (n - 1) + regularization * eye)
        d = x[..., k][inside] - mu
        share = d * (inverse @ d)
        out[..., k][inside] = share.clamp_min(0).sqrt()
    return out

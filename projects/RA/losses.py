"""Loss terms of RA / Soft-IntroVAE as small pure functions.

Reductions follow the original Soft-IntroVAE and ci-ber/RA code: reconstruction errors and
KL divergences are SUMMED over pixels / latent dimensions per sample, then averaged over the
batch by the caller (the trainer multiplies by ``scale = 1 / (C * H * W)``).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, summed over latent dims: ``(B, z) -> (B,)``."""
    mu, logvar = mu.float(), logvar.float()
    return -0.5 * (1 + logvar - logvar.exp() - mu.pow(2)).sum(dim=1)


def reconstruction_error(target: Tensor, rec: Tensor) -> Tensor:
    """Squared error summed over all pixels of each sample: ``(B, *S), (B, *S) -> (B,)``."""
    return (rec.float() - target.float()).pow(2).flatten(1).sum(dim=1)


def exp_elbo(
    rec_error: Tensor,
    kl: Tensor,
    *,
    scale: float,
    beta_rec: float,
    beta_neg: float,
    alpha: float = 2.0,
) -> Tensor:
    """Soft-IntroVAE's exponentiated ELBO of generated samples, averaged over the batch.

    ``mean_b exp(-alpha * scale * (beta_rec * rec_error_b + beta_neg * kl_b))``;
    ``rec_error``, ``kl``: ``(B,)`` per-sample sums -> scalar. ``alpha = 2`` as in the paper.
    """
    return torch.exp(-alpha * scale * (beta_rec * rec_error + beta_neg * kl)).mean()


def embedding_loss(
    features_a: Sequence[Tensor], features_b: Sequence[Tensor], *, mse_weight: float = 0.5
) -> Tensor:
    """RA's reversed-embedding loss: sum over scales of ``mse_weight * MSE + mean_b(1 - cos)``.

    Each pair of maps is ``(B, C_l, H_l, W_l)``; MSE is the mean over all elements, the cosine
    similarity is between the flattened maps of each sample. Returns a scalar.
    """
    if len(features_a) != len(features_b) or not features_a:
        raise ValueError(
            "embedding_loss needs two equally long non-empty lists, "
            f"got {len(features_a)} and {len(features_b)}"
        )
    total = features_a[0].new_zeros((), dtype=torch.float32)
    for a, b in zip(features_a, features_b):
        a, b = a.float(), b.float()
        cosine = F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)
        total = total + mse_weight * F.mse_loss(a, b) + (1 - cosine).mean()
    return total

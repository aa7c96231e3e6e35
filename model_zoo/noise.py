"""Noise generators for the diffusion process: Gaussian and fractal simplex noise.

Both expose ``sample(shape, *, device, dtype, generator) -> Tensor`` and are
deterministic for a given ``torch.Generator`` (or the global torch RNG state).

Simplex noise (AnoDDPM: octaves 6, persistence 0.8, frequency 64) is a sum of 3D
simplex noise octaves sampled on the pixel grid at a fixed third coordinate; octave k
reads coordinates ``pixel / (frequency / 2**k)`` with amplitude ``persistence**k``.
We use Gustavson's classic 3D simplex noise, vectorised in torch; each field gets its
own random permutation table (the lattice gradients), drawn from the generator. The originals (opensimplex, numpy)
drew one field per call, repeated it over the batch and did not rescale it; those
behaviours sit behind ``share_field_across_batch=True`` and ``normalize_variance=False``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

# 3D simplex constants (Gustavson 2005): skew/unskew factors, kernel radius and the
# factor that scales a single octave to roughly [-1, 1].
_F3 = 1.0 / 3.0
_G3 = 1.0 / 6.0
_RADIUS2 = 0.6
_SCALE = 32.0
_GRAD3 = (
    (1, 1, 0), (-1, 1, 0), (1, -1, 0), (-1, -1, 0),
    (1, 0, 1), (-1, 0, 1), (1, 0, -1), (-1, 0, -1),
    (0, 1, 1), (0, -1, 1), (0, 1, -1), (0, -1, -1),
)


class NoiseSource(Protocol):
    """What the diffusion process needs from a noise generator."""

    def sample(
        self,
        shape: tuple[int, ...],
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """shape (B, C, H, W) -> noise of that shape."""
        ...


@dataclass(frozen=True)
class GaussianNoise:
    """Standard normal noise, i.i.d. per pixel."""

    def sample(
        self,
        shape: tuple[int, ...],
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """shape (B, C, H, W) -> N(0, 1) noise (B, C, H, W)."""
        return torch.randn(shape, device=device, dtype=dtype, generator=generator)


def simplex3d(points: Tensor, perm: Tensor) -> Tensor:
    """Classic 3D simplex noise, vectorised, for several fields on one set of points.

    points (N, 3) float coordinates shared by all fields, perm (F, 512) long: one
    permutation of 0..255 (repeated twice) per field -> values (F, N) in about [-1, 1].
    The geometry (simplex corners, kernel weights, gradient dot products) is computed
    once; only the gradient choice (the hash through ``perm``) differs per field.
    """
    n_points = points.shape[0]
    s = points.sum(-1, keepdim=True) * _F3
    ijk = torch.floor(points + s)
    t = ijk.sum(-1, keepdim=True) * _G3
    x0 = points - (ijk - t)  # offset from the cell origin, (N, 3)
    x, y, z = x0.unbind(-1)
    ge_xy, ge_xz, ge_yz = (x >= y), (x >= z), (y >= z)
    # rank of each component (0 = largest): its count of larger components, ties by axis
    rank = torch.stack(
        [(~ge_xy).long() + (~ge_xz).long(), ge_xy.long() + (~ge_yz).long(), ge_xz.long() + ge_yz.long()],
        dim=-1,
    )
    corners = (torch.zeros_like(x0), (rank < 1).to(x0.dtype), (rank < 2).to(x0.dtype), torch.ones_like(x0))
    cell = ijk.long() & 255
    grads = torch.tensor(_GRAD3, dtype=points.dtype, device=points.device)  # (12, 3)
    fields = perm.shape[0]
    row = torch.arange(fields, device=perm.device)[:, None] * perm.shape[1]  # flat offsets
    flat_perm = perm.reshape(-1)
    flat_grad_index = (perm % len(_GRAD3)).reshape(-1)  # last hash step picks a gradient
    point_base = torch.arange(n_points, device=points.device) * len(_GRAD3)
    total = torch.zeros(fields, n_points, dtype=points.dtype, device=points.device)
    for n, corner in enumerate(corners):  # the 4 simplex corners, vectorised over points
        offset = x0 - corner + n * _G3
        weight = (_RADIUS2 - (offset * offset).sum(-1)).clamp_min(0.0) ** 4
        contrib = (weight[:, None] * (offset @ grads.T)).reshape(-1)  # (N * 12,)
        c = cell + corner.long()
        h = torch.take(flat_perm, row + c[:, 2])
        h = torch.take(flat_perm, row + c[:, 1] + h)
        h = torch.take(flat_grad_index, row + c[:, 0] + h)
        total += torch.take(contrib, point_base + h)
    return _SCALE * total


@dataclass(frozen=True)
class SimplexNoise:
    """Fractal simplex noise (AnoDDPM), one independent field per batch element and channel.

    Args:
        octaves: number of octaves summed.
        persistence: amplitude factor from one octave to the next.
        frequency: wavelength in pixels of the first (coarsest) octave; halves per octave.
        share_field_across_batch: draw one field and repeat it over the batch (the
            originals' behaviour); default draws one per sample.
        normalize_variance: standardise each field to zero mean and unit variance over
            its pixels (default); False keeps the raw octave sum, as the originals.
        z_coordinate: the fixed third coordinate of the 2D slice through 3D noise.
        fields_per_chunk: fields computed at once (memory/speed only, not the result).
    """

    octaves: int = 6
    persistence: float = 0.8
    frequency: float = 64.0
    share_field_across_batch: bool = False
    normalize_variance: bool = True
    z_coordinate: float = 0.5
    fields_per_chunk: int = 64

    def __post_init__(self) -> None:
        if self.octaves < 1 or self.frequency <= 0:
            raise ValueError(f"SimplexNoise: octaves={self.octaves} must be >= 1 and frequency > 0")

    def sample(
        self,
        shape: tuple[int, ...],
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """shape (B, C, H, W) -> simplex noise (B, C, H, W)."""
        b, c, h, w = shape
        fields = c if self.share_field_across_batch else b * c
        gen_device = generator.device if generator is not None else device
        perm = torch.argsort(torch.rand(fields, 256, generator=generator, device=gen_device), dim=1)
        perm = torch.cat([perm, perm], dim=1)
        perm = perm.to(device)
        yy, xx = torch.meshgrid(
            torch.arange(h, device=device, dtype=torch.float32),
            torch.arange(w, device=device, dtype=torch.float32),
            indexing="ij",
        )
        grid = torch.stack([xx, yy, torch.full_like(xx, self.z_coordinate)], dim=-1).reshape(h * w, 3)
        noise = torch.zeros(fields, h * w, device=device, dtype=torch.float32)
        for start in range(0, fields, self.fields_per_chunk):  # bounds peak memory
            part = slice(start, start + self.fields_per_chunk)
            wavelength, amplitude = float(self.frequency), 1.0
            for _ in range(self.octaves):  # a handful of octaves, each vectorised over pixels
                noise[part] += amplitude * simplex3d(grid / wavelength, perm[part])
                wavelength /= 2.0
                amplitude *= self.persistence
        if self.normalize_variance:
            noise = (noise - noise.mean(1, keepdim=True)) / noise.std(1, keepdim=True).clamp_min(1e-12)
        noise = noise.to(dtype).reshape(-1, c, h, w)
        return noise.expand(b, c, h, w).contiguous() if self.share_field_across_batch else noise

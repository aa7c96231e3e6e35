"""Noise generators for the diffusion process: Gaussian and fractal simplex noise.

All three expose ``sample(shape, *, device, dtype, generator) -> Tensor`` and are
deterministic for a given ``torch.Generator`` (or the global torch RNG state).

Simplex noise (AnoDDPM: octaves 6, persistence 0.8, frequency 64) is a sum of 3D
simplex noise octaves sampled on the pixel grid at a fixed third coordinate; octave k
reads coordinates ``pixel / (frequency / 2**k)`` with amplitude ``persistence**k``.
``SimplexNoise`` uses Gustavson's classic 3D simplex noise, vectorised in torch; each
field gets its own random permutation table (the lattice gradients), drawn from the
generator.

``OpenSimplexNoise`` is the originals' field (DDPM/cDDPM/MHD/SSIM code, from AnoDDPM):
2D OpenSimplex noise (Kurt Spencer's algorithm and seeding as the ``opensimplex``
package 0.4.5.1, which the originals vendored from AnoDDPM), octaves
summed from ``frequency`` 64 down, ONE field per call repeated over every slice of the
batch, cast to fp16 and never rescaled (std about 0.54). The paper configs use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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


@runtime_checkable
class NoiseSource(Protocol):
    """What the diffusion process needs from a noise generator: `sample`, and `shared_per_call`, which
    `GaussianDiffusion.noise_and_denoise` reads to draw a batch-shared field per copy.
    `tests/model_zoo/test_noise.py` checks every noise source of `model_zoo/` (discovered) against it."""

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

    @property
    def shared_per_call(self) -> bool:
        """True if one call's batch shares a field (the caller must then draw per group)."""
        ...


@dataclass(frozen=True)
class GaussianNoise:
    """Standard normal noise, i.i.d. per pixel."""

    @property
    def shared_per_call(self) -> bool:
        return False

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

    @property
    def shared_per_call(self) -> bool:
        return self.share_field_across_batch

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


# 2D OpenSimplex constants (Kurt Spencer's algorithm as in the opensimplex package).
_STRETCH2 = (1 / math.sqrt(3) - 1) / 2
_SQUISH2 = (math.sqrt(3) - 1) / 2
_NORM2 = 47.0
_GRAD2 = (5, 2, 2, 5, -5, 2, -2, 5, 5, -2, 2, -5, -5, -2, -2, -5)
_LCG_MUL, _LCG_ADD = 6364136223846793005, 1442695040888963407


def _wrap_int64(value: int) -> int:
    """Two's-complement int64 overflow of a Python int (the package's ``c_int64(x).value``)."""
    return (value + 2**63) % 2**64 - 2**63


def opensimplex_permutation(seed: int) -> Tensor:
    """The permutation table of OpenSimplex for ``seed`` (opensimplex ``_init``) -> (256,) long.

    A 64-bit LCG drives a Fisher-Yates shuffle of 0..255 (three warm-up steps). Written
    out (256 steps, pure Python) because the package's wheel ships a top-level ``tests``
    package that shadows this repository's tests.
    """
    seed = int(seed)
    for _ in range(3):
        seed = _wrap_int64(seed * _LCG_MUL + _LCG_ADD)
    source = list(range(256))
    perm = [0] * 256
    for i in range(255, -1, -1):
        seed = _wrap_int64(seed * _LCG_MUL + _LCG_ADD)
        r = (seed + 31) % (i + 1)  # Python's modulo is never negative
        perm[i] = source[r]
        source[r] = source[i]
    return torch.tensor(perm, dtype=torch.long)


def opensimplex2d(x: Tensor, y: Tensor, perm: Tensor) -> Tensor:
    """2D OpenSimplex noise on the grid y x x: x (W,), y (H,) float64, perm (256,) long -> (H, W).

    Equals ``opensimplex.OpenSimplex(seed).noise2array(x, y)`` (0.4.5.1) for ``perm`` =
    ``opensimplex_permutation(seed)``. Written out in torch because the package's loops
    take ~0.4 s per 96 x 96 field without numba (~10 ms here) and its wheel would shadow
    our tests package.
    The branches of the scalar algorithm become ``torch.where`` selections.
    """
    yy, xx = torch.meshgrid(y, x, indexing="ij")
    grad = torch.tensor(_GRAD2, dtype=xx.dtype, device=xx.device)
    stretch = (xx + yy) * _STRETCH2
    xs, ys = xx + stretch, yy + stretch
    xsb, ysb = torch.floor(xs), torch.floor(ys)
    squish = (xsb + ysb) * _SQUISH2
    dx0, dy0 = xx - (xsb + squish), yy - (ysb + squish)
    xins, yins = xs - xsb, ys - ysb
    in_sum = xins + yins
    xsb_i, ysb_i = xsb.long(), ysb.long()

    def contribution(cx: Tensor, cy: Tensor, dx: Tensor, dy: Tensor) -> Tensor:
        attn = (2 - dx * dx - dy * dy).clamp_min(0)
        index = perm[(perm[cx & 0xFF] + cy) & 0xFF] & 0x0E
        return attn**4 * (grad[index] * dx + grad[index + 1] * dy)

    one, two = 1 + _SQUISH2, 1 + 2 * _SQUISH2
    value = contribution(xsb_i + 1, ysb_i, dx0 - one, dy0 - _SQUISH2)
    value = value + contribution(xsb_i, ysb_i + 1, dx0 - _SQUISH2, dy0 - one)
    lower = in_sum <= 1  # triangle at (0, 0); else the triangle at (1, 1)
    x_gt_y = xins > yins
    # lower triangle: (0, 0) among the two closest vertices?
    low_near = (1 - in_sum > xins) | (1 - in_sum > yins)
    # upper triangle: (1, 1) among the two closest vertices?
    up_near = (2 - in_sum < xins) | (2 - in_sum < yins)

    def pick(low_a: object, low_b: object, low_c: object, up_a: object, up_b: object, up_c: object) -> Tensor:
        """Select per pixel: lower/upper triangle, near/far case, x > y or not."""
        low = torch.where(low_near, torch.where(x_gt_y, low_a, low_b), low_c)
        up = torch.where(up_near, torch.where(x_gt_y, up_a, up_b), up_c)
        return torch.where(lower, low, up)

    ext_x = pick(xsb_i + 1, xsb_i - 1, xsb_i + 1, xsb_i + 2, xsb_i, xsb_i)
    ext_y = pick(ysb_i - 1, ysb_i + 1, ysb_i + 1, ysb_i, ysb_i + 2, ysb_i)
    ext_dx = pick(dx0 - 1, dx0 + 1, dx0 - two, dx0 - 2 - 2 * _SQUISH2, dx0 - 2 * _SQUISH2, dx0)
    ext_dy = pick(dy0 + 1, dy0 - 1, dy0 - two, dy0 - 2 * _SQUISH2, dy0 - 2 - 2 * _SQUISH2, dy0)
    base_x = torch.where(lower, xsb_i, xsb_i + 1)
    base_y = torch.where(lower, ysb_i, ysb_i + 1)
    base_dx = torch.where(lower, dx0, dx0 - two)
    base_dy = torch.where(lower, dy0, dy0 - two)
    value = value + contribution(base_x, base_y, base_dx, base_dy)
    value = value + contribution(ext_x, ext_y, ext_dx, ext_dy)
    return value / _NORM2


def opensimplex_octaves(
    height: int, width: int, seed: int, octaves: int = 6, persistence: float = 0.8, frequency: float = 64.0
) -> Tensor:
    """The originals' fractal field (AnoDDPM ``rand_2d_octaves``) for one seed -> (H, W) float64.

    sum_k persistence^k * noise2(x / (frequency / 2^k), y / (frequency / 2^k)) on the pixel grid.
    """
    perm = opensimplex_permutation(seed)
    x = torch.arange(width, dtype=torch.float64)
    y = torch.arange(height, dtype=torch.float64)
    field = torch.zeros(height, width, dtype=torch.float64)
    amplitude = 1.0
    for _ in range(octaves):
        field += amplitude * opensimplex2d(x / frequency, y / frequency, perm)
        frequency /= 2
        amplitude *= persistence
    return field


@dataclass(frozen=True)
class OpenSimplexNoise:
    """The originals' simplex noise: one 2D OpenSimplex field per call, shared by the batch.

    Every ``sample`` call draws one seed (an integer in [-1e10, 1e10), as the originals'
    ``np.random.randint``, here from the torch generator), computes the fractal field
    and repeats it over every batch element and channel. A reconstruction draws once per
    noise level and MC sample, so all slices passed in one call share the field: pass a
    whole volume per call to reproduce the originals. Not normalised (std ~0.54).

    Args:
        octaves, persistence, frequency: as ``SimplexNoise`` (AnoDDPM 6, 0.8, 64).
        half_precision: round the field to fp16 as the originals (``.half()``).
    """

    octaves: int = 6
    persistence: float = 0.8
    frequency: float = 64.0
    half_precision: bool = True

    def __post_init__(self) -> None:
        if self.octaves < 1 or self.frequency <= 0:
            raise ValueError(f"OpenSimplexNoise: octaves={self.octaves} must be >= 1 and frequency > 0")

    @property
    def shared_per_call(self) -> bool:
        return True

    def sample(
        self,
        shape: tuple[int, ...],
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """shape (B, C, H, W) -> the same field in every (b, c) (B, C, H, W)."""
        b, c, h, w = shape
        gen_device = generator.device if generator is not None else device
        seed = int(torch.randint(-(10**10), 10**10, (1,), generator=generator, device=gen_device))
        field = opensimplex_octaves(h, w, seed, self.octaves, self.persistence, self.frequency)
        if self.half_precision:
            field = field.half()
        return field.to(device=device, dtype=dtype).expand(b, c, h, w).contiguous()

"""Small seeded volumes shared by the scorer tests."""

import pytest
import torch


def _ellipsoid_mask(shape: tuple[int, int, int]) -> torch.Tensor:
    axes = [torch.linspace(-1, 1, n, dtype=torch.float64) for n in shape]
    grids = torch.meshgrid(*axes, indexing="ij")
    return sum(g**2 for g in grids) < 0.8


@pytest.fixture
def sample() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (12, 11, 6) float64 in [0, 1], recs (4, 12, 11, 6) near x, ellipsoid mask."""
    g = torch.Generator().manual_seed(0)
    shape = (12, 11, 6)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    recs = (x + 0.1 * torch.randn((4, *shape), generator=g, dtype=torch.float64)).clamp(0, 1)
    return x, recs, _ellipsoid_mask(shape)

"""The Scorer protocol (optim.scoring.base), checked for every scorer of optim/scoring/.

Scorers are discovered from the package (every class satisfying `Scorer`), so a new scorer
cannot skip this test: it fails until the scorer has a factory here."""

import dataclasses
from types import SimpleNamespace

import pytest
import torch

from optim.scoring import IntensityDensityScorer, MahalanobisScorer, SSIMEnsembleScorer
from optim.scoring.base import FittedOnHealthy, NeedsExternalFiles, Scorer
from optim.scoring.ra_lpips import RAPerceptualScorer
from tests.project_classes import classes_in


def _fitted_intensity() -> IntensityDensityScorer:
    g = torch.Generator().manual_seed(5)
    scorer = IntensityDensityScorer()
    healthy = SimpleNamespace(
        image=torch.rand(8, 8, 3, generator=g), mask=torch.ones(8, 8, 3, dtype=torch.bool)
    )
    scorer.fit([healthy])
    return scorer


FACTORIES = {  # class name -> instances checked (default construction unless stated)
    "L1Scorer": {},
    "SSIMScorer": {},
    "SSIMEnsembleScorer": {"ssim_ensemble_3d": SSIMEnsembleScorer, "ssim_ensemble_2d": lambda: SSIMEnsembleScorer(spatial_dims=2)},
    "MahalanobisScorer": {"mahalanobis": MahalanobisScorer, "mahalanobis_diagonal": lambda: MahalanobisScorer(diagonal=True)},
    "IntensityDensityScorer": {"intensity": _fitted_intensity},
    "RAPerceptualScorer": {"ra_lpips_random_backbone": lambda: RAPerceptualScorer(backbone="random")},
}


LARGE_SLICES = {"ra_lpips_random_backbone"}


def _is_scorer(cls: type) -> bool:
    return dataclasses.is_dataclass(cls) and not cls.__name__.startswith("_") \
        and "num_reconstructions" in {f.name for f in dataclasses.fields(cls)} \
        and any("__call__" in vars(base) for base in cls.__mro__[:-1])


def _discovered() -> dict[str, type]:
    return classes_in("optim.scoring", _is_scorer)


DISCOVERED = _discovered()
SCORERS = {label: factory for name, cases in FACTORIES.items()
           for label, factory in (cases.items() if cases else {name.lower(): DISCOVERED.get(name)}.items())}


def test_every_scorer_has_a_factory_here():
    assert set(DISCOVERED) == set(FACTORIES), f"add {sorted(set(DISCOVERED) - set(FACTORIES))} to FACTORIES"


@pytest.mark.parametrize("name", SCORERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scorer_contract(name: str, dtype: torch.dtype, sample) -> None:
    if name in LARGE_SLICES:  # LPIPS's SqueezeNet needs slices of at least 17 px
        sample = tuple(torch.nn.functional.interpolate(t[None].double(), size=(24, 22, 6))[0].to(t.dtype) if t.dim() == 4
                       else torch.nn.functional.interpolate(t[None, None].double(), size=(24, 22, 6))[0, 0].to(t.dtype)
                       for t in sample)
    x, recs, mask = (t.to(dtype) if t.is_floating_point() else t for t in sample)
    scorer = SCORERS[name]()
    assert isinstance(scorer, Scorer) and isinstance(scorer.num_reconstructions, int)
    if isinstance(scorer, NeedsExternalFiles):
        scorer.check_available()  # a stand-in needs no files
        assert isinstance(scorer.uses_stand_in_weights, bool)
    assert isinstance(scorer, FittedOnHealthy) == (name == "intensity")
    n = max(scorer.num_reconstructions, 1)  # 0 = needs no model; pass one anyway
    noise = 0.02 * torch.rand((n, *x.shape), generator=torch.Generator().manual_seed(6))
    recs = recs.repeat(3, 1, 1, 1)[:n] + noise.to(dtype)
    before = (x.clone(), recs.clone(), mask.clone())
    amap = scorer(x, recs, mask)
    assert amap.shape == x.shape and amap.dtype == dtype and amap.device == x.device
    assert torch.isfinite(amap).all()
    assert amap[~mask].abs().max() == 0
    assert amap[mask].abs().max() > 0
    for original, after in zip(before, (x, recs, mask)):
        assert torch.equal(original, after)
    with pytest.raises(dataclasses.FrozenInstanceError):
        scorer.num_reconstructions = 3

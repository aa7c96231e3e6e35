"""The Scorer protocol (optim.scoring.base), checked for every scorer of optim/scoring/.

Scorers are discovered from the packages (every class whose instances have the `Scorer` protocol's
members, whatever kind of class it is), so a new scorer cannot skip this test: it fails until the
scorer has a factory here."""

import dataclasses
from types import SimpleNamespace
from typing import ClassVar

import pytest
import torch

from optim.scoring import IntensityDensityScorer, MahalanobisScorer, SSIMEnsembleScorer, SSIMScorer
from optim.scoring.base import FittedOnHealthy, NeedsExternalFiles, NeedsMinimumSlice, Scorer, slice_problem
from optim.scoring.ra_lpips import RAPerceptualScorer
from tests.project_classes import classes_in, satisfies


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
    "SSIMScorer": {"ssimscorer": SSIMScorer, "ssim_reflect": lambda: SSIMScorer(padding="reflect")},
    "SSIMEnsembleScorer": {"ssim_ensemble_3d": SSIMEnsembleScorer, "ssim_ensemble_2d": lambda: SSIMEnsembleScorer(spatial_dims=2),
                           "ssim_ensemble_2d_reflect": lambda: SSIMEnsembleScorer(spatial_dims=2, padding="reflect")},
    "MahalanobisScorer": {"mahalanobis": MahalanobisScorer, "mahalanobis_diagonal": lambda: MahalanobisScorer(diagonal=True),
                          "mahalanobis_reflect": lambda: MahalanobisScorer(ssim_padding="reflect")},
    "IntensityDensityScorer": {"intensity": _fitted_intensity},
    "RAPerceptualScorer": {"ra_lpips_random_backbone": lambda: RAPerceptualScorer(backbone="random")},
}


SCORER_PACKAGES = ("optim.scoring", "projects")  # where a scorer may live (a project's own scorer too)


def _is_scorer(cls: type) -> bool:
    """Instances satisfy the `Scorer` protocol's members, whatever kind of class it is (frozen
    dataclass, plain class, ClassVar or property `num_reconstructions`, an nn.Module)."""
    return satisfies(cls, Scorer)


def _defines_call(cls: type) -> bool:
    """Callable by a `__call__` of its own or a project base (an nn.Module's forward wrapper aside)."""
    return any("__call__" in vars(klass) for klass in cls.__mro__ if klass is not object and klass.__module__ != "torch.nn.modules.module")


def _discovered() -> dict[str, type]:
    return {name: cls for package in SCORER_PACKAGES for name, cls in classes_in(package, _is_scorer).items()}


DISCOVERED = _discovered()
SCORERS = {label: factory for name, cases in FACTORIES.items()
           for label, factory in (cases.items() if cases else {name.lower(): DISCOVERED.get(name)}.items())}


def test_every_scorer_has_a_factory_here():
    assert set(DISCOVERED) == set(FACTORIES), f"add {sorted(set(DISCOVERED) - set(FACTORIES))} to FACTORIES"


def test_every_callable_class_of_the_scorer_package_is_a_scorer():
    """A class of optim/scoring/ that scores (`__call__`) but lacks a protocol member would not be
    discovered above: it fails here instead."""
    callables = classes_in("optim.scoring", lambda cls: _defines_call(cls) and not getattr(cls, "_is_protocol", False))
    assert callables and set(callables) <= set(DISCOVERED), f"not Scorers: {sorted(set(callables) - set(DISCOVERED))}"


class _CallOnly:  # no num_reconstructions: not a Scorer
    def __call__(self, x, recs, mask):
        return x


@dataclasses.dataclass(frozen=True)
class _FieldScorer(_CallOnly):  # the usual shape: a frozen dataclass field (__call__ from a base)
    num_reconstructions: int = 1


class _PlainScorer(_CallOnly):  # a plain class attribute
    num_reconstructions = 1


class _ClassVarScorer(_CallOnly):
    num_reconstructions: ClassVar[int] = 0


class _PropertyScorer(_CallOnly):
    @property
    def num_reconstructions(self) -> int:
        return 2


class _InitScorer(_CallOnly):  # set on the instance only, no annotation
    def __init__(self):
        self.num_reconstructions = 3


class _FrozenInitScorer(_CallOnly):  # set as a frozen dataclass's __post_init__ would
    def __init__(self):
        object.__setattr__(self, "num_reconstructions", 4)


class _NumberOnly:  # not callable: not a Scorer
    num_reconstructions = 1


def test_discovery_finds_odd_shaped_scorers():
    """The discovery predicate on classes of every shape that satisfies the protocol (none of
    them escapes the contract test by not being a dataclass), and not on a class lacking a member."""
    for cls in (_FieldScorer, _PlainScorer, _ClassVarScorer, _PropertyScorer, _InitScorer, _FrozenInitScorer):
        assert _is_scorer(cls) and isinstance(cls(), Scorer), cls.__name__
    for cls in (_CallOnly, _NumberOnly, Scorer):  # a member missing; the protocol itself
        assert not _is_scorer(cls), cls.__name__


@pytest.mark.parametrize("name", SCORERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scorer_contract(name: str, dtype: torch.dtype, sample) -> None:
    scorer = SCORERS[name]()
    if slice_problem(scorer, *sample[0].shape[:2]):  # e.g. LPIPS's SqueezeNet needs slices of at least 17 px
        sample = tuple(torch.nn.functional.interpolate(t[None].double(), size=(24, 22, 6))[0].to(t.dtype) if t.dim() == 4
                       else torch.nn.functional.interpolate(t[None, None].double(), size=(24, 22, 6))[0, 0].to(t.dtype)
                       for t in sample)
    x, recs, mask = (t.to(dtype) if t.is_floating_point() else t for t in sample)
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


@pytest.mark.parametrize("name", SCORERS)
def test_scorer_runs_on_the_smallest_slices_it_declares(name: str) -> None:
    """`NeedsMinimumSlice`: a scorer scores slices as small as its `min_slice_side`, in volumes of as
    few as its `min_depth` slices (1 when it declares none), and one pixel or slice less fails: so the
    run's check before the run folder (core.run.assembly) refuses exactly the grids that would fail
    after training."""
    scorer = SCORERS[name]()
    side = int(scorer.min_slice_side) if isinstance(scorer, NeedsMinimumSlice) else 1
    depth = int(scorer.min_depth) if isinstance(scorer, NeedsMinimumSlice) else 1
    n = max(scorer.num_reconstructions, 1)

    def score(h: int, w: int, d: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(7)
        x = torch.rand(h, w, d, generator=g, dtype=torch.float64)
        recs = (x + 0.1 * torch.rand(n, h, w, d, generator=g, dtype=torch.float64)).clamp(0, 1)
        return scorer(x, recs, torch.ones(h, w, d, dtype=torch.bool))

    assert slice_problem(scorer, side, side, depth) is None
    assert score(side, side, depth).shape == (side, side, depth)
    if side > 1:
        assert slice_problem(scorer, side - 1, side) and slice_problem(scorer, side, side - 1)
        with pytest.raises(ValueError):
            score(side - 1, side, depth)
    if depth > 1:
        assert slice_problem(scorer, side, side, depth - 1)
        with pytest.raises(ValueError):
            score(side, side, depth - 1)

"""The scorer contract (`Scorer`) and the optional capabilities the evaluation uses.

Every scorer in `optim/scoring/` satisfies `Scorer`; `FittedOnHealthy`, `NeedsExternalFiles` and
`NeedsMinimumSlice` are what some of them add. `tests/optim/scoring/test_scorer_contract.py`
discovers them from this package and checks each, so a new scorer cannot skip the test.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

from torch import Tensor


@runtime_checkable
class Scorer(Protocol):
    """x (H, W, D), recs (N, H, W, D), mask (H, W, D) bool -> map (H, W, D), 0 outside the mask.

    `num_reconstructions`: how many reconstructions the evaluation draws per volume (0: the
    scorer needs no model). Inputs are never modified; device and dtype follow `x`."""

    num_reconstructions: int

    def __call__(self, x: Tensor, recs: Tensor, mask: Tensor) -> Tensor: ...


@runtime_checkable
class FittedOnHealthy(Protocol):
    """A scorer with reference statistics from healthy volumes: `fit` runs before scoring."""

    def fit(self, volumes: Iterable[Any]) -> None: ...


@runtime_checkable
class NeedsExternalFiles(Protocol):
    """A scorer that reads files it does not ship (e.g. LPIPS backbone weights).

    `check_available` raises `UserInputError` naming the file and where to put it;
    `uses_stand_in_weights` is true when it runs with a documented stand-in instead (then
    the results say so)."""

    def check_available(self) -> None: ...

    @property
    def uses_stand_in_weights(self) -> bool: ...


@runtime_checkable
class NeedsMinimumSlice(Protocol):
    """A scorer that runs only on axial slices of at least `min_slice_side` pixels along H and W
    (a network's strides and pools, a reflect padding as wide as its window), and, when its windows
    are 3-D, on volumes of at least `min_depth` slices (1 for a scorer of single slices). A run checks
    every data set's grid against it before anything is written, `uad predict` the scan's grid."""

    @property
    def min_slice_side(self) -> int: ...

    @property
    def min_depth(self) -> int: ...


def slice_problem(scorer: object, height: int, width: int, depth: int | None = None) -> str | None:
    """Why `scorer` cannot score axial slices of height x width, or a volume of `depth` of them (too
    small for it); None when it can (`depth` None: the slices alone)."""
    side = int(scorer.min_slice_side) if isinstance(scorer, NeedsMinimumSlice) else 1
    if min(height, width) < side:
        return f"{type(scorer).__name__} needs axial slices of at least {side}x{side} pixels"
    slices = int(scorer.min_depth) if isinstance(scorer, NeedsMinimumSlice) else 1
    if depth is not None and depth < slices:
        return f"{type(scorer).__name__} needs volumes of at least {slices} axial slices (its 3-D windows)"
    return None

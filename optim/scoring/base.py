"""The scorer contract (`Scorer`) and the two optional capabilities the evaluation uses.

Every scorer in `optim/scoring/` satisfies `Scorer`; `tests/optim/scoring/test_scorer_contract.py`
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

"""What the framework asks of a training loss and of post-processing steps: base classes.

A class a YAML names as the trainer's `loss`, as a map post-processing step or as a binary one
must subclass the base of its place; the config check tests this on the class, before anything
is constructed (`dl_utils.param_types.mismatch`, `core.config.builder.Role`). A call signature
cannot tell the kinds apart (a loss and a map step both take two arrays, a model is callable
too), so the contract is a base class: a scorer, a model or a loss named in the wrong place is
one line naming the key, not a TypeError or IndexError once the run folder exists.
The scorer's contract is `optim.scoring.base.Scorer`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

    from optim.metrics.arrays import ArrayLike


class TrainingLoss(ABC):
    """The trainer's `loss`: (reconstruction (B, C, H, W), target (B, C, H, W)) -> scalar tensor."""

    @abstractmethod
    def __call__(self, reconstruction: Tensor, target: Tensor) -> Tensor:
        """The loss to minimise, a 0-dim tensor with the inputs' graph."""


class MapStep(ABC):
    """A map post-processing step: (amap (H, W, D), mask (H, W, D) bool) -> amap (H, W, D), of the
    type of `amap` (tensor or ndarray); the inputs are never modified."""

    @abstractmethod
    def __call__(self, amap: ArrayLike, mask: ArrayLike) -> ArrayLike:
        """The post-processed map."""


class BinaryStep(ABC):
    """A binary post-processing step, after thresholding: (binary (H, W, D)) -> binary (H, W, D)."""

    @abstractmethod
    def __call__(self, binary: ArrayLike) -> ArrayLike:
        """The post-processed lesion mask."""

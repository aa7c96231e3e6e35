"""Every training loss and post-processing step of optim/ subclasses its contract (optim.contracts), so the
config check can tell it from a scorer, a model or a step of the other kind on the class alone."""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import numpy as np
import pytest
import torch

import optim.losses
from optim.contracts import BinaryStep, MapStep, TrainingLoss


def _classes(module_names: list[str]) -> list[type]:
    """The classes defined in `module_names` whose instances are callable (their own `__call__`)."""
    found = []
    for name in module_names:
        module = importlib.import_module(name)
        found += [c for _, c in inspect.getmembers(module, inspect.isclass)
                  if c.__module__ == module.__name__ and "__call__" in vars(c)]
    return found


LOSSES = _classes([m.name for m in pkgutil.iter_modules(optim.losses.__path__, "optim.losses.")])
STEPS = _classes(["optim.postprocessing"])


def test_discovery_finds_the_shipped_ones():
    assert {c.__name__ for c in LOSSES} >= {"ReconstructionLoss"}
    assert {c.__name__ for c in STEPS} >= {"BrainMaskErosion", "MedianFilter", "RemoveSmallComponents"}


@pytest.mark.parametrize("cls", LOSSES, ids=lambda c: c.__name__)
def test_every_loss_is_a_training_loss(cls):
    assert issubclass(cls, TrainingLoss)
    x = torch.rand(2, 1, 4, 4)
    assert cls()(x, x).dim() == 0


@pytest.mark.parametrize("cls", STEPS, ids=lambda c: c.__name__)
def test_every_step_is_of_exactly_one_kind(cls):
    assert issubclass(cls, MapStep) != issubclass(cls, BinaryStep)
    volume = np.random.default_rng(0).uniform(size=(8, 8, 4)).astype(np.float32)
    out = cls()(volume, np.ones_like(volume, bool)) if issubclass(cls, MapStep) else cls()(volume > 0.5)
    assert np.asarray(out).shape == volume.shape

"""Parity of the RA network with the published module (issue 9, item 7).

tests/fixtures/parity_data/ra_network.{npz,json} were recorded by running the published
`model_zoo/ra.py` (ci-ber/RA @ 9b7a255) built from its own YAML, outside this repository:
its parameter count, its state-dict keys and shapes in order, and its outputs in eval mode
with z = mu on a fixed input after loading the deterministic tensors `fill_state` makes from
that key list. Only the recorded numbers live here.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model_zoo.ra import RAModel, state_dict_from_original

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parity_data"
PAPER = {"in_channels": 1, "image_size": 128, "channels": [64, 128, 256, 512, 512], "latent_dim": 128}


def fill_state(keys: list[tuple[str, list[int]]]) -> dict[str, torch.Tensor]:
    """Deterministic tensors from the key order alone (the rule used when recording)."""
    out = {}
    for i, (k, shape) in enumerate(keys):
        shape = tuple(shape)
        g = torch.Generator().manual_seed(1000 + i)
        if k.endswith("num_batches_tracked"):
            out[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            out[k] = 0.5 + torch.rand(shape, generator=g)
        elif k.endswith("running_mean"):
            out[k] = 0.1 * torch.randn(shape, generator=g)
        elif k.endswith("bias"):
            out[k] = 0.05 * torch.randn(shape, generator=g)
        elif len(shape) == 1:
            out[k] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        else:
            out[k] = torch.randn(shape, generator=g) / float(np.sqrt(np.prod(shape[1:])))
    return out


@pytest.fixture(scope="module")
def reference():
    return dict(np.load(FIXTURES / "ra_network.npz")), json.loads((FIXTURES / "ra_network.json").read_text())


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts(reference):
    _, meta = reference
    published, ours = RAModel(**PAPER, published_skip_convs=True), RAModel(**PAPER)
    assert n_params(published) == meta["parameters"] == 29_955_073
    assert n_params(ours) == 29_430_785  # ours: no 1x1 conv between equal counts
    extra = set(published.state_dict()) - set(ours.state_dict())
    assert extra == {"encoder.stages.3.expand.weight", "decoder.main.2.expand.weight"}  # the two 512 -> 512



def test_published_weights_load_strictly_and_give_the_same_outputs(reference):
    ref, meta = reference
    theirs = fill_state(meta["state_dict"])
    model = RAModel(**PAPER, published_skip_convs=True)
    converted = state_dict_from_original(theirs)
    assert len(converted) == len(theirs)
    model.load_state_dict(converted, strict=True)
    model.eval()
    x = torch.sin(40 * torch.linspace(0, 1, 2 * 128 * 128).reshape(2, 1, 128, 128)) * 0.5 + 0.5
    with torch.no_grad():
        mu, logvar, features = model.encode(x)
        rec = model.reconstruct(x)[0]  # z = mu, as their forward(deterministic=True)
    np.testing.assert_allclose(mu.numpy(), ref["mu"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(logvar.numpy(), ref["logvar"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rec.numpy(), ref["rec"], rtol=1e-5, atol=1e-6)
    for i, f in enumerate(features):  # their 'embeddings': the map after every pooling
        np.testing.assert_allclose(f.sum((1, 2, 3)).numpy(), ref[f"embedding{i}_sum"], rtol=1e-4)

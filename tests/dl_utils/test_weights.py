"""Weights are loaded strictly: keys and shapes, then every tensor's layout, device, kind of dtype and values
(dl_utils.weights), each problem one line naming the file and the key."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dl_utils.errors import UserInputError
from dl_utils.weights import load_strict, tensor_problem


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))


@pytest.mark.parametrize("change, words", [
    (lambda v: v.to_sparse(), "0.weight is a sparse_coo tensor, not a dense one"),
    (lambda v: torch.empty(v.shape, device="meta"), "0.weight is on the meta device (it holds no values)"),
    (lambda v: v.to(torch.complex64), "0.weight is complex64 where the model has float32"),
    (lambda v: v.to(torch.int64), "0.weight is int64 where the model has float32"),
    (lambda v: torch.full_like(v, float("nan")), "0.weight holds NaN or infinite values"),
    (lambda v: v.index_fill(1, torch.tensor([2]), float("-inf")), "0.weight holds NaN or infinite values"),
])
def test_an_unusable_tensor_is_one_line_naming_file_and_key(change, words):
    net = _net()
    state = net.state_dict()
    before = {k: v.clone() for k, v in state.items()}
    state["0.weight"] = change(state["0.weight"])
    with pytest.raises(UserInputError) as info:
        load_strict(net, state, "given.pt")
    message = str(info.value)
    assert message.startswith("given.pt: weights unusable for the model: ") and words in message and "\n" not in message
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # nothing loaded


def test_another_precision_and_an_integer_counter_load():
    """float64 or float16 weights for a float32 model are the same kind (load_state_dict casts them); a
    batch-norm counter stays an integer."""
    net = _net()
    state = {k: v.double() if v.is_floating_point() else v.to(torch.int32) for k, v in _net().state_dict().items()}
    load_strict(net, state, "given.pt")
    assert tensor_problem(torch.zeros(2, dtype=torch.float16), torch.zeros(2)) is None
    assert tensor_problem(torch.tensor(3), torch.tensor(0.5)) is not None  # an integer for a float

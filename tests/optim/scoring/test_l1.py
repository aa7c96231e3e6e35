import pytest
import torch

from dl_utils.errors import UserInputError
from optim.scoring.l1 import L1Scorer


def test_l1_is_absolute_residual_to_mean_reconstruction(sample) -> None:
    x, recs, mask = sample
    expected = torch.where(mask, (x - recs.mean(0)).abs(), torch.zeros_like(x))
    torch.testing.assert_close(L1Scorer(num_reconstructions=4)(x, recs, mask), expected)


def test_l1_by_hand() -> None:
    x = torch.tensor([0.5, 0.2, 0.9]).reshape(3, 1, 1)
    recs = torch.tensor([[0.1, 0.4, 0.9], [0.3, 0.4, 0.1]]).reshape(2, 3, 1, 1)
    mask = torch.tensor([True, True, False]).reshape(3, 1, 1)
    # means 0.2, 0.4, 0.5 -> |0.3|, |-0.2|, masked
    expected = torch.tensor([0.3, 0.2, 0.0]).reshape(3, 1, 1)
    torch.testing.assert_close(L1Scorer()(x, recs, mask), expected)


def test_l1_rejects_zero_reconstructions() -> None:
    with pytest.raises(UserInputError):
        L1Scorer(num_reconstructions=0)

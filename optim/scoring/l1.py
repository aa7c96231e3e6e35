"""Absolute residual to the mean reconstruction."""

from dataclasses import dataclass

from torch import Tensor

from dl_utils.param_ranges import Reconstructions
from optim.scoring._checks import check_inputs, check_num_reconstructions


def l1_map(x: Tensor, recs: Tensor, mask: Tensor) -> Tensor:
    """|x - mean_n recs| * mask: x (H, W, D), recs (N, H, W, D), mask (H, W, D) -> (H, W, D)."""
    return (x - recs.mean(0)).abs() * mask


@dataclass(frozen=True)
class L1Scorer:
    """l1 residual between the input and the mean of `num_reconstructions` reconstructions."""

    num_reconstructions: Reconstructions = 1

    def __post_init__(self) -> None:
        check_num_reconstructions(self.num_reconstructions, 1, type(self).__name__)

    def __call__(self, x: Tensor, recs: Tensor, mask: Tensor) -> Tensor:
        """x (H, W, D), recs (N, H, W, D), mask (H, W, D) bool -> map (H, W, D)."""
        check_inputs(x, recs, mask)
        return l1_map(x, recs, mask)

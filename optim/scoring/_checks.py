"""Shape checks shared by the scorers."""

from torch import Tensor

from dl_utils.errors import UserInputError


def check_inputs(x: Tensor, recs: Tensor, mask: Tensor, min_recs: int = 1) -> None:
    """Raise ValueError unless x (H, W, D), recs (N >= min_recs, H, W, D), mask (H, W, D)."""
    if x.ndim != 3 or mask.shape != x.shape:
        raise ValueError(f"x {tuple(x.shape)} and mask {tuple(mask.shape)} must both be (H, W, D)")
    if recs.ndim != 4 or recs.shape[1:] != x.shape or recs.shape[0] < min_recs:
        raise ValueError(
            f"recs {tuple(recs.shape)} must be (N, *{tuple(x.shape)}) with N >= {min_recs}"
        )


def check_num_reconstructions(value: int, minimum: int, name: str) -> None:
    """Raise UserInputError if a scorer's num_reconstructions is below `minimum`."""
    if not isinstance(value, int) or value < minimum:
        raise UserInputError(f"{name}.num_reconstructions={value!r}: use an integer >= {minimum}")

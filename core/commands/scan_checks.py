"""What `uad predict` checks before it writes anything: every scan is a 3D volume on its brain
mask's grid (headers only), and the model fits the grid the scans are brought onto (the first scan, once: against
the evaluation's recorded grid, then one slice through the model).

A scan of the wrong dimensionality or a grid the model was not evaluated on would otherwise
fail inside scoring (an IndexError, `mat1 and mat2 shapes cannot be multiplied`) after the
output folder exists; here it is one line naming the file and the fix.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import nibabel as nib
import torch

from core.evaluation.pipeline import ScoringPipeline
from core.evaluation.reconstruction import reconstruct_volume
from dl_utils.errors import UserInputError


def _is_3d(shape: Sequence[int]) -> bool:
    return len(shape) == 3 or (len(shape) == 4 and shape[3] == 1)


def _header_shape(path: Path) -> tuple[int, ...] | None:
    """The shape in `path`'s header; None if unreadable (the scan's own loading names that problem)."""
    try:
        return tuple(int(s) for s in nib.load(str(path)).shape)
    except Exception:  # noqa: BLE001 - nibabel raises many types
        return None


def check_scan_headers(scans: Iterable[tuple[Path, Path | None]]) -> None:
    """Refuse a scan whose header is not 3D (X, Y, Z), or whose brain mask (already on the scan's
    grid: `--preprocessed --mask`, a volume-layout CSV) has another shape; headers only."""
    for path, mask in scans:
        shape = _header_shape(path)
        if shape is None:
            continue
        if not _is_3d(shape):
            raise UserInputError(f"{path}: shape {shape}; expected a 3D volume (X, Y, Z): give 3D scans "
                                 "(split a 4D series into 3D files)")
        mask_shape = _header_shape(mask) if mask is not None else None
        if mask_shape is not None and mask_shape[:3] != shape[:3]:
            raise UserInputError(f"{path}: shape {shape[:3]} but its brain mask {mask} is {mask_shape[:3]}; give the mask "
                                 "of this scan, on its grid (one --mask serves only scans of one shape)")


def check_model_grid(slices: Sequence[int], evaluated: Sequence[int] | None, scan: str, model: str | Path) -> None:
    """Refuse slices of another size than those the model was evaluated on (`evaluated`: its input grid)."""
    if evaluated is None or tuple(slices[:2]) == tuple(evaluated[:2]):
        return
    raise UserInputError(f"{scan}: preprocessing brings it onto {slices[0]}x{slices[1]} slices, but {model} was evaluated on "
                         f"{evaluated[0]}x{evaluated[1]}; give scans already on the model's grid with --preprocessed "
                         "--mask, or raw scans whose preprocessing (the checkpoint's) yields that grid")


def check_model_runs(pipeline: ScoringPipeline, image: torch.Tensor, scan: str, model: str | Path) -> None:
    """Run the model once on the middle slice of `image` (H, W, D; one reconstruction, eval mode, the RNG
    state put back): a grid it does not fit, or slices too small for the scorer, is one line naming the scan,
    not a shape error mid-scoring."""
    problem = pipeline.slice_problem(image.shape[0], image.shape[1])
    if problem is not None:
        raise UserInputError(f"{scan}: preprocessing brings it onto {image.shape[0]}x{image.shape[1]} slices, but {problem}; "
                             "give scans whose preprocessing (the checkpoint's) yields larger slices")
    net, rng = pipeline.model, torch.get_rng_state()
    was_training = net.training
    net.eval()
    middle = image.shape[2] // 2
    try:
        reconstruct_volume(net, image[..., middle:middle + 1].float(), 1, 1, pipeline.device,
                           pipeline.spec.inference.precision, channels_last=False)
    except (RuntimeError, ValueError, IndexError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise UserInputError(f"{scan}: the model of {model} does not run on its {image.shape[0]}x{image.shape[1]} slices "
                             f"({reason}); give scans already on the model's grid with --preprocessed --mask, or raw scans "
                             "whose preprocessing (the checkpoint's) yields that grid") from exc
    finally:
        net.train(was_training)
        torch.set_rng_state(rng)

"""What `uad predict` checks before it writes anything: every file a scan names is there and readable,
every scan is a 3D volume on its brain mask's grid (headers only), and the model fits the grid the scans
are brought onto (the first scan, once: against the evaluation's recorded grid, then one slice through the model).

A missing scan, a scan of the wrong dimensionality or a grid the model was not evaluated on would otherwise
fail inside scoring (an OSError, an IndexError, `mat1 and mat2 shapes cannot be multiplied`) after the
output folder exists; here it is one line naming the file (and the CSV line that named it) and the fix.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import torch

from core.evaluation.pipeline import ScoringPipeline
from core.evaluation.reconstruction import reconstruct_volume
from data.nifti_io import zero_size_axis
from dl_utils.errors import UserInputError


def _is_3d(shape: Sequence[int]) -> bool:
    return len(shape) == 3 or (len(shape) == 4 and shape[3] == 1)


@dataclass(frozen=True)
class ScanFiles:
    """The files of one scan to score, and where they were named (`origin`: a CSV and its line; '' for a
    scan given as a file or found in a folder)."""

    image: Path
    mask: Path | None = None  # its brain mask, already on its grid (`--preprocessed --mask`, a volume-layout CSV)
    others: tuple[Path, ...] = ()  # further files it names (T2, lesion labels, a raw scan's mask): read, not compared
    origin: str = ""


def _header_shape(path: Path, what: str, origin: str) -> tuple[int, ...]:
    """The shape in `path`'s header; a one-line error naming `origin`, the file and the fix when it is missing or
    unreadable (nibabel reads the header only)."""
    where = f"{origin}: {what} " if origin else f"{what} "
    if not path.is_file():
        raise UserInputError(f"{where}{path}: no such file; fix the path (a CSV's paths are relative to its folder, "
                             "or to --data-root for a volume-layout CSV)")
    try:
        return tuple(int(s) for s in nib.load(str(path)).shape)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:120]
        raise UserInputError(f"{where}{path}: not a readable NIfTI file ({reason}); give a .nii / .nii.gz scan "
                             "this user may read") from None


def check_scan_headers(scans: Iterable[ScanFiles]) -> None:
    """Refuse a missing or unreadable file, a scan whose header is not 3D (X, Y, Z), or whose brain mask
    (already on the scan's grid) has another shape: every scan, before any output exists; headers only."""
    for scan in scans:
        shape = _header_shape(scan.image, "scan", scan.origin)
        empty = zero_size_axis(shape)
        if empty:
            raise UserInputError(f"{scan.image} {empty}; give 3D scans (X, Y, Z) with voxels")
        if not _is_3d(shape):
            raise UserInputError(f"{scan.image}: shape {shape}; expected a 3D volume (X, Y, Z): give 3D scans "
                                 "(split a 4D series into 3D files)")
        mask_shape = _header_shape(scan.mask, "brain mask", scan.origin) if scan.mask is not None else None
        if mask_shape is not None and mask_shape[:3] != shape[:3]:
            raise UserInputError(f"{scan.image}: shape {shape[:3]} but its brain mask {scan.mask} is {mask_shape[:3]}; give the "
                                 "mask of this scan, on its grid (one --mask serves only scans of one shape)")
        for other in scan.others:
            _header_shape(other, "file", scan.origin)


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
    problem = pipeline.slice_problem(*image.shape[:3])
    if problem is not None:
        raise UserInputError(f"{scan}: preprocessing brings it onto {image.shape[0]}x{image.shape[1]}x{image.shape[2]} voxels, "
                             f"but {problem}; give scans whose preprocessing (the checkpoint's) yields a larger grid")
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

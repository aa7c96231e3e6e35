"""The NIfTI files of one evaluated volume, next to its anomaly map: their names and the writer.

`<task>/anomaly_maps/<set>/<name>_anomaly_map.nii.gz` is the result; the input, the mean
reconstruction and the lesion labels beside it (on the same grid and affine) are what
`core.run.report` draws. `uad predict` writes the same names in each scan's own space,
plus its `_anomaly_mask`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data.nifti_io import save_nifti

SUFFIXES = {"map": "_anomaly_map.nii.gz", "input": "_input.nii.gz", "reconstruction": "_reconstruction.nii.gz",
            "labels": "_labels.nii.gz", "mask": "_anomaly_mask.nii.gz"}


def save_volumes(folder: Path, name: str, image: np.ndarray, reconstruction: np.ndarray | None,
                 seg: np.ndarray | None, affine: np.ndarray) -> None:
    """Next to a volume's anomaly map: its input, mean reconstruction (if the model made one)
    and lesion labels (if labelled), for the report."""
    save_nifti(Path(folder) / f"{name}{SUFFIXES['input']}", np.asarray(image, dtype=np.float32), affine)
    if reconstruction is not None:
        save_nifti(Path(folder) / f"{name}{SUFFIXES['reconstruction']}", np.asarray(reconstruction, dtype=np.float32), affine)
    if seg is not None:
        save_nifti(Path(folder) / f"{name}{SUFFIXES['labels']}", np.asarray(seg, dtype=np.uint8), affine)

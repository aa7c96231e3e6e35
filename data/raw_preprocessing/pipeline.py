"""Per-subject preprocessing (RAS, 1 mm, skull strip, registration, brain box, N4), parallel and resumable.

Layout written under the output folder:
`subjects/<name>/{<name>_t1.nii.gz, <name>_t2.nii.gz, <name>_mask.nii.gz, <name>_seg.nii.gz,
transform.json, qc.png}`, `splits/*.csv` (see `splits.py`) and `summary.csv` (one status row
per subject). A subject is built in a temporary folder and renamed into place, so a finished
subject (its folder exists) is skipped on a re-run and a half-written one is redone.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from data.interpolation import Interpolation
from data.nifti_io import header_description, load_nifti, save_nifti
from data.raw_preprocessing.bias import n4_correct
from data.raw_preprocessing.crop import brain_box, crop_affine
from data.raw_preprocessing.qc import three_plane_png
from data.raw_preprocessing.registration import register_affine
from data.raw_preprocessing.resample import resample_isotropic, resample_to_grid
from data.raw_preprocessing.template import DEFAULT_TEMPLATE, Template, load_template
from dl_utils import recovery
from dl_utils.checkpoint import atomic_write_csv, atomic_write_text
from dl_utils.errors import UserInputError, WriteFailed
from dl_utils.options import parse_option
from dl_utils.param_ranges import PositiveInt
from dl_utils.paths import check_component

LOG = logging.getLogger(__name__)
TRANSFORM_FILE = "transform.json"
SUMMARY_COLUMNS = ("subject", "status", "seconds", "message")


class SkullStrip(StrEnum):
    DEEPBET = "deepbet"  # deepbet on the T1 (default)
    NONE = "none"        # already skull-stripped: mask from intensities (data.demo.geometry.brain_mask_from_image)


@dataclass(frozen=True)
class SubjectInput:
    """One subject's raw files (T1 required; T2, lesion labels and a brain mask optional)."""

    name: str
    t1: Path
    t2: Path | None = None
    seg: Path | None = None
    mask: Path | None = None
    age: str = ""
    label: int | None = None  # default: 1 when a seg is given, else 0


@dataclass(frozen=True)
class PipelineOptions:
    """Step parameters; defaults are the papers' (1 mm, affine to the template, N4)."""

    spacing: float = 1.0
    skull_strip: SkullStrip = SkullStrip.DEEPBET
    template: str = DEFAULT_TEMPLATE
    template_mask: str | None = None
    register: bool = True
    registration_iterations: int = 100
    registration_shrink: tuple[int, ...] = (4, 2, 1)
    margin: int = 4
    n4: bool = True
    n4_shrink: int = 4
    use_gpu: bool = False
    qc: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "skull_strip", parse_option(SkullStrip, self.skull_strip, "skull_strip"))


@dataclass
class Preprocessed:
    """The result of one subject on its final (template, cropped) grid."""

    image: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    seg: np.ndarray | None = None
    t2: np.ndarray | None = None
    transform: dict[str, Any] = field(default_factory=dict)


def raw_header(path: Path) -> dict[str, Any]:
    """Shape, affine and description of a scan as stored on disk (before reorientation): where maps go back to."""
    img = nib.load(str(path))
    return {"path": str(path), "shape": [int(s) for s in img.shape[:3]], "affine": np.asarray(img.affine).tolist(),
            "description": header_description(img)}  # may name the contrast; predict reads it back


def _strip(image: np.ndarray, affine: np.ndarray, subject: SubjectInput, options: PipelineOptions) -> np.ndarray:
    if subject.mask is not None:
        given = load_nifti(subject.mask, "brain mask")
        return resample_to_grid(given.data, given.affine, image.shape, affine, interpolation=Interpolation.NEAREST) > 0.5
    if options.skull_strip == SkullStrip.NONE:  # stripped already: intensity mask, largest component, holes filled
        from data.demo.geometry import brain_mask_from_image

        return brain_mask_from_image(image)
    from data.raw_preprocessing.skull_strip import deepbet_mask

    return deepbet_mask(image, affine, use_gpu=options.use_gpu)


def preprocess_subject(subject: SubjectInput, options: PipelineOptions, template: Template | None) -> Preprocessed:
    """The papers' steps in order for one subject (T2 and labels follow the T1's transform)."""
    t1 = load_nifti(subject.t1, "T1 image")  # reoriented to RAS by load_nifti
    if not (t1.data > 0).any():  # nothing to strip, register or normalise
        raise UserInputError(f"{subject.t1}: no voxel above 0 (an empty scan); check it is a T1 head scan")
    image, affine = resample_isotropic(np.clip(t1.data, 0, None), t1.affine, options.spacing)
    image = np.clip(image, 0, None)
    mask = _strip(image, affine, subject, options)
    if not mask.any():
        raise UserInputError(f"{subject.t1}: skull stripping found no brain; check it is a T1 head scan")
    if options.register and template is not None:
        to_subject = register_affine(image * mask, affine, template.image, template.affine,
                                     iterations=options.registration_iterations,
                                     shrink_factors=options.registration_shrink, name=str(subject.t1))
        grid_shape, grid_affine = template.image.shape, template.affine
    else:
        to_subject, grid_shape, grid_affine = np.eye(4), image.shape, affine

    def onto_grid(array: np.ndarray, source_affine: np.ndarray, interpolation: Interpolation) -> np.ndarray:
        return resample_to_grid(array, source_affine, grid_shape, grid_affine, to_subject, interpolation)

    image_g = np.clip(onto_grid(image, affine, Interpolation.BSPLINE), 0, None)
    mask_g = onto_grid(mask.astype(np.float32), affine, Interpolation.NEAREST) > 0.5
    seg_g = t2_g = None
    if subject.seg is not None:
        seg = load_nifti(subject.seg, "lesion labels")
        seg_g = onto_grid((seg.data > 0).astype(np.float32), seg.affine, Interpolation.NEAREST) > 0.5
    if subject.t2 is not None:  # the T2 takes its subject's T1 mask and transform (same world space)
        t2 = load_nifti(subject.t2, "T2 image")
        t2_g = np.clip(onto_grid(np.clip(t2.data, 0, None), t2.affine, Interpolation.BSPLINE), 0, None)
    box = brain_box(mask_g, options.margin, str(subject.t1))
    out_affine = crop_affine(grid_affine, box)
    image_c, mask_c = image_g[box], mask_g[box]
    seg_c = None if seg_g is None else seg_g[box]
    t2_c = None if t2_g is None else t2_g[box]
    if options.n4:
        image_c = n4_correct(image_c, mask_c, out_affine, shrink=options.n4_shrink)
        t2_c = None if t2_c is None else n4_correct(t2_c, mask_c, out_affine, shrink=options.n4_shrink)
    image_c = (image_c * mask_c).astype(np.float32)
    t2_c = None if t2_c is None else (t2_c * mask_c).astype(np.float32)
    transform = {
        "version": 1,
        "template": template.name if (options.register and template is not None) else None,
        "template_to_subject": np.asarray(to_subject).tolist(),  # RAS world, template point -> scan point
        "grid_shape": [int(s) for s in image_c.shape],
        "grid_affine": np.asarray(out_affine).tolist(),
        "raw": raw_header(subject.t1),
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(options).items()},
    }
    return Preprocessed(image_c, mask_c, out_affine, seg_c, t2_c, transform)


def subject_files(name: str) -> dict[str, str]:
    """File names inside `subjects/<name>/` (the `t1` / `t2` parts are what `mode: t2` rewrites)."""
    return {"t1": f"{name}_t1.nii.gz", "t2": f"{name}_t2.nii.gz", "mask": f"{name}_mask.nii.gz",
            "seg": f"{name}_seg.nii.gz", "transform": TRANSFORM_FILE, "qc": "qc.png"}


def write_subject(result: Preprocessed, folder: Path, name: str, qc: bool = True) -> None:
    """Write one subject's volumes, transform and QC picture into `folder` (transform last)."""
    files = subject_files(name)
    save_nifti(folder / files["t1"], result.image, result.affine)
    save_nifti(folder / files["mask"], result.mask, result.affine)
    if result.seg is not None:
        save_nifti(folder / files["seg"], result.seg, result.affine)
    if result.t2 is not None:
        save_nifti(folder / files["t2"], result.t2, result.affine)
    if qc:
        three_plane_png(folder / files["qc"], result.image, result.mask, title=f"{name}: preprocessed T1, brain mask")
    atomic_write_text(folder / files["transform"], json.dumps(result.transform, indent=1))


def run_subject(subject: SubjectInput, out_root: Path, options: PipelineOptions) -> dict[str, str]:
    """Preprocess one subject into `out_root/subjects/<name>` (skipped when done); a status row."""
    started = time.perf_counter()
    # one plain name: never `subjects/` itself or its parent, both of which the lines below would replace
    final = out_root / "subjects" / check_component(subject.name, "subject")
    if (final / TRANSFORM_FILE).is_file():
        return {"subject": subject.name, "status": "skipped", "seconds": "0.0", "message": "already done"}
    tmp = out_root / "subjects" / f".tmp-{subject.name}"
    shutil.rmtree(tmp, ignore_errors=True)  # a half-written earlier attempt
    try:
        template = load_template(options.template, options.template_mask) if options.register else None
        result = preprocess_subject(subject, options, template)
        tmp.mkdir(parents=True)
        write_subject(result, tmp, subject.name, options.qc)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
    except WriteFailed:  # a full or read-only disk is no subject's fault: every later one would fail too
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except UserInputError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        return {"subject": subject.name, "status": "failed", "seconds": f"{time.perf_counter() - started:.1f}",
                "message": " ".join(str(exc).split())}
    except Exception as exc:  # one bad scan must not stop the others; the summary names it
        shutil.rmtree(tmp, ignore_errors=True)
        return {"subject": subject.name, "status": "failed", "seconds": f"{time.perf_counter() - started:.1f}",
                "message": f"{subject.t1}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"}
    return {"subject": subject.name, "status": "done", "seconds": f"{time.perf_counter() - started:.1f}", "message": ""}


def pool_size(workers: int, subjects: int) -> int:
    """Processes to start for `subjects` with `workers` asked for: never more than subjects (an idle process
    still costs its memory), at least one."""
    return max(1, min(int(workers), int(subjects)))


def run_all(subjects: list[SubjectInput], out_root: str | Path, options: PipelineOptions,
            workers: PositiveInt = 1) -> list[dict[str, str]]:
    """Every subject (a process pool of `pool_size(workers, subjects)` when that is > 1); writes `summary.csv`,
    returns its rows. `uad preprocess` bounds `workers` by the machine's CPUs (`core.commands.arg_types`)."""
    out_root = Path(out_root)
    (out_root / "subjects").mkdir(parents=True, exist_ok=True)
    processes = pool_size(workers, len(subjects))
    # stopped part-way: a subject is written whole (a temporary folder renamed) or not at all
    with recovery.advise(recovery.run_again(f"the subjects finished in {out_root} are kept and skipped")):
        if processes > 1:
            with ProcessPoolExecutor(max_workers=processes) as pool:
                rows = list(pool.map(run_subject, subjects, [out_root] * len(subjects), [options] * len(subjects)))
        else:
            rows = [run_subject(s, out_root, options) for s in subjects]
        for row in rows:
            if row["status"] == "failed":
                LOG.error("%s", row["message"])
        atomic_write_csv(out_root / "summary.csv", rows, SUMMARY_COLUMNS)
    return rows

"""`uad predict`'s inputs: which scans a path names (files, folders, CSVs, `uad preprocess` output, 2D images)
and how each is brought onto the model's grid, and back to its own space."""
from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.commands.predictor import Predictor
from core.commands.scan_checks import ScanFiles
from data.csv_splits import SplitRow, read_file_list, read_volume_split
from data.image_list_dataset import MaskKind, check_parallel, parallel_files
from data.image_reading import ImageReading, image_shape_2d, is_image_2d, load_image_2d
from data.interpolation import Interpolation
from data.nifti_io import load_nifti
from data.preprocessing import FlatIntensities
from data.raw_preprocessing.inputs import check_unique_names, is_nifti, read_subjects, scan_name
from data.raw_preprocessing.pipeline import TRANSFORM_FILE, PipelineOptions, SubjectInput, preprocess_subject, raw_header
from data.raw_preprocessing.resample import resample_to_grid
from data.raw_preprocessing.template import Template
from data.trained_on import ScanHeader
from data.volume import Volume
from data.volume_dataset import load_volume
from dl_utils.csv_files import read_csv
from dl_utils.errors import UserInputError
from dl_utils.paths import flat_name

LOG = logging.getLogger(__name__)


# ---- inputs ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scan:
    """One scan to score: raw (`subject`), in the volume layout (`row`), preprocessed by `uad preprocess`
    (`preprocessed_dir`) or a 2D image file (`image`: PNG, JPEG, TIFF; `image_mask` its brain-mask image,
    None: the whole image). `name` names its output files; `evaluated_name` is the name its evaluation gave
    it (`ImageListSet`'s, its image's extension kept), which `Predictor.seed_key` looks up."""

    name: str
    subject: SubjectInput | None = None
    row: SplitRow | None = None
    preprocessed_dir: Path | None = None
    origin: str = ""  # the CSV line (or subject) that named it; '' for a scan given as a file or a folder's
    image: Path | None = None
    image_mask: Path | None = None
    volume_name: str = ""  # the evaluator's name where it differs from `name`

    @property
    def evaluated_name(self) -> str:
        """The name the evaluator gives this scan (its per-volume name: the seed key)."""
        return self.volume_name or self.name

    @property
    def kind(self) -> str:
        """What it is, for an error line."""
        if self.image is not None:
            return "a 2D image"
        if self.row is not None:
            return "a preprocessed volume"
        return "a `uad preprocess` subject folder" if self.preprocessed_dir is not None else "a raw scan"

    def files(self) -> ScanFiles | None:
        """The files it names, for `check_scan_headers` (None: a `uad preprocess` subject folder, read through its
        checked transform record)."""
        if self.subject is not None:
            others = tuple(f for f in (self.subject.t2, self.subject.seg, self.subject.mask) if f is not None)
            return ScanFiles(self.subject.t1, None, others, self.origin)
        if self.row is not None:
            return ScanFiles(self.row.img_path, self.row.mask_path, (self.row.seg_path,) if self.row.seg_path else (), self.origin)
        return None


def read_scans(source: str | Path, preprocessed: bool = False, mask: str | Path | None = None,
               data_root: str | Path | None = None) -> list[Scan]:
    """A scan, a folder of scans, a `uad preprocess` output folder, a raw-subject CSV, a
    volume-layout CSV (already preprocessed: img_path, mask_path, relative to `data_root`,
    default the CSV's folder), or 2D images: a PNG / JPEG / TIFF file, a folder of them, an
    image-list CSV (`filename` column, relative to `data_root`, default the CSV's folder; each
    named as the evaluator names it, its outputs by that name's stem). `mask` of 2D images: a brain-mask
    image, or for several images the mask list their evaluation took (`ImageListSet`'s `mask_dir`: a CSV with
    a `filename` column, relative to `data_root`, default its folder; or a folder of mask images in name
    order), the i-th mask the i-th image's."""
    source = Path(source)
    if source.is_dir() and (source / "subjects").is_dir():
        dirs = sorted(p for p in (source / "subjects").iterdir() if (p / TRANSFORM_FILE).is_file())
        return [Scan(p.name, preprocessed_dir=p) for p in dirs]
    images = _image_files(source, data_root, mask)
    if images is not None:
        if preprocessed:
            raise UserInputError(f"{source}: 2D images are read as the checkpoint's evaluation read them; drop --preprocessed")
        return images
    if source.is_file() and source.suffix == ".csv":
        columns = read_csv(source, "give a CSV of subjects or a volume-layout CSV, a scan or a folder of scans").columns
        if "img_path" in columns and "mask_path" in columns:
            rows = read_volume_split(source.resolve(), data_root if data_root is not None else source.parent)
            return [Scan(r.img_name, row=r, origin=f"{source} line {r.line}") for r in rows]
    if preprocessed:
        files = sorted(p for p in source.iterdir() if is_nifti(p)) if source.is_dir() else [source]
        if not files or not all(is_nifti(f) for f in files):
            raise UserInputError(f"{source}: no NIfTI scans; give a scan, a folder of scans or a CSV")
        if mask is None:
            raise UserInputError("--preprocessed needs --mask BRAIN_MASK (or use a volume-layout CSV with mask_path)")
        check_unique_names([(scan_name(f), f.name) for f in files], source)
        return [Scan(scan_name(f), row=SplitRow(scan_name(f), float("nan"), 0, f, Path(mask), None)) for f in files]
    named = source.suffix.lower() == ".csv"  # a CSV of subjects: each scan named by its subject there
    return [Scan(s.name, subject=s, origin=f"{source} subject '{s.name}'" if named else "") for s in read_subjects(source)]


def _folder_images(folder: Path) -> list[Path] | None:
    """The 2D image files of a folder in name order; None: it holds a NIfTI scan or no image."""
    files = sorted(p for p in folder.iterdir() if p.is_file())
    if any(is_nifti(p) for p in files) or not any(is_image_2d(p) for p in files):
        return None
    return [p for p in files if is_image_2d(p)]


def _image_files(source: Path, data_root: str | Path | None, mask: str | Path | None = None) -> list[Scan] | None:
    """The 2D images `source` names (an image file, a folder holding images and no NIfTI scan, an image-list
    CSV), each named as `ImageListSet` names it (its path relative to the root, `flat_name`), with its brain
    mask (`mask`, see `read_scans`); None: no 2D input."""
    if source.is_file() and is_image_2d(source):
        found = [(source.name, source, "")]
    elif source.is_dir():
        files = _folder_images(source)
        if files is None:
            return None
        found = [(p.name, p, "") for p in files]
    elif source.is_file() and source.suffix.lower() == ".csv":
        columns = read_csv(source, "give an image-list CSV, a CSV of subjects or a volume-layout CSV").columns
        if "filename" not in columns:
            return None
        root = Path(data_root) if data_root is not None else source.resolve().parent
        files = read_file_list(str(source.resolve()), root)
        found = [(flat_name(f, root), f, f"{source} row {i + 1}") for i, f in enumerate(files)]
        check_unique_names([(name, str(f)) for name, f, _ in found], source)
    else:
        return None
    masks = _image_masks([f for _, f, _ in found], mask, data_root)
    _check_mask_sizes([f for _, f, _ in found], masks)
    outputs = output_names([name for name, _, _ in found])
    return [Scan(out, image=f, origin=origin, image_mask=m, volume_name=name if out != name else "")
            for out, (name, f, origin), m in zip(outputs, found, masks, strict=True)]


def _check_mask_sizes(images: list[Path], masks: list[Path | None]) -> None:
    """Each brain mask has its image's pixel grid (headers only): a mask of another size is another image's
    (a list out of order) or another export; resized onto the image it would be scored without a word."""
    mask_shapes: dict[Path, tuple[int, int] | None] = {}  # one mask image may serve every image
    for image, mask in zip(images, masks, strict=True):
        if mask is None:
            continue
        if mask not in mask_shapes:
            mask_shapes[mask] = image_shape_2d(mask)
        image_shape, mask_shape = image_shape_2d(image), mask_shapes[mask]
        if image_shape is not None and mask_shape is not None and image_shape != mask_shape:
            raise UserInputError(f"--mask {mask}: {mask_shape[0]} x {mask_shape[1]} pixels, but its image {image} is "
                                 f"{image_shape[0]} x {image_shape[1]}; give each image's own brain mask, in the images' order")


def output_names(names: list[str]) -> list[str]:
    """Output file names of 2D images: each evaluator name without its image extension (`png__x.png` ->
    `png__x`, as a volume's `img_name` drops `.nii.gz`), kept whole where two would meet (`x.png`, `x.jpg`)."""
    stems = [name[: -len(Path(name).suffix)] if is_image_2d(Path(name)) else name for name in names]
    counts = Counter(stems)
    chosen = [stem if counts[stem] == 1 else name for stem, name in zip(stems, names, strict=True)]
    return chosen if len(set(chosen)) == len(chosen) else list(names)


def _image_masks(images: list[Path], mask: str | Path | None, data_root: str | Path | None) -> list[Path | None]:
    """Each image's brain-mask file: none; one mask image for all; or a mask list parallel to the images
    (a CSV with a `filename` column as `ImageListSet`'s `mask_dir`, or a folder of mask images in name order)."""
    if mask is None:
        return [None] * len(images)
    path = Path(mask)
    if path.is_file() and path.suffix.lower() == ".csv":
        root = Path(data_root) if data_root is not None else path.resolve().parent
        return list(parallel_files(images, str(path.resolve()), root, "--mask"))
    if path.is_dir():
        files = _folder_images(path)
        if files is None:
            raise UserInputError(f"--mask {mask}: a folder without 2D mask images (or with NIfTI scans); give the brain "
                                 "masks of the images, in their order, as a folder of images or a CSV with a `filename` column")
        return list(check_parallel(images, files, f"--mask folder {mask}"))
    return [path] * len(images)  # one brain-mask image (checked before any output: `check_input_kinds`)


def check_input_kinds(scans: list[Scan], predictor: Predictor, model: str | Path, mask: str | Path | None) -> None:
    """Refuse, before any output, inputs the checkpoint cannot read as its evaluation read its data: 2D images for a
    checkpoint that scored volumes (or recorded no image reading), raw scans for one evaluated on 2D images, `--mask`
    where its image lists' masks marked non-lesion regions (every image is scored whole there); a warning where
    its image lists gave brain masks and `--mask` gives none."""
    reading = predictor.reading
    images = [s for s in scans if s.image is not None]
    if images and reading is None:
        raise UserInputError(f"{images[0].image}: {model} records no reading of 2D images (its evaluation scored volumes, "
                             "or ran before readings were recorded); give NIfTI scans, or evaluate it again with this "
                             "version and write the record with `uad describe RUN_FOLDER --weights CHECKPOINT`")
    if reading is None:
        return
    others = [s for s in scans if s.image is None and s.row is None]
    if others:
        raise UserInputError(f"{others[0].name}: {model} was evaluated on 2D images ({reading.summary()}); {others[0].kind} "
                             "cannot be read so: give a PNG, a folder of PNGs, an image-list CSV (`filename` column) or "
                             "a volume-layout CSV (its mid-axial slices)")
    if mask is not None and images:
        if predictor.mask_kind is MaskKind.NON_LESION:
            raise UserInputError(f"--mask {mask}: {model}'s image lists marked non-lesion regions (mask_kind non_lesion), "
                                 "so its evaluation scored every image whole; drop --mask")
        if not Path(mask).exists():
            raise UserInputError(f"--mask {mask}: not found; give the brain-mask image of the 2D image, the mask list "
                                 "of several (a CSV with a `filename` column, or a folder), or drop --mask")
    elif images and predictor.mask_kind is MaskKind.BRAIN and predictor.image_masks_given:
        LOG.warning("%s: its evaluation scored the images inside their brain masks (mask_kind brain); without --mask "
                    "each image is scored whole, unlike there: pass the mask list it took (--mask MASKS.csv with a "
                    "`filename` column or a folder of masks, the i-th mask the i-th image's)", model)


# ---- grids -------------------------------------------------------------------------------
@dataclass
class Prepared:
    """A scan on the model's grid and how to go back to the scan's own grid."""

    volume: Volume
    grid_to_raw: Callable[[np.ndarray, Interpolation], np.ndarray]  # (array on model grid, interpolation) -> raw grid
    raw_affine: np.ndarray  # the scan's affine as stored: the outputs are written with it


def _model_grid(image: np.ndarray, mask: np.ndarray, affine: np.ndarray, predictor: Predictor
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Preprocessed (template-space) arrays -> the grid the model was evaluated on.

    A config whose evaluation preprocessing is the identity read volumes already on the model
    grid (the demo's brain box, data/demo/geometry.py): that box is re-created at the stored
    evaluation shape. Otherwise the config's VolumePreprocessor runs, as in evaluation."""
    pre = predictor.preprocessor
    if pre.is_identity and predictor.input_shape:
        from data.demo.geometry import Variant, prepare_subject, sample_variant

        grid = prepare_subject(image, mask, affine, predictor.input_shape)
        img, msk, out_affine = sample_variant(grid, predictor.input_shape, Variant())
        return img, msk, out_affine
    img, msk, _ = pre(image, mask, None, spacing=tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0)), strict=True)
    return img, msk, pre.output_affine(affine, image.shape, tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0)))


def _exact_reorientation(array: np.ndarray, grid_affine: np.ndarray, raw_shape: tuple[int, ...],
                         raw_affine: np.ndarray) -> np.ndarray | None:
    """`array` in the raw voxel order when the two grids differ only by axis order / flips, else None."""
    from nibabel import orientations as ornt

    change = ornt.ornt_transform(ornt.io_orientation(grid_affine), ornt.io_orientation(raw_affine))
    out = ornt.apply_orientation(array, change)
    affine = grid_affine @ ornt.inv_ornt_aff(change, array.shape)
    if out.shape == tuple(raw_shape) and np.allclose(affine, raw_affine, atol=1e-4):
        return np.ascontiguousarray(out)
    return None


def _back_to_raw(grid_affine: np.ndarray, transform: dict[str, Any]) -> Callable[[np.ndarray, Interpolation], np.ndarray]:
    raw = transform["raw"]
    raw_shape, raw_affine = tuple(raw["shape"]), np.asarray(raw["affine"], float)
    to_template = np.linalg.inv(np.asarray(transform["template_to_subject"], float))  # scan point -> template point

    def apply(array: np.ndarray, interpolation: Interpolation) -> np.ndarray:
        if np.allclose(to_template, np.eye(4)):
            exact = _exact_reorientation(array, grid_affine, raw_shape, raw_affine)
            if exact is not None:  # same voxels (RAS loading only reordered them): no interpolation
                return exact
        return resample_to_grid(array, grid_affine, raw_shape, raw_affine, to_template, interpolation)

    return apply


def prepare_image(scan: Scan, reading: ImageReading) -> Prepared:
    """A 2D image file (or a volume-layout row's mid-axial slice, with its brain mask) read as the evaluation's
    `ImageListSet` read its images; the model scores it on that grid (target_size), as the evaluator did, and
    its outputs go back onto the file's own pixels (`ImageReading.to_source`: resized, the padding cut off), an
    (H, W, 1) NIfTI with the file's affine (a PNG's: the identity). An image file's mask is its `image_mask`
    (none: the whole image, as an image list without masks)."""
    mid_axial = scan.image is None
    path = Path(scan.row.img_path) if mid_axial else scan.image
    image, source = reading.image(path, mid_axial)
    mask_path = scan.row.mask_path if mid_axial else scan.image_mask
    brain = reading.binary(Path(mask_path), mid_axial) if mask_path is not None else np.ones(reading.target_size, bool)
    volume = Volume(name=scan.name, image=torch.from_numpy(np.ascontiguousarray(image, np.float32))[..., None],
                    mask=torch.from_numpy(np.ascontiguousarray(brain, bool))[..., None], seg=None, label=0,
                    affine=reading.grid_affine(source))

    def to_source(array: np.ndarray, interpolation: Interpolation) -> np.ndarray:
        return reading.to_source(array[..., 0], source, interpolation)[..., None]

    return Prepared(volume, to_source, np.asarray(source.affine, float))


def prepare_scan(scan: Scan, predictor: Predictor, options: PipelineOptions, template: Template | None) -> Prepared:
    """Bring one scan onto the model grid (raw scans through `uad preprocess`'s steps; 2D images and a 2D
    checkpoint's volume-layout rows by its recorded reading, each image with its `image_mask`)."""
    reading = predictor.reading
    if reading is not None:
        return prepare_image(scan, reading)
    if scan.row is not None:  # already preprocessed: the evaluator's own loading
        pre = predictor.preprocessor
        volume = load_volume(scan.row, pre, strict=True)  # a uniform scan: nothing to score
        expected = predictor.input_shape
        if expected and pre.is_identity and list(volume.image.shape[:2]) != list(expected[:2]):
            raise UserInputError(f"{scan.row.img_path}: slices are {tuple(volume.image.shape[:2])} but the model was evaluated "
                                 f"on {tuple(expected[:2])}; give the raw scan (without --preprocessed) so predict "
                                 "brings it onto the model's grid")
        transform = {"raw": raw_header(scan.row.img_path), "template_to_subject": np.eye(4).tolist()}
        return Prepared(volume, _back_to_raw(volume.affine, transform), np.asarray(transform["raw"]["affine"]))
    if scan.preprocessed_dir is not None:
        transform = read_transform(scan.preprocessed_dir)
        source = scan.preprocessed_dir / f"{scan.name}_t1.nii.gz"
        image = load_nifti(source, "preprocessed T1")
        mask = load_nifti(scan.preprocessed_dir / f"{scan.name}_mask.nii.gz", "preprocessed brain mask")
        arrays, affine = (image.data, mask.data > 0), image.affine
    else:
        source = scan.subject.t1
        result = preprocess_subject(scan.subject, options, template)
        transform, arrays, affine = result.transform, (result.image, result.mask), result.affine
    try:
        img, msk, grid_affine = _model_grid(arrays[0], arrays[1], affine, predictor)
    except FlatIntensities as exc:  # a uniform scan: nothing to score
        raise UserInputError(f"{source}: {exc}") from None
    volume = Volume(name=scan.name, image=torch.from_numpy(np.ascontiguousarray(img, np.float32)),
                    mask=torch.from_numpy(np.ascontiguousarray(msk, bool)), seg=None, label=0, affine=grid_affine)
    return Prepared(volume, _back_to_raw(grid_affine, transform), np.asarray(transform["raw"]["affine"], float))


def read_transform(folder: Path) -> dict[str, Any]:
    """A `uad preprocess` subject folder's transform.json, checked: the raw scan's shape and affine and
    the template-to-subject matrix (what maps the outputs back), a one-line error naming the file otherwise."""
    path = folder / TRANSFORM_FILE
    fix = "run `uad preprocess` again for this subject, or give its raw scan"
    try:
        transform = json.loads(path.read_text(encoding="utf-8"))
        raw = transform["raw"]
        shape_ok = len(raw["shape"]) == 3 and all(isinstance(n, int) and n > 0 for n in raw["shape"])
        matrices_ok = all(np.asarray(m, float).shape == (4, 4) and np.isfinite(np.asarray(m, float)).all()
                          for m in (raw["affine"], transform["template_to_subject"]))
    except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
        raise UserInputError(f"{path}: not a readable transform record ({type(exc).__name__}: {exc!s:.80}); {fix}") from None
    if not (shape_ok and matrices_ok):
        raise UserInputError(f"{path}: 'raw.shape' must be 3 positive integers and 'raw.affine' / 'template_to_subject' "
                             f"finite 4x4 matrices; {fix}")
    return transform


def scan_header(scan: Scan) -> ScanHeader:
    """The header of the scan as acquired: the raw file's (for a `uad preprocess` output, a folder or a row
    of its split CSVs, as its transform.json recorded it, the raw file's own header when it is still there):
    the preprocessed volume is cropped to the brain, its field of view is not the scan's; a 2D image: its file
    name and pixel grid)."""
    if scan.image is not None:
        data, affine = load_image_2d(scan.image)
        return ScanHeader.from_affine(scan.name, "", (*data.shape, 1), affine)
    if scan.subject is not None:
        return ScanHeader.read(scan.subject.t1, scan.name)
    folder = scan.preprocessed_dir
    if scan.row is not None:
        folder = Path(scan.row.img_path).parent
        if not (folder / TRANSFORM_FILE).is_file():
            return ScanHeader.read(scan.row.img_path, scan.name)
    raw = read_transform(folder)["raw"]
    raw_path = Path(str(raw.get("path", "")))
    name = f"{scan.name} {raw_path.name}"  # the raw file's name may say the contrast (`sub03_t1ce.nii.gz`)
    if raw_path.is_file():
        return ScanHeader.read(raw_path, name)
    return ScanHeader.from_affine(name, str(raw.get("description", "")), tuple(raw["shape"]), np.asarray(raw["affine"], float))

"""`uad predict`: a self-describing checkpoint plus scans -> anomaly maps and masks in each scan's own space.

Per scan: `<name>_anomaly_map.nii.gz` and `<name>_anomaly_mask.nii.gz` with exactly the
input's shape and affine (through the inverse of the preprocessing: inverse registration,
un-crop, un-resample), `<name>.png` (three planes: map with a colour bar, mask outline)
and one row of `predictions.csv` (the sample score, the threshold used); with the report
(default) also `<name>_input.nii.gz` / `<name>_reconstruction.nii.gz` (what the model saw
and made, taken back the same way) and one `report.html` for all scans (`core.run.report`);
`predict.json` records the checkpoint (path, sha256, `trained_on`) and the settings used, so
`uad report FOLDER` rebuilds that page from the folder alone (`core.run.predict_record`).
A checkpoint evaluated on 2D image lists (`data.image_list_dataset.ImageListSet`) scores PNG / JPEG /
TIFF images (a file, a folder of them, an image-list CSV with a `filename` column) or the mid-axial
slices of a volume-layout CSV, each read by the `ImageReading` settings its evaluation recorded in the
checkpoint (target size, padding, intensity scaling, resize and antialias); its maps and masks are
written on that grid, as the evaluator writes them. Scoring is the
evaluator's own `ScoringPipeline`, built from the checkpoint's stored task with the same
inference settings and the same per-volume seed (`Predictor.seed_key`), so a volume the run
evaluated gets the map and mask it got there.
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.commands.scan_checks import ScanFiles, check_model_grid, check_model_runs, check_scan_headers
from core.evaluation.evaluator import AnomalyDetectionEvaluator
from core.evaluation.pipeline import ScoringPipeline
from core.evaluation.reconstruction import Precision
from core.evaluation.thresholds import fpr_key
from core.evaluation.volume_files import save_volumes
from core.run import checkpoint_metadata
from core.run.assembly import evaluation_seed
from core.run.checkpoint_metadata import TaskRecord
from core.run.predict_record import PredictRecord, PredictSettings
from core.run.report import try_write_report
from data.csv_splits import SplitRow, read_file_list, read_volume_split
from data.image_list_dataset import ImageReading, MaskKind, is_image_2d, load_image_2d
from data.interpolation import Interpolation
from data.nifti_io import load_nifti, save_nifti
from data.preprocessing import FlatIntensities, VolumePreprocessor
from data.raw_preprocessing.inputs import check_unique_names, is_nifti, read_subjects, scan_name
from data.raw_preprocessing.pipeline import TRANSFORM_FILE, PipelineOptions, SubjectInput, preprocess_subject, raw_header
from data.raw_preprocessing.qc import three_plane_png
from data.raw_preprocessing.resample import resample_to_grid
from data.raw_preprocessing.template import Template, load_template
from data.trained_on import ScanHeader, TrainedOn, scan_warnings
from data.volume import Volume
from data.volume_dataset import load_volume
from dl_utils import recovery
from dl_utils.checkpoint import atomic_write_csv, file_sha256, load_checkpoint
from dl_utils.csv_files import read_csv
from dl_utils.device import resolve_device
from dl_utils.errors import UserInputError, WriteFailed
from dl_utils.paths import flat_name

LOG = logging.getLogger(__name__)
PREDICTION_COLUMNS = ("scan", "status", "sample_score", "threshold_protocol", "threshold", "lesion_voxels",
                      "map_path", "mask_path", "png_path", "message")


DEFAULT_RULE = fpr_key(0.05)
PREDICT_SET = "predict"  # the seed key's data set for scans the run did not evaluate


# ---- the checkpoint as a predictor -------------------------------------------------------
@dataclass
class Predictor:
    """One downstream task of a self-describing checkpoint: its scoring pipeline (the
    evaluator's, built from the stored task) and what its evaluation recorded."""

    pipeline: ScoringPipeline
    task: str
    record: TaskRecord
    config: dict[str, Any] = field(default_factory=dict)
    trained_on: TrainedOn | None = None  # the checkpoint's `trained_on` (None: written before it existed)

    def threshold(self, choice: str, test_set: str | None = None) -> tuple[str, float]:
        """(label, value): a number, or the value of a rule the run fitted (for `test_set`, or
        the first test set that has it); the oracle is never offered."""
        try:
            given = float(choice)
        except ValueError:
            given = None
        if given is not None:
            if not math.isfinite(given):
                raise UserInputError(f"--threshold {choice}: give a finite number or a fitted rule (e.g. {DEFAULT_RULE})")
            return "given", given
        fitted = self.record.thresholds
        if not fitted:
            raise UserInputError(f"the checkpoint holds no fitted thresholds for task '{self.task}'; "
                                 "give --threshold NUMBER, or evaluate the run first")
        if test_set is not None and test_set not in fitted:
            raise UserInputError(f"--test-set {test_set}: no thresholds fitted for it (have: {', '.join(fitted)})")
        for name in [test_set] if test_set else list(fitted):
            found = fitted[name].get(choice)
            if found is not None and found.usable_by_predict:
                return found.protocol_label(name), found.value
        have = sorted({k for values in fitted.values() for k, t in values.items() if t.usable_by_predict})
        raise UserInputError(f"--threshold '{choice}' was not fitted for task '{self.task}' "
                             f"(have: {', '.join(have)}); choose one of them or give a number")

    def seed_key(self, scan_name: str, test_set: str | None = None) -> tuple[str, int | str]:
        """(data set, index) the evaluator seeded this volume with, when the run scored a volume
        of that name (in `test_set`, else in the first set that has it); else (`predict`, name)."""
        volumes = self.record.volumes
        order = [*([test_set] if test_set else []), *self.record.thresholds, *volumes]
        for name in dict.fromkeys(order):
            names = volumes.get(name, [])
            if scan_name in names:
                return name, names.index(scan_name)
        return PREDICT_SET, scan_name

    @property
    def input_shape(self) -> list[int] | None:
        grid = self.record.input_grid
        return None if grid is None else list(grid.shape)

    @property
    def reading(self) -> ImageReading | None:
        """How the evaluation read its 2D image files (None: it scored volumes, or did not record it)."""
        grid = self.record.input_grid
        return None if grid is None or grid.reading is None else ImageReading(**grid.reading)

    @property
    def mask_kind(self) -> MaskKind | None:
        """What the mask files of its 2D image lists marked (None: not an image-list evaluation)."""
        grid = self.record.input_grid
        return None if grid is None else grid.mask_kind

    @property
    def preprocessor(self) -> VolumePreprocessor:
        """The evaluated grid's preprocessing (the defaults where the checkpoint recorded none)."""
        grid = self.record.input_grid
        return VolumePreprocessor(**(grid.preprocessing or {})) if grid is not None else VolumePreprocessor()


def resolve_checkpoint(model: str | Path) -> Path:
    """A checkpoint file, or a run folder's `checkpoints/best_model.pt`."""
    path = Path(model)
    if path.is_dir():
        path = path / "checkpoints" / "best_model.pt"
    if not path.is_file():
        raise UserInputError(f"{model}: no checkpoint there; give a .pt file or a run folder holding checkpoints/best_model.pt")
    return path


def load_predictor(model: str | Path, task: str | None = None, device: str = "auto",
                   allow_external_modules: bool = False) -> Predictor:
    """Build the model and the task's scoring pipeline from the checkpoint's own config (project
    classes of the right role only; `allow_external_modules` is the command-line flag, never the file's)."""
    path = resolve_checkpoint(model)
    state = load_checkpoint(path)
    config, builder, net = checkpoint_metadata.open_checkpoint(state, path, allow_external_modules)
    torch_device = resolve_device(device if device != "auto" else config.get("device", "auto"))
    net = net.to(torch_device)
    records = checkpoint_metadata.task_records(state, config, path)
    tasks = config.get("downstream_tasks") or {}
    if task and task not in tasks:
        raise UserInputError(f"{path}: no downstream task '{task}' in its config (have: {', '.join(tasks)})")
    fitted = [t for t in tasks if t in records and records[t].thresholds]  # the default: the first with thresholds
    candidates = [task] if task else fitted + [t for t in tasks if t not in fitted]
    last_error = None
    skipped: list[str] = []  # warned about only when another task is used; else the error line says it
    for name in candidates:
        key = f"downstream_tasks.{name}"
        try:
            if not issubclass(builder.resolve_class(tasks[name], key), AnomalyDetectionEvaluator):
                continue  # not a scoring task (e.g. the benchmark's orchestrator)
            scoring = builder.build_param(tasks[name], key, AnomalyDetectionEvaluator.SCORING_PARAM)
            record = records.get(name, TaskRecord())
            seed = record.scored_with.seed if record.scored_with is not None else evaluation_seed(config, name)
            pipeline = ScoringPipeline(net, scoring, torch_device, seed)  # the evaluator's seed: its volumes' noise
            reason = pipeline.unavailable_reason()
            if reason:
                raise UserInputError(reason)
        except UserInputError as exc:
            last_error = exc
            skipped.append(f"task {name} unavailable: {exc}")
            continue
        if pipeline.needs_fit:
            last_error = UserInputError(f"task '{name}': its scorer {type(scoring.scorer).__name__} is fitted on healthy "
                                        "volumes at evaluation time; predict supports scorers without fit")
            continue
        trained = checkpoint_metadata.stored_trained_on(state, path)
        for message in skipped:
            LOG.warning("%s", message)
        return Predictor(pipeline, name, record, config, trained)
    raise last_error or UserInputError(f"{path}: its config has no downstream task to score with")


# ---- inputs ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scan:
    """One scan to score: raw (`subject`), in the volume layout (`row`), preprocessed by `uad preprocess`
    (`preprocessed_dir`) or a 2D image file (`image`: PNG, JPEG, TIFF)."""

    name: str
    subject: SubjectInput | None = None
    row: SplitRow | None = None
    preprocessed_dir: Path | None = None
    origin: str = ""  # the CSV line (or subject) that named it; '' for a scan given as a file or a folder's
    image: Path | None = None

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
    named as the evaluator names it)."""
    source = Path(source)
    if source.is_dir() and (source / "subjects").is_dir():
        dirs = sorted(p for p in (source / "subjects").iterdir() if (p / TRANSFORM_FILE).is_file())
        return [Scan(p.name, preprocessed_dir=p) for p in dirs]
    images = _image_files(source, data_root)
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


def _image_files(source: Path, data_root: str | Path | None) -> list[Scan] | None:
    """The 2D images `source` names (an image file, a folder holding images and no NIfTI scan, an image-list
    CSV), each named as `ImageListSet` names it (its path relative to the root, `flat_name`); None: no 2D input."""
    if source.is_file() and is_image_2d(source):
        return [Scan(source.name, image=source)]
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.is_file())
        if any(is_nifti(p) for p in files) or not any(is_image_2d(p) for p in files):
            return None
        return [Scan(p.name, image=p) for p in files if is_image_2d(p)]
    if source.is_file() and source.suffix.lower() == ".csv":
        columns = read_csv(source, "give an image-list CSV, a CSV of subjects or a volume-layout CSV").columns
        if "filename" not in columns:
            return None
        root = Path(data_root) if data_root is not None else source.resolve().parent
        files = read_file_list(str(source.resolve()), root)
        scans = [Scan(flat_name(f, root), image=f, origin=f"{source} row {i + 1}") for i, f in enumerate(files)]
        check_unique_names([(s.name, str(s.image)) for s in scans], source)
        return scans
    return None


def check_input_kinds(scans: list[Scan], predictor: Predictor, model: str | Path, mask: str | Path | None) -> None:
    """Refuse, before any output, inputs the checkpoint cannot read as its evaluation read its data: 2D images for a
    checkpoint that scored volumes (or recorded no image reading), raw scans for one evaluated on 2D images, `--mask`
    where its image lists' masks marked non-lesion regions (every image is scored whole there)."""
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
        if not Path(mask).is_file():
            raise UserInputError(f"--mask {mask}: not found; give the brain-mask image of the 2D images, or drop --mask")


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


def prepare_image(scan: Scan, reading: ImageReading, mask: str | Path | None = None) -> Prepared:
    """A 2D image file (or a volume-layout row's mid-axial slice, with its brain mask) read as the evaluation's
    `ImageListSet` read its images: the maps stay on that grid (target_size), as the evaluator writes them.
    `mask`: a brain-mask image for an image file (default: the whole image, as an image list without masks)."""
    mid_axial = scan.image is None
    path = Path(scan.row.img_path) if mid_axial else scan.image
    image, affine = reading.image(path, mid_axial)
    mask_path = scan.row.mask_path if mid_axial else mask
    brain = reading.binary(Path(mask_path), mid_axial) if mask_path is not None else np.ones(reading.target_size, bool)
    volume = Volume(name=scan.name, image=torch.from_numpy(np.ascontiguousarray(image, np.float32))[..., None],
                    mask=torch.from_numpy(np.ascontiguousarray(brain, bool))[..., None], seg=None, label=0, affine=affine)
    return Prepared(volume, lambda array, interpolation: array, np.asarray(affine, float))


def prepare_scan(scan: Scan, predictor: Predictor, options: PipelineOptions, template: Template | None,
                 mask: str | Path | None = None) -> Prepared:
    """Bring one scan onto the model grid (raw scans through `uad preprocess`'s steps; 2D images and a 2D
    checkpoint's volume-layout rows by its recorded reading, `mask` the brain-mask image of 2D images)."""
    reading = predictor.reading
    if reading is not None:
        return prepare_image(scan, reading, mask)
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


# ---- the command ---------------------------------------------------------------------------
def _differences(scan: Scan, trained: TrainedOn | None) -> list[str]:
    """How the scan's header differs from the training data (`data.trained_on.scan_warnings`), each logged."""
    if trained is None:
        return []
    warnings = scan_warnings(trained, scan_header(scan))
    for warning in warnings:
        LOG.warning("%s: %s", scan.name, warning)
    return warnings


def _prepare_first(scans: list[Scan], predictor: Predictor, options: PipelineOptions, template: Template | None,
                   model: str | Path, mask: str | Path | None = None) -> Prepared | UserInputError | None:
    """The first scan on the model's grid, checked against it: every scan goes through the same steps, so a
    grid the model does not fit stops the command; a lone scan that cannot be prepared too (several: its row fails)."""
    if not scans:
        return None
    try:
        prepared = prepare_scan(scans[0], predictor, options, template, mask)
    except UserInputError as exc:
        if len(scans) == 1:
            raise
        return exc
    check_model_grid(prepared.volume.image.shape, predictor.input_shape, scans[0].name, model)
    check_model_runs(predictor.pipeline, prepared.volume.image, scans[0].name, model)
    return prepared


def predict(model: str | Path, inputs: str | Path, output: str | Path, threshold: str = DEFAULT_RULE,
            test_set: str | None = None, task: str | None = None, device: str = "auto", preprocessed: bool = False,
            mask: str | None = None, options: PipelineOptions | None = None, png: bool = True,
            data_root: str | None = None, report: bool = True, precision: Precision | None = None,
            allow_external_modules: bool = False) -> list[dict[str, str]]:
    """Score every input scan; returns the rows written to `output/predictions.csv`
    (`report`: also `report.html`, with the model's input and reconstruction per scan).
    `precision` (`core.evaluation.reconstruction.Precision`) replaces the one the evaluation ran at (recorded in
    the checkpoint; else the stored task's setting), e.g. `fp32` where it ran at bf16."""
    scans = read_scans(inputs, preprocessed, mask, data_root)  # a bad input stops before the model is loaded
    check_scan_headers(files for files in (s.files() for s in scans) if files is not None)  # before the model, before any output
    predictor = load_predictor(model, task, device, allow_external_modules)
    check_input_kinds(scans, predictor, model, mask)
    if predictor.reading is not None:
        LOG.info("%s: reads 2D images as its evaluation did: %s", model, predictor.reading.summary())
    if precision is not None:
        spec = predictor.pipeline.spec
        predictor.pipeline.spec = replace(spec, inference=replace(spec.inference, precision=precision))
    protocol, value = predictor.threshold(str(threshold), test_set)
    output = Path(output)
    options = options or PipelineOptions()
    needs_template = options.register and any(s.subject is not None for s in scans)
    template = load_template(options.template, options.template_mask) if needs_template else None
    first = _prepare_first(scans, predictor, options, template, model, mask)  # before any output exists
    output.mkdir(parents=True, exist_ok=True)
    # stopped part-way (predict has no --resume): its files are written anew, predictions.csv last
    with recovery.advise(recovery.run_again(f"the files in {output} are incomplete; predictions.csv is written last")):
        pipeline = predictor.pipeline
        rows = []
        scored_with = predictor.record.scored_with
        # the task's inference settings and its evaluation's compile decision and precision (unless --precision
        # replaces it): the evaluated maps to the last digit, whatever `auto` would pick on this machine
        recorded = scored_with.autocast if scored_with is not None and precision is None else None
        with pipeline.prepared(compiled=scored_with.compiled_unet if scored_with is not None else None, precision=recorded):
            for i, scan in enumerate(scans):
                row = {c: "" for c in PREDICTION_COLUMNS}
                row.update(scan=scan.name, threshold_protocol=protocol, threshold=f"{value:.6g}")
                try:
                    warnings = _differences(scan, predictor.trained_on)
                    if i == 0 and isinstance(first, UserInputError):
                        raise first
                    prepared = first if i == 0 and first is not None else prepare_scan(scan, predictor, options, template, mask)
                    check_model_grid(prepared.volume.image.shape, predictor.input_shape, scan.name, model)
                    scored = pipeline.score(prepared.volume, *predictor.seed_key(scan.name, test_set))
                    amap = scored.amap
                    brain = prepared.volume.mask.numpy()
                    lesion = pipeline.binarize(amap, brain, value)
                    raw_map = prepared.grid_to_raw(amap.astype(np.float32), Interpolation.LINEAR)
                    raw_mask = prepared.grid_to_raw(lesion.astype(np.float32), Interpolation.NEAREST) > 0.5
                    paths = {k: output / f"{scan.name}{suffix}" for k, suffix in
                             (("map", "_anomaly_map.nii.gz"), ("mask", "_anomaly_mask.nii.gz"), ("png", ".png"))}
                    save_nifti(paths["map"], raw_map, prepared.raw_affine)
                    save_nifti(paths["mask"], raw_mask, prepared.raw_affine)
                    if report:  # what the model saw and made, in the scan's space, for report.html
                        recs = scored.reconstructions
                        save_volumes(output, scan.name, prepared.grid_to_raw(prepared.volume.image.numpy(), Interpolation.LINEAR),
                                     prepared.grid_to_raw(recs.float().mean(0).numpy(), Interpolation.LINEAR) if recs.shape[0] else None,
                                     None, prepared.raw_affine)
                    if png:
                        three_plane_png(paths["png"], prepared.volume.image.numpy(), lesion, overlay=amap,
                                        title=f"{scan.name}: anomaly map ({predictor.task}), mask at {protocol} = {value:.3g}")
                    row.update(status="done", lesion_voxels=str(int(raw_mask.sum())),
                               sample_score=f"{pipeline.sample_score(amap, brain):.6g}",
                               map_path=str(paths["map"]), mask_path=str(paths["mask"]), png_path=str(paths["png"]) if png else "",
                               message="; ".join(f"warning: {w}" for w in warnings))
                except WriteFailed:  # a full or read-only disk is no scan's fault: every later scan would fail too
                    raise
                except UserInputError as exc:
                    row.update(status="failed", message=" ".join(str(exc).split()))
                    LOG.error("%s: %s", scan.name, row["message"])
                rows.append(row)
        atomic_write_csv(output / "predictions.csv", rows, PREDICTION_COLUMNS)
        checkpoint = resolve_checkpoint(model).resolve()
        settings = PredictSettings(threshold=str(threshold), threshold_protocol=protocol, threshold_value=value, test_set=test_set,
                                   precision=str(pipeline.autocast), device=str(pipeline.device),
                                   compiled_unet=pipeline.compiled_unet, preprocessed=preprocessed, preprocessing=asdict(options))
        PredictRecord(str(checkpoint), file_sha256(checkpoint), predictor.task,
                      predictor.trained_on.to_plain() if predictor.trained_on else None, asdict(settings)).write(output)
        if report:
            try_write_report(output)  # from the folder's files and predict.json, as `uad report FOLDER` rebuilds it
        return rows

"""`uad predict`: a self-describing checkpoint plus scans -> anomaly maps and masks in each scan's own space.

Per scan: `<name>_anomaly_map.nii.gz` and `<name>_anomaly_mask.nii.gz` with exactly the
input's shape and affine (through the inverse of the preprocessing: inverse registration,
un-crop, un-resample), `<name>.png` (three planes: map with a colour bar, mask outline)
and one row of `predictions.csv` (the sample score, the threshold used). Scoring is the
evaluator's per-volume code path (see `score_volume`), so a scan scored here equals the
same scan evaluated through a test config.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core import checkpoint_metadata
from core.Configurator import ComponentBuilder
from core.evaluation_metrics import binary_chain
from core.volume_scoring import prepare_model, use_channels_last
from core.volume_scoring import score_volume as evaluator_score_volume
from data.csv_splits import SplitRow, read_volume_split
from data.nifti_io import load_nifti, save_nifti
from data.preprocessing import VolumePreprocessor
from data.raw_preprocessing.inputs import is_nifti, read_subjects, scan_name
from data.raw_preprocessing.pipeline import TRANSFORM_FILE, PipelineOptions, SubjectInput, preprocess_subject, raw_header
from data.raw_preprocessing.qc import three_plane_png
from data.raw_preprocessing.resample import resample_to_grid
from data.raw_preprocessing.template import Template, load_template
from data.trained_on import ScanHeader, TrainedOn, scan_warnings
from data.volume import Volume
from data.volume_dataset import load_volume
from dl_utils.checkpoint import atomic_write_csv, load_checkpoint
from dl_utils.device import resolve_device
from dl_utils.errors import UserInputError
from optim.metrics import detection, thresholds

LOG = logging.getLogger(__name__)
PREDICTION_COLUMNS = ("scan", "status", "sample_score", "threshold_protocol", "threshold", "lesion_voxels",
                      "map_path", "mask_path", "png_path", "message")


class ThresholdProtocol(StrEnum):
    VAL_DICE = "val_dice"   # best Dice on the labelled validation set
    FPR_1 = "fpr_1%"        # 1 % false positives on healthy validation voxels
    FPR_5 = "fpr_5%"        # 5 %


# ---- the evaluator's own scoring and binarisation, so predict equals a test-config evaluation ----
def score_volume(model: nn.Module, volume: Volume, scorer: Callable, map_steps: list[Callable],
                 device: torch.device, slice_batch_size: int, precision: str = "auto") -> np.ndarray:
    """The evaluator's per-volume scoring (`core.volume_scoring.score_volume`): reconstruct ->
    scorer -> map post-processing, with the evaluator's default layout and the given precision
    (`model` prepared once by `load_predictor`)."""
    amap, _ = evaluator_score_volume(model, volume, scorer, map_steps, device, slice_batch_size, precision=precision,
                                     channels_last=use_channels_last(model, None))
    return amap


def binary_mask(amap: np.ndarray, threshold: float, mask: np.ndarray, binary_steps: list[Callable]) -> np.ndarray:
    """The evaluator's binarisation: (map > threshold) in the brain, then the binary steps."""
    return np.asarray(thresholds.binarize(amap, threshold, mask, binary_chain(binary_steps))).astype(bool)


# ---- the checkpoint as a predictor -------------------------------------------------------
@dataclass
class Predictor:
    """Model, scoring parts and thresholds of one downstream task of a self-describing checkpoint."""

    model: nn.Module
    device: torch.device
    task: str
    scorer: Callable
    map_steps: list[Callable]
    binary_steps: list[Callable]
    preprocessing: dict[str, Any]
    thresholds: dict[str, dict[str, float]]
    input_shape: list[int] | None
    sample_reduction: str = "mean"
    slice_batch_size: int = 50
    seed: int = 42
    config: dict[str, Any] = field(default_factory=dict)
    trained_on: TrainedOn | None = None  # the checkpoint's `trained_on` (None: written before it existed)

    def threshold(self, choice: str, test_set: str | None = None) -> tuple[str, float]:
        """(protocol name, value): a number, or a protocol fitted by the run (`val_dice` per test set)."""
        try:
            return "given", float(choice)
        except ValueError:
            pass
        if choice not in set(ThresholdProtocol):
            raise UserInputError(f"--threshold '{choice}' is not a number nor one of {', '.join(ThresholdProtocol)}")
        protocol = ThresholdProtocol(choice).value
        if not self.thresholds:
            raise UserInputError(f"the checkpoint holds no fitted thresholds for task '{self.task}'; "
                                 "give --threshold NUMBER, or evaluate the run first")
        sets = [test_set] if test_set else list(self.thresholds)
        for name in sets:
            if protocol in self.thresholds.get(name, {}):
                return f"{protocol}@{name}" if protocol == ThresholdProtocol.VAL_DICE else protocol, \
                    float(self.thresholds[name][protocol])
        have = sorted({p for values in self.thresholds.values() for p in values})
        raise UserInputError(f"threshold protocol '{choice}' was not fitted for task '{self.task}' "
                             f"(have: {', '.join(have)}); choose one of them or give a number")


def resolve_checkpoint(model: str | Path) -> Path:
    """A checkpoint file, or a run folder's `checkpoints/best_model.pt`."""
    path = Path(model)
    if path.is_dir():
        path = path / "checkpoints" / "best_model.pt"
    if not path.is_file():
        raise UserInputError(f"{model}: no checkpoint there; give a .pt file or a run folder holding checkpoints/best_model.pt")
    return path


def load_predictor(model: str | Path, task: str | None = None, device: str = "auto") -> Predictor:
    """Build model, scorer and post-processing from the checkpoint's own config."""
    from dl_utils.weights import load_model_weights

    path = resolve_checkpoint(model)
    state = load_checkpoint(path)
    config = checkpoint_metadata.read(state, path)
    builder = ComponentBuilder(f"{path} (stored config)", bool(config.get("allow_external_modules", False)))
    torch_device = resolve_device(device if device != "auto" else config.get("device", "auto"))
    net = builder.build(config["model"], "model").to(torch_device)
    load_model_weights(net, state, path)
    prepare_model(net, use_channels_last(net, None))  # eval mode and the evaluator's memory layout, once
    tasks = config.get("downstream_tasks") or {}
    stored = state.get("thresholds") or {}
    candidates = [task] if task else [t for t in tasks if t in stored] + [t for t in tasks if t not in stored]
    if task and task not in tasks:
        raise UserInputError(f"{path}: no downstream task '{task}' in its config (have: {', '.join(tasks)})")
    last_error = None
    for name in candidates:
        params = tasks[name].get("params") or {}
        if not isinstance(params.get("scorer"), dict):
            continue  # not a scoring task (e.g. the benchmark's orchestrator)
        scorer = builder.build_value(params.get("scorer"), f"downstream_tasks.{name}.params.scorer")
        try:
            if hasattr(scorer, "check_available"):
                scorer.check_available()
        except UserInputError as exc:
            last_error = exc
            LOG.warning("task %s unavailable: %s", name, exc)
            continue
        if hasattr(scorer, "fit"):
            last_error = UserInputError(f"task '{name}': its scorer {type(scorer).__name__} is fitted on healthy "
                                        "volumes at evaluation time; predict supports scorers without fit")
            continue
        loader = (tasks[name].get("data_loader") or {}).get("params") or {}
        return Predictor(
            model=net, device=torch_device, task=name, scorer=scorer,
            map_steps=list(builder.build_value(params.get("map_postprocessing") or [], f"downstream_tasks.{name}.params.map_postprocessing")),
            binary_steps=list(builder.build_value(params.get("binary_postprocessing") or [], f"downstream_tasks.{name}.params.binary_postprocessing")),
            preprocessing=dict(loader.get("preprocessing") or {}), thresholds=stored.get(name, {}),
            input_shape=(state.get("input_shapes") or {}).get(name), sample_reduction=str(params.get("sample_score", "mean")),
            slice_batch_size=int(params.get("slice_batch_size", 50)), seed=int(config.get("seed", 42)), config=config,
            trained_on=TrainedOn.from_plain(state["trained_on"]) if state.get("trained_on") else None,
        )
    raise last_error or UserInputError(f"{path}: its config has no downstream task to score with")


# ---- inputs ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scan:
    """One scan to score: raw (`subject`), in the volume layout (`row`) or preprocessed by `uad preprocess`."""

    name: str
    subject: SubjectInput | None = None
    row: SplitRow | None = None
    preprocessed_dir: Path | None = None


def read_scans(source: str | Path, preprocessed: bool = False, mask: str | Path | None = None,
               data_root: str | Path | None = None) -> list[Scan]:
    """A scan, a folder of scans, a `uad preprocess` output folder, a raw-subject CSV or a
    volume-layout CSV (already preprocessed: img_path, mask_path, relative to `data_root`,
    default the CSV's folder)."""
    source = Path(source)
    if source.is_dir() and (source / "subjects").is_dir():
        dirs = sorted(p for p in (source / "subjects").iterdir() if (p / TRANSFORM_FILE).is_file())
        return [Scan(p.name, preprocessed_dir=p) for p in dirs]
    if source.is_file() and source.suffix == ".csv":
        header = source.read_text(encoding="utf-8-sig").splitlines()[:1]
        columns = [c.strip() for c in (header[0].split(",") if header else [])]
        if "img_path" in columns and "mask_path" in columns:
            rows = read_volume_split(source.resolve(), data_root if data_root is not None else source.parent)
            return [Scan(r.img_name, row=r) for r in rows]
    if preprocessed:
        files = sorted(p for p in source.iterdir() if is_nifti(p)) if source.is_dir() else [source]
        if not files or not all(is_nifti(f) for f in files):
            raise UserInputError(f"{source}: no NIfTI scans; give a scan, a folder of scans or a CSV")
        if mask is None:
            raise UserInputError("--preprocessed needs --mask BRAIN_MASK (or use a volume-layout CSV with mask_path)")
        return [Scan(scan_name(f), row=SplitRow(scan_name(f), float("nan"), 0, f, Path(mask), None)) for f in files]
    return [Scan(s.name, subject=s) for s in read_subjects(source)]


# ---- grids -------------------------------------------------------------------------------
@dataclass
class Prepared:
    """A scan on the model's grid and how to go back to the scan's own grid."""

    volume: Volume
    grid_to_raw: Callable[[np.ndarray, str], np.ndarray]  # (array on model grid, interpolation) -> raw grid
    raw_affine: np.ndarray  # the scan's affine as stored: the outputs are written with it


def _identity_preprocessing(params: dict[str, Any]) -> bool:
    return all(params.get(k) is None for k in ("crop_shape", "percentiles", "target_shape", "target_spacing")) and bool(params)


def _model_grid(image: np.ndarray, mask: np.ndarray, affine: np.ndarray, predictor: Predictor
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Preprocessed (template-space) arrays -> the grid the model was evaluated on.

    A config whose evaluation preprocessing is the identity read volumes already on the model
    grid (the demo's brain box, data/demo/geometry.py): that box is re-created at the stored
    evaluation shape. Otherwise the config's VolumePreprocessor runs, as in evaluation."""
    if _identity_preprocessing(predictor.preprocessing) and predictor.input_shape:
        from data.demo.geometry import Variant, prepare_subject, sample_variant

        grid = prepare_subject(image, mask, affine, predictor.input_shape)
        img, msk, out_affine = sample_variant(grid, predictor.input_shape, Variant())
        return img, msk, out_affine
    pre = VolumePreprocessor(**predictor.preprocessing)
    img, msk, _ = pre(image, mask, None, spacing=tuple(float(s) for s in np.linalg.norm(affine[:3, :3], axis=0)))
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


def _back_to_raw(grid_affine: np.ndarray, transform: dict[str, Any]) -> Callable[[np.ndarray, str], np.ndarray]:
    raw = transform["raw"]
    raw_shape, raw_affine = tuple(raw["shape"]), np.asarray(raw["affine"], float)
    to_template = np.linalg.inv(np.asarray(transform["template_to_subject"], float))  # scan point -> template point

    def apply(array: np.ndarray, interpolation: str) -> np.ndarray:
        if np.allclose(to_template, np.eye(4)):
            exact = _exact_reorientation(array, grid_affine, raw_shape, raw_affine)
            if exact is not None:  # same voxels (RAS loading only reordered them): no interpolation
                return exact
        return resample_to_grid(array, grid_affine, raw_shape, raw_affine, to_template, interpolation)

    return apply


def prepare_scan(scan: Scan, predictor: Predictor, options: PipelineOptions, template: Template | None) -> Prepared:
    """Bring one scan onto the model grid (raw scans through `uad preprocess`'s steps)."""
    if scan.row is not None:  # already preprocessed: the evaluator's own loading
        pre = VolumePreprocessor(**predictor.preprocessing) if predictor.preprocessing else VolumePreprocessor()
        volume = load_volume(scan.row, pre)
        expected = predictor.input_shape
        if expected and _identity_preprocessing(predictor.preprocessing) and list(volume.image.shape[:2]) != list(expected[:2]):
            raise UserInputError(f"{scan.row.img_path}: slices are {tuple(volume.image.shape[:2])} but the model was evaluated "
                                 f"on {tuple(expected[:2])}; give the raw scan (without --preprocessed) so predict "
                                 "brings it onto the model's grid")
        transform = {"raw": raw_header(scan.row.img_path), "template_to_subject": np.eye(4).tolist()}
        return Prepared(volume, _back_to_raw(volume.affine, transform), np.asarray(transform["raw"]["affine"]))
    if scan.preprocessed_dir is not None:
        transform = json.loads((scan.preprocessed_dir / TRANSFORM_FILE).read_text())
        image = load_nifti(scan.preprocessed_dir / f"{scan.name}_t1.nii.gz", "preprocessed T1")
        mask = load_nifti(scan.preprocessed_dir / f"{scan.name}_mask.nii.gz", "preprocessed brain mask")
        arrays, affine = (image.data, mask.data > 0), image.affine
    else:
        result = preprocess_subject(scan.subject, options, template)
        transform, arrays, affine = result.transform, (result.image, result.mask), result.affine
    img, msk, grid_affine = _model_grid(arrays[0], arrays[1], affine, predictor)
    volume = Volume(name=scan.name, image=torch.from_numpy(np.ascontiguousarray(img, np.float32)),
                    mask=torch.from_numpy(np.ascontiguousarray(msk, bool)), seg=None, label=0, affine=grid_affine)
    return Prepared(volume, _back_to_raw(grid_affine, transform), np.asarray(transform["raw"]["affine"], float))


# ---- the command ---------------------------------------------------------------------------
def _differences(scan: Scan, trained: TrainedOn | None) -> list[str]:
    """How the scan's header differs from the training data (`data.trained_on.scan_warnings`), each logged."""
    path = scan.subject.t1 if scan.subject is not None else scan.row.img_path if scan.row is not None else None
    if trained is None or path is None:
        return []
    warnings = scan_warnings(trained, ScanHeader.read(path, scan.name))
    for warning in warnings:
        LOG.warning("%s: %s", scan.name, warning)
    return warnings


def predict(model: str | Path, inputs: str | Path, output: str | Path, threshold: str = ThresholdProtocol.FPR_5,
            test_set: str | None = None, task: str | None = None, device: str = "auto", preprocessed: bool = False,
            mask: str | None = None, options: PipelineOptions | None = None, png: bool = True,
            data_root: str | None = None, precision: str = "auto") -> list[dict[str, str]]:
    """Score every input scan; returns the rows written to `output/predictions.csv`.
    `precision`: `core.volume_scoring.Precision` (`bf16`: bf16 autocast also on CPU)."""
    predictor = load_predictor(model, task, device)
    protocol, value = predictor.threshold(str(threshold), test_set)
    scans = read_scans(inputs, preprocessed, mask, data_root)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    options = options or PipelineOptions()
    needs_template = options.register and any(s.subject is not None for s in scans)
    template = load_template(options.template, options.template_mask) if needs_template else None
    rows = []
    for scan in scans:
        row = {c: "" for c in PREDICTION_COLUMNS}
        row.update(scan=scan.name, threshold_protocol=protocol, threshold=f"{value:.6g}")
        try:
            warnings = _differences(scan, predictor.trained_on)
            prepared = prepare_scan(scan, predictor, options, template)
            torch.manual_seed(predictor.seed)  # stochastic reconstructions repeat, as in evaluation
            amap = score_volume(predictor.model, prepared.volume, predictor.scorer, predictor.map_steps,
                                predictor.device, predictor.slice_batch_size, precision)
            brain = prepared.volume.mask.numpy()
            lesion = binary_mask(amap, value, brain, predictor.binary_steps)
            raw_map = prepared.grid_to_raw(amap.astype(np.float32), "linear")
            raw_mask = prepared.grid_to_raw(lesion.astype(np.float32), "nearest") > 0.5
            paths = {k: output / f"{scan.name}{suffix}" for k, suffix in
                     (("map", "_anomaly_map.nii.gz"), ("mask", "_anomaly_mask.nii.gz"), ("png", ".png"))}
            save_nifti(paths["map"], raw_map, prepared.raw_affine)
            save_nifti(paths["mask"], raw_mask, prepared.raw_affine)
            if png:
                three_plane_png(paths["png"], prepared.volume.image.numpy(), lesion, overlay=amap,
                                title=f"{scan.name}: anomaly map ({predictor.task}), mask at {protocol} = {value:.3g}")
            row.update(status="done", lesion_voxels=str(int(raw_mask.sum())),
                       sample_score=f"{detection.sample_score(amap, brain, reduction=predictor.sample_reduction):.6g}",
                       map_path=str(paths["map"]), mask_path=str(paths["mask"]), png_path=str(paths["png"]) if png else "",
                       message="; ".join(f"warning: {w}" for w in warnings))
        except UserInputError as exc:
            row.update(status="failed", message=" ".join(str(exc).split()))
            LOG.error("%s: %s", scan.name, row["message"])
        rows.append(row)
    atomic_write_csv(output / "predictions.csv", rows, PREDICTION_COLUMNS)
    return rows

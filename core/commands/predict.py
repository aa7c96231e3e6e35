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
checkpoint (target size, padding, intensity scaling, resize and antialias) and scored on that grid as the
evaluator scored it; maps and masks go back onto each image's own pixels (`ImageReading.to_source`), named
by the evaluator's name less the image's extension
(`png__x_anomaly_map.nii.gz`; whole where two would meet); `--mask` gives their brain masks (one image, or
the mask list the evaluation took: a CSV or a folder, the i-th mask the i-th image's). Scoring is the
evaluator's own `ScoringPipeline`, built from the checkpoint's stored task with the same
inference settings and the same per-volume seed (`Predictor.seed_key`), so a volume the run
evaluated gets the map and mask it got there.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from core.commands.predict_inputs import Prepared, Scan, check_input_kinds, prepare_scan, read_scans, scan_header
from core.commands.predictor import DEFAULT_RULE, Predictor, load_predictor, resolve_checkpoint
from core.commands.scan_checks import check_model_grid, check_model_runs, check_scan_headers
from core.evaluation.reconstruction import Precision
from core.evaluation.volume_files import save_volumes
from core.run.predict_record import PredictRecord, PredictSettings
from core.run.report import try_write_report
from data.interpolation import Interpolation
from data.nifti_io import save_nifti
from data.raw_preprocessing.pipeline import PipelineOptions
from data.raw_preprocessing.qc import three_plane_png
from data.raw_preprocessing.template import Template, load_template
from data.trained_on import TrainedOn, scan_warnings
from dl_utils import recovery
from dl_utils.checkpoint import atomic_write_csv, file_sha256
from dl_utils.errors import UserInputError, WriteFailed

LOG = logging.getLogger(__name__)
PREDICTION_COLUMNS = ("scan", "status", "sample_score", "threshold_protocol", "threshold", "lesion_voxels",
                      "map_path", "mask_path", "png_path", "message")


# ---- the command ---------------------------------------------------------------------------
def _differences(scan: Scan, trained: TrainedOn | None, seen: dict[str, int]) -> list[str]:
    """How the scan's header differs from the training data (`data.trained_on.scan_warnings`): each warning
    logged for the first scan it concerns, counted in `seen` for later ones (`_log_repeated`)."""
    if trained is None:
        return []
    warnings = scan_warnings(trained, scan_header(scan))
    for warning in warnings:
        if warning not in seen:
            LOG.warning("%s: %s", scan.name, warning)
        seen[warning] = seen.get(warning, 0) + 1
    return warnings


def _log_repeated(seen: dict[str, int]) -> None:
    """One line per warning that concerned more scans than the first (each scan's are in predictions.csv)."""
    for warning, count in seen.items():
        if count > 1:
            LOG.warning("the same for %d more scan(s) (predictions.csv lists each scan's warnings): %s", count - 1, warning)


def _prepare_first(scans: list[Scan], predictor: Predictor, options: PipelineOptions, template: Template | None,
                   model: str | Path) -> Prepared | UserInputError | None:
    """The first scan on the model's grid, checked against it: every scan goes through the same steps, so a
    grid the model does not fit stops the command; a lone scan that cannot be prepared too (several: its row fails)."""
    if not scans:
        return None
    try:
        prepared = prepare_scan(scans[0], predictor, options, template)
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
    first = _prepare_first(scans, predictor, options, template, model)  # before any output exists
    output.mkdir(parents=True, exist_ok=True)
    # stopped part-way (predict has no --resume): its files are written anew, predictions.csv last
    with recovery.advise(recovery.run_again(f"the files in {output} are incomplete; predictions.csv is written last")):
        pipeline = predictor.pipeline
        rows = []
        seen: dict[str, int] = {}  # warning -> scans it concerns
        scored_with = predictor.record.scored_with
        # the task's inference settings and its evaluation's compile decision and precision (unless --precision
        # replaces it): the evaluated maps to the last digit, whatever `auto` would pick on this machine
        recorded = scored_with.autocast if scored_with is not None and precision is None else None
        with pipeline.prepared(compiled=scored_with.compiled_unet if scored_with is not None else None, precision=recorded):
            for i, scan in enumerate(scans):
                row = {c: "" for c in PREDICTION_COLUMNS}
                row.update(scan=scan.name, threshold_protocol=protocol, threshold=f"{value:.6g}")
                try:
                    warnings = _differences(scan, predictor.trained_on, seen)
                    if i == 0 and isinstance(first, UserInputError):
                        raise first
                    prepared = first if i == 0 and first is not None else prepare_scan(scan, predictor, options, template)
                    check_model_grid(prepared.volume.image.shape, predictor.input_shape, scan.name, model)
                    scored = pipeline.score(prepared.volume, *predictor.seed_key(scan.evaluated_name, test_set))
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
        _log_repeated(seen)
        atomic_write_csv(output / "predictions.csv", rows, PREDICTION_COLUMNS)
        checkpoint = resolve_checkpoint(model).resolve()
        settings = PredictSettings(threshold=str(threshold), threshold_protocol=protocol, threshold_value=value, test_set=test_set,
                                   precision=str(pipeline.autocast), device=str(pipeline.device),
                                   compiled_unet=pipeline.compiled_unet, preprocessed=preprocessed, preprocessing=asdict(options),
                                   images_2d=predictor.reading is not None)
        PredictRecord(str(checkpoint), file_sha256(checkpoint), predictor.task,
                      predictor.trained_on.to_plain() if predictor.trained_on else None, asdict(settings)).write(output)
        if report:
            try_write_report(output)  # from the folder's files and predict.json, as `uad report FOLDER` rebuilds it
        return rows

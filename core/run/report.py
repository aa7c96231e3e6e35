"""`report.html`: one self-contained page per run folder, benchmark folder or `uad predict` output.

Built only from the files in the folder, so `uad report FOLDER` rebuilds it for any earlier
run: results.json / timing.json (the results or the benchmark's comparison with its paired
p-values, as `projects/benchmark/comparison.py` computed them), `<task>/figures/<set>_roc_pr.json`
(the ROC / PR points the evaluator drew), per_volume.csv or predictions.csv (a table
sortable by any column), and the NIfTI volumes next to each anomaly map (input,
reconstruction, map, lesion labels, as `core.evaluation.volume_files` names and writes them)
drawn in three planes with a slice slider; a predict folder's `predict.json` names the checkpoint
that made it and what that was trained on (`core.run.predict_record`). Volumes are added until the page reaches `max_megabytes`;
the page says which were left out.
"""
from __future__ import annotations

import csv
import enum
import json
import logging
import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from core.run.predict_record import PredictRecord
from core.run.report_volumes import Budget, VolumeFiles, compared_layers, images_2d, map_names, round_robin, volume_layers
from core.run.results import BOX_FIGURES, TABLE_COLUMNS, box_localisation_rows, column_label, read_results
from core.run.run_files import read_results_json, skipped_tasks
from core.run.run_folder import CONFIG_FILE, ORIGIN_FILE
from data.trained_on import stated
from dl_utils.checkpoint import atomic_write_text, file_sha256
from dl_utils.errors import UserInputError, WriteFailed
from dl_utils.figures import read_curve_points
from dl_utils.paths import check_links_stay_inside, inside
from dl_utils.report import html
from dl_utils.report.charts import line_chart

LOG = logging.getLogger(__name__)
REPORT_FILE = "report.html"
METHODS_FILE = "methods.json"  # the benchmark's {"baseline", "methods": {name: run folder relative to it}}
ORCHESTRATOR = "orchestrator"
DEFAULT_MEGABYTES = 25.0


class FolderKind(enum.StrEnum):
    RUN = "run"                # results.json of an evaluated run
    BENCHMARK = "benchmark"    # results.json under `orchestrator`, methods/ below
    PREDICTION = "prediction"  # predictions.csv of `uad predict`


def folder_kind(folder: Path) -> FolderKind:
    if (folder / "predictions.csv").is_file():
        return FolderKind.PREDICTION
    if (folder / "results.json").is_file():
        results = read_results_json(folder / "results.json", "give a complete run or benchmark folder")
        return FolderKind.BENCHMARK if ORCHESTRATOR in results else FolderKind.RUN
    raise UserInputError(f"{folder}: neither results.json (a run or benchmark folder) nor predictions.csv "
                         "(a `uad predict` output); give one of those folders")


def write_report(folder: str | Path, checkpoint: str | Path | None = None,
                 max_megabytes: float = DEFAULT_MEGABYTES, max_side: int = 128) -> Path:
    """Write `folder/report.html` and return its path. `checkpoint`: the model of a predict
    output (its `trained_on` is shown instead of the one its `predict.json` recorded); volumes
    are thinned per axis so no side exceeds `max_side` (a shorter side keeps every voxel)."""
    folder = Path(folder)
    check_links_stay_inside(folder, "replace each such link by a copy of its files before writing its report")
    budget = Budget(int(max_megabytes * 1e6), max_side)
    try:
        kind = folder_kind(folder)
        if kind == FolderKind.PREDICTION:
            title, parts = _prediction_page(folder, budget, Path(checkpoint) if checkpoint else None)
        elif kind == FolderKind.BENCHMARK:
            title, parts = _benchmark_page(folder, budget)
        else:
            title, parts = _run_page(folder, budget)
    except (ValueError, KeyError, yaml.YAMLError, csv.Error) as exc:  # damaged JSON / YAML / CSV files
        detail = " ".join(str(exc).split())[:200]
        raise UserInputError(f"{folder}: its files cannot be read for a report ({type(exc).__name__}: {detail}); "
                             "give a complete run, benchmark or predict folder") from exc
    page = html.page(title, _subtitle(folder, kind), [p.html for p in parts], [(p.anchor, p.title) for p in parts])
    atomic_write_text(folder / REPORT_FILE, page)
    LOG.info("report: %s (%.1f MB, %d volume%s drawn)", folder / REPORT_FILE, len(page) / 1e6, budget.drawn,
             "" if budget.drawn == 1 else "s")
    return folder / REPORT_FILE


def try_write_report(folder: str | Path, **kwargs: Any) -> Path | None:
    """`write_report` at the end of a run: a report that fails to build is logged (the run's
    results are written already) and can be rebuilt with `uad report FOLDER`; a full disk too, as a
    warning (the page is the last file: the command has done its work), saying what to free and rebuild."""
    try:
        return write_report(folder, **kwargs)
    except WriteFailed as exc:
        LOG.warning("report.html not written: %s: cannot write (%s); %s, then rebuild it with `uad report %s` "
                    "(every other file of %s is complete)", exc.path, exc.reason, exc.fix, folder, folder)
        return None
    except Exception as exc:  # noqa: BLE001 - the page is a view; its failure must not fail a finished run
        LOG.warning("report.html not written (%s: %s); rebuild it with `uad report %s`", type(exc).__name__, exc, folder)
        return None


# ---- building blocks ---------------------------------------------------------------------
@dataclass
class Part:
    anchor: str
    title: str
    html: str


def _slug(*names: str) -> str:
    return "v-" + re.sub(r"[^A-Za-z0-9_-]+", "_", "-".join(names))


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _read_yaml(path: Path) -> dict[str, Any]:
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def _subtitle(folder: Path, kind: FolderKind) -> str:
    origin = json.loads((folder / ORIGIN_FILE).read_text()) if (folder / ORIGIN_FILE).is_file() else {}
    commit = origin.get("commit")
    made = f", code commit {html.esc(str(commit)[:10])}" + (" with uncommitted changes" if origin.get("uncommitted_changes") else "") \
        if commit else ""
    return f"{html.esc(kind.value)} folder <code>{html.esc(folder.resolve())}</code>{made}; rebuild: <code>uad report FOLDER</code>"


def trained_on(checkpoint: Path | None, warn: bool = True) -> dict[str, Any] | None:
    """The checkpoint's `trained_on` entry (data set, subjects, contrast, grid), when it has one
    (`warn`: log an unreadable file; off where the caller's own loading names it)."""
    if checkpoint is None or not checkpoint.is_file():
        return None
    import torch

    try:  # memory-mapped: the weights are not read
        with warnings.catch_warnings():  # e.g. torch's note on sparse tensors: the loading that uses the weights judges them
            warnings.simplefilter("ignore")
            state = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # noqa: BLE001 - an unreadable file is reported on the page, not raised
        if warn:
            LOG.warning("report: %s not readable (%s)", checkpoint, exc)
        return None
    found = state.get("trained_on") if isinstance(state, dict) else None
    return stated(found) if isinstance(found, dict) else None


NO_PREDICT_CHECKPOINT = "unknown: no checkpoint named (a predict folder: `uad report FOLDER --model CKPT`)"
NO_RUN_CHECKPOINT = ("none: no checkpoints/best_model.pt in the run folder and no experiment.weights "
                     "(a model-free scorer, e.g. the Threshold baseline, trains none)")


def _model_part(checkpoint: Path | None, extra: dict[str, Any], recorded: PredictRecord | None = None,
                no_checkpoint: str = NO_PREDICT_CHECKPOINT) -> Part:
    """The model section: `extra`, the checkpoint and what it was trained on (read from `checkpoint`, else
    from a predict folder's record of the checkpoint that made it; `no_checkpoint`: what to say without either)."""
    items = {k: v for k, v in extra.items() if v not in (None, "")}
    if checkpoint is None and recorded is not None:
        items.update(checkpoint=recorded.model, sha256=recorded.sha256)
        found = stated(recorded.trained_on) if recorded.trained_on else None
    else:
        if checkpoint is not None:
            items["checkpoint"] = str(checkpoint)
        found = trained_on(checkpoint)
    if found:
        items["trained on"] = found
    elif checkpoint is None and recorded is None:
        items["trained on"] = no_checkpoint
    elif checkpoint is not None and not checkpoint.is_file():
        items["trained on"] = "unknown: the checkpoint is not there"
    else:
        items["trained on"] = "not recorded in the checkpoint"
    return Part("model", "Model", html.section("Model", html.definitions(items), "model"))


def _run_checkpoint(run_dir: Path, config: dict[str, Any]) -> Path | None:
    """The checkpoint a run evaluated: its own best_model.pt, else the weights its config loaded
    (`experiment.weights`, e.g. a benchmark method reusing an earlier method's run), found as
    given or, when relative, under any folder above the run (the benchmark's own paths)."""
    own = run_dir / "checkpoints" / "best_model.pt"
    if own.is_file():
        return own
    weights = (config.get("experiment") or {}).get("weights")
    if not weights:
        return None
    path = Path(str(weights))
    if path.is_file() or path.is_absolute():
        return path
    return next((p / path for p in run_dir.resolve().parents if (p / path).is_file()), path)


def _curves_part(groups: dict[str, dict[str, dict]], note: str) -> Part:
    """{chart title: {series name: curve points}} -> a ROC and a PR chart per title."""
    charts = []
    for title, series in groups.items():
        roc = {f"{name} (AUROC {html.fmt(c.get('AUROC'), 3)})": (c["roc"]["fpr"], c["roc"]["tpr"]) for name, c in series.items()}
        pr = {f"{name} (AUPRC {html.fmt(c.get('AUPRC'), 3)})": (c["pr"]["recall"], c["pr"]["precision"])
              for name, c in series.items()}
        charts.append(f'<h3>{html.esc(title)}</h3><div class="charts">'
                      + line_chart(roc, f"ROC, {title}", "false-positive rate", "true-positive rate", diagonal=True)
                      + line_chart(pr, f"PR, {title}", "recall", "precision") + "</div>")
    body = "".join(charts) if charts else '<p class="note">no curves: no labelled test set was evaluated</p>'
    return Part("curves", "ROC / PR curves", html.section("ROC / PR curves", body, "curves", note))


def _per_volume_part(rows: list[dict[str, str]], anchors: dict[tuple[str, ...], str], key: tuple[str, ...],
                     title: str = "Per volume", first: tuple[str, ...] = ()) -> Part:
    columns = list(first)
    for row in rows:
        columns += [c for c in row if c not in columns]
    link_column = "name" if "name" in columns else "scan"

    def name_cell(row: dict[str, str]) -> str:
        target = anchors.get(tuple(row.get(k, "") for k in key))
        text = html.esc(row.get(link_column, ""))
        return f'<a href="#{target}">{text}</a>' if target else text

    body = html.table(columns, rows, cells={link_column: name_cell}, table_id="per-volume") if rows else \
        '<p class="note">no per-volume rows</p>'
    note = "Click a column header to sort (again: descending); a name links to its volume below."
    return Part("per-volume", title, html.section(title, body, "per-volume", note))


# ---- a run -----------------------------------------------------------------------------------
def _tasks(results: dict[str, Any]) -> list[str]:
    return [t for t in results if t != "training"]


def _run_page(folder: Path, budget: Budget) -> tuple[str, list[Part]]:
    config = _read_yaml(folder / CONFIG_FILE)
    results = read_results(folder)
    experiment = config.get("experiment") or {}
    checkpoint = _run_checkpoint(folder, config)
    model = config.get("model") or {}
    parts = [_model_part(checkpoint, {"config": config.get("name"), "experiment": experiment.get("name"),
                                      "model": ".".join(str(model.get(k, "")) for k in ("module_name", "class_name")).strip(".")},
                         no_checkpoint=NO_RUN_CHECKPOINT)]
    parts.append(_results_part(results))
    curves = {}
    for task in _tasks(results):
        found = {s: read_curve_points(p) for s in results[task] if (p := folder / task / "figures" / f"{s}_roc_pr.json").is_file()}
        if found:
            curves[f"{task}" if len(_tasks(results)) > 1 else "test sets"] = found
    parts.append(_curves_part(curves, html.esc("Pooled brain voxels of each test set (the points of "
                                               "<task>/figures/<set>_roc_pr.png).")))
    groups = {(task, s): map_names(folder / task / "anomaly_maps" / s) for task in _tasks(results)
              for s in results[task]}
    anchors, viewers = {}, []
    for (task, dataset), name in round_robin({k: v for k, v in groups.items() if v}):
        files = VolumeFiles(name, folder / task / "anomaly_maps" / dataset)
        vid = _slug(task, dataset, name)
        body = budget.add(vid, f"{task} / {dataset} / {name}", lambda files=files: volume_layers(files),
                          image_2d=images_2d(results[task], dataset))
        if body:
            anchors[(task, dataset, name)] = vid
            viewers.append(body)
    parts.append(_per_volume_part(_read_csv(folder / "per_volume.csv"), anchors, ("task", "dataset", "name")))
    parts.append(_volumes_part(viewers, budget))
    title = f"{config.get('name', folder.name)} / {experiment.get('name', '')}".rstrip(" /")
    return title, parts


def _results_part(results: dict[str, Any]) -> Part:
    rows = []
    for task in _tasks(results):
        for dataset, metrics in results[task].items():
            shown = {"skipped": metrics["skipped"]} if "skipped" in metrics else {column_label(k): v for k, v in metrics.items()}
            rows.append({"task": task, "data set": dataset, **shown})
    present = [column_label(c) for c in TABLE_COLUMNS if any(column_label(c) in r for r in rows)]  # as results.md labels them
    skipped = ["skipped"] if any("skipped" in r for r in rows) else []
    body = html.table(["task", "data set", *skipped, *present], rows, sortable=False)
    boxes = box_localisation_rows(results)
    if boxes:
        body += html.table(["task", "data set", "threshold", *BOX_FIGURES], boxes, sortable=False,
                           caption="box localisation (RA's TP / FP / precision / recall / F1 per threshold)")
    training = (results.get("training") or {}).get("summary")
    if training:
        body += html.table(list(training), [training], sortable=False, caption="training")
    note = "AUPRC / AUROC: per volume over the whole volume, mean over volumes (the papers'); every metric is in results.json."
    return Part("results", "Results", html.section("Results", body, "results", note))


def _volumes_part(viewers: list[str], budget: Budget, note: str = "") -> Part:
    text = note or ("Three planes per volume (patient's right on the right, anterior / superior up); "
                    "move a slider to change the slice; a 2D image is one picture, as its file has it. Maps: inferno over [0, 99.5th percentile of the map].")
    body = "".join(viewers) if viewers else '<p class="note">no volumes saved (save_maps: false, or nothing evaluated)</p>'
    return Part("volumes", "Volumes", html.section("Volumes", body + budget.note(), "volumes", text))


# ---- a benchmark -----------------------------------------------------------------------------
def _methods(folder: Path) -> tuple[dict[str, Path], str]:
    """{method name: run folder} and the baseline, from methods.json (or the methods/ folders)."""
    listing = json.loads((folder / METHODS_FILE).read_text()) if (folder / METHODS_FILE).is_file() else {}
    if listing:
        methods = {str(name): _method_folder(folder, name, rel) for name, rel in (listing.get("methods") or {}).items()}
    else:
        methods = {p.parent.relative_to(folder / "methods").parts[0]: p.parent
                   for p in sorted((folder / "methods").glob("*/*/*/*/results.json"))}
    baseline = listing.get("baseline") or (_read_yaml(folder / CONFIG_FILE).get(ORCHESTRATOR) or {}).get(
        "params", {}).get("baseline") or "baseline"
    return methods, str(baseline)


def _method_folder(folder: Path, name: object, rel: object) -> Path:
    """A method's run folder as methods.json names it: a relative path strictly inside the benchmark
    folder (a shared folder's listing may not draw files from elsewhere nor link to another scheme)."""
    where = f"{folder / METHODS_FILE}: method {name!r}"
    if not isinstance(rel, str) or not rel or Path(rel).is_absolute():
        raise UserInputError(f"{where}: run folder {rel!r} is not a relative path inside the benchmark folder; "
                             "re-create methods.json by re-running the benchmark")
    try:
        path = inside(folder, rel)
    except UserInputError as exc:
        raise UserInputError(f"{where}: {exc}") from exc
    if os.path.normpath(path) == os.path.normpath(folder):
        raise UserInputError(f"{where}: run folder {rel!r} is the benchmark folder itself; re-create methods.json")
    return path


def _columns(name: str, run_dir: Path) -> Iterable[tuple[str, str, Path]]:
    """(column name, task, run folder) of each evaluated task of a method, named as in the comparison."""
    results = read_results_json(run_dir / "results.json") if (run_dir / "results.json").is_file() else {}
    tasks = [t for t in _tasks(results) if any("skipped" not in m for m in results[t].values())]
    for task in tasks:
        yield (name if len(tasks) == 1 else f"{name} [{task}]"), task, run_dir


def _benchmark_page(folder: Path, budget: Budget) -> tuple[str, list[Part]]:
    methods, baseline = _methods(folder)
    comparison = read_results_json(folder / "results.json")[ORCHESTRATOR]
    columns = [c for name, path in methods.items() for c in _columns(name, path)]
    method_rows = [{"method": name, "run folder": str(path.relative_to(folder)) if path.is_relative_to(folder) else str(path),
                    "trained on": _trained_on_cell(path), "skipped tasks": _skipped_cell(path)} for name, path in methods.items()]
    links = {"run folder": lambda row: f'<a href="./{html.esc(quote(row["run folder"]))}/{REPORT_FILE}">{html.esc(row["run folder"])}</a>'}
    shown = ["method", "run folder", "trained on", *(["skipped tasks"] if any(r["skipped tasks"] != "-" for r in method_rows) else [])]
    parts = [Part("methods", "Methods", html.section("Methods", html.table(shown, method_rows, sortable=False, cells=links), "methods",
                                                     f"Baseline of the paired tests: {html.esc(baseline)}."))]
    parts.append(_comparison_part(comparison, baseline))
    curves: dict[str, dict[str, dict]] = {}
    per_volume, groups, flat = [], {}, set()
    for column, task, run_dir in columns:
        results = read_results_json(run_dir / "results.json")
        for dataset in results[task]:
            if images_2d(results[task], dataset):
                flat.add(dataset)
            path = run_dir / task / "figures" / f"{dataset}_roc_pr.json"
            if path.is_file():
                curves.setdefault(dataset, {})[column] = read_curve_points(path)
            for name in map_names(run_dir / task / "anomaly_maps" / dataset):
                groups.setdefault(dataset, {}).setdefault(name, []).append((column, VolumeFiles(name, run_dir / task / "anomaly_maps" / dataset)))
        per_volume += [{"method": column, **r} for r in _read_csv(run_dir / "per_volume.csv") if r.get("task") == task]
    parts.append(_curves_part(curves, "Pooled brain voxels of each test set, one curve per method."))
    anchors, viewers = {}, []
    for dataset, name in round_robin({d: list(v) for d, v in groups.items()}):
        vid = _slug(dataset, name)
        body = budget.add(vid, f"{dataset} / {name}", lambda entries=groups[dataset][name]: compared_layers(entries),
                          image_2d=dataset in flat)
        if body:
            viewers.append(body)
            for column, _ in groups[dataset][name]:
                anchors[(column, dataset, name)] = vid
    parts.append(_per_volume_part(per_volume, anchors, ("method", "dataset", "name"), first=("method",)))
    parts.append(_volumes_part(viewers, budget, "Each test volume once: input with its ground truth, then every method's "
                                                "map and reconstruction. Maps: inferno over [0, 99.5th percentile] of each map."))
    bars = sorted((folder / "figures").glob("comparison_*.png"))
    if bars:
        parts.append(Part("figures", "Figures", html.section("Figures", "".join(html.png(p.read_bytes(), p.stem) for p in bars),
                                                             "figures")))
    config = _read_yaml(folder / CONFIG_FILE)
    return f"{config.get('name', 'benchmark')}: {len(methods)} methods", parts


def _skipped_cell(run_dir: Path) -> str:
    """A method's tasks that evaluated nothing, with why ('-': none)."""
    results = read_results_json(run_dir / "results.json") if (run_dir / "results.json").is_file() else {}
    return "; ".join(f"{task}: {why}" for task, why in skipped_tasks(results).items()) or "-"


def _trained_on_cell(run_dir: Path) -> str:
    """A method's record: of its own checkpoint or of the weights it reused (SSIM: DDPM's, MHD: cDDPM's); '-' without one."""
    found = trained_on(_run_checkpoint(run_dir, _read_yaml(run_dir / CONFIG_FILE)))
    return json.dumps(found) if found else "-"


def _comparison_part(comparison: dict[str, dict[str, float]], baseline: str) -> Part:
    metrics: list[str] = []
    for values in comparison.values():
        metrics += [k[: -len("_p_vs_baseline")] for k in values if k.endswith("_p_vs_baseline") and k[: -len("_p_vs_baseline")] not in metrics]
    rows = []
    for key, values in comparison.items():
        method, dataset = key.rsplit(": ", 1)
        row: dict[str, Any] = {"method": method, "data set": dataset,
                               "n": max((int(values.get(f"{m}_volumes", 0)) for m in metrics), default=0)}
        for m in metrics:
            if m in values:
                row[f"{m} (mean ± std)"] = f"{html.fmt(values[m], 3)} ± {html.fmt(values[f'{m}_std'], 3)}"
                row[f"p vs {baseline} ({m})"] = html.fmt(values.get(f"{m}_p_vs_baseline"), 2)
        rows.append(row)
    columns = ["method", "data set", "n"] + [c for m in metrics for c in (f"{m} (mean ± std)", f"p vs {baseline} ({m})")]
    note = (f"Mean ± std over the test volumes; p: two-sided Wilcoxon signed-rank test of the paired per-volume "
            f"differences to {html.esc(baseline)} (as comparison.csv; '-' for the baseline itself or without pairs).")
    return Part("comparison", "Comparison", html.section("Comparison", html.table(columns, rows), "comparison", note))


# ---- a uad predict output ------------------------------------------------------------------
def _prediction_page(folder: Path, budget: Budget, checkpoint: Path | None) -> tuple[str, list[Part]]:
    rows = _read_csv(folder / "predictions.csv")
    protocols = sorted({f"{r['threshold_protocol']} = {r['threshold']}" for r in rows if r.get("threshold_protocol")})
    recorded = PredictRecord.read(folder)
    if checkpoint is not None and recorded is not None and checkpoint.is_file() and file_sha256(checkpoint) != recorded.sha256:
        LOG.warning("report: %s is not the checkpoint that made %s (%s, sha256 %s); the page shows the one given",
                    checkpoint, folder, recorded.model, recorded.sha256[:12])
    settings = recorded.settings if recorded is not None else {}
    parts = [_model_part(checkpoint, {"task": recorded.task if recorded else None, "threshold": ", ".join(protocols),
                                      "precision": settings.get("precision"), "device": settings.get("device")}, recorded)]
    anchors, viewers = {}, []
    for row in rows:
        if row.get("status") != "done":
            continue
        files = VolumeFiles(row["scan"], folder)
        if not files.path("map").is_file():
            continue
        vid = _slug(row["scan"])
        body = budget.add(vid, row["scan"], lambda files=files: volume_layers(files, labels_key="mask"),
                          image_2d=bool(settings.get("images_2d")))
        if body:
            anchors[(row["scan"],)] = vid
            viewers.append(body)
    parts.append(_per_volume_part(rows, anchors, ("scan",), title="Scans"))
    parts.append(_volumes_part(viewers, budget, "Each scan in its own space: the model's input and reconstruction "
                                                "taken back to it, the anomaly map and the outline of the anomaly mask."))
    return f"uad predict: {len(rows)} scan{'' if len(rows) == 1 else 's'}", parts

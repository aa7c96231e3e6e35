"""results.json, results.csv, per_volume.csv and the markdown table printed at the end of a run."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from core.evaluation.outputs import csv_cells, per_volume_columns, write_per_volume
from core.evaluation.thresholds import METRIC_SEPARATOR, ORACLE_KEY, VAL_DICE_KEY, fpr_key, metric_key
from core.run.run_files import read_results_json
from dl_utils.checkpoint import atomic_write_csv, atomic_write_text
from dl_utils.json_files import json_text

# Columns of the printed table, in order; all metrics are in the files. AUPRC / AUROC are
# the papers' per-volume means over whole volumes (core/evaluation/metrics.py).
TABLE_COLUMNS = ("AUPRC", "AUROC", "AUPRC_pooled_brain", metric_key("Dice", VAL_DICE_KEY), metric_key("Dice", fpr_key(0.01)),
                 metric_key("Dice", fpr_key(0.05)), metric_key("Dice", ORACLE_KEY), metric_key("DetectionRate", fpr_key(0.05)),
                 "SampleAUROC", "rec_SSIM", "rec_PSNR", "seconds_per_volume")


# RA's box localisation (per set, at each detection threshold: `TP@<rule>`, ...): a table of its own
BOX_FIGURES = ("DetectionRate", "TP", "FP", "Precision", "Recall", "F1")


def box_localisation_rows(results: Mapping[str, Mapping[str, Mapping[str, object]]]) -> list[dict[str, object]]:
    """One row per (task, data set, threshold) whose metrics hold RA's box figures (`TP@<rule>`):
    the detection rate, TP and FP sums, mean precision, recall and F1 at that threshold."""
    rows = []
    for task, sets in results.items():
        if task == "training":
            continue
        for name, metrics in sets.items():
            rules = [k.split(METRIC_SEPARATOR, 1)[1] for k in metrics if k.startswith(f"TP{METRIC_SEPARATOR}")]
            for rule in rules:
                rows.append({"task": task, "data set": name, "threshold": rule,
                             **{f: metrics.get(metric_key(f, rule)) for f in BOX_FIGURES}})
    return rows


TIMING_KEYS = ("seconds_per_volume", "train_seconds")  # wall-clock figures: timing.json, not results.json


def read_results(run_dir: Path) -> dict:
    """A run folder's results.json with its timing.json figures merged back in."""
    results = read_results_json(Path(run_dir) / "results.json")
    timing_file = Path(run_dir) / "timing.json"
    timing = read_results_json(timing_file) if timing_file.is_file() else {}
    for task, sets in timing.items():
        for name, values in sets.items():
            results.setdefault(task, {}).setdefault(name, {}).update(values)
    return results


def _fmt(value: float | str | None) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"


def markdown_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    """One row per (task, data set); `oracle` columns are upper bounds, not results.
    A training summary gets a small table of its own."""
    results = dict(results)
    training = results.pop("training", None)
    parts = [_metric_table(results)] if results else []
    boxes = box_localisation_rows(results)
    if boxes:
        columns = ["task", "data set", "threshold", *BOX_FIGURES]
        parts.append("box localisation (RA's TP / FP / precision / recall / F1 per threshold)\n\n"
                     "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
                     + "\n".join("| " + " | ".join(_fmt(r[c]) for c in columns) + " |" for r in boxes))
    if training:
        keys = list(training["summary"])
        parts.append("| training | " + " | ".join(keys) + " |\n|" + "---|" * (len(keys) + 1) + "\n| summary | "
                     + " | ".join(_fmt(training["summary"][k]) for k in keys) + " |")
    return "\n\n".join(parts)


def table_columns(results: Mapping[str, Mapping[str, Mapping[str, object]]]) -> list[str]:
    """The TABLE_COLUMNS that some (task, data set) of `results` holds, in table order
    (a training summary is no row of the metric table)."""
    return [c for c in TABLE_COLUMNS
            if any(c in m for task, sets in results.items() if task != "training" for m in sets.values())]


def table_header(columns: Sequence[str]) -> list[str]:
    """The header and rule lines of a `| task | data set | <columns> |` table: the run's table and
    `uad cv`'s folds table label columns alike (an oracle column is an upper bound, not a result)."""
    return ["| task | data set | " + " | ".join(map(column_label, columns)) + " |", "|" + "---|" * (len(columns) + 2)]


def column_label(column: str) -> str:
    """A metric's column label in a table: an oracle metric says it is an upper bound."""
    return column.replace(ORACLE_KEY, "oracle (upper bound)")


def _metric_table(results: dict[str, dict[str, dict[str, float]]]) -> str:
    present = table_columns(results)
    lines = table_header(present)
    pad = " |" * (len(present) - 1)
    for task, sets in results.items():
        reasons = {m.get("skipped") for m in sets.values()}
        if len(sets) > 1 and len(reasons) == 1 and None not in reasons:  # one reason for the whole task
            lines.append(f"| {task} | all {len(sets)} data sets | skipped: {reasons.pop()} |" + pad)
            continue
        for name, metrics in sets.items():
            if "skipped" in metrics:
                lines.append(f"| {task} | {name} | skipped: {metrics['skipped']} |" + pad)
                continue
            lines.append(f"| {task} | {name} | " + " | ".join(_fmt(metrics.get(c)) for c in present) + " |")
    return "\n".join(lines)


def _split_timing(results: dict[str, dict[str, dict]], timing: bool) -> dict[str, dict[str, dict]]:
    return {task: {name: {k: v for k, v in metrics.items() if (k in TIMING_KEYS) == timing} for name, metrics in sets.items()}
            for task, sets in results.items()}


def write_results(results: dict[str, dict[str, dict[str, float]]], run_dir: Path, header: str = "",
                  table: str | None = None, per_volume: Mapping[str, Sequence[Mapping[str, object]]] | None = None) -> str:
    """Write results.json / timing.json / results.csv / results.md and the per-volume tables
    (`per_volume`: {task: rows}, `write_per_volume_tables`) to `run_dir`, print and return the
    table (`table`: a caller's own markdown, e.g. the benchmark's comparison).

    results.json holds what a rerun reproduces exactly; wall-clock figures go to timing.json
    (the CSV and the table show both; `read_results` merges them back)."""
    for name, part in (("results.json", _split_timing(results, False)), ("timing.json", _split_timing(results, True))):
        atomic_write_text(run_dir / name, json_text(part, indent=2, default=float))
    rows = ({"task": task, "dataset": name, "metric": metric, "value": value}
            for task, sets in results.items() for name, metrics in sets.items() for metric, value in metrics.items()
            if not isinstance(value, (dict, list)))  # records (thresholds, input grid) stay in results.json
    atomic_write_csv(run_dir / "results.csv", rows, ("task", "dataset", "metric", "value"))
    write_per_volume_tables(per_volume or {}, run_dir)
    table = markdown_table(results) if table is None else table
    atomic_write_text(run_dir / "results.md", (f"# {header}\n\n" if header else "") + table + "\n")
    print(("\n" + header + "\n" if header else "\n") + table + "\n", flush=True)
    return table


def write_per_volume_tables(per_task: Mapping[str, Sequence[Mapping[str, object]]], run_dir: Path) -> None:
    """`<run>/<task>/per_volume.csv` for every task of `per_task` ({task: rows of its
    `EvaluationResult.per_volume`}) and `<run>/per_volume.csv`: all rows with a `task` column
    first, the columns in the order the tasks' files have them (a header-only file without rows)."""
    merged: list[dict[str, object]] = []
    columns = ["task"]
    for task, rows in per_task.items():
        write_per_volume(rows, run_dir / task / "per_volume.csv")
        task_columns = per_volume_columns(rows)
        for row in rows:
            merged.append({"task": task, **{c: "" for c in task_columns}, **csv_cells(row)})
            columns += [c for c in task_columns if c not in columns]
    atomic_write_csv(run_dir / "per_volume.csv", merged, columns)

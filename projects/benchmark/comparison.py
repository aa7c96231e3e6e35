"""The benchmark: runs every method's config on the same data and compares them.

An orchestrator, not an evaluator: the YAML names it under `orchestrator:` (no model, no
task), and `core/run/experiment.py` hands it the run folder. Each method runs as a nested run with
its own run folder and `log.txt` under `<run>/methods/<name>/`. The comparison is per test
set and per volume: mean +- std over volumes of each per-volume metric, and a paired
Wilcoxon signed-rank test (`scipy.stats.wilcoxon`, two-sided) of every method against
the baseline on the same volumes.
"""
from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from core.evaluation.thresholds import VAL_DICE_KEY, fpr_key, metric_key
from core.run.report import METHODS_FILE
from core.run.run_files import read_results_json, skipped_tasks
from dl_utils.checkpoint import atomic_write_csv, atomic_write_text
from dl_utils.errors import UserInputError
from dl_utils.figures import plot_bars
from dl_utils.run_logger import logging_scope

LOG = logging.getLogger(__name__)
METHOD_KEYS = ("config", "set", "reuse_weights_of", "in_table")
PAIRED_METRICS = ("AUPRC", "AUROC", metric_key("Dice", VAL_DICE_KEY), metric_key("Dice", fpr_key(0.05)))
RunExperiment = Callable[..., Path | None]
CheckConfig = Callable[[str, list[str]], None]  # (config path, --set values): a one-line UserInputError when bad


class MethodComparison:
    """Trains (or loads) each method in order and compares them per test set.

    `methods` maps a display name to `{config, set: [key=value, ...], reuse_weights_of, in_table}`
    (`<NAME>` in a `set` value is replaced by the run folder of the earlier method NAME):
    `reuse_weights_of` evaluates the weights of an earlier method's run (`task: test`)
    instead of training again; `in_table: false` runs a step (e.g. Spark pre-training)
    without a row. `baseline` is the method every other is tested against (paired over
    volumes); `metrics` the per-volume columns of `per_volume.csv` compared.
    """

    def __init__(self, *, methods: dict[str, dict[str, Any]], baseline: str | None = None,
                 metrics: list[str] | None = None, bar_metric: str = "AUPRC"):
        for name, spec in methods.items():
            if not isinstance(spec, dict):
                raise UserInputError(f"methods.{name}: must be a mapping {{{', '.join(METHOD_KEYS)}}}")
            unknown = sorted(str(k) for k in set(spec) - set(METHOD_KEYS))
            if unknown:
                raise UserInputError(f"methods.{name}.{unknown[0]}: unknown key; allowed keys: {', '.join(METHOD_KEYS)}")
            if "config" not in spec:
                raise UserInputError(f"methods.{name}: needs 'config' (the method's YAML); allowed keys: {', '.join(METHOD_KEYS)}")
            items = spec.get("set", [])
            if not isinstance(items, list) or not all(isinstance(s, str) and "=" in s for s in items):
                raise UserInputError(f"methods.{name}.set: must be a list of key.path=value strings "
                                     f"(e.g. [trainer.params.nr_epochs=10]), got {items!r}")
            if not Path(spec["config"]).is_file():
                raise UserInputError(f"methods.{name}.config: {spec['config']} not found")
            ref = spec.get("reuse_weights_of")
            if ref is not None and (ref not in methods or list(methods).index(ref) >= list(methods).index(name)):
                raise UserInputError(f"methods.{name}.reuse_weights_of: '{ref}' must name an earlier method")
        in_table = [n for n, s in methods.items() if s.get("in_table", True)]
        if baseline is not None and baseline not in in_table:
            raise UserInputError(f"baseline: '{baseline}' is not a method in the table ({', '.join(in_table)})")
        self.methods = methods
        self.baseline = baseline if baseline is not None else (in_table[0] if in_table else None)
        self.metrics = list(metrics or PAIRED_METRICS)
        self.bar_metric = bar_metric

    def check(self, check_config: CheckConfig) -> None:
        """Check every method's config with its `set` values (`check_config(path, overrides)`), before the
        benchmark claims its run folder: a bad value in the last method stops it before the first runs."""
        for name, spec in self.methods.items():
            overrides = list(spec.get("set", []))
            if spec.get("reuse_weights_of"):
                overrides.append("experiment.task=test")
            try:
                check_config(spec["config"], overrides)
            except UserInputError as exc:
                raise UserInputError(f"methods.{name}: {exc}") from exc

    def run(self, run_dir: Path, run_experiment: RunExperiment, quiet: bool = False) -> tuple[dict, str]:
        """Run the methods; return ({"<method>: <test set>": {metric: value}}, markdown table)."""
        run_dir = Path(run_dir)
        run_dirs: dict[str, Path] = {}
        per_volume: dict[str, list[dict[str, str]]] = {}
        skipped: dict[str, str] = {}
        for step, (name, spec) in enumerate(self.methods.items(), start=1):
            overrides = [_with_run_dirs(str(s), run_dirs) for s in spec.get("set", [])]
            if spec.get("reuse_weights_of"):
                weights = run_dirs[spec["reuse_weights_of"]] / "checkpoints" / "best_model.pt"
                overrides += ["experiment.task=test", f"experiment.weights={weights}"]
            LOG.info("benchmark %d/%d: running %s (%s)", step, len(self.methods), name, spec["config"])
            with logging_scope():  # the method logs to its own log.txt; ours comes back after
                method_dir = run_experiment(spec["config"], overrides, output_root=str(run_dir / "methods" / _slug(name)),
                                            quiet=quiet)
            if method_dir is None:
                raise UserInputError(f"methods.{name}: the run wrote no run folder")
            LOG.info("benchmark: %s done (%s)", name, method_dir)
            run_dirs[name] = method_dir
            if spec.get("in_table", True):
                results = read_results_json(method_dir / "results.json")
                per_volume.update(_method_rows(name, method_dir, results))
                skipped.update({f"{name} [{task}]": why for task, why in skipped_tasks(results).items()})
        rows = compare(per_volume, self.baseline, self.metrics)
        self._write(rows, run_dir)
        listing = {"baseline": self.baseline, "methods": {n: os.path.relpath(p, run_dir) for n, p in run_dirs.items()}}
        atomic_write_text(run_dir / METHODS_FILE, json.dumps(listing, indent=1))  # report.html finds the methods by name
        table = comparison_table(rows, self.metrics, self.baseline)
        for column, why in skipped.items():  # a task that evaluated nothing is named, not silently absent
            LOG.warning("benchmark: %s skipped: %s", column, why)
        notes = "".join(f"\n\nSkipped: {column}: {why}" for column, why in skipped.items())
        return rows, table + notes

    def _write(self, rows: dict[str, dict[str, float]], run_dir: Path) -> None:
        """comparison.csv (one row per method and test set) and a bar chart of `bar_metric`."""
        columns = [c for m in self.metrics for c in (m, f"{m}_std", f"{m}_p_vs_baseline", f"{m}_volumes")]
        table = ({"method": key.rsplit(": ", 1)[0], "dataset": key.rsplit(": ", 1)[1], **{c: values.get(c, "") for c in columns}}
                 for key, values in rows.items())
        atomic_write_csv(run_dir / "comparison.csv", table, ["method", "dataset", *columns])
        bars: dict[str, dict[str, float]] = {}
        for key, values in rows.items():
            method, dataset = key.rsplit(": ", 1)
            if self.bar_metric in values:
                bars.setdefault(method, {})[dataset] = values[self.bar_metric]
        plot_bars(bars, self.bar_metric, run_dir / "figures" / f"comparison_{self.bar_metric}.png")


def _with_run_dirs(item: str, run_dirs: dict[str, Path]) -> str:
    """`<NAME>` in a `set` value stands for the run folder of the earlier method NAME (e.g. its exported weights)."""
    for name, path in run_dirs.items():
        item = item.replace(f"<{name}>", str(path))
    return item


def _method_rows(name: str, method_dir: Path, results: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    """Per-volume rows of the method's test sets (`results`: its results.json), one entry per evaluated task."""
    tasks = [t for t in results if t != "training"]
    with open(method_dir / "per_volume.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("lesion_voxels")]
    out: dict[str, list[dict[str, str]]] = {}
    for task in tasks:
        kept = [r for r in rows if r["task"] == task]
        if kept:
            out[name if len(tasks) == 1 else f"{name} [{task}]"] = kept
    return out


def _value(row: dict[str, str], metric: str) -> float:
    text = row.get(metric, "")
    return float(text) if text not in ("", None) else float("nan")


def compare(per_volume: dict[str, list[dict[str, str]]], baseline: str | None,
            metrics: list[str]) -> dict[str, dict[str, float]]:
    """{"<method>: <test set>": {metric, metric_std, metric_p_vs_baseline, metric_volumes}}:
    mean / std (numpy, ddof 0) over the volumes where the metric is defined, and the
    Wilcoxon signed-rank p-value of the paired differences to the baseline (NaN for the
    baseline itself, without pairs, or when every difference is zero)."""
    base = {(r["dataset"], r["name"]): r for r in per_volume.get(baseline, [])} if baseline else {}
    out: dict[str, dict[str, float]] = {}
    for method, rows in per_volume.items():
        for dataset in dict.fromkeys(r["dataset"] for r in rows):
            entry: dict[str, float] = {}
            subset = [r for r in rows if r["dataset"] == dataset]
            for metric in metrics:
                values = np.array([_value(r, metric) for r in subset])
                finite = values[~np.isnan(values)]
                if finite.size == 0:
                    continue
                entry[metric], entry[f"{metric}_std"] = float(finite.mean()), float(finite.std())
                entry[f"{metric}_volumes"] = float(finite.size)
                entry[f"{metric}_p_vs_baseline"] = paired_p_value(subset, base, dataset, metric) if method != baseline else float("nan")
            out[f"{method}: {dataset}"] = entry
    return out


def paired_p_value(rows: list[dict[str, str]], base: dict[tuple[str, str], dict[str, str]], dataset: str,
                   metric: str) -> float:
    """Two-sided Wilcoxon signed-rank p-value of method - baseline over the shared volumes."""
    pairs = [(_value(r, metric), _value(base[(dataset, r["name"])], metric)) for r in rows if (dataset, r["name"]) in base]
    diffs = np.array([a - b for a, b in pairs if not (math.isnan(a) or math.isnan(b))])
    if diffs.size == 0 or not np.any(diffs != 0):
        return float("nan")
    return float(stats.wilcoxon(diffs).pvalue)


def comparison_table(rows: dict[str, dict[str, float]], metrics: list[str], baseline: str | None) -> str:
    """Markdown: mean +- std over volumes, and p vs the baseline, per method and test set."""
    present = [m for m in metrics if any(m in v for v in rows.values())]
    header = "| method | data set | n | " + " | ".join(f"{m} (mean ± std) | p vs {baseline}" for m in present) + " |"
    lines = [header, "|" + "---|" * (3 + 2 * len(present))]
    for key, values in rows.items():
        method, dataset = key.rsplit(": ", 1)
        n = max((int(values.get(f"{m}_volumes", 0)) for m in present), default=0)
        cells = []
        for m in present:
            if m not in values:
                cells += ["-", "-"]
                continue
            p = values[f"{m}_p_vs_baseline"]
            cells += [f"{values[m]:.3f} ± {values[f'{m}_std']:.3f}", "-" if math.isnan(p) else f"{p:.2g}"]
        lines.append(f"| {method} | {dataset} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)

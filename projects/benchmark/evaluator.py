"""Runs every method's config on the same data and collects one comparison table."""
from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any

from core.DownstreamEvaluator import DownstreamEvaluator
from core.Run import read_results, run_experiment
from dl_utils.checkpoint import atomic_write_text
from dl_utils.errors import UserInputError
from dl_utils.figures import plot_bars
from dl_utils.run_logger import RunLogger

LOG = logging.getLogger(__name__)
METHOD_KEYS = ("config", "set", "reuse_weights_of", "in_table")
COMPARISON_METRICS = ("AUPRC", "AUROC", "Dice@val_dice", "Dice@fpr_1%", "Dice@fpr_5%", "Dice@oracle_dice", "seconds_per_volume")


class MethodComparison(DownstreamEvaluator):
    """Trains (or loads) each method in order and compares them per test set.

    `methods` maps a display name to `{config, set: [key=value, ...], reuse_weights_of, in_table}`:
    `reuse_weights_of` evaluates the weights of an earlier method's run (`task: test`)
    instead of training again; `in_table: false` runs a step (e.g. Spark pre-training)
    without a row. Each method's run folder lies under `<run>/methods/<name>/`; `<NAME>` in
    a `set` value is replaced by the run folder of the earlier method NAME.
    """

    def __init__(self, *, methods: dict[str, dict[str, Any]], metrics: list[str] | None = None,
                 bar_metric: str = "AUPRC", **kwargs: Any):
        super().__init__(**kwargs)
        for name, spec in methods.items():
            unknown = set(spec) - set(METHOD_KEYS)
            if unknown or "config" not in spec:
                raise ValueError(f"methods.{name}: needs 'config'; allowed keys: {', '.join(METHOD_KEYS)}")
            if not Path(spec["config"]).is_file():
                raise ValueError(f"methods.{name}.config: {spec['config']} not found")
            ref = spec.get("reuse_weights_of")
            if ref is not None and (ref not in methods or list(methods).index(ref) >= list(methods).index(name)):
                raise ValueError(f"methods.{name}.reuse_weights_of: '{ref}' must name an earlier method")
        self.methods = methods
        self.metrics = list(metrics or COMPARISON_METRICS)
        self.bar_metric = bar_metric

    def run(self, run_dir: Path, logger: RunLogger | None = None) -> dict[str, dict[str, float]]:
        """Rows are `<method>: <test set>`; the printed table is the comparison."""
        run_dir = Path(run_dir)
        run_dirs: dict[str, Path] = {}
        rows: dict[str, dict[str, dict[str, float]]] = {}
        for name, spec in self.methods.items():
            overrides = [_with_run_dirs(str(s), run_dirs) for s in spec.get("set", [])]
            if spec.get("reuse_weights_of"):
                weights = run_dirs[spec["reuse_weights_of"]] / "checkpoints" / "best_model.pt"
                overrides += ["experiment.task=test", f"experiment.weights={weights}"]
            LOG.info("benchmark: running %s (%s)", name, spec["config"])
            method_dir = run_experiment(spec["config"], overrides, output_root=str(run_dir / "methods" / _slug(name)), quiet=True)
            if method_dir is None:
                raise UserInputError(f"methods.{name}: the run wrote no run folder")
            run_dirs[name] = method_dir
            if spec.get("in_table", True):
                rows.update(_method_rows(name, read_results(method_dir)))
        self._write_comparison(rows, run_dir)
        return {f"{method}: {dataset}": metrics for method, sets in rows.items() for dataset, metrics in sets.items()}

    def _write_comparison(self, rows: dict[str, dict[str, dict[str, float]]], run_dir: Path) -> None:
        """comparison.csv (long form) and a bar chart of `bar_metric` per test set."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["method", "dataset", *self.metrics])
        for method, sets in rows.items():
            for dataset, metrics in sets.items():
                writer.writerow([method, dataset, *[metrics.get(m, "") for m in self.metrics]])
        atomic_write_text(run_dir / "comparison.csv", buffer.getvalue())
        bars = {m: {d: v[self.bar_metric] for d, v in sets.items() if self.bar_metric in v} for m, sets in rows.items()}
        plot_bars(bars, self.bar_metric, run_dir / "figures" / f"comparison_{self.bar_metric}.png")


def _method_rows(name: str, results: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """One row set per evaluated task; skipped tasks and training summaries are left out."""
    tasks = {t: sets for t, sets in results.items() if t != "training"}
    rows = {}
    for task, sets in tasks.items():
        kept = {d: m for d, m in sets.items() if "skipped" not in m and "AUPRC" in m}
        if kept:
            rows[name if len(tasks) == 1 else f"{name} [{task}]"] = kept
    return rows


def _with_run_dirs(item: str, run_dirs: dict[str, Path]) -> str:
    """`<NAME>` in a `set` value stands for the run folder of the earlier method NAME (e.g. its exported weights)."""
    for name, path in run_dirs.items():
        item = item.replace(f"<{name}>", str(path))
    return item


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)

"""K-fold protocol in one command: one normal run per fold, then mean +- std over folds.

    uad cv --config_path projects/cDDPM/configs/cddpm_paper.yaml --folds 0 1 2 3 4

Every CSV path of the config (after `--set`) that names a fold (`..._fold0.csv`, the IXI
split names of the originals) gets the fold number substituted; each fold then runs
exactly as `core/Main.py` would with those paths, in `<cv folder>/fold<k>/`. The folds
table (`<cv folder>/folds.md`, `.csv`, `.json`) gives, per task, data set
and metric, the mean and the standard deviation over folds (n - 1 in the denominator) and
every fold's value (wall-clock figures included, from each run's timing.json). The cv folder
`<output_root>/<project>/<config>/cv-<timestamp>` is claimed like a run folder (one atomic
mkdir, by rank 0 alone under torchrun), only after every fold's config has passed every check
a run makes (each fold built once, nothing written: a bad key or a missing fold CSV is one line
and no folder), and printed last; errors and exit codes are the `uad` verbs'.
"""
from __future__ import annotations

import math
import re
import statistics
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from core.config.configurator import load_config
from core.run.experiment import check_experiment, run_experiment
from core.run.results import read_results, table_columns, table_header
from core.run.run_folder import claim_run_dir, claimed_by_main
from dl_utils import recovery
from dl_utils.checkpoint import atomic_write_csv, atomic_write_text
from dl_utils.device import resolve_device
from dl_utils.distributed import context_from_env, destroy_process_group, init_process_group
from dl_utils.errors import UserInputError
from dl_utils.json_files import json_text
from dl_utils.run_logger import configure_logging

FOLD = re.compile(r"fold\d+")

Results = dict[str, dict[str, dict[str, Any]]]


def _strings(node: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key path, value) of every string leaf under mappings."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(node, str):
        yield prefix, node


def fold_paths(config: dict[str, Any]) -> dict[str, str]:
    """{dotted key: CSV path} for every CSV path naming a fold (`fold<k>`)."""
    return {key: value for key, value in _strings(config) if value.endswith(".csv") and FOLD.search(value)}


def fold_overrides(paths: dict[str, str], fold: int) -> list[str]:
    """`--set` items that point every fold-naming CSV path at `fold`."""
    return [f"{key}={FOLD.sub(f'fold{fold}', value)}" for key, value in paths.items()]


def summarise(per_fold: dict[int, Results]) -> Results:
    """{task: {set: {metric: {"mean", "std", "folds": {k: value}}}}} over numeric metrics."""
    summary: Results = {}
    for fold, results in per_fold.items():
        for task, sets in results.items():
            for name, metrics in sets.items():
                for metric, value in metrics.items():
                    if isinstance(value, bool) or not isinstance(value, (int, float)):
                        continue
                    entry = summary.setdefault(task, {}).setdefault(name, {}).setdefault(metric, {"folds": {}})
                    entry["folds"][fold] = float(value)
    for sets in summary.values():
        for metrics in sets.values():
            for entry in metrics.values():
                values = [v for v in entry["folds"].values() if not math.isnan(v)]
                entry["mean"] = statistics.fmean(values) if values else math.nan
                entry["std"] = statistics.stdev(values) if len(values) > 1 else math.nan
    return summary


def _fmt(entry: dict[str, Any] | None) -> str:
    if not entry or math.isnan(entry["mean"]):
        return "-"
    std = "-" if math.isnan(entry["std"]) else f"{entry['std']:.3f}"
    return f"{entry['mean']:.3f} ± {std}"


def folds_table(summary: Results, folds: Sequence[int]) -> str:
    """Markdown: one row per (task, data set), the run table's columns (and their labels) as mean ± std."""
    present = table_columns(summary)
    lines = [f"folds {', '.join(map(str, folds))}: mean ± std (n - 1) over folds", "", *table_header(present)]
    for task, sets in summary.items():
        if task == "training":
            continue
        for name, metrics in sets.items():
            lines.append(f"| {task} | {name} | " + " | ".join(_fmt(metrics.get(c)) for c in present) + " |")
    return "\n".join(lines)


def write_folds(summary: Results, folds: Sequence[int], run_dirs: dict[int, Path], cv_dir: Path) -> str:
    """`<cv_dir>/folds.json`, `<cv_dir>/folds.csv` and `<cv_dir>/folds.md`; returns the markdown table."""
    payload = {"folds": list(folds), "runs": {k: str(v) for k, v in run_dirs.items()}, "summary": summary}
    atomic_write_text(cv_dir / "folds.json", json_text(payload, indent=2))
    columns = ["task", "dataset", "metric", "mean", "std", *[f"fold{k}" for k in folds]]
    rows = ({"task": task, "dataset": name, "metric": metric, "mean": e["mean"], "std": e["std"],
             **{f"fold{k}": e["folds"].get(k, "") for k in folds}}
            for task, sets in summary.items() for name, metrics in sets.items() for metric, e in metrics.items())
    atomic_write_csv(cv_dir / "folds.csv", rows, columns)
    table = folds_table(summary, folds)
    atomic_write_text(cv_dir / "folds.md", table + "\n")
    return table


def run_folds(config_path: str | Path, folds: Sequence[int], overrides: Sequence[str] = (),
              output_root: str | None = None, quiet: bool = False, allow_external_modules: bool = False) -> Path:
    """Run every fold as a normal run, write the folds table, return the cv folder."""
    config_path = Path(config_path)
    if not folds or len(set(folds)) != len(folds) or min(folds) < 0:
        raise UserInputError(f"--folds {' '.join(map(str, folds))}: give distinct fold numbers >= 0, e.g. --folds 0 1 2 3 4")
    sources: list[Path] = []
    config = load_config(config_path, sources, overrides)
    paths = fold_paths(config)
    if not paths:
        raise UserInputError(
            f"{config_path}: no CSV path names a fold (e.g. splits/IXI_train_fold0.csv); set the split CSVs "
            "in projects/common/paper_evaluation.yaml (or with --set) to fold-numbered files"
        )
    fold_sets = {fold: [*overrides, *fold_overrides(paths, fold)] for fold in folds}
    configure_logging(None, verbose=not quiet)
    for fold_set in fold_sets.values():  # every fold checked and built before anything is written
        check_experiment(config_path, fold_set, allow_external_modules=allow_external_modules)
    ctx = context_from_env()
    created = init_process_group(ctx, resolve_device(config.get("device", "auto"), ctx.local_rank))
    try:  # one group for every fold, so that rank 0 alone claims the cv folder and shares it
        cv_dir = claimed_by_main(lambda: claim_run_dir(config, config_path, output_root, prefix="cv-"), ctx)
        # stopped part-way: `uad cv` has no --resume (its folds' advice would not finish it)
        with recovery.advise(recovery.run_again(f"the cv folder {cv_dir} is incomplete: delete it")):
            return _run_folds(config_path, fold_sets, cv_dir, quiet, allow_external_modules)
    finally:
        if created:
            destroy_process_group()


def _run_folds(config_path: Path, fold_sets: dict[int, list[str]], cv_dir: Path, quiet: bool,
               allow_external_modules: bool) -> Path:
    """Every fold in `<cv_dir>/fold<k>/`, then the folds table (rank 0)."""
    per_fold: dict[int, Results] = {}
    run_dirs: dict[int, Path] = {}
    for fold, fold_set in fold_sets.items():
        run_dir = run_experiment(config_path, fold_set,
                                 output_root=str(cv_dir / f"fold{fold}"), quiet=quiet,
                                 allow_external_modules=allow_external_modules)
        if run_dir is None:  # not rank 0 of a distributed run: rank 0 writes the table
            continue
        run_dirs[fold] = run_dir
        per_fold[fold] = read_results(run_dir)
    if run_dirs:
        table = write_folds(summarise(per_fold), list(fold_sets), run_dirs, cv_dir)
        print("\n" + table + "\n", flush=True)  # as a run prints its table: --quiet only silences the log
    return cv_dir

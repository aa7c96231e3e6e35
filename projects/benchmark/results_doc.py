"""docs/results.md from one recorded benchmark run folder, with the machine and commit that made it.

`python -m projects.benchmark.results_doc runs/benchmark/benchmark/<stamp> > docs/results.md`
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import sys
from pathlib import Path

from core.run.results import read_results
from core.run.run_folder import ORIGIN_FILE

HEALTHY_KEYS = ("rec_MAE", "rec_SSIM", "rec_PSNR")


def _provenance(run_dir: Path) -> str:
    """Commit and software the benchmark ran with, as its origin.json recorded them."""
    origin_file = run_dir / ORIGIN_FILE
    origin = json.loads(origin_file.read_text()) if origin_file.is_file() else {}
    got = {key: origin.get(key) or "unknown" for key in ("commit", "platform", "python", "torch", "cpu_threads")}
    commit = got["commit"][:7] + (" with uncommitted changes" if origin.get("uncommitted_changes") else "")
    return (f"commit {commit}, {got['platform']}, Python {got['python']},\n"
            f"torch {got['torch']}, {got['cpu_threads']} CPU threads")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _method_rows(run_dir: Path) -> list[str]:
    """Per method: healthy-test reconstruction quality, seconds per volume, training time."""
    lines = ["| method run | healthy test rec. MAE / SSIM / PSNR | s / volume (mean over test sets) | train s |",
             "|---|---|---|---|"]
    for results_file in sorted((run_dir / "methods").glob("*/*/*/*/results.json")):
        method_dir = results_file.parent
        results = read_results(method_dir)
        name = method_dir.relative_to(run_dir / "methods").parts[0]
        for task, sets in results.items():
            if task == "training":
                continue
            healthy = next((m for s, m in sets.items() if "healthy" in s and "test" in s and "rec_SSIM" in m), None)
            seconds = [m["seconds_per_volume"] for m in sets.values() if isinstance(m.get("seconds_per_volume"), float)]
            train = results.get("training", {}).get("summary", {}).get("train_seconds")
            quality = " / ".join(_fmt(healthy.get(k) if healthy else None, 1 if k == "rec_PSNR" else 3) for k in HEALTHY_KEYS)
            mean_seconds = sum(seconds) / len(seconds) if seconds else None
            lines.append(f"| {name} [{task}] | {quality} | {_fmt(mean_seconds, 2)} | {_fmt(train, 0)} |")
    return lines


def render(run_dir: Path) -> str:
    """The whole page as markdown."""
    table = (run_dir / "results.md").read_text().split("\n", 2)[-1].strip()
    started = dt.datetime.fromtimestamp((run_dir / "config.yaml").stat().st_mtime, dt.UTC)
    finished = dt.datetime.fromtimestamp((run_dir / "results.md").stat().st_mtime, dt.UTC)
    minutes = (finished - started).total_seconds() / 60
    comparison = json.loads((run_dir / "results.json").read_text())
    n_rows = len(next(iter(comparison.values()), {}))
    header = [
        "# Demo results",
        "",
        "Generated from ONE benchmark run on a fresh clone after `bash demo.sh` (the first command),",
        "by the second command from its run folder:",
        "",
        "```bash",
        "python core/Main.py --config_path projects/benchmark/configs/benchmark.yaml",
        f"python -m projects.benchmark.results_doc {run_dir}",
        "```",
        "",
        f"{_provenance(run_dir)}, finished {finished:%Y-%m-%d %H:%M} UTC,",
        f"{minutes:.0f} min wall for all methods ({n_rows} method x test set rows).",
        "",
        "Data: the prepared demo set (64 x 64 x 32 volumes; train MNI152, validation OASIS, test",
        "Colin27, each with seeded variants; synthetic anomalies with exact masks, one family per",
        "test set). Numbers are a smoke test of the pipeline on one healthy training subject, not a",
        "ranking of the methods. `AUPRC` / `AUROC` are the papers' definitions (per volume over",
        "the whole volume, mean ± std over the test volumes); Dice at the threshold fitted on the",
        "labelled validation set (`val_dice`) and at 5 % false positives on healthy validation",
        "volumes (`fpr_5%`); p: two-sided Wilcoxon signed-rank test against the Threshold baseline",
        "on the same volumes. `results.json` of every method is identical on a rerun with the same",
        "config and seed on the same machine (torch's thread count can change the last digits:",
        "set `num_threads` to pin it).",
        "",
        "## Comparison (mean ± std over test volumes, paired p vs Threshold)",
        "",
        table,
        "",
        "## Reconstruction of healthy test volumes and time",
        "",
        *_method_rows(run_dir),
        "",
        "Times are wall-clock on the machine above (they are kept in each run's `timing.json`,",
        "not in `results.json`).",
    ]
    return "\n".join(header) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="docs/results.md from one benchmark run folder")
    parser.add_argument("run_dir", help="runs/benchmark/benchmark/<stamp>")
    sys.stdout.write(render(Path(parser.parse_args(argv).run_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Record tests/fixtures/demo_results.json's entry for this CPU: `python -m tests.record_demo_results`.

The end-to-end test (tests/test_projects_end_to_end.py) pins every metric of every demo config to the
values recorded on a CPU of the same vector unit (`torch.backends.cpu.get_cpu_capability()`, e.g. AVX2,
AVX512): training accumulates rounding in the order of that unit's kernels, so two kinds of CPU agree
only to ~1e-5 (and a sample-level AUROC over two nearly tied volumes may flip). Run this on a new kind of
CPU from a commit whose results are known good (the existing entries reproduced on their CPUs), then
commit the fixture with that commit named in `recorded_at`."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from core.config.configurator import load_config
from core.Main import main as run
from tests.demo_like_data import write_demo_like
from tests.test_projects_end_to_end import DEMO, FIXTURE, RECORDED_THREADS, ROOT, TIMING_METRICS, _results, shrink


def main() -> int:
    torch.set_num_threads(RECORDED_THREADS)  # training's reduction order depends on the thread count
    capability = torch.backends.cpu.get_cpu_capability()
    fixture = json.loads(FIXTURE.read_text())
    entry: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch:
        data = Path(scratch) / "demo_like"
        data.mkdir()
        write_demo_like(data)
        for config in DEMO:
            experiment = load_config(config).get("experiment", {})
            weights = experiment.get("weights")
            if experiment.get("task") == "test" and weights and not (ROOT / weights).is_file():
                continue
            out = Path(scratch) / config.stem
            torch.manual_seed(0)
            if run(["--config_path", str(config), "--quiet", *shrink(config, data, out, fp32=True)]) != 0:
                print(f"{config}: the run failed; nothing recorded", file=sys.stderr)
                return 1
            entry[str(config.relative_to(ROOT))] = {
                task: {name: {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()
                              if k not in TIMING_METRICS and not isinstance(v, (str, dict, list))}  # numbers only (a skip's reason is text)
                       for name, metrics in sets.items()}
                for task, sets in _results(out).items()}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    fixture["by_cpu_capability"][capability] = entry
    fixture["recorded_at"][capability] = commit
    FIXTURE.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"recorded {len(entry)} configs for {capability} at {commit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

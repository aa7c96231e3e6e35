"""Determinism figures: a rerun of the same config and seed, and 2-process torchrun against 1 process."""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _launch(args: list[str], output_root: Path, torchrun: bool = False) -> Path:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    if torchrun:
        command = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc_per_node=2", "core/Main.py"]
    else:
        command = [sys.executable, "core/Main.py"]
    proc = subprocess.run(command + args + ["--quiet", "--output_root", str(output_root)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return Path(proc.stdout.strip().splitlines()[-1])


def torchrun_available() -> bool:
    return shutil.which("torchrun", path=str(Path(sys.executable).parent)) is not None


def largest_difference(a: Any, b: Any) -> float:
    """Largest absolute difference between two nested results dicts (inf when their keys differ)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return math.inf
        return max((largest_difference(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(a) and math.isnan(b):
            return 0.0
        return abs(float(a) - float(b))
    return 0.0 if a == b else math.inf


def _in_process(config: Path, output_root: Path) -> Path:
    """One run in this process with one torch thread (as the OMP_NUM_THREADS=1 children)."""
    import contextlib
    import io

    import torch

    from core.Main import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["--config_path", str(config), "--quiet", "--output_root", str(output_root)])
    finally:
        torch.set_num_threads(threads)
    if code != 0:
        raise RuntimeError(f"run failed with exit code {code}")
    return Path(out.getvalue().strip().splitlines()[-1])


def rerun(config: Path, root: Path, separate_processes: bool = True) -> dict[str, Any]:
    """Two runs of the same config and seed: are their results.json files identical bytes?"""
    launch = _launch if separate_processes else lambda c, r: _in_process(Path(c[1]), r)
    first = launch(["--config_path", str(config)], root / "first")
    second = launch(["--config_path", str(config)], root / "second")
    a, b = (first / "results.json").read_bytes(), (second / "results.json").read_bytes()
    return {"identical_bytes": a == b, "largest_difference": largest_difference(json.loads(a), json.loads(b))}


def torchrun_vs_one(config: Path, root: Path, one_in_process: bool = False) -> dict[str, Any]:
    """The same config under `torchrun --nproc_per_node=2` (gloo) and as one process."""
    one = _in_process(config, root / "one") if one_in_process else _launch(["--config_path", str(config)], root / "one")
    two = _launch(["--config_path", str(config)], root / "two", torchrun=True)
    a = json.loads((one / "results.json").read_text())
    b = json.loads((two / "results.json").read_text())
    return {"largest_difference": largest_difference(a, b), "identical": a == b}

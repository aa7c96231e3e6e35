"""The run folder: created atomically (two runs at once never share one), or reopened by `--resume`.

`--resume RUN_FOLDER` continues the run folder's stored `config.yaml` (the first run's
`--set` values need not be repeated) and refuses, with one line, a config or `--set`
that would change it; the stored config is never rewritten.
"""
from __future__ import annotations

import datetime as _dt
import json
import platform
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml

from core.config.builder import ComponentBuilder
from core.config.configurator import apply_overrides, load_config, load_yaml
from dl_utils.checkpoint import atomic_write_text, read_json_mapping
from dl_utils.distributed import DistributedContext, broadcast_from_main
from dl_utils.errors import UserInputError
from dl_utils.paths import check_links_stay_inside

CONFIG_FILE = "config.yaml"
ORIGIN_FILE = "origin.json"  # the config path, --set values, code commit and software a run folder was made from
LATEST = Path("checkpoints") / "latest_model.pt"


def first_difference(a: Any, b: Any, prefix: str = "") -> str | None:
    """The first dotted key where `a` and `b` differ, with both values; None when equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in a or key not in b:
                return f"{where} ({'absent' if key not in a else _short(a[key])} vs {'absent' if key not in b else _short(b[key])})"
            found = first_difference(a[key], b[key], where)
            if found:
                return found
        return None
    return None if a == b and type(a) is type(b) else f"{prefix or '(top level)'} ({_short(a)} vs {_short(b)})"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def resume_config(run_dir: Path, config_path: Path, overrides: list[str]) -> dict[str, Any]:
    """The stored config of `run_dir`; a different `config_path` or a changing `--set` is a one-line error."""
    check_links_stay_inside(run_dir, "replace each such link by a copy of its files, or start a new run without --resume")
    if not (run_dir / LATEST).is_file():
        raise UserInputError(f"{run_dir}: --resume needs a run folder holding {LATEST} (no complete epoch was saved; "
                             "start the run again without --resume)")
    if not (run_dir / CONFIG_FILE).is_file():
        raise UserInputError(f"{run_dir}: --resume needs the run folder's {CONFIG_FILE}; it is missing")
    stored = load_yaml(run_dir / CONFIG_FILE)
    origin = _read_origin(run_dir, config_path)
    if origin is None or not config_path.is_file():  # the stored config alone: the --set applied to it
        _refuse_changing_set(run_dir, stored, apply_overrides(stored, overrides, run_dir / CONFIG_FILE))
        return stored
    # the config file with the run's own --set, then with the given ones too: a --set reaches the
    # tasks that extend the one it names as it did when the run began (`load_config`)
    builder = ComponentBuilder(config_path)  # the stored config was upgraded before it was written
    current = builder.upgrade(load_config(config_path, overrides=origin["overrides"]))
    if overrides:
        _refuse_changing_set(run_dir, current, builder.upgrade(load_config(config_path, overrides=[*origin["overrides"], *overrides])))
    changed = first_difference(builder.upgrade(stored), current)
    if changed:
        raise UserInputError(f"{run_dir}: {config_path} has changed since the run began: {changed} (stored vs now); "
                             "restore it, or start a new run without --resume")
    return stored


def _refuse_changing_set(run_dir: Path, stored: dict[str, Any], given: dict[str, Any]) -> None:
    changed = first_difference(stored, given)
    if changed:
        raise UserInputError(f"{run_dir}: --resume continues the stored {CONFIG_FILE}, but --set changes {changed} "
                             "(stored vs given); drop that --set, or start a new run without --resume")


def _read_origin(run_dir: Path, config_path: Path) -> dict[str, Any] | None:
    """The run's origin.json (config path, --set values), checked against `config_path`; None if it has none."""
    origin_file = run_dir / ORIGIN_FILE
    if not origin_file.is_file():
        return None
    origin = read_json_mapping(origin_file, "restore it from a copy, or start a new run without --resume")
    if not isinstance(origin.get("config_path"), str) or not isinstance(origin.get("overrides", []), list) \
            or not all(isinstance(o, str) for o in origin.get("overrides", [])):
        raise UserInputError(f"{origin_file}: lacks config_path / overrides; restore it from a copy, or start a new run "
                             "without --resume")
    if Path(origin["config_path"]).resolve() != config_path.resolve():
        raise UserInputError(f"{run_dir}: was started from {origin['config_path']}, not {config_path}; "
                             "pass that --config_path to resume it")
    return {**origin, "overrides": list(origin.get("overrides", []))}


def claim_run_dir(config: dict[str, Any], config_path: Path, output_root: str | None, prefix: str = "") -> Path:
    """`<output_root>/<project>/<config>/<prefix><timestamp>[-n]`, made with one atomic mkdir
    (two runs at once never share one); `prefix` names other kinds of run folder (`cv-`)."""
    root = Path(output_root or config.get("output_root") or "runs")
    parts = config_path.resolve().parts
    project = parts[parts.index("projects") + 1] if "projects" in parts[:-1] else "misc"
    stamp = prefix + _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    parent = root / project / config_path.stem
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserInputError(f"{parent}: cannot create the run folder ({exc.strerror}); set output_root to a writable folder") from exc
    return _claim(parent, stamp)


def make_run_dir(config: dict[str, Any], config_path: Path, ctx: DistributedContext, output_root: str | None) -> Path:
    """A run's folder (`claim_run_dir`) with its `checkpoints/` and `figures/`, agreed by all ranks."""
    def claim() -> Path:
        run_dir = claim_run_dir(config, config_path, output_root)
        (run_dir / "checkpoints").mkdir()
        (run_dir / "figures").mkdir()
        return run_dir
    return claimed_by_main(claim, ctx)


def claimed_by_main(claim: Callable[[], Path], ctx: DistributedContext) -> Path:
    """`claim()` run on rank 0 only, its folder sent to every rank: one folder per run, never one per rank
    (the process group must be joined when `ctx` is distributed)."""
    return Path(broadcast_from_main(str(claim()) if ctx.is_main else None, ctx))


def _claim(parent: Path, stamp: str) -> Path:
    """The first free `<stamp>`, `<stamp>-2`, ...: `mkdir` either creates it or fails, so no two runs get the same."""
    for n in range(1, 10_000):
        run_dir = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
        except OSError as exc:
            raise UserInputError(f"{run_dir}: cannot create the run folder ({exc.strerror}); set output_root to a writable folder") from exc
    raise UserInputError(f"{parent}: 10000 run folders with the stamp {stamp}; clean up {parent}")


def _code_commit() -> dict[str, Any]:
    """The git commit of this framework's checkout and whether tracked files differ from it
    (null outside a git checkout): what a recorded result was computed with."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "uncommitted_changes": None}
    if head.returncode != 0:
        return {"commit": None, "uncommitted_changes": None}
    return {"commit": head.stdout.strip(), "uncommitted_changes": bool(status.stdout.strip())}


def provenance() -> dict[str, Any]:
    """Code commit, Python, torch, platform and CPU threads of this process."""
    return {**_code_commit(), "python": platform.python_version(), "torch": torch.__version__,
            "platform": platform.platform(), "cpu_threads": torch.get_num_threads()}


def write_run_config(run_dir: Path, config: dict[str, Any], config_path: Path, overrides: list[str]) -> None:
    """The resolved config and where it came from (read back by `--resume`; the provenance
    lets a report name the commit and software of the run, not of the machine reading it)."""
    atomic_write_text(run_dir / CONFIG_FILE, yaml.safe_dump(config, sort_keys=False))
    origin = {"config_path": str(config_path), "overrides": list(overrides), **provenance()}
    atomic_write_text(run_dir / ORIGIN_FILE, json.dumps(origin, indent=1))

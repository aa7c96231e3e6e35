"""Run logging: a text log, a JSON-lines metric log, and optional wandb (offline by default)."""
from __future__ import annotations

import contextlib
import json
import logging
import netrc
import os
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from dl_utils.checkpoint import atomic_write_text
from dl_utils.json_files import json_text

LOG = logging.getLogger(__name__)


class WandbMode(StrEnum):
    """wandb's run modes; `disabled` (the default) and `offline` need no account."""

    DISABLED = "disabled"
    OFFLINE = "offline"
    ONLINE = "online"


def wandb_online_problem() -> str | None:
    """Why wandb `online` cannot log in on this machine, found without the network (no API key in
    WANDB_API_KEY / WANDB_IDENTITY_TOKEN_FILE, nor a netrc entry for the wandb host, where
    `wandb login` writes it); None when a key is configured. Checked before the run folder exists."""
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return None
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname or "api.wandb.ai"
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        if netrc.netrc(path).authenticators(host):
            return None
    except (OSError, netrc.NetrcParseError):
        pass
    return (f"wandb mode online needs an API key for {host}: set WANDB_API_KEY (or run `wandb login`), "
            "or use logging.wandb.mode offline (synced later with `wandb sync`) or disabled")


def configure_logging(log_file: Path | None, verbose: bool = True, label: str | None = None) -> None:
    """Log INFO to stderr and, when given, to the run folder's log file (replacing the root
    handlers; nested runs restore their caller's with `logging_scope`). `label` (the
    run's name) prefixes every line, so the console shows which run is talking."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if isinstance(handler, logging.FileHandler):  # an earlier run's log.txt: closed, not left to the GC
            handler.close()
    prefix = f"[{label}] " if label else ""
    fmt = logging.Formatter(f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    stream = logging.StreamHandler()
    stream.setLevel(logging.INFO if verbose else logging.WARNING)
    stream.setFormatter(fmt)
    root.addHandler(stream)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file)
        file_handler.setFormatter(fmt)
        root.addHandler(file_handler)


@contextlib.contextmanager
def logging_scope() -> Iterator[None]:
    """Run a nested run inside: its handlers (its own log.txt) are closed afterwards and
    the caller's handlers and level come back, so the caller's lines stay in its own log."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        yield
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            if handler not in saved:
                handler.close()
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)


class RunLogger:
    """Writes metrics to `metrics.jsonl` in the run folder and, if enabled, to wandb.

    wandb `mode` is `disabled` (default), `offline` (files under the run folder, no
    account) or `online`.
    """

    def __init__(self, run_dir: Path | None, is_main: bool = True, wandb_mode: WandbMode = WandbMode.DISABLED,
                 project: str = "uad-brain-mri", entity: str | None = None, run_name: str | None = None,
                 config: dict[str, Any] | None = None):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.is_main = is_main
        self._wandb_run = None
        if is_main and wandb_mode != WandbMode.DISABLED:
            import wandb  # imported lazily: most runs never need it

            os.environ.setdefault("WANDB_SILENT", "true")
            self._wandb_run = wandb.init(
                mode=str(wandb_mode), project=project, entity=entity, name=run_name, config=config or {},
                dir=str(self.run_dir) if self.run_dir else None,
            )

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        if not self.is_main:
            return
        if self.run_dir is not None:
            line = json_text({"step": step, **metrics}, default=float)
            with open(self.run_dir / "metrics.jsonl", "a") as handle:
                handle.write(line + "\n")
        if self._wandb_run is not None:
            self._wandb_run.log({k: v for k, v in metrics.items() if isinstance(v, (int, float))}, step=step)

    def forget_from(self, step: int) -> None:
        """On resume from the checkpoint of epoch `step - 1`: drop the rows a killed run logged after
        that checkpoint (training rows of epoch >= `step`, evaluation rows, a torn last line), since
        the resumed run logs them again; metrics.jsonl then holds each epoch once."""
        path = self.run_dir / "metrics.jsonl" if self.run_dir is not None else None
        if not self.is_main or path is None or not path.is_file():
            return
        kept = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] < step:
                kept.append(line)
        atomic_write_text(path, "".join(f"{line}\n" for line in kept))

    def finish(self) -> None:
        if self._wandb_run is not None:
            self._wandb_run.finish()
            self._wandb_run = None

"""`predict.json`: which checkpoint made a `uad predict` output folder and how.

A predict folder holds maps, masks and `predictions.csv`, not the checkpoint. `uad predict`
writes this record beside them (the checkpoint's path and sha256, its `trained_on` record,
the task and the settings used), so `uad report FOLDER` rebuilds the page `predict` wrote
from the folder alone, and anyone holding a checkpoint can tell by its hash whether it is
the one that made these maps.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dl_utils.checkpoint import atomic_write_text

PREDICT_RECORD_FILE = "predict.json"



@dataclass(frozen=True)
class PredictSettings:
    """How predict scored the folder's scans (stored as `settings` in the record)."""

    threshold: str                  # the threshold as asked for (a rule name or a number)
    threshold_protocol: str         # the rule it resolved to
    threshold_value: float          # the value the masks were cut at
    test_set: str | None            # the evaluated set whose fitted thresholds were read
    precision: str                  # the inference precision used, resolved (fp32, bf16 or fp16)
    device: str
    compiled_unet: bool
    preprocessed: bool              # scans were already preprocessed (no skull strip / registration)
    preprocessing: dict[str, Any]   # the scan preprocessing options
    images_2d: bool = False         # the scans were 2D images (the checkpoint's recorded image-list reading)


@dataclass(frozen=True)
class PredictRecord:
    """What `predict.json` holds: plain values only."""

    model: str                                  # the checkpoint file, resolved
    sha256: str                                 # of that file, as it was when predict ran
    task: str                                   # the downstream task whose scoring was used
    trained_on: dict[str, Any] | None           # the checkpoint's `trained_on` record (None: it has none)
    settings: dict[str, Any] = field(default_factory=dict)  # a PredictSettings as plain values

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / PREDICT_RECORD_FILE
        # strict JSON: its values are checked before predict runs (a finite threshold), so a NaN here is a bug, not a file
        atomic_write_text(path, json.dumps(asdict(self), indent=2, default=str, allow_nan=False) + "\n")
        return path

    @classmethod
    def read(cls, folder: str | Path) -> PredictRecord | None:
        """The folder's record, None without one (a folder written before predict recorded it).
        A damaged file raises ValueError / KeyError / TypeError (the report names the folder)."""
        path = Path(folder) / PREDICT_RECORD_FILE
        if not path.is_file():
            return None
        plain = json.loads(path.read_text())
        if not isinstance(plain, dict):
            raise ValueError(f"{PREDICT_RECORD_FILE} is not a JSON object")
        trained = plain.get("trained_on")
        return cls(model=str(plain["model"]), sha256=str(plain["sha256"]), task=str(plain.get("task", "")),
                   trained_on=dict(trained) if isinstance(trained, dict) else None, settings=dict(plain.get("settings") or {}))

"""Standard JSON for every file a run writes: a value that is not a finite number (a metric left
undefined, e.g. AUROC of a set without lesions) is written as `null`, never as the `NaN` / `Infinity`
that Python's json emits by default and that other readers (JavaScript, R's jsonlite, jq) refuse."""
from __future__ import annotations

import json
import math
from typing import Any


def finite_or_null(value: Any) -> Any:
    """`value` with every float that is NaN or infinite (at any depth of lists / dicts) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    return value


def json_text(value: Any, indent: int | None = None, default: Any = None) -> str:
    """`value` as standard JSON (RFC 8259): non-finite numbers as null. `default` as in `json.dumps`;
    numbers it returns (e.g. `default=float` on numpy scalars) are made finite-or-null too."""
    convert = None if default is None else (lambda v: finite_or_null(default(v)))
    return json.dumps(finite_or_null(value), indent=indent, default=convert, allow_nan=False)

"""Flat constructor params of an earlier config version, moved into today's typed parts.

A class whose long flat signature was grouped into typed parts (dataclasses given as plain
mappings in YAML) keeps reading configs, run folders and checkpoints written before: its
`upgrade_params` (the `UpgradesParams` protocol of `core.config.builder`) calls
`group_flat_params` with a table `{flat key: (group, ..., field)}`, so the grouped form is what
the configurator checks, the run folder stores and checkpoints carry. A flat key beside a
grouped value of the same setting (a flat `--set` over a grouped base config) overrides it,
with a warning naming the grouped key to write instead; while a command checks its config the
warnings are held (`HeldWarnings`), so a refused config is the one error line alone.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

LOG = logging.getLogger(__name__)

FlatKeys = Mapping[str, tuple[str, ...]]
_HELD: ContextVar[list[tuple[Any, ...]] | None] = ContextVar("held_upgrade_warnings", default=None)


def _warn(*args: Any) -> None:
    """Log an upgrade warning now, or hold it (once) while a config is being checked."""
    held = _HELD.get()
    if held is None:
        LOG.warning(*args)
    elif args not in held:
        held.append(args)


class HeldWarnings:
    """`with HeldWarnings() as held:` keeps the upgrade warnings of the configs checked inside until
    `held.release()` (the config was accepted: they are logged then, each once) or the block ends
    (logged when it ends normally, dropped when it raises: a refused config is one line, not a warning
    and then the error)."""

    def __enter__(self) -> HeldWarnings:
        self._token = _HELD.set([])
        self._done = False
        return self

    def release(self) -> None:
        """Log what is held (into an enclosing hold, if any) and stop holding."""
        if self._done:
            return
        held = _HELD.get() or []
        _HELD.reset(self._token)
        self._done = True
        for args in held:
            _warn(*args)

    def __exit__(self, exc_type: Any, *rest: Any) -> bool:
        if not self._done:
            if exc_type is None:
                self.release()
            else:
                _HELD.reset(self._token)
                self._done = True
        return False


def group_flat_params(params: Mapping[str, Any], flat_keys: FlatKeys, owner: str) -> dict[str, Any]:
    """`params` with every flat key of `flat_keys` moved to its place; grouped params pass unchanged.

    owner: the class, for the messages. A flat key must not also be a group's name.
    """
    out = copy.deepcopy(dict(params))
    for flat, path in flat_keys.items():
        if flat not in out:
            continue
        value = out.pop(flat)
        node = out
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ValueError(f"{owner}: '{flat}' belongs to '{'.'.join(path[:-1])}', which is not a mapping here")
            node = child
        if path[-1] in node and node[path[-1]] != value:
            _warn("%s param '%s' (flat, an earlier config version) overrides '%s'; write it as '%s'",
                  owner, flat, ".".join(path), ".".join(path))
        node[path[-1]] = value
    return out

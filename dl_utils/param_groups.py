"""Flat constructor params of an earlier config version, moved into today's typed parts.

A class whose long flat signature was grouped into typed parts (dataclasses given as plain
mappings in YAML) keeps reading configs, run folders and checkpoints written before: its
`upgrade_params` (the `UpgradesParams` protocol of `core.config.builder`) calls
`group_flat_params` with a table `{flat key: (group, ..., field)}`, so the grouped form is what
the configurator checks, the run folder stores and checkpoints carry. A flat key beside a
grouped value of the same setting (a flat `--set` over a grouped base config) overrides it,
with a warning naming the grouped key to write instead.
"""
from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from typing import Any

LOG = logging.getLogger(__name__)

FlatKeys = Mapping[str, tuple[str, ...]]


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
            LOG.warning("%s param '%s' (flat, an earlier config version) overrides '%s'; write it as '%s'",
                        owner, flat, ".".join(path), ".".join(path))
        node[path[-1]] = value
    return out

"""YAML text to plain data, safely: `yaml.safe_load` semantics (no python tags) plus what a config
reader needs that PyYAML lacks: exponent floats without a dot, a key stated twice refused at its line,
an over-long integer refused at its line, and alias bombs refused before any object is built."""
from __future__ import annotations

import re
from typing import Any

import yaml

MAX_CONFIG_NODES = 200_000  # values a config (or a checkpoint's stored config) may expand to


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """One mapping of a YAML document states a key twice (YAML would keep the last silently)."""

    def __init__(self, key: Any, first: yaml.Mark, again: yaml.Mark):
        super().__init__(None, None, f"key '{key}' appears twice in one mapping (first at line {first.line + 1}); "
                                     "keep one of them (YAML would silently keep the last)", again)


class _SafeLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that also reads `1e-4` as a float (YAML 1.1 needs `1.0e-4`), refuses an
    integer too long for Python to read (over 4300 digits) as invalid YAML at its line, and refuses a
    key stated twice in one mapping (`DuplicateKeyError`; a merge `<<: *base` overridden by the
    mapping's own keys is not a duplicate)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, yaml.Mark] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue  # merged keys may be overridden; a non-text key is refused by the config checks
                key = self.construct_object(key_node)
                if key in first:
                    raise DuplicateKeyError(key, first[key], key_node.start_mark)
                first[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {len(str(node.value))} digits is too long (no parameter takes one)",
                node.start_mark) from None


_SafeLoader.add_constructor("tag:yaml.org,2002:int", _SafeLoader.construct_yaml_int)


_SafeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^[-+]?(?:[0-9][0-9_]*)\.?[0-9_]*[eE][-+]?[0-9]+$"""),
    list("-+0123456789"),
)


class ConfigTooLarge(ValueError):
    """A YAML document that would expand past MAX_CONFIG_NODES values."""


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Number of values `node` expands to, each alias counted in full (memoised, so a bomb is cheap to measure)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = MAX_CONFIG_NODES + 1  # a recursive alias counts as too large
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[key] = total = min(total, MAX_CONFIG_NODES + 1)
    return total


def safe_load(text: str) -> Any:
    """`yaml.safe_load` semantics (no python tags), plus exponent floats without a dot.

    Refuses (ConfigTooLarge) a document whose aliases expand past MAX_CONFIG_NODES values,
    measured on the composed node graph before any Python object is built.
    """
    loader = _SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {})
        if size > MAX_CONFIG_NODES:
            raise ConfigTooLarge(f"expands to more than {MAX_CONFIG_NODES} values (nested aliases?)")
        return loader.construct_document(node)
    finally:
        loader.dispose()

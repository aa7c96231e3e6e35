"""Check a YAML value against a constructor's type hint, before anything is built or written.

The schema of a component is its constructor; its annotations say which YAML values fit.
`check_value` understands the hints this framework's constructors use: int, float, bool,
str, paths, Optional / unions, Literal, Enum / StrEnum, Sequence / list / tuple,
Mapping / dict, Callable and classes (filled by a nested `{module_name, class_name}`
component). An int is not a float's refusal: YAML `2.0` for an `int`, `"10"` for an
`int`, `abc` for a number and a list for a mapping are refused with the expected type.

Ranges are part of the signature too: `Annotated[int, Ge(1)]` (or the aliases
`PositiveInt`, `Epochs`, `Probability`, ... in `dl_utils.param_ranges`) states the values a
parameter takes, and `mismatch` refuses `0` with "expected an integer >= 1, got 0",
before anything is built or written. The markers are hand-written (four comparisons)
rather than taken from `annotated_types`, which is not a dependency of this project.
"""
from __future__ import annotations

import collections.abc as cabc
import dataclasses
import difflib
import enum
import inspect
import math
import numbers
import os
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from dl_utils.errors import UserInputError

NO_HINT = inspect.Parameter.empty
_PATH_TYPES = (Path, PurePath, os.PathLike)
_SEQUENCE_ORIGINS = (list, tuple, cabc.Sequence, cabc.Iterable, cabc.Collection, cabc.MutableSequence, set, frozenset)
_MAPPING_ORIGINS = (dict, cabc.Mapping, cabc.MutableMapping)


@dataclass(frozen=True)
class Bound:
    """A range marker in an `Annotated` hint; subclasses say which comparison must hold."""

    bound: float
    symbol = "?"

    def holds(self, value: float) -> bool:  # pragma: no cover - every subclass overrides it
        raise NotImplementedError

    def __str__(self) -> str:
        return f"{self.symbol} {self.bound:g}" if isinstance(self.bound, float) else f"{self.symbol} {self.bound}"


class Ge(Bound):
    """value >= bound (NaN never holds)."""

    symbol = ">="

    def holds(self, value: float) -> bool:
        return bool(value >= self.bound)


class Gt(Bound):
    """value > bound."""

    symbol = ">"

    def holds(self, value: float) -> bool:
        return bool(value > self.bound)


class Le(Bound):
    """value <= bound."""

    symbol = "<="

    def holds(self, value: float) -> bool:
        return bool(value <= self.bound)


class Lt(Bound):
    """value < bound."""

    symbol = "<"

    def holds(self, value: float) -> bool:
        return bool(value < self.bound)


@dataclass(frozen=True)
class Finite(Bound):
    """value is a finite number (neither inf nor NaN): a weight, a rate, a size in mm."""

    bound: float = 0.0

    def holds(self, value: float) -> bool:
        return math.isfinite(value)

    def __str__(self) -> str:
        return "finite"


@dataclass(frozen=True)
class MinItems:
    """A list of at least `count` items (e.g. a model's channel widths: one level at least)."""

    count: int

    def __str__(self) -> str:
        return f"at least {self.count} item{'s' if self.count != 1 else ''}"


@dataclass(frozen=True)
class MaxItems:
    """A list of at most `count` items (e.g. false-positive rates: one threshold rule each)."""

    count: int

    def __str__(self) -> str:
        return f"at most {self.count} item{'s' if self.count != 1 else ''}"


@dataclass(frozen=True)
class ParamsOf:
    """A mapping parameter that holds the keyword arguments of `cls`, which the component builds itself
    (`build_part`), e.g. a data module's `preprocessing: Annotated[Mapping[str, Any] | None,
    ParamsOf(VolumePreprocessor)]`: the config check checks the mapping's keys (with a did-you-mean),
    types and ranges against `cls`'s constructor as it checks a component's params."""

    cls: type


def params_of(hint: Any) -> type | None:
    """The class an `Annotated[..., ParamsOf(cls)]` hint names (None for any other hint)."""
    if typing.get_origin(hint) is not typing.Annotated:
        return None
    return next((m.cls for m in hint.__metadata__ if isinstance(m, ParamsOf)), None)


def closest(key: str, options: Iterable[str]) -> str:
    """'; did you mean ...?' for the closest of `options`, else the list of them (for one-line errors)."""
    match = difflib.get_close_matches(str(key), list(options), n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else f"; valid keys: {', '.join(sorted(options))}"


def keyword_names(cls: type) -> set[str] | None:
    """The keyword arguments `cls(...)` takes (None: any, it takes **kwargs)."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)}




def bounds_of(hint: Any) -> tuple[Bound, ...]:
    """The range markers of an `Annotated` hint (none for any other hint)."""
    if typing.get_origin(hint) is not typing.Annotated:
        return ()
    return tuple(m for m in hint.__metadata__ if isinstance(m, Bound))


def _range_words(bounds: tuple[Bound, ...]) -> str:
    return " and ".join(str(b) for b in bounds if not isinstance(b, Finite))


def _with_range(base: str, bounds: tuple[Bound, ...]) -> str:
    """`a number` + (Gt(0), Finite()) -> `a number > 0` (finiteness is said only when it is what fails)."""
    words = _range_words(bounds)
    return f"{base} {words}" if words else base


def min_items_of(hint: Any) -> int:
    """The least number of items an `Annotated[list[...], MinItems(n)]` hint asks for (0: any)."""
    if typing.get_origin(hint) is not typing.Annotated:
        return 0
    return max((m.count for m in hint.__metadata__ if isinstance(m, MinItems)), default=0)


def max_items_of(hint: Any) -> int | None:
    """The most items an `Annotated[list[...], MaxItems(n)]` hint allows (None: any number)."""
    if typing.get_origin(hint) is not typing.Annotated:
        return None
    return min((m.count for m in hint.__metadata__ if isinstance(m, MaxItems)), default=None)


def check_bounds(value: Any, hint: Any) -> str | None:
    """None when `value` (already of the right type) lies in the range `hint` states; else why not."""
    bounds = bounds_of(hint)
    if not bounds or isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    failed = [b for b in bounds if not b.holds(value)]
    if not failed:
        return None
    if all(isinstance(b, Finite) for b in failed):  # inf inside the stated range
        return f"expected a finite value ({describe(hint)}), got {_show(value)}"
    return f"expected {describe(hint)}, got {_show(value)}"


def check_items(value: Any, hint: Any) -> str | None:
    """None when a list `value` has as many items as `hint`'s MinItems / MaxItems ask; else why not."""
    if not isinstance(value, (list, tuple)):
        return None
    most = max_items_of(hint)
    if most is not None and len(value) > most:
        return f"expected {describe(hint)}, got {len(value)} items"
    if len(value) < min_items_of(hint):
        return f"expected {describe(hint)}, got {_show(value)}"
    return None


def check_fields(instance: Any) -> None:
    """The ranges (and item counts) of a dataclass's `Annotated` field hints, for a direct Python
    caller (the configurator checks a YAML mapping against the same hints before building it);
    ValueError naming the field. A field's hint is its one statement of the range."""
    hints = constructor_hints(type(instance))
    for item in dataclasses.fields(instance):
        hint = hints.get(item.name, NO_HINT)
        why = _range_mismatch(getattr(instance, item.name), hint)
        if why:
            raise ValueError(f"{item.name}: {why}")


def _range_mismatch(value: Any, hint: Any) -> str | None:
    """Ranges and item counts of `hint` (through unions and sequences) that `value` breaks; types are not checked here."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        return check_bounds(value, hint) or check_items(value, hint) or _range_mismatch(value, args[0])
    if origin in (typing.Union, types.UnionType):
        reasons = [_range_mismatch(value, a) for a in args if _fits_roughly(value, a)]
        return reasons[0] if reasons and all(reasons) else None
    if (origin in _SEQUENCE_ORIGINS or hint in _SEQUENCE_ORIGINS) and isinstance(value, (list, tuple)) and args:
        fixed = origin is tuple and Ellipsis not in args
        for index, item in enumerate(value):
            why = _range_mismatch(item, args[min(index, len(args) - 1)] if fixed else args[0])
            if why:
                return f"[{index}]: {why}"
    return None


def _fits_roughly(value: Any, hint: Any) -> bool:
    """Whether `value` is of the kind `hint` names (a number for a number, a list for a list, ...), ranges aside."""
    base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
    if isinstance(value, (list, tuple)):
        base_origin = typing.get_origin(base) or base
        return base_origin in _SEQUENCE_ORIGINS
    return mismatch(value, base) is None


def constructor_hints(cls: type) -> dict[str, Any]:
    """Resolved annotations of every `__init__` in the MRO (subclass first wins); unresolvable ones are skipped."""
    hints: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        try:
            resolved = typing.get_type_hints(init, include_extras=True)  # keep Annotated ranges
        except Exception:  # a forward reference nobody can resolve: no check rather than a wrong one
            resolved = {}
        hints.update({k: v for k, v in resolved.items() if k != "return"})
    return hints


_PLURALS = {int: "integers", float: "numbers", bool: "booleans", str: "strings"}


def _describe_items(hint: Any) -> str:
    bounds = bounds_of(hint)
    if bounds:
        return _with_range(_describe_items(typing.get_args(hint)[0]), bounds)
    return _PLURALS.get(hint) or describe(hint)


def describe(hint: Any) -> str:
    """A short human name for a type hint, e.g. `int or null`, `list of float`."""
    if hint is type(None):
        return "null"
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        least, most = min_items_of(hint), max_items_of(hint)
        counts = [f"at least {least}"] * bool(least) + [f"at most {most}"] * (most is not None)
        return _with_range(describe(args[0]), bounds_of(hint)) + (f" ({', '.join(counts)})" if counts else "")
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in _SEQUENCE_ORIGINS:
        inner = [a for a in args if a is not Ellipsis]
        return "list" + (f" of {_describe_items(inner[0])}" if len(set(inner)) == 1 and inner[0] is not Any else "")
    if origin in _MAPPING_ORIGINS:
        return "mapping" + (f" of {_describe_items(args[1])}" if len(args) == 2 and args[1] is not Any else "")
    if origin in (cabc.Callable,) or hint is Callable:
        return "a component {module_name, class_name, params}"
    if inspect.isclass(hint) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in hint)
    if hint in _PATH_TYPES or (inspect.isclass(hint) and issubclass(hint, PurePath)):
        return "a path (string)"
    if inspect.isclass(hint) and hint in (int, float, bool, str):
        return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[hint]
    if inspect.isclass(hint):
        return f"a {hint.__name__} component {{module_name, class_name, params}}"
    return str(hint)


def _show(value: Any) -> str:
    text = repr(value)
    kind = "list" if isinstance(value, list) else "mapping" if isinstance(value, dict) else type(value).__name__
    return f"{text[:60]}{'...' if len(text) > 60 else ''} ({kind})"


def is_component(value: Any) -> bool:
    return isinstance(value, dict) and "module_name" in value and "class_name" in value


def part_class(hint: Any) -> type | None:
    """The dataclass a parameter's hint names (through Annotated / Optional), or None.

    Such a parameter is a typed part of its component: YAML gives it as a plain mapping of
    the dataclass's fields, checked and built like a component's params (e.g. an evaluator's
    `thresholds: {fpr_levels: [0.01]}`)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        return part_class(args[0])
    if origin in (typing.Union, types.UnionType):
        parts = [p for p in (part_class(a) for a in args if a is not type(None)) if p is not None]
        return parts[0] if len(parts) == 1 else None
    return hint if inspect.isclass(hint) and dataclasses.is_dataclass(hint) else None


def protocol_members(protocol: type) -> set[str]:
    """The attributes and methods a `typing.Protocol` class asks for (its own and its bases')."""
    members: set[str] = set()
    for klass in protocol.__mro__:
        if klass in (object, typing.Protocol, typing.Generic) or not getattr(klass, "_is_protocol", False):
            continue
        members |= set(getattr(klass, "__annotations__", {}))
        members |= {n for n, v in vars(klass).items() if callable(v) and (not n.startswith("_") or n == "__call__")}
        members |= {n for n, v in vars(klass).items() if isinstance(v, property)}
    return members


def _provides(cls: type, name: str) -> bool:
    """Whether class `cls` itself (or a base other than `object`) defines `name`, or has it as a dataclass field:
    not its metaclass (every class is callable through `type.__call__`, which is no `__call__` of its instances)."""
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    return name in fields or any(name in vars(klass) for klass in cls.__mro__ if klass is not object)


def protocol_lacks(cls: type, protocol: type) -> list[str]:
    """The members of `protocol` (a `typing.Protocol`) that class `cls` does not provide, checked on the class
    (a dataclass field counts), sorted; [] when it fits."""
    return sorted(m for m in protocol_members(protocol) if not _provides(cls, m))


def kind_refusal(cls: type, contract: type) -> str | None:
    """Why class `cls` cannot fill a place whose contract is `contract` (a base class or a `typing.Protocol`),
    checked on the class before anything is constructed; None when it can."""
    if getattr(contract, "_is_protocol", False):  # checked by its members
        missing = protocol_lacks(cls, contract)
        return f"lacks {', '.join(missing)}" if missing else None
    if contract is object or issubclass(cls, contract):
        return None
    return f"is not a {contract.__name__} (subclass {contract.__module__}.{contract.__qualname__} to use it here)"


def mismatch(value: Any, hint: Any, resolve: Callable[[dict[str, Any]], type] | None = None) -> str | None:
    """None when `value` (a YAML value, not yet built) fits `hint`; else why not, in words.

    `resolve` maps a nested component spec to its class, so a class-typed parameter can
    check that the named class is a subclass of what the constructor expects.
    """
    if hint is NO_HINT or hint is Any or isinstance(hint, (typing.TypeVar, str)):
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        return mismatch(value, args[0], resolve) or check_bounds(value, hint) or check_items(value, hint)
    if origin in (typing.Union, types.UnionType):
        reasons = [mismatch(value, a, resolve) for a in args]
        if any(r is None for r in reasons):
            return None
        nested = [r for r in reasons if r and not r.startswith("expected")]
        if is_component(value):  # a component fits only the class-like members: say why the one that could take it does not
            nested = nested or [r for a, r in zip(args, reasons) if a is not type(None) and r]
        return nested[0] if len(nested) == 1 else f"expected {describe(hint)}, got {_show(value)}"
    if hint is type(None) or hint is None:
        return None if value is None else f"expected null, got {_show(value)}"
    if origin is typing.Literal:
        return None if value in args and type(value) in {type(a) for a in args} else f"expected {describe(hint)}, got {_show(value)}"
    if is_component(value):
        return _component_mismatch(value, hint, origin, resolve)
    if origin in _SEQUENCE_ORIGINS or hint in _SEQUENCE_ORIGINS:
        return _sequence_mismatch(value, hint, origin or hint, args, resolve)
    if origin in _MAPPING_ORIGINS or hint in _MAPPING_ORIGINS:
        if not isinstance(value, dict):
            return f"expected {describe(hint)}, got {_show(value)}"
        if len(args) == 2:
            for key, item in value.items():
                why = mismatch(item, args[1], resolve)
                if why:
                    return f"[{key!r}]: {why}"
        return None
    if origin is cabc.Callable or hint is Callable or hint is cabc.Callable:
        return f"expected {describe(hint)}, got {_show(value)}"
    if not inspect.isclass(hint):
        return None  # an unusual hint (a Protocol alias, a NewType): not checked rather than guessed
    return _scalar_mismatch(value, hint)


def _scalar_mismatch(value: Any, hint: type) -> str | None:
    ok: bool
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float or hint is numbers.Real or hint is numbers.Number:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif issubclass(hint, enum.Enum):
        ok = isinstance(value, (str, int)) and not isinstance(value, bool) and value in {m.value for m in hint}
    elif hint is str:
        ok = isinstance(value, str)
    elif hint in _PATH_TYPES or issubclass(hint, PurePath):
        ok = isinstance(value, str)
    elif hint is object:
        ok = True
    else:
        ok = isinstance(value, hint)
    return None if ok else f"expected {describe(hint)}, got {_show(value)}"


def _sequence_mismatch(value: Any, hint: Any, origin: Any, args: tuple, resolve: Any) -> str | None:
    if not isinstance(value, list):
        return f"expected {describe(hint)}, got {_show(value)}"
    if origin is tuple and args and Ellipsis not in args:
        if len(value) != len(args):
            return f"expected a list of {len(args)} items, got {len(value)}"
        pairs = list(zip(value, args))
    else:
        item_hint = args[0] if args else Any
        pairs = [(item, item_hint) for item in value]
    for index, (item, item_hint) in enumerate(pairs):
        why = mismatch(item, item_hint, resolve)
        if why:
            return f"[{index}]: {why}"
    return None


def _component_mismatch(value: dict[str, Any], hint: Any, origin: Any, resolve: Any) -> str | None:
    if resolve is None:
        return None
    cls = resolve(value)
    if origin is cabc.Callable or hint is Callable or hint is cabc.Callable:
        return None if "__call__" in dir(cls) else f"expected a callable, {cls.__name__} is not"
    target = origin or hint
    if not inspect.isclass(target) or target in (int, float, bool, str) or target in _SEQUENCE_ORIGINS + _MAPPING_ORIGINS:
        return f"expected {describe(hint)}, got a {cls.__name__} component"
    why = kind_refusal(cls, target)  # a contract: a base class, or a typing.Protocol checked by its members
    if why is None:
        return None
    if getattr(target, "_is_protocol", False):
        return f"expected a {target.__name__}, {cls.__name__} {why}"
    return f"{value['module_name']}.{value['class_name']} {why}"


def build_part(cls: type, params: Mapping[str, Any] | None, key: str) -> Any:
    """`cls(**params)` for a plain mapping param that names no class (e.g. a data module's
    `preprocessing` / `augmentation`): flat params of an earlier config version are upgraded
    when `cls` says how (`upgrade_params`), fields that are typed parts themselves are built from
    their mappings, and values are checked against the constructor's hints as
    `core.config.builder` checks components; a mismatch or unknown key is one UserInputError naming `key`."""
    params = dict(params or {})
    upgrade = getattr(cls, "upgrade_params", None)
    if callable(upgrade):
        try:
            params = upgrade(params)
        except ValueError as exc:
            raise UserInputError(f"{key}: {exc}") from None
    hints = constructor_hints(cls)
    names = keyword_names(cls)
    for name, value in params.items():
        if names is not None and name not in names:
            raise UserInputError(f"{key}.{name}: unknown parameter of {cls.__name__}" + closest(name, names))
        hint = hints.get(name, NO_HINT)
        part = part_class(hint)
        if part is not None and isinstance(value, Mapping):
            params[name] = build_part(part, value, f"{key}.{name}")
            continue
        why = mismatch(value, hint)
        if why:
            raise UserInputError(f"{key}.{name}: {why} (parameter of {cls.__name__}); fix the value")
    try:
        return cls(**params)
    except TypeError as exc:
        raise UserInputError(f"{key}: {exc}; use only the parameters of {cls.__name__}") from None

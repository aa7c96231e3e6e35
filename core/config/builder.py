"""Build the `{module_name, class_name, params}` components a config names, after checking them.

The schema of a component is its class's constructor: `params` must be keyword
arguments of `__init__` (walking base classes while a constructor takes `**kwargs`), of the
types and ranges its annotations state (`dl_utils.param_types`).

Only classes defined in this project's packages are built, unless the person running the
command passes `--allow-external-modules` (core/Main.py, core/commands/cli.py); no file
(config, `base:`, run folder, checkpoint) can grant it. Each place a component fills has a
`Role` (a base class, a `typing.Protocol`, or the methods its class must define), checked on the
class before it is constructed: `subprocess.Popen` is neither a model nor a scorer, and a scorer
is no training loss (`optim.contracts`). A nested component's place is its parameter's hint, checked
the same way (`dl_utils.param_types.kind_refusal`).
"""
from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from torch import nn

from core.config.aliases import resolve_module_name
from core.config.configurator import COMPONENT_KEYS, EXTERNAL_FLAG, PROJECT_PACKAGES, ConfigError, closest
from dl_utils.errors import UserInputError
from dl_utils.param_types import constructor_hints, describe, is_component, kind_refusal, mismatch, params_of, part_class, protocol_lacks
from optim.contracts import BinaryStep, MapStep, TrainingLoss
from optim.scoring.base import Scorer


@runtime_checkable
class UpgradesParams(Protocol):
    """A component class that reads params of an earlier config version (e.g. renamed or
    regrouped keys) and returns them in today's form."""

    def upgrade_params(self, params: dict[str, Any]) -> dict[str, Any]: ...



def constructor_keywords(cls: type) -> tuple[set[str], bool]:
    """Keyword names accepted by `cls(...)`, following `**kwargs` into base classes.

    Returns (names, open_ended) where open_ended is True if some constructor in the
    chain takes `**kwargs` that no base class resolves (then any key is accepted).
    """
    names: set[str] = set()
    for klass in cls.__mro__:
        if klass is object:
            return names, False
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):  # a builtin without a signature: its keywords cannot be checked
            return names, True
        has_var_kw = False
        for p in params:
            if p.name == "self" or p.kind is inspect.Parameter.VAR_POSITIONAL:
                continue
            if p.kind is inspect.Parameter.VAR_KEYWORD:
                has_var_kw = True
                continue
            names.add(p.name)
        if not has_var_kw:
            return names, False
    return names, True


def _defines(cls: type, method: str) -> bool:
    """Whether `cls` (not its metaclass: every class is callable) defines a callable `method`."""
    return any(callable(vars(klass).get(method)) for klass in cls.__mro__ if klass is not object)


@dataclass(frozen=True)
class Role:
    """What a component must be to fill its place, checked on its class before construction:
    a subclass of `base` (or, where `base` is a `typing.Protocol`, a class providing its members),
    and/or a class defining `methods` (for protocol-like roles)."""

    name: str
    base: type | None = None
    methods: tuple[str, ...] = ()

    def refusal(self, cls: type) -> str | None:
        """None when `cls` can fill this role; else why not, in words."""
        article = "an" if self.name[:1] in "aeiou" else "a"
        if self.base is not None and kind_refusal(cls, self.base) is not None:
            if getattr(self.base, "_is_protocol", False):
                return (f"is not {article} {self.name} (it lacks {', '.join(protocol_lacks(cls, self.base))} of "
                        f"{self.base.__module__}.{self.base.__name__})")
            return (f"is not a {self.base.__name__} (subclass {self.base.__module__}.{self.base.__name__} "
                    f"to use it as the {self.name})")
        absent = [m for m in self.methods if not _defines(cls, m)]
        if absent:
            return f"is not {article} {self.name} (it defines no {', '.join(absent)})"
        return None


# The contracts of the places a YAML fills with a component; the same classes are the hints of the
# constructors' parameters (Trainer.loss, ScoringSpec's scorer and steps), which the config check applies.
MODEL = Role("model", base=nn.Module)
SCORER = Role("scorer", base=Scorer)
LOSS = Role("training loss", base=TrainingLoss)
MAP_STEP = Role("map post-processing step", base=MapStep)
BINARY_STEP = Role("binary post-processing step", base=BinaryStep)
DATA_MODULE = Role("training data module", methods=("train_dataset", "val_dataset"))
EVALUATION_SET = Role("evaluation data set", methods=("__len__", "__getitem__"))
ORCHESTRATOR = Role("orchestrator", methods=("check", "run"))  # check(check_config) before its run folder exists


def is_project_class(cls: type) -> bool:
    """Defined in one of this project's packages (not merely imported into one of its modules)."""
    return str(getattr(cls, "__module__", "")).split(".")[0] in PROJECT_PACKAGES


def _param_paths(cls: type, names: Iterable[str], depth: int = 2) -> list[str]:
    """`names` and, for parameters that are typed parts, their fields as `part.field` (did-you-mean candidates)."""
    hints = constructor_hints(cls)
    paths = list(names)
    for name in names:
        part = part_class(hints.get(name, inspect.Parameter.empty))
        if part is not None and depth > 0:
            fields, _ = constructor_keywords(part)
            paths += [f"{name}.{f}" for f in _param_paths(part, sorted(fields), depth - 1)]
    return paths


class ComponentBuilder:
    """Builds `{module_name, class_name, params}` specs: project classes only (unless the command
    line allowed external ones), each checked against its role before it is constructed."""

    def __init__(self, config_path: str | Path, allow_external_modules: bool = False):
        """`allow_external_modules` comes from the command-line flag, never from a file."""
        self.config_path = str(config_path)
        self.allow_external_modules = bool(allow_external_modules)

    def resolve_class(self, spec: Any, key: str, expected: type | Role | None = None) -> type:
        """The class `spec` names, imported from an allowed module; `expected`: the base class or
        role its place needs (checked on the class: nothing is constructed yet)."""
        if not isinstance(spec, dict):
            raise ConfigError(self.config_path, key, "must be a mapping {module_name, class_name, params}")
        for name in ("module_name", "class_name"):
            if not spec.get(name):
                raise ConfigError(self.config_path, f"{key}.{name}", "missing")
        module_name = str(spec["module_name"])
        if not self.allow_external_modules and module_name.split(".")[0] not in PROJECT_PACKAGES:
            raise ConfigError(
                self.config_path,
                f"{key}.module_name",
                f"'{module_name}' is outside this project's packages ({', '.join(PROJECT_PACKAGES)}); "
                f"pass {EXTERNAL_FLAG} on the command line to allow it",
            )
        try:
            module = importlib.import_module(resolve_module_name(module_name))
        except ModuleNotFoundError as exc:
            raise ConfigError(self.config_path, f"{key}.module_name", f"cannot import '{module_name}' ({exc})") from exc
        except Exception as exc:  # an external module failing at import: one line, not its traceback
            raise ConfigError(self.config_path, f"{key}.module_name", f"importing '{module_name}' failed ({type(exc).__name__}: "
                                                                      f"{' '.join(str(exc).split())[:160]})") from exc
        class_name = str(spec["class_name"])
        cls = getattr(module, class_name, None)
        if not inspect.isclass(cls):
            options = [n for n, v in vars(module).items() if inspect.isclass(v) and v.__module__ == module.__name__]
            raise ConfigError(
                self.config_path, f"{key}.class_name", f"'{class_name}' is not a class in {module_name}"
                + (closest(class_name, options).replace("valid keys", "its classes") if options else ", which defines no classes")
            )
        if not self.allow_external_modules and not is_project_class(cls):
            raise ConfigError(self.config_path, f"{key}.class_name", f"{module_name}.{class_name} is defined in "
                                                                     f"'{cls.__module__}', outside this project's packages; "
                                                                     f"pass {EXTERNAL_FLAG} on the command line to allow it")
        role = Role(expected.__name__, base=expected) if inspect.isclass(expected) else expected
        why = role.refusal(cls) if role is not None else None
        if why:
            raise ConfigError(self.config_path, f"{key}.class_name", f"{module_name}.{class_name} {why}")
        return cls

    def check_keys(self, spec: Any, key: str, allowed: Iterable[str] = COMPONENT_KEYS) -> None:
        """A mapping the configurator reads has a known set of keys: an unknown one (e.g. `parms:`,
        which would otherwise build the class with its defaults) is one line with the closest key."""
        allowed = tuple(allowed)
        extra = sorted(str(k) for k in set(spec) - set(allowed)) if isinstance(spec, dict) else []
        if extra:
            raise ConfigError(self.config_path, f"{key}.{extra[0]}", "unknown key (valid: " + ", ".join(allowed) + ")"
                              + closest(extra[0], allowed))

    def check_params(self, cls: type, params: dict[str, Any], key: str, reserved: Iterable[str] = (),
                     prefix: str | None = None) -> None:
        """Names and types of `params` against `cls`'s constructor; nested components and typed
        parts are checked too. `prefix`: where the params sit (default `<key>.params`; "" for top-level keys)."""
        prefix = f"{key}.params" if prefix is None else prefix
        names, open_ended = constructor_keywords(cls)
        names -= set(reserved)
        hints = constructor_hints(cls)
        for name, value in params.items():
            where = f"{prefix}.{name}" if prefix else str(name)
            if name in reserved:
                raise ConfigError(self.config_path, where, "is set by the framework, not the YAML")
            if not open_ended and name not in names:
                raise ConfigError(self.config_path, where, f"unknown parameter of {cls.__name__}" + closest(name, _param_paths(cls, names)))
            hint = hints.get(name, inspect.Parameter.empty)
            part = part_class(hint) or params_of(hint)
            if part is not None and isinstance(value, dict) and not is_component(value):
                # a typed part, or a mapping the component builds its part from: a plain mapping of its fields
                self.check_params(part, self._upgraded(part, value, where), where, prefix=where)
                continue
            self._check_nested(value, where)
            why = mismatch(value, hint, lambda spec: self.resolve_class(spec, where))
            if why:
                raise ConfigError(self.config_path, where, f"{why} (parameter of {cls.__name__}); fix the value")

    def _upgraded(self, cls: type, params: dict[str, Any], key: str) -> dict[str, Any]:
        """`params` of a part in today's form when `cls` says how (`upgrade_params`), as `build_part` builds it."""
        if not isinstance(cls, UpgradesParams):
            return params
        try:
            return cls.upgrade_params(params)
        except ValueError as exc:
            raise ConfigError(self.config_path, key, str(exc)) from exc

    def _check_nested(self, value: Any, key: str) -> None:
        """Check the component specs inside a parameter value (as `build_value` will build them)."""
        if is_component(value):
            extra = sorted(set(value) - set(COMPONENT_KEYS))
            if extra:
                raise ConfigError(self.config_path, f"{key}.{extra[0]}", "unknown key in a component" + closest(extra[0], COMPONENT_KEYS))
            self.check(value, key)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self._check_nested(item, f"{key}[{i}]")

    def params_of(self, cls: type, spec: dict[str, Any], key: str) -> dict[str, Any]:
        """`spec`'s params, upgraded from an earlier config version when `cls` says how (`upgrade_params`)."""
        params = spec.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError(self.config_path, f"{key}.params", f"must be a mapping of keyword arguments, got {describe(type(params))}")
        if isinstance(cls, UpgradesParams):
            try:
                params = cls.upgrade_params(params)
            except ValueError as exc:
                raise ConfigError(self.config_path, f"{key}.params", str(exc)) from exc
        return params

    def check(self, spec: Any, key: str, reserved: Iterable[str] = (), expected: type | Role | None = None) -> type:
        """Everything `build` checks, without building: class, kind, parameter names and types. Returns the class."""
        cls = self.resolve_class(spec, key, expected)
        self.check_params(cls, self.params_of(cls, spec, key), key, reserved=reserved)
        return cls

    def build_param(self, spec: dict[str, Any], key: str, name: str, expected: type | Role | None = None) -> Any:
        """Only the parameter `name` of component `spec`, built as `build` would (the whole spec is
        checked first); its default when the spec does not set it. For readers that need one part
        of a component whose other parts they cannot build (predict: an evaluator's scoring, no data sets)."""
        cls = self.check(spec, key, expected=expected)
        params = self.params_of(cls, spec, key)
        if name in params:
            return self.build_value(params[name], f"{key}.params.{name}", constructor_hints(cls).get(name, inspect.Parameter.empty))
        default = inspect.signature(cls).parameters.get(name)
        if default is None or default.default is inspect.Parameter.empty:
            raise ConfigError(self.config_path, f"{key}.params.{name}", "missing")
        return default.default

    def upgrade(self, config: dict[str, Any]) -> dict[str, Any]:
        """`config` with every component's params in today's form (see `params_of`), so the run
        folder and checkpoints store what is built. Components that do not resolve are left for
        the checks to report."""
        def walk(node: Any, key: str) -> Any:
            if isinstance(node, list):
                return [walk(v, f"{key}[{i}]") for i, v in enumerate(node)]
            if not isinstance(node, dict):
                return node
            out = {k: walk(v, f"{key}.{k}" if key else str(k)) for k, v in node.items()}
            if is_component(out) and isinstance(out.get("params"), dict):
                try:
                    cls = self.resolve_class(out, key)
                except ConfigError:
                    return out
                out["params"] = self.params_of(cls, out, key)
            return out

        return walk(config, "")

    def build_value(self, value: Any, key: str, hint: Any = inspect.Parameter.empty, *, role: type | Role | None = None) -> Any:
        """Build nested component specs inside params (dicts and lists, in order) and typed parts
        (a plain mapping where `hint` is a dataclass); `role`: what a component here (or each one
        of a list) must be."""
        part = part_class(hint)
        if part is not None and isinstance(value, dict) and not is_component(value):
            hints = constructor_hints(part)
            fields = {n: self.build_value(v, f"{key}.{n}", hints.get(n, inspect.Parameter.empty)) for n, v in value.items()}
            try:
                return part(**fields)
            except UserInputError as exc:
                raise UserInputError(f"{self.config_path}: {key}: {exc}") from exc
            except (TypeError, ValueError) as exc:
                raise ConfigError(self.config_path, key, f"{part.__name__}: {' '.join(str(exc).split())}") from exc
        if isinstance(value, dict) and "module_name" in value and "class_name" in value:
            extra = set(value) - set(COMPONENT_KEYS)
            if extra:
                raise ConfigError(self.config_path, f"{key}.{sorted(extra)[0]}", "unknown key in a component" + closest(sorted(extra)[0], COMPONENT_KEYS))
            return self.build(value, key, expected=role)
        if isinstance(value, list):
            return [self.build_value(v, f"{key}[{i}]", role=role) for i, v in enumerate(value)]
        return value

    def build(self, spec: dict[str, Any], key: str, reserved: Iterable[str] = (), expected: type | Role | None = None,
              **injected: Any) -> Any:
        """Instantiate `spec`; `injected` objects (model, device, ...) are passed by the framework."""
        cls = self.check(spec, key, reserved=set(reserved) | set(injected), expected=expected)
        params = self.params_of(cls, spec, key)
        hints = constructor_hints(cls)
        kwargs = {name: self.build_value(v, f"{key}.params.{name}", hints.get(name, inspect.Parameter.empty))
                  for name, v in params.items()}
        external = not is_project_class(cls)
        try:
            return cls(**kwargs, **injected)
        except UserInputError as exc:
            if str(exc).startswith(self.config_path):
                raise
            raise UserInputError(f"{self.config_path}: {key}: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise ConfigError(self.config_path, f"{key}.params", f"{cls.__name__}: {' '.join(str(exc).split())}") from exc
        except Exception as exc:
            if not external:
                raise
            raise ConfigError(self.config_path, key, f"{cls.__name__} failed to build ({type(exc).__name__}: "
                                                     f"{' '.join(str(exc).split())[:160]})") from exc

"""Read a project YAML, check it against the classes it names, and build them.

The schema of a component is its class's constructor: `params` must be keyword
arguments of `__init__` (walking base classes while a constructor takes `**kwargs`).
A config may name `base` configs and state only what differs from them, so that a
second project uses the first one's config instead of forking it.

A config is data, never permission: only classes defined in this project's packages are
built, unless the person running the command passes `--allow-external-modules` (core/Main.py,
core/commands/cli.py); no file (config, `base:`, run folder, checkpoint) can grant it, and a config
key `allow_external_modules` is refused with one line naming the flag. Each place a
component fills has a `Role` (a base class, or the methods its class must define), checked
on the class before it is constructed: `subprocess.Popen` is neither a model nor a scorer.
"""
from __future__ import annotations

import copy
import difflib
import enum
import importlib
import inspect
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import yaml
from torch import nn

from core.config.aliases import resolve_module_name
from dl_utils.errors import UserInputError
from dl_utils.options import parse_option
from dl_utils.param_types import constructor_hints, describe, is_component, mismatch, part_class
from dl_utils.paths import component_problem
from dl_utils.run_logger import WandbMode

PROJECT_PACKAGES = ("core", "model_zoo", "data", "optim", "dl_utils", "projects")
BASE_KEY = "base"
TASK_EXTENDS_KEY = "extends"  # a downstream task that is another task of the same config plus its own keys
TOP_LEVEL_KEYS = {
    BASE_KEY: "config path(s) this one extends, relative to the working directory",
    "name": "run name",
    "experiment": "{name, task: train|test, weights}",
    "device": "auto | cpu | cuda",
    "seed": "random seed (default 42)",
    "deterministic": "deterministic algorithms where available (default true)",
    "num_threads": "CPU threads for torch (default: the number of cores); results are reproducible per thread count",
    "output_root": "folder that holds run folders (default runs)",
    "data_root": "folder the data sets' CSV paths are relative to, given to every data loader that takes data_root "
                 "and does not set its own",
    "configurator": "kept for iml-dl compatibility (ignored)",
    "logging": "{wandb: {mode: disabled|offline|online, project, entity}}",
    "model": "{module_name, class_name, params}",
    "trainer": "{module_name, class_name, params, data_loader}",
    "downstream_tasks": "{task name: {module_name, class_name, params, data_loader}}",
}
EXPERIMENT_KEYS = ("name", "task", "weights")
COMPONENT_KEYS = ("module_name", "class_name", "params")
LOGGING_KEYS = ("wandb",)
WANDB_KEYS = ("mode", "project", "entity")
# Types of the top-level values (the components are typed by their constructors).
TOP_LEVEL_TYPES: dict[str, Any] = {
    "name": str, "device": str, "seed": int, "deterministic": bool, "num_threads": int | None, "output_root": str,
    "data_root": str | None,
    "experiment": dict, "logging": dict | None,
    "model": dict, "trainer": dict, "downstream_tasks": dict | None,
}
EXPERIMENT_TYPES: dict[str, Any] = {"name": str, "task": str, "weights": str | None}
# A config is a few kilobytes: these bounds refuse an oversized file or an alias bomb at once.
MAX_CONFIG_BYTES = 1_000_000
MAX_CONFIG_NODES = 200_000
FILE_OPT_IN_KEY = "allow_external_modules"  # was a config key; now only the command-line flag grants it
EXTERNAL_FLAG = "--allow-external-modules"
REPLACE_MARKER = "_replace"   # `{_replace: true, ...}`: this mapping replaces its base's whole
DELETE_MARKER = "_delete"     # `{_delete: [key, ...], ...}`: drop these keys of the base's mapping


@runtime_checkable
class UpgradesParams(Protocol):
    """A component class that reads params of an earlier config version (e.g. renamed or
    regrouped keys) and returns them in today's form."""

    def upgrade_params(self, params: dict[str, Any]) -> dict[str, Any]: ...


class Task(enum.StrEnum):
    TRAIN = "train"
    TEST = "test"




class _SafeLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that also reads `1e-4` as a float (YAML 1.1 needs `1.0e-4`)."""


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


def _closest(key: str, options: Iterable[str]) -> str:
    match = difflib.get_close_matches(str(key), list(options), n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else f"; valid keys: {', '.join(sorted(options))}"


class ConfigError(UserInputError):
    """A configuration error that names the file and the key."""

    def __init__(self, path: str | Path, key: str, message: str):
        super().__init__(f"{path}: {key}: {message}")


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML file with `yaml.safe_load`; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: config file not found; pass an existing --config_path")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise UserInputError(f"{path}: config file is {size} bytes, more than the {MAX_CONFIG_BYTES} a config may have; "
                             "pass a project YAML (data belong in CSV files)")
    try:
        config = safe_load(path.read_text(encoding="utf-8"))
    except ConfigTooLarge as exc:
        raise UserInputError(f"{path}: invalid YAML: the document {exc}; write the values out instead of nesting aliases") from exc
    except RecursionError as exc:
        raise UserInputError(f"{path}: invalid YAML: nested too deeply; a config is a few levels of mappings") from exc
    except UnicodeDecodeError as exc:
        raise UserInputError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start}); pass a YAML config") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserInputError(f"{path}: invalid YAML{where}: {problem} (python tags like !!python/tuple are not allowed; use lists)") from exc
    if not isinstance(config, dict):
        raise UserInputError(f"{path}: the config must be a mapping of top-level keys")
    return config


def merge_configs(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` deep-merged over `base`: mappings merge key by key, anything else replaces.

    A component mapping naming another `class_name` than its base replaces it whole, since
    the base's `params` belong to a different constructor; a base mapping naming no class
    (e.g. only a trainer's `data_loader`) merges into it. A mapping holding
    `_replace: true` replaces its base's mapping whole; `_delete: [key, ...]` drops those
    keys of the base's mapping first (e.g. a paper config's data sets).
    """
    merged = copy.deepcopy(base)
    override = dict(override)
    replace = override.pop(REPLACE_MARKER, False)
    deleted = override.pop(DELETE_MARKER, [])
    if not isinstance(replace, bool):
        raise ValueError(f"{REPLACE_MARKER} must be true or false, got {replace!r}")
    if isinstance(deleted, str):
        deleted = [deleted]
    if not isinstance(deleted, list) or not all(isinstance(k, str) for k in deleted):
        raise ValueError(f"{DELETE_MARKER} must be a key or a list of keys, got {deleted!r}")
    if replace:
        merged = {}
    for key in deleted:
        if key not in merged:
            raise ValueError(f"{DELETE_MARKER}: '{key}' is not a key of the base config" + _closest(key, merged))
        del merged[key]
    for key, value in override.items():
        old = merged.get(key)
        both_mappings = isinstance(value, dict) and isinstance(old, dict)
        other_class = both_mappings and "class_name" in value and "class_name" in old and value["class_name"] != old["class_name"]
        if both_mappings and not other_class:
            merged[key] = merge_configs(old, value)
        elif isinstance(value, dict):
            merged[key] = merge_configs({}, value)  # strips markers in a mapping with no base
        elif isinstance(value, list):
            merged[key] = [merge_configs({}, v) if isinstance(v, dict) else copy.deepcopy(v) for v in value]
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_config(path: str | Path, sources: list[Path] | None = None) -> dict[str, Any]:
    """A project YAML with its `base` configs merged under it (in the order listed).

    `sources`, when given, receives every file read, bases before the files extending them.
    """
    config = _load_with_bases(Path(path), (), sources if sources is not None else [])
    return resolve_task_extensions(config, path)


def resolve_task_extensions(config: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """A downstream task with `extends: <other task>` is that task with its own keys merged over
    it (`merge_configs` rules), so a second evaluation of the same protocol (e.g. RA's l1 map
    beside its LPIPS map) states only the scorer instead of copying the protocol."""
    tasks = config.get("downstream_tasks")
    if not isinstance(tasks, dict) or not any(isinstance(t, dict) and TASK_EXTENDS_KEY in t for t in tasks.values()):
        return config

    def resolved(name: str, chain: tuple[str, ...]) -> dict[str, Any]:
        spec = tasks[name]
        if not isinstance(spec, dict) or TASK_EXTENDS_KEY not in spec:
            return spec
        parent = spec[TASK_EXTENDS_KEY]
        key = f"downstream_tasks.{name}.{TASK_EXTENDS_KEY}"
        if not isinstance(parent, str) or parent not in tasks:
            raise ConfigError(path, key, f"'{parent}' is not a task of this config" + _closest(str(parent), tasks))
        if parent in chain:
            raise ConfigError(path, key, "tasks extend each other in a loop: " + " -> ".join((*chain, parent)))
        own = {k: v for k, v in spec.items() if k != TASK_EXTENDS_KEY}
        try:
            return merge_configs(resolved(parent, (*chain, parent)), own)
        except ValueError as exc:
            raise ConfigError(path, f"downstream_tasks.{name}", str(exc)) from exc

    config = dict(config)
    config["downstream_tasks"] = {name: resolved(name, (name,)) for name in tasks}
    return config


def describe_sources(path: str | Path, sources: list[Path]) -> str:
    """Where a key of a merged config may sit, for error messages."""
    bases = list(dict.fromkeys(str(s) for s in sources if Path(s).resolve() != Path(path).resolve()))
    return f"{path} (or its base {', '.join(bases)})" if bases else str(path)


def _load_with_bases(path: Path, chain: tuple[Path, ...], sources: list[Path]) -> dict[str, Any]:
    if path.resolve() in chain:
        loop = " -> ".join(str(p) for p in (*chain, path.resolve()))
        raise ConfigError(path, BASE_KEY, f"configs extend each other in a loop: {loop}")
    config = load_yaml(path)
    bases = config.pop(BASE_KEY, None) or []
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(path, BASE_KEY, "must be a config path or a list of config paths")
    merged: dict[str, Any] = {}
    for base in bases:
        if not Path(base).is_file():
            raise ConfigError(path, BASE_KEY, f"{base} not found; base paths are relative to the working "
                                              "directory, like --config_path (run from the repository root)")
        merged = merge_configs(merged, _load_with_bases(Path(base), (*chain, path.resolve()), sources))
    sources.append(path)
    try:
        return merge_configs(merged, config)
    except ValueError as exc:
        raise UserInputError(f"{path}: {exc}") from exc


def apply_overrides(config: dict[str, Any], overrides: Iterable[str], path: str | Path) -> dict[str, Any]:
    """Apply `key.path=value` overrides; values are typed by YAML rules; parents must exist."""
    config = copy.deepcopy(config)
    for item in overrides:
        if "=" not in item:
            raise UserInputError(f"--set {item}: expected key.path=value")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        if not dotted.strip() or any(not k for k in keys):
            raise UserInputError(f"--set {item}: expected key.path=value with a non-empty key path")
        if keys[0] == BASE_KEY:  # the bases are merged when the file is read, before any --set
            raise ConfigError(path, BASE_KEY, f"--set {item}: base configs are merged when the file is read, so --set "
                                              "cannot change them; write `base:` in the config file (or --set the keys themselves)")
        try:
            value = safe_load(raw)
        except (yaml.YAMLError, ConfigTooLarge, RecursionError) as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise UserInputError(f"--set {item}: the value is not valid YAML ({problem}); quote a string as "
                                 "key='\"text\"', write lists as [a, b] and mappings as {k: v}") from exc
        node: Any = config
        for depth, key in enumerate(keys[:-1]):
            if not isinstance(node, dict) or key not in node:
                here = ".".join(keys[: depth + 1])
                options = node.keys() if isinstance(node, dict) else []
                raise ConfigError(path, here, "--set names a key that is not in the config" + _closest(key, options))
            if node[key] is None:
                node[key] = {}
            node = node[key]
        if not isinstance(node, dict):
            raise ConfigError(path, dotted, "--set: the parent is not a mapping")
        node[keys[-1]] = value
    return config


def refuse_file_opt_in(config: Any, path: str | Path) -> None:
    """A file (config, base, run folder, checkpoint) must never let code from outside this project run:
    the opt-in is the command-line flag of the person running the command."""
    if isinstance(config, dict) and FILE_OPT_IN_KEY in config:
        raise ConfigError(path, FILE_OPT_IN_KEY, f"is not a config key: a file cannot allow code from outside this project; "
                                                 f"remove it and pass {EXTERNAL_FLAG} on the command line if you trust the modules it names")


def validate_top_level(config: dict[str, Any], path: str | Path) -> None:
    """Unknown top-level, experiment and logging keys are errors with the closest valid key."""
    refuse_file_opt_in(config, path)
    for key in config:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(path, key, "unknown top-level key" + _closest(key, TOP_LEVEL_KEYS))
    for key in ("name", "experiment", "model"):
        if key not in config:
            raise ConfigError(path, key, "missing required key")
    _check_types(config, TOP_LEVEL_TYPES, "", path)
    problem = component_problem(config["name"])
    if problem:
        raise ConfigError(path, "name", f"'{config['name']}' {problem}; the run name is a plain name (no '/', '\\', '..')")
    if not 0 <= config.get("seed", 0) < 2**63:
        raise ConfigError(path, "seed", f"{config['seed']} is out of range; use an integer from 0 to 2**63 - 1")
    if config.get("num_threads") is not None and config["num_threads"] < 1:
        raise ConfigError(path, "num_threads", f"{config['num_threads']} must be >= 1 (or null for the number of cores)")
    experiment = config["experiment"]
    for key in experiment:
        if key not in EXPERIMENT_KEYS:
            raise ConfigError(path, f"experiment.{key}", "unknown key" + _closest(key, EXPERIMENT_KEYS))
    _check_types(experiment, EXPERIMENT_TYPES, "experiment.", path)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}", str(experiment.get("name", "run"))):
        raise ConfigError(path, "experiment.name", f"'{experiment['name']}' is not a valid run name; use letters, digits, "
                                                   "'_', '-', '.', '+' (it names the wandb run and the results), at most 64 characters")
    task = experiment.get("task", "train")
    try:
        parse_option(Task, task, "experiment.task")
    except ValueError as exc:
        raise ConfigError(path, "experiment.task", str(exc)) from None
    if task == "train" and "trainer" not in config:
        raise ConfigError(path, "trainer", "required when experiment.task is train")
    logging_cfg = _known_keys(config.get("logging"), LOGGING_KEYS, path, "logging")
    wandb_cfg = _known_keys(logging_cfg.get("wandb"), WANDB_KEYS, path, "logging.wandb")
    try:
        parse_option(WandbMode, wandb_cfg.get("mode", "disabled"), "logging.wandb.mode")
    except ValueError as exc:
        raise ConfigError(path, "logging.wandb.mode", str(exc)) from None


def _check_types(values: dict[str, Any], types_: dict[str, Any], prefix: str, path: str | Path) -> None:
    for key, hint in types_.items():
        if key in values:
            why = mismatch(values[key], hint)
            if why:
                raise ConfigError(path, f"{prefix}{key}", why)


def _known_keys(value: Any, keys: Iterable[str], path: str | Path, where: str) -> dict[str, Any]:
    """`value` as a mapping whose keys are all in `keys` (None: empty); else a one-line error."""
    value = value or {}
    if not isinstance(value, dict):
        raise ConfigError(path, where, "must be a mapping {" + ", ".join(keys) + "}")
    for key in value:
        if key not in keys:
            raise ConfigError(path, f"{where}.{key}", "unknown key" + _closest(key, keys))
    return value


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
    a subclass of `base`, and/or a class defining `methods` (for protocol-like roles)."""

    name: str
    base: type | None = None
    methods: tuple[str, ...] = ()

    def refusal(self, cls: type) -> str | None:
        """None when `cls` can fill this role; else why not, in words."""
        if self.base is not None and not issubclass(cls, self.base):
            return (f"is not a {self.base.__name__} (subclass {self.base.__module__}.{self.base.__name__} "
                    f"to use it as the {self.name})")
        absent = [m for m in self.methods if not _defines(cls, m)]
        if absent:
            return f"is not a {self.name} (it defines no {', '.join(absent)})"
        return None


MODEL = Role("model", base=nn.Module)
SCORER = Role("scorer", methods=("__call__",))
MAP_STEP = Role("post-processing step", methods=("__call__",))
DATA_MODULE = Role("training data module", methods=("train_dataset", "val_dataset"))
EVALUATION_SET = Role("evaluation data set", methods=("__len__", "__getitem__"))
ORCHESTRATOR = Role("orchestrator", methods=("run",))


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
                self.config_path, f"{key}.class_name", f"'{class_name}' is not a class in {module_name}" + _closest(class_name, options)
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
                              + _closest(extra[0], allowed))

    def check_params(self, cls: type, params: dict[str, Any], key: str, reserved: Iterable[str] = (),
                     prefix: str | None = None) -> None:
        """Names and types of `params` against `cls`'s constructor; nested components and typed
        parts are checked too. `prefix`: where the params sit (default `<key>.params`)."""
        prefix = f"{key}.params" if prefix is None else prefix
        names, open_ended = constructor_keywords(cls)
        names -= set(reserved)
        hints = constructor_hints(cls)
        for name, value in params.items():
            where = f"{prefix}.{name}"
            if name in reserved:
                raise ConfigError(self.config_path, where, "is set by the framework, not the YAML")
            if not open_ended and name not in names:
                raise ConfigError(self.config_path, where, f"unknown parameter of {cls.__name__}" + _closest(name, _param_paths(cls, names)))
            hint = hints.get(name, inspect.Parameter.empty)
            part = part_class(hint)
            if part is not None and isinstance(value, dict) and not is_component(value):
                self.check_params(part, value, where, prefix=where)  # a typed part: a plain mapping of its fields
                continue
            self._check_nested(value, where)
            why = mismatch(value, hint, lambda spec: self.resolve_class(spec, where))
            if why:
                raise ConfigError(self.config_path, where, f"{why} (parameter of {cls.__name__}); fix the value")

    def _check_nested(self, value: Any, key: str) -> None:
        """Check the component specs inside a parameter value (as `build_value` will build them)."""
        if is_component(value):
            extra = sorted(set(value) - set(COMPONENT_KEYS))
            if extra:
                raise ConfigError(self.config_path, f"{key}.{extra[0]}", "unknown key in a component" + _closest(extra[0], COMPONENT_KEYS))
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
                raise ConfigError(self.config_path, f"{key}.{sorted(extra)[0]}", "unknown key in a component" + _closest(sorted(extra)[0], COMPONENT_KEYS))
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

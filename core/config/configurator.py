"""Read a project YAML (parsed by `core.config.safe_yaml`): `base:` configs and their merge, `--set` overrides, task
`extends`, and the check of its top-level keys. Building the components it names is
`core.config.builder`.

A config may name `base` configs and state only what differs from them, so that a
second project uses the first one's config instead of forking it. A config is data, never
permission: a key `allow_external_modules` (in the config or any base) is refused with one line
naming the command-line flag that grants it.
"""
from __future__ import annotations

import copy
import enum
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from core.config.safe_yaml import MAX_CONFIG_NODES, ConfigTooLarge, DuplicateKeyError, safe_load
from dl_utils.errors import UserInputError
from dl_utils.options import parse_option
from dl_utils.param_types import closest, mismatch
from dl_utils.paths import component_problem
from dl_utils.run_logger import WandbMode, wandb_online_problem
from dl_utils.seeding import DEFAULT_SEED

PROJECT_PACKAGES = ("core", "model_zoo", "data", "optim", "dl_utils", "projects")
BASE_KEY = "base"
TASK_EXTENDS_KEY = "extends"  # a downstream task that is another task of the same config plus its own keys
TOP_LEVEL_KEYS = {
    BASE_KEY: "config path(s) this one extends, relative to the working directory",
    "name": "run name",
    "experiment": "{name, task: train|test, weights}",
    "device": "auto | cpu | cuda",
    "seed": f"random seed (default {DEFAULT_SEED})",
    "deterministic": "deterministic algorithms where available (default true)",
    "num_threads": "CPU threads for torch (default: the number of cores); results are reproducible per thread count",
    "output_root": "folder that holds run folders (default runs)",
    "data_root": "folder the data sets' CSV paths are relative to, given to every data loader that takes data_root "
                 "and does not set its own",
    "preprocessing": "VolumePreprocessor settings, given to every data loader that takes preprocessing and does not "
                     "set its own",
    "configurator": "kept for iml-dl compatibility (ignored)",
    "logging": "{wandb: {mode: disabled|offline|online, project, entity}}",
    "model": "{module_name, class_name, params}",
    "trainer": "{module_name, class_name, params, data_loader}",
    "downstream_tasks": "{task name: {module_name, class_name, params, data_loader}}",
}
# Top-level values stated once for the whole config: each goes to every data loader (training data
# module, evaluation data set) whose constructor takes a parameter of that name and that does not set its own.
SHARED_KEYS = ("data_root", "preprocessing")
EXPERIMENT_KEYS = ("name", "task", "weights")
COMPONENT_KEYS = ("module_name", "class_name", "params")
LOGGING_KEYS = ("wandb",)
WANDB_KEYS = ("mode", "project", "entity")
# Types of the top-level values (the components are typed by their constructors).
TOP_LEVEL_TYPES: dict[str, Any] = {
    "name": str, "device": str, "seed": int, "deterministic": bool, "num_threads": int | None, "output_root": str,
    "data_root": str | None, "preprocessing": dict[str, Any] | None,  # its fields: checked where a data loader takes it
    "experiment": dict, "logging": dict | None,
    "model": dict, "trainer": dict, "downstream_tasks": dict | None,
}
EXPERIMENT_TYPES: dict[str, Any] = {"name": str, "task": str, "weights": str | None}
# A config is a few kilobytes: these bounds refuse an oversized file or an alias bomb at once.
MAX_CONFIG_BYTES = 1_000_000
FILE_OPT_IN_KEY = "allow_external_modules"  # was a config key; now only the command-line flag grants it
EXTERNAL_FLAG = "--allow-external-modules"
REPLACE_MARKER = "_replace"   # `{_replace: true, ...}`: this mapping replaces its base's whole
DELETE_MARKER = "_delete"     # `{_delete: [key, ...], ...}`: drop these keys of the base's mapping


class Task(enum.StrEnum):
    TRAIN = "train"
    TEST = "test"




MAX_THREADS = 1024  # CPU threads of one process; far more makes torch.set_num_threads crash the process


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
    except DuplicateKeyError as exc:
        raise UserInputError(f"{path}: line {exc.problem_mark.line + 1}: {exc.problem}") from exc
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
            raise ValueError(f"{DELETE_MARKER}: '{key}' is not a key of the base config" + closest(key, merged))
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


def load_config(path: str | Path, sources: list[Path] | None = None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """A project YAML with its `base` configs merged under it (in the order listed), `--set`
    `overrides` applied, then its tasks' `extends` resolved.

    `sources`, when given, receives every file read, bases before the files extending them. An
    override of a task reaches the tasks that extend it (set before they are resolved), and may
    name a key a task only inherits (its parents are created in that task).
    """
    sources = sources if sources is not None else []
    config = _load_with_bases(Path(path), (), sources)
    overrides = list(overrides)
    if overrides:
        where = describe_sources(path, sources)
        apply_overrides(resolve_task_extensions(config, path), overrides, where)  # every key path checked as the user sees it
        config = apply_overrides(config, overrides, where, create_parents=True)
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
            raise ConfigError(path, key, f"'{parent}' is not a task of this config" + closest(str(parent), tasks))
        if parent in chain:
            raise ConfigError(path, key, "tasks extend each other in a loop: " + " -> ".join((*chain, parent)))
        own = {k: v for k, v in spec.items() if k != TASK_EXTENDS_KEY}
        base = resolved(parent, (*chain, parent))
        if not isinstance(base, dict):
            raise ConfigError(path, key, f"'{parent}' is not a task mapping {{module_name, class_name, params, data_loader}}")
        try:
            return merge_configs(base, own)
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


MAX_SHOWN_OVERRIDE = 80  # an error line quotes at most this much of a `--set` item


def apply_overrides(config: dict[str, Any], overrides: Iterable[str], path: str | Path,
                    create_parents: bool = False) -> dict[str, Any]:
    """Apply `key.path=value` overrides; values are typed by YAML rules; parents must exist (or, with
    `create_parents`, are created: `load_config` sets a key that a task inherits through `extends`)."""
    config = copy.deepcopy(config)
    for item in overrides:
        shown = item if len(item) <= MAX_SHOWN_OVERRIDE else item[:MAX_SHOWN_OVERRIDE] + f"... ({len(item)} characters)"
        if "=" not in item:
            raise UserInputError(f"--set {shown}: expected key.path=value")
        dotted, raw = item.split("=", 1)
        keys = dotted.strip().split(".")
        if not dotted.strip() or any(not k for k in keys):
            raise UserInputError(f"--set {shown}: expected key.path=value with a non-empty key path")
        if keys[0] == BASE_KEY:  # the bases are merged when the file is read, before any --set
            raise ConfigError(path, BASE_KEY, f"--set {shown}: base configs are merged when the file is read, so --set "
                                              "cannot change them; write `base:` in the config file (or --set the keys themselves)")
        try:
            value = safe_load(raw)
        except (yaml.YAMLError, ConfigTooLarge, RecursionError) as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise UserInputError(f"--set {shown}: the value is not valid YAML ({problem}); quote a string as "
                                 "key='\"text\"', write lists as [a, b] and mappings as {k: v}") from exc
        node: Any = config
        for depth, key in enumerate(keys[:-1]):
            if create_parents and isinstance(node, dict) and key not in node:
                node[key] = {}
            if not isinstance(node, dict) or key not in node:
                here = ".".join(keys[: depth + 1])
                options = node.keys() if isinstance(node, dict) else []
                raise ConfigError(path, here, "--set names a key that is not in the config" + closest(key, options))
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


def run_seed(config: dict[str, Any]) -> int:
    """The run's seed: the config's `seed`, else `DEFAULT_SEED`."""
    return int(config.get("seed", DEFAULT_SEED))


def shared_values(config: dict[str, Any]) -> dict[str, Any]:
    """The config's top-level values for its data loaders (`SHARED_KEYS`: `data_root`, `preprocessing`);
    None where the config does not state one."""
    return {key: config.get(key) for key in SHARED_KEYS}


def validate_top_level(config: dict[str, Any], path: str | Path) -> None:
    """Unknown top-level, experiment and logging keys are errors with the closest valid key (`check_top_level`);
    a run that would log to wandb online needs an API key."""
    mode = check_top_level(config, path)
    problem = wandb_online_problem() if mode == WandbMode.ONLINE else None
    if problem:
        raise ConfigError(path, "logging.wandb.mode", problem)


def check_top_level(config: dict[str, Any], path: str | Path) -> WandbMode:
    """The top-level, experiment and logging keys and values of a config, this machine aside (a checkpoint's
    stored config is checked so before `uad predict` scores with it); returns the wandb mode."""
    refuse_file_opt_in(config, path)
    for key in config:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(path, key, "unknown top-level key" + closest(key, TOP_LEVEL_KEYS))
    for key in ("name", "experiment", "model"):
        if key not in config:
            raise ConfigError(path, key, "missing required key")
    _check_types(config, TOP_LEVEL_TYPES, "", path)
    problem = component_problem(config["name"])  # a folder name: at most MAX_COMPONENT_BYTES
    if problem:
        raise ConfigError(path, "name", f"'{config['name']}' {problem}; the run name is a plain name (no '/', '\\', '..')")
    if not 0 <= config.get("seed", 0) < 2**63:
        raise ConfigError(path, "seed", f"{config['seed']} is out of range; use an integer from 0 to 2**63 - 1")
    if config.get("num_threads") is not None and not 1 <= config["num_threads"] <= MAX_THREADS:
        raise ConfigError(path, "num_threads", f"{config['num_threads']} must be >= 1 and <= {MAX_THREADS} "
                                               "(or null for the number of cores)")
    experiment = config["experiment"]
    for key in experiment:
        if key not in EXPERIMENT_KEYS:
            raise ConfigError(path, f"experiment.{key}", "unknown key" + closest(key, EXPERIMENT_KEYS))
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
        return parse_option(WandbMode, wandb_cfg.get("mode", "disabled"), "logging.wandb.mode")
    except ValueError as exc:
        raise ConfigError(path, "logging.wandb.mode", str(exc)) from None


def _kind(value: Any) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


_LEAVE = object()  # a `check_yaml_data` stack entry's key that marks the end of a container's children


def _key_path(entry: tuple[Any, Any, Any] | None) -> str:
    """The key path of a `check_yaml_data` stack entry (parent entry, key or list index, value), built only
    for an error message: the walk keeps one small tuple per value, not one string per depth."""
    keys: list[Any] = []
    while entry is not None and entry[1] is not None:
        keys.append(entry[1])
        entry = entry[0]
    keys.reverse()
    parts = [f"[{key}]" if isinstance(key, int) else (f".{key}" if i else key) for i, key in enumerate(keys)]
    return "".join(parts if len(parts) <= 24 else [*parts[:12], "...", *parts[-10:]])  # thousands of levels: shortened


def check_yaml_data(config: Any, path: str | Path, fix: str) -> None:
    """Refuse a config that is not plain YAML data (mappings with text keys, lists, text, numbers, true/false,
    null: what yaml.safe_dump writes and safe_load reads back), in one line naming the key path and `fix`.
    A file read by `load_yaml` always is; a config unpickled from a checkpoint may hold whatever
    `torch.load(weights_only=True)` allows (a tensor, bytes, a tuple, an OrderedDict, a list or mapping holding
    itself: refused as a loop, found by the ids of the containers on the current path; a value shared by two
    keys is fine). At most MAX_CONFIG_NODES values are visited; memory stays linear in them."""
    on_path: set[int] = set()
    stack: list[tuple[Any, Any, Any]] = [(None, None, config)]  # (parent entry, key or index, value)
    seen = 0
    while stack:
        entry = stack.pop()
        if entry[1] is _LEAVE:
            on_path.discard(id(entry[2]))
            continue
        value = entry[2]
        seen += 1
        if seen > MAX_CONFIG_NODES:
            raise ConfigError(path, _key_path(entry) or "config", f"more than {MAX_CONFIG_NODES} values (a config is a few kilobytes); {fix}")
        if type(value) in (dict, list):
            if id(value) in on_path:
                raise ConfigError(path, _key_path(entry) or "config", f"holds itself (a {type(value).__name__} "
                                                                      f"inside itself never ends as YAML); {fix}")
            on_path.add(id(value))
            stack.append((None, _LEAVE, value))  # popped after its children
        if type(value) is dict:
            for key, item in value.items():
                if type(key) is not str:
                    where = _key_path(entry)
                    raise ConfigError(path, f"{where}.{key!r}" if where else repr(key),
                                      f"a key of type {_kind(key)}; config keys are text; {fix}")
                stack.append((entry, key, item))
        elif type(value) is list:
            stack.extend((entry, i, item) for i, item in enumerate(value))
        elif type(value) not in (str, int, float, bool, type(None)):
            raise ConfigError(path, _key_path(entry) or "config", f"a {_kind(value)}, not plain YAML data (mappings with "
                                                                  f"text keys, lists, text, numbers, true/false, null); {fix}")


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
            raise ConfigError(path, f"{where}.{key}", "unknown key" + closest(key, keys))
    return value

"""The classes this project defines, discovered by walking its packages (for tests that check a
rule over every constructor, so that a new class is covered without being listed)."""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import textwrap
from collections.abc import Callable
from functools import cache
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "data", "dl_utils", "optim", "model_zoo", "projects")


@cache
def project_modules() -> tuple[ModuleType, ...]:
    """Every module of PACKAGES that imports here (one whose optional dependency is missing is skipped)."""
    modules = []
    for package in PACKAGES:
        for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            try:
                modules.append(importlib.import_module(info.name))
            except ImportError:  # an optional dependency missing here: its classes are not checked
                continue
    return tuple(modules)


@cache
def project_classes() -> tuple[type, ...]:
    """Every class defined (not merely imported) in a module of PACKAGES that imports here."""
    classes: dict[str, type] = {}
    for module in project_modules():
        for obj in vars(module).values():
            if inspect.isclass(obj) and obj.__module__ == module.__name__:
                classes[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return tuple(classes.values())


@cache
def public_functions() -> tuple[tuple[str, Callable[..., object]], ...]:
    """(qualified name, function) of every public function a project module defines and every public
    method (static and class methods included) of a public project class."""
    found: dict[str, Callable[..., object]] = {}
    for module in project_modules():
        for name, obj in vars(module).items():
            if inspect.isfunction(obj) and obj.__module__ == module.__name__ and not name.startswith("_"):
                found[f"{module.__name__}.{name}"] = obj
    for cls in project_classes():
        if cls.__name__.startswith("_"):
            continue
        for name, obj in vars(cls).items():
            obj = obj.__func__ if isinstance(obj, (staticmethod, classmethod)) else obj
            if inspect.isfunction(obj) and not name.startswith("_"):
                found[f"{cls.__module__}.{cls.__qualname__}.{name}"] = obj
    return tuple(found.items())


def classes_in(package: str, keep: Callable[[type], bool]) -> dict[str, type]:
    """{class name: class} of the classes defined under `package` (e.g. "model_zoo") for which
    `keep(cls)` holds: the implementations of a contract, found rather than listed."""
    return {cls.__name__: cls for cls in project_classes()
            if (cls.__module__ == package or cls.__module__.startswith(package + ".")) and keep(cls)}


# ---- structural discovery: the classes whose instances satisfy a Protocol ------------------------
_NOT_MEMBERS = {"__init__", "__subclasshook__", "__class_getitem__", "__init_subclass__"}


def protocol_members(protocol: type) -> dict[str, bool]:
    """{member: is a method} of a `typing.Protocol`: its annotated attributes and properties (False)
    and its methods (True), its own and those of the protocols it extends."""
    members: dict[str, bool] = {}
    for klass in reversed(protocol.__mro__):
        if not getattr(klass, "_is_protocol", False) or klass.__name__ in ("Protocol", "Generic"):
            continue
        members.update(dict.fromkeys(inspect.get_annotations(klass), False))
        for name, value in vars(klass).items():
            if name in _NOT_MEMBERS or (name.startswith("_") and not (name.startswith("__") and name.endswith("__"))):
                continue
            if isinstance(value, property):
                members[name] = False
            elif inspect.isfunction(value) or isinstance(value, (staticmethod, classmethod)):
                members[name] = True
    return members


def _in_this_project(klass: type) -> bool:
    """Defined in a file of this repository (its packages or its tests), not in torch or the standard library."""
    try:
        path = inspect.getsourcefile(klass)
    except TypeError:  # a built-in class
        return False
    return path is not None and Path(path).resolve().is_relative_to(ROOT) and ".venv" not in Path(path).parts


@cache
def _assigned_on_self(klass: type) -> frozenset[str]:
    """Attribute names a project class's methods assign on an instance (`self.x = ...`, `self.x: T = ...`,
    `setattr(self, "x", ...)`, `object.__setattr__(self, "x", ...)`: a frozen dataclass's `__post_init__`)."""
    if not _in_this_project(klass):
        return frozenset()
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
    except (OSError, TypeError, SyntaxError):  # no source (built in a REPL, a C class): nothing to read
        return frozenset()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and isinstance(node.value, ast.Name) \
                and node.value.id == "self":
            names.add(node.attr)
        elif isinstance(node, ast.Call) and len(node.args) >= 2 and isinstance(node.args[-2], ast.Constant) \
                and isinstance(node.args[-2].value, str) and (
                    (isinstance(node.func, ast.Name) and node.func.id == "setattr")
                    or (isinstance(node.func, ast.Attribute) and node.func.attr == "__setattr__")):
            names.add(node.args[-2].value)
    return frozenset(names)


def provides(cls: type, member: str, method: bool) -> bool:
    """Whether instances of `cls` have `member`, judged from the class alone (nothing is built).

    A method: a callable that `cls` or a base other than `object` defines (an `nn.Module`'s
    `__call__` counts), or for an ordinary name also one declared or assigned on the instance
    (`self.reconstruct = ...`). An attribute: a class attribute (a ClassVar, a dataclass default, a
    property, a slot), an annotation (a dataclass field, a declared instance attribute) or an
    assignment on `self` in a method, in `cls` or a base."""
    bases = [klass for klass in cls.__mro__ if klass is not object]
    owner = next((k for k in bases if member in vars(k)), None)  # where attribute lookup finds it on the class
    declared = any(member in inspect.get_annotations(k) or member in _assigned_on_self(k) for k in bases)
    if not method:
        return owner is not None or declared
    if owner is not None:  # `fit = None` in a subclass hides a base's method
        value = vars(owner)[member]
        return callable(value) or isinstance(value, (staticmethod, classmethod))
    return declared and not member.startswith("__")  # a special method is looked up on the class only


def satisfies(cls: type, protocol: type) -> bool:
    """Whether instances of `cls` have every member `protocol` declares, whatever kind of class `cls` is
    (dataclass, plain class, nn.Module, ClassVar or property or instance attribute); a Protocol itself
    and an abstract class (nothing to build) are not implementations."""
    if getattr(cls, "_is_protocol", False) or inspect.isabstract(cls):
        return False
    return all(provides(cls, name, method) for name, method in protocol_members(protocol).items())

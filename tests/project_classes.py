"""The classes this project defines, discovered by walking its packages (for tests that check a
rule over every constructor, so that a new class is covered without being listed)."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "data", "dl_utils", "optim", "model_zoo", "projects")


@cache
def project_classes() -> tuple[type, ...]:
    """Every class defined (not merely imported) in a module of PACKAGES that imports here."""
    classes: dict[str, type] = {}
    for package in PACKAGES:
        for info in pkgutil.walk_packages([str(ROOT / package)], prefix=f"{package}."):
            try:
                module = importlib.import_module(info.name)
            except ImportError:  # an optional dependency missing here: its classes are not checked
                continue
            for obj in vars(module).values():
                if inspect.isclass(obj) and obj.__module__ == module.__name__:
                    classes[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return tuple(classes.values())


def classes_in(package: str, keep: Callable[[type], bool]) -> dict[str, type]:
    """{class name: class} of the classes defined under `package` (e.g. "model_zoo") for which
    `keep(cls)` holds: the implementations of a contract, found rather than listed."""
    return {cls.__name__: cls for cls in project_classes()
            if (cls.__module__ == package or cls.__module__.startswith(package + ".")) and keep(cls)}

"""Long constructor signatures are grouped into typed parts (the style guide's habit 4): a new parameter
joins the part it belongs to, so no constructor (a dataclass's fields included) grows past MAX_PARAMETERS."""
from __future__ import annotations

import inspect

from tests.project_classes import project_classes

MAX_PARAMETERS = 12


def _named_parameters(cls: type) -> list[str]:
    """The named parameters of the `__init__` defined for `cls` (written, or a dataclass's fields), not
    `self`, `*args`, `**kwargs`."""
    init = vars(cls).get("__init__")
    if not inspect.isfunction(init):
        return []
    return [name for name, p in inspect.signature(init).parameters.items()
            if name != "self" and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]


def test_no_constructor_takes_more_than_twelve_parameters():
    """Discovered over every class the project defines."""
    checked = [cls for cls in project_classes() if _named_parameters(cls)]
    long = {f"{cls.__module__}.{cls.__qualname__}": len(_named_parameters(cls)) for cls in checked
            if len(_named_parameters(cls)) > MAX_PARAMETERS}
    assert not long, f"group these signatures into typed parts: {long}"
    assert len(checked) >= 40

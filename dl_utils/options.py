"""One way to read an option from a config: a StrEnum value, or a ValueError naming the choices."""
from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

E = TypeVar("E", bound=StrEnum)


def parse_option(enum: type[E], value: object, name: str) -> E:
    """``enum(value)``, or ValueError naming ``name``, the value and the valid values."""
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise ValueError(f"unsupported {name}={value!r}; choose one of: {allowed}") from None

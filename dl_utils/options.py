"""One way to read an option from a config: a StrEnum value, or one error line naming the choices.

Options are typed by their StrEnum in constructor signatures, so the configurator refuses a bad
value before anything is built; ``parse_option`` converts the plain strings of direct Python
callers (and of configs that skip the check) and refuses bad ones the same way."""
from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from dl_utils.errors import UserInputError

E = TypeVar("E", bound=StrEnum)


class OptionError(UserInputError, ValueError):
    """An option value outside its StrEnum: a user error (one line) and a ValueError (Python callers)."""


def parse_option(enum: type[E], value: object, name: str) -> E:
    """``enum(value)``, or OptionError naming ``name``, the value and the valid values."""
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)
        raise OptionError(f"unsupported {name}={value!r}; choose one of: {allowed}") from None

"""The shape shared by canarywatch's configuration errors: which setting, and what is wrong.

Each package keeps its own subclass (``ConfigError``, ``PolicyError``, ``EnvError``, …)
so callers catch what they meant; this module only holds what they have in common. It
imports nothing, so pure modules may use it.
"""

from __future__ import annotations

import reprlib
from typing import Self

__all__ = ["MAX_MESSAGE", "FieldError", "shown"]

#: The longest message an error keeps: a value quoted in it must not carry a whole file.
MAX_MESSAGE = 500

# Bounded at every level: repr() of a 1 MB string or of a structure whose aliases expand
# to millions of items costs seconds and gigabytes before anything is truncated.
_SHOWN = reprlib.Repr()  # keyword arguments only from Python 3.12
_SHOWN.maxlevel = 2
_SHOWN.maxtuple = _SHOWN.maxlist = _SHOWN.maxdict = _SHOWN.maxset = 4
_SHOWN.maxstring = _SHOWN.maxother = 60


class FieldError(ValueError):
    """A setting is missing or invalid: ``field`` names it (a dotted path such as
    ``integration.viewer.snapshot.url``, or a variable), ``message`` says what is wrong
    and, where there is a choice, what is accepted. ``str()`` is ``"<field>: <message>"``.
    """

    def __init__(self, field: str, message: str) -> None:
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 1] + "…"
        field = field if len(field) <= MAX_MESSAGE else field[: MAX_MESSAGE - 1] + "…"
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def within(self, prefix: str) -> Self:
        """The same problem with its path prefixed (``frames`` → ``….confirmation.frames``)."""
        return type(self)(f"{prefix}.{self.field}", self.message)


def shown(value: object) -> str:
    """``repr(value)`` cut short at every level (strings, lists, mappings, depth), for
    quoting a user's value in an error message; costs the same for any size of value."""
    return _SHOWN.repr(value)

"""The shape shared by canarywatch's configuration errors: which setting, and what is wrong.

Each package keeps its own subclass (``ConfigError``, ``PolicyError``, ``EnvError``, …)
so callers catch what they meant; this module only holds what they have in common. It
imports nothing, so pure modules may use it.
"""

from __future__ import annotations

from typing import Self

__all__ = ["FieldError"]


class FieldError(ValueError):
    """A setting is missing or invalid: ``field`` names it (a dotted path such as
    ``integration.viewer.snapshot.url``, or a variable), ``message`` says what is wrong
    and, where there is a choice, what is accepted. ``str()`` is ``"<field>: <message>"``.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def within(self, prefix: str) -> Self:
        """The same problem with its path prefixed (``frames`` → ``….confirmation.frames``)."""
        return type(self)(f"{prefix}.{self.field}", self.message)

"""The standalone config's error type and the reader of a secret value, shared by the
config loader and the kill-switch section's reader."""

from __future__ import annotations

from canarywatch.errors import FieldError
from canarywatch.viewer.http import AdapterConfigError, TokenSource

__all__ = ["ConfigError", "token_source"]


class ConfigError(FieldError):
    """Invalid configuration; `field` is the path of the offending value."""


def token_source(value: object, where: str) -> TokenSource:
    """A literal secret, ``{env: NAME}`` or ``{file: PATH}``, read as a TokenSource."""
    try:
        return TokenSource.from_value(value, where=where)
    except AdapterConfigError as e:
        raise ConfigError(e.field, e.message) from e

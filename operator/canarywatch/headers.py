"""What a configured HTTP header may hold (pure; shared by every request canarywatch
builds from configuration: adapter templates and kill-switch webhooks).

A name is an RFC 9110 token. A value carries no CR, LF or NUL: each would end the
header line early, letting a value (or a tenant name substituted into one) inject
headers, and aiohttp refuses them only when the request is sent, which for a kill
switch is the moment it is needed. Checking at load turns that into a config error.
"""

from __future__ import annotations

import re

from canarywatch.errors import shown

__all__ = ["HEADER_BREAKERS", "HEADER_NAME", "header_problem"]

#: RFC 9110 token: what a method or a header name may consist of.
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
#: Characters that end a header line.
HEADER_BREAKERS = re.compile(r"[\r\n\x00]")


def header_problem(name: object, value: object) -> tuple[str, str] | None:
    """What is wrong with a configured header, as (field under the template: ``headers``
    or ``headers.<name>``, message), or None. Never quotes the value: it may be a credential."""
    if not isinstance(name, str) or not HEADER_NAME.match(name):
        return "headers", f"invalid header name {shown(name)} (letters, digits and !#$%&'*+.^_`|~-)"
    if not isinstance(value, str):
        return f"headers.{name}", "expected a string value"
    if HEADER_BREAKERS.search(value):
        return f"headers.{name}", "must not contain line breaks or NUL (they would end the header early)"
    return None

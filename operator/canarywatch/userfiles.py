"""Files users give canarywatch (configs, token files, keyrings), read with bounded memory and time.

``yaml.safe_load`` refuses arbitrary objects but not what makes a reader's memory or
time explode, and those are what a mistyped path or a hostile file bring:

- size: ``/dev/zero`` or a multi-gigabyte log given as a config or token file is read
  only up to the cap (``read_capped``);
- aliases ("billion laughs"): nine anchors of nine aliases each are a 9^9-item list.
  PyYAML shares the aliased objects, but everything after it (schema validation,
  ``json.dumps``, an error message's ``repr``) walks the expansion. The event stream is
  checked first, counting what the document *expands* to (every node plus its scalar's
  characters; an alias counts as what it names), and refused past ``MAX_EXPANDED``;
- nesting: PyYAML composes recursively, so 100,000 ``[`` are a ``RecursionError``;
  the event check refuses more than ``MAX_DEPTH`` levels first;
- encoding: UTF-16/32 (a byte-order mark, or NUL bytes) and invalid UTF-8 are named as
  such, with the offset of the first bad byte.

Everything is refused with ``BoundedInputError``, a ``ValueError`` whose message says
which limit and how to fix the file; callers turn it into their own config error.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "MAX_DEPTH",
    "MAX_EXPANDED",
    "BoundedInputError",
    "decode_utf8",
    "load_yaml",
    "read_capped",
    "read_yaml_file",
    "short",
]

#: Levels of nesting: the CRDs' deepest field is 7 levels down.
MAX_DEPTH = 64
#: What a document may expand to: nodes plus scalar characters, aliases expanded. A
#: real configuration expands to about its own size; this is ample for any.
MAX_EXPANDED = 1_000_000

_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_ERROR_LIMIT = 300


class BoundedInputError(ValueError):
    """A file or document is over a limit, or not UTF-8 text; the message says which."""


def read_capped(path: str | Path, limit: int) -> bytes:
    """The bytes of ``path``; ``BoundedInputError`` if it holds more than ``limit``
    (only ``limit + 1`` bytes are ever read). ``OSError`` as ``open`` raises it."""
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise BoundedInputError(
            f"is larger than {_size(limit)}: not a file of this kind (is the path right?)"
        )
    return data


def decode_utf8(data: bytes) -> str:
    """``data`` as UTF-8 text (a UTF-8 byte-order mark is dropped)."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise BoundedInputError(f"is {name} text: save it as UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise BoundedInputError(f"contains a NUL byte at offset {nul} (UTF-16 text?): save it as UTF-8")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise BoundedInputError(
            f"is not UTF-8: byte 0x{data[error.start]:02x} at offset {error.start} (line {line}); "
            "save it as UTF-8"
        ) from None


def load_yaml(text: str, *, max_depth: int = MAX_DEPTH, max_expanded: int = MAX_EXPANDED) -> Any:
    """One YAML document, as ``yaml.safe_load`` reads it, after checking its nesting and
    expanded size. Raises ``BoundedInputError`` (a limit) or ``yaml.YAMLError`` (syntax;
    its message is short: PyYAML quotes at most one line around the problem)."""
    _check_events(text, max_depth, max_expanded)
    return yaml.load(text, Loader=_Loader)


def read_yaml_file(path: str | Path, *, limit: int) -> Any:
    """The YAML document in ``path`` (at most ``limit`` bytes, UTF-8, bounded as
    ``load_yaml``). Every problem is a ``BoundedInputError`` whose message starts with
    the path: unreadable, over a limit, not UTF-8, not YAML."""
    try:
        return load_yaml(decode_utf8(read_capped(path, limit)))
    except OSError as error:
        raise BoundedInputError(f"cannot read {path}: {error.strerror or type(error).__name__}") from None
    except BoundedInputError as error:
        raise BoundedInputError(f"{path} {error}") from None
    except yaml.YAMLError as error:
        raise BoundedInputError(f"{path} is not valid YAML: {short(error)}") from None


def _check_events(text: str, max_depth: int, max_expanded: int) -> None:
    expanded = 0
    anchored: dict[str, int] = {}  # anchor -> expanded size of what it names
    open_collections: list[tuple[str | None, int]] = []  # (anchor, `expanded` when it opened)
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.ScalarEvent):
            size = 1 + len(event.value)
            expanded += size
            if event.anchor is not None:
                anchored[event.anchor] = size
        elif isinstance(event, yaml.AliasEvent):
            # An unknown alias is the composer's error to report; count it as one node.
            expanded += anchored.get(event.anchor or "", 1)
        elif isinstance(event, yaml.CollectionStartEvent):
            open_collections.append((event.anchor, expanded))
            expanded += 1
            if len(open_collections) > max_depth:
                raise BoundedInputError(f"is nested more than {max_depth} levels deep")
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, opened_at = open_collections.pop()
            if anchor is not None:
                anchored[anchor] = expanded - opened_at
        if expanded > max_expanded:
            raise BoundedInputError(
                f"expands to more than {max_expanded:,} nodes and characters "
                "(aliases repeat what they name: a billion-laughs document?)"
            )


def short(error: Exception) -> str:
    """An exception's message on one line, at most a few hundred characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= _ERROR_LIMIT else text[: _ERROR_LIMIT - 1] + "…"


def _size(limit: int) -> str:
    return f"{limit // 1024} KiB" if limit >= 1024 else f"{limit} bytes"

"""Python lists as PostgreSQL arrays, fast: the services pass thousands of ids and numbers a
statement (``unnest(%s::text[], %s::bigint[])``), and psycopg's own text dumper looks at every
element on its own (a regular expression each, to decide on quotes), which cost a rating
worker about a third of its CPU (BENCHMARKS.md, "Readings path").

``ListDumper`` dumps a flat list of plain ``str`` or of ``int`` with one ``join`` and a few
searches over the joined text, when the result is certainly what psycopg writes: ASCII, no
element empty, none holding a delimiter, quote, brace, backslash or white space, none the
word NULL. Anything else (None, nested lists, other types, text that needs quotes) is dumped
by psycopg's own code. ``register`` installs it for every connection made afterwards;
``meterline.db`` does that when imported.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.abc import Buffer
from psycopg.adapt import AdaptersMap
from psycopg.types.array import ListDumper as _PsycopgListDumper

# the bytes an element may hold unquoted, besides the delimiter (counted apart): printable
# ASCII but for quotes, braces, backslashes and white space
_PLAIN = bytes(c for c in range(0x21, 0x7F) if chr(c) not in '"{}\\')


class ListDumper(_PsycopgListDumper):
    """psycopg's text list dumper with a fast path for flat lists of ``str`` or ``int``."""

    def dump(self, obj: list[Any]) -> Buffer | None:
        fast = self._fast(obj)
        return fast if fast is not None else super().dump(obj)

    def _fast(self, obj: list[Any]) -> bytes | None:
        if not obj or self.sub_dumper is None:
            return None
        types = set(map(type, obj))
        if len(types) != 1:
            return None
        kind = types.pop()
        delimiter = self.delimiter.decode()
        if kind is int:
            # the element dumper writes str(n); a dumper registered for int that writes
            # something else takes the slow path
            if self.sub_dumper.dump(obj[0]) != str(obj[0]).encode():
                return None
            return b"{" + delimiter.join(map(str, obj)).encode() + b"}"
        if kind is not str or self.sub_dumper.dump(obj[0]) != obj[0].encode():
            return None
        joined = delimiter.join(obj).encode()
        if (
            joined.translate(None, _PLAIN + self.delimiter)  # a byte that needs quotes
            or joined.count(self.delimiter) != len(obj) - 1  # a delimiter inside an element
            or not all(obj)  # an empty string
            or _has_null_word(obj, joined)
        ):
            return None
        return b"{" + joined + b"}"


def _has_null_word(obj: list[str], joined: bytes) -> bool:
    """Whether an element is the word NULL in any case (quoted by psycopg)."""
    return b"null" in joined.lower() and any(len(s) == 4 and s.lower() == "null" for s in obj)


def register(adapters: AdaptersMap | None = None) -> None:
    """Use ``ListDumper`` for lists dumped as text (psycopg's default for ``%s``) in
    ``adapters`` (default: psycopg's global map, which new connections copy)."""
    (adapters or psycopg.adapters).register_dumper(list, ListDumper)

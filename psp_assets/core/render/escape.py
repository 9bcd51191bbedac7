"""Escaping client values for the language they land in.

Every `{{ ... }}` in a template must pass through one of these filters: the render engine refuses raw
strings (see `render/engine.py`), so a template author cannot forget. Values that land in comments or plugin
headers are allow-listed instead of escaped, because comment syntax has no escape.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from psp_assets.core.errors import RenderError


class Escaped(str):
    """Text already made safe for its target language."""


class Tagged(str):
    """A client value that remembers which config field it came from, for error messages."""

    field: str

    def __new__(cls, value: str, field: str) -> Tagged:
        obj = super().__new__(cls, value)
        obj.field = field
        return obj


def _field(value: Any) -> str:
    return getattr(value, "field", "value")


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _reject_control(value: str, target: str) -> None:
    if _CONTROL.search(value):
        raise RenderError(f"{_field(value)}: contains a control character; not allowed in {target} output")


def php(value: Any) -> Escaped:
    """A PHP literal: single-quoted string (only \\ and ' are special there), int, bool, array."""
    if isinstance(value, bool):
        return Escaped("true" if value else "false")
    if isinstance(value, int):
        return Escaped(str(value))
    if value is None:
        return Escaped("null")
    if isinstance(value, str):
        if "\x00" in value:
            raise RenderError(f"{_field(value)}: contains a NUL byte; not allowed in PHP source")
        return Escaped("'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'")
    if isinstance(value, Mapping):
        return Escaped("[" + ", ".join(f"{php(str(k))} => {php(v)}" for k, v in value.items()) + "]")
    if isinstance(value, Sequence):
        return Escaped("[" + ", ".join(php(v) for v in value) + "]")
    raise RenderError(f"{_field(value)}: a {type(value).__name__} cannot be written as a PHP literal")


def json_value(value: Any) -> Escaped:
    """JSON that is also safe inside HTML <script> and JS source: <, >, & and line separators escaped."""
    if isinstance(value, str) and "\x00" in value:
        raise RenderError(f"{_field(value)}: contains a NUL byte; not allowed in JSON/JS output")
    text = json.dumps(value, ensure_ascii=False, sort_keys=isinstance(value, Mapping))
    for char, esc in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, esc)
    return Escaped(text)


def xml(value: Any) -> Escaped:
    """XML text or attribute content (both quote kinds escaped)."""
    text = str(value)
    _reject_control(text, "XML")
    return Escaped(
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&apos;")
    )


def po(value: Any) -> Escaped:
    """A gettext .po string literal, quotes included."""
    text = str(value)
    _reject_control(text.replace("\t", ""), ".po")
    text = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return Escaped(f'"{text}"')


def csv(value: Any) -> Escaped:
    """One CSV field, always quoted (Magento i18n dictionaries)."""
    text = str(value)
    _reject_control(text, "CSV")
    if "\n" in text or "\r" in text:
        raise RenderError(f"{_field(value)}: contains a line break; Magento i18n CSV rows are one line each")
    return Escaped('"' + text.replace('"', '""') + '"')


HEADER_PATTERN = re.compile(r"[\w .,&()'+:/@-]{1,120}")


def header(value: Any) -> Escaped:
    """Text for a comment or plugin header: allow-listed, never escaped (comments have no escape)."""
    text = str(value)
    if not HEADER_PATTERN.fullmatch(text) or "*/" in text or "?>" in text or "<?" in text:
        raise RenderError(
            f"{_field(value)}: {text[:60]!r} cannot go into a comment or plugin header; allowed are 1-120 "
            "letters, digits, spaces and . , & ( ) ' + : / @ -"
        )
    return Escaped(text)


IDENT_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\\[A-Za-z_][A-Za-z0-9_]*)*")


def ident(value: Any) -> Escaped:
    """A code identifier (PHP class, namespace, function, option or table name)."""
    text = str(value)
    if not IDENT_PATTERN.fullmatch(text) or len(text) > 200:
        raise RenderError(f"{_field(value)}: {text[:60]!r} is not a valid identifier ([A-Za-z_][A-Za-z0-9_]*)")
    return Escaped(text)


SLUG_LIKE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,200}")


def slug(value: Any) -> Escaped:
    """A slug, route, handle or version: letters, digits, '.', '_', '-', '/' only; safe in any language."""
    text = str(value)
    if not SLUG_LIKE.fullmatch(text) or ".." in text:
        raise RenderError(f"{_field(value)}: {text[:60]!r} is not a slug (letters, digits, . _ - /)")
    return Escaped(text)


def path_segment(value: Any) -> str:
    """One rendered file-path segment; nothing that could leave the output directory."""
    text = str(value)
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,120}", text) or ".." in text:
        raise RenderError(f"{_field(value)}: {text[:60]!r} is not a safe file name")
    return text


FILTERS = {
    "php": php,
    "json": json_value,
    "js": json_value,
    "xml": xml,
    "po": po,
    "csv": csv,
    "header": header,
    "ident": ident,
    "slug": slug,
}

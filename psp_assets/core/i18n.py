"""Translation catalogs and gettext files.

The message catalog (`templates/_shared/i18n/messages.yaml`) lists every customer- and merchant-facing
string in its source language; one `<locale>.yaml` per locale maps each to its translation. Rendering
refuses a client locale without a catalog file or with a translation whose placeholders differ. A message
a locale does not translate is recorded in `Catalog.missing` (it renders empty): the test report's
translation check fails naming locale and message id, so the plugin is never built with it.
"""

from __future__ import annotations

import ast
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from .errors import RenderError
from .yamlio import YamlError, read_yaml_mapping

PLACEHOLDER = re.compile(r"%(?:\d+\$)?[sdf]")


@dataclass(frozen=True)
class Catalog:
    source_locale: str
    messages: tuple[str, ...]
    translations: dict[str, dict[str, str]]  # locale -> msgid -> text ('' where the locale has none)
    missing: dict[str, tuple[str, ...]] = field(default_factory=dict)  # locale -> message ids it does not translate

    def for_locale(self, locale: str) -> dict[str, str]:
        return self.translations[locale]

    def problems(self) -> list[str]:
        """One line per message a locale does not translate."""
        return [
            f"{locale}.yaml: message {msgid!r} is not translated for {locale}"
            for locale, msgids in self.missing.items()
            for msgid in msgids
        ]


def load_catalog(i18n_dir: Path, locales: list[str]) -> Catalog:
    """Load the source messages and the translations for `locales`. Raises RenderError for a locale without a
    catalog file and for a translation whose placeholders differ; untranslated messages go to `missing`."""
    try:
        source = read_yaml_mapping(i18n_dir / "messages.yaml")
    except YamlError as exc:
        raise RenderError(str(exc)) from None
    messages = tuple(source.get("messages") or ())
    source_locale = source.get("source_locale", "en_US")
    translations: dict[str, dict[str, str]] = {}
    missing: dict[str, tuple[str, ...]] = {}
    problems: list[str] = []
    for locale in locales:
        if locale == source_locale:
            translations[locale] = {m: m for m in messages}
            continue
        path = i18n_dir / f"{locale}.yaml"
        if not path.is_file():
            available = ", ".join(sorted([*(p.stem for p in i18n_dir.glob("*_*.yaml")), source_locale]))
            problems.append(f"locales: {locale!r} has no translation catalog {path.name} (available: {available})")
            continue
        try:
            table = read_yaml_mapping(path)
        except YamlError as exc:
            problems.append(str(exc))
            continue
        untranslated = []
        for msgid in messages:
            text = table.get(msgid)
            if not isinstance(text, str) or not text.strip():
                untranslated.append(msgid)
            elif sorted(PLACEHOLDER.findall(text)) != sorted(PLACEHOLDER.findall(msgid)):
                problems.append(f"{path.name}: message {msgid!r}: placeholders differ in the {locale} translation")
        if untranslated:
            missing[locale] = tuple(untranslated)
        translations[locale] = {m: "" if m in untranslated else str(table[m]) for m in messages}
    if problems:
        raise RenderError("\n".join(problems))
    return Catalog(source_locale=source_locale, messages=messages, translations=translations, missing=missing)


def parse_po(text: str) -> dict[str, str]:
    """msgid -> msgstr of a .po file (the header entry under ''); enough for the files we generate."""
    entries: dict[str, str] = {}
    current: dict[str, list[str]] = {}
    key = None

    def flush() -> None:
        if "msgid" in current:
            entries["".join(current["msgid"])] = "".join(current.get("msgstr", []))
        current.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            if not line and current:
                flush()
            continue
        if line.startswith(("msgid ", "msgstr ", "msgctxt ")):
            key, _, literal = line.partition(" ")
            if key == "msgid" and "msgid" in current:
                flush()
            current.setdefault(key, [])
        else:
            literal = line
        if key is None or not (literal.startswith('"') and literal.endswith('"')):
            raise ValueError(f"unparseable .po line: {raw!r}")
        current[key].append(ast.literal_eval(literal))
    flush()
    return entries


def compile_mo(entries: dict[str, str]) -> bytes:
    """GNU gettext .mo bytes for `entries` (keys sorted; no hash table, which readers don't need)."""
    keys = sorted(entries)
    ids = [k.encode() for k in keys]
    strs = [entries[k].encode() for k in keys]
    n = len(keys)
    header_size = 7 * 4
    ids_table = header_size
    strs_table = ids_table + n * 8
    data_start = strs_table + n * 8
    offsets: list[tuple[int, int]] = []
    blob = b""
    for item in ids + strs:
        offsets.append((len(item), data_start + len(blob)))
        blob += item + b"\0"
    out = struct.pack("<7I", 0x950412DE, 0, n, ids_table, strs_table, 0, data_start)
    out += b"".join(struct.pack("<2I", length, off) for length, off in offsets)
    return out + blob

"""Translation catalogs and gettext files.

The message catalog (`templates/_shared/i18n/messages.yaml`) lists every customer- and merchant-facing
string in its source language; one `<locale>.yaml` per locale maps each to its translation, and
`locales.yaml` lists every shipped locale with its name and text direction (ltr/rtl). Rendering refuses a
client locale without a catalog file. A message a locale does not translate is recorded in
`Catalog.missing`, a translation whose placeholders differ from the message's in `Catalog.mismatched`
(both render empty, so no platform ever formats a wrong placeholder): the test report's translation
checks fail naming locale and message id, so the plugin is never built with either.
"""

from __future__ import annotations

import ast
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

from psp_assets.core.errors import RenderError
from psp_assets.core.yamlio import YamlError, read_yaml_mapping

# printf placeholders (%s, %d, positional %1$s) and named ones ({name}); a literal %% is not one
PLACEHOLDER = re.compile(r"%%|%(?:\d+\$)?[sdf]|\{[A-Za-z_][A-Za-z0-9_]*\}")
LOCALES_FILE = "locales.yaml"
DIRECTIONS = ("ltr", "rtl")


def placeholders(text: str) -> list[str]:
    """The placeholders of `text`, sorted: two texts use the same ones exactly when these lists are equal
    (a multiset, so positional %1$s / %2$s may be reordered, and a repeated %s must be repeated)."""
    return sorted(p for p in PLACEHOLDER.findall(text) if p != "%%")


def placeholders_match(msgid: str, text: str) -> bool:
    return placeholders(msgid) == placeholders(text)


@dataclass(frozen=True)
class Catalog:
    source_locale: str
    messages: tuple[str, ...]
    translations: dict[str, dict[str, str]]  # locale -> msgid -> text ('' where the locale has none)
    missing: dict[str, tuple[str, ...]] = field(default_factory=dict)  # locale -> message ids it does not translate
    # locale -> message ids whose translation has other placeholders than the message (rendered empty)
    mismatched: dict[str, tuple[str, ...]] = field(default_factory=dict)
    directions: dict[str, str] = field(default_factory=dict)  # locale -> "ltr" | "rtl" (locales.yaml)

    def for_locale(self, locale: str) -> dict[str, str]:
        return self.translations[locale]

    def direction(self, locale: str) -> str:
        return self.directions.get(locale, "ltr")

    def problems(self) -> list[str]:
        """One line per message a locale does not translate or translates with other placeholders."""
        return [
            f"{locale}.yaml: message {msgid!r} is not translated for {locale}"
            for locale, msgids in self.missing.items()
            for msgid in msgids
        ] + [
            f"{locale}.yaml: message {msgid!r}: placeholders differ in the {locale} translation "
            f"(the message has {' '.join(placeholders(msgid))})"
            for locale, msgids in self.mismatched.items()
            for msgid in msgids
        ]


def read_locales(i18n_dir: Path) -> dict[str, dict[str, str]]:
    """locales.yaml: every shipped locale -> its `name`, `native` name and `direction`. Raises RenderError."""
    try:
        data = read_yaml_mapping(i18n_dir / LOCALES_FILE)
    except YamlError as exc:
        raise RenderError(str(exc)) from None
    table = data.get("locales")
    if not isinstance(table, dict):
        raise RenderError(f"{i18n_dir / LOCALES_FILE}: needs a `locales:` mapping of locale -> name, direction")
    for locale, info in table.items():
        if not isinstance(info, dict) or info.get("direction") not in DIRECTIONS or not info.get("name"):
            raise RenderError(f"{LOCALES_FILE}: {locale}: needs a name and a direction (ltr or rtl)")
    return {str(k): {str(a): str(b) for a, b in v.items()} for k, v in table.items()}


def shipped_locales(i18n_dir: Path) -> list[str]:
    """The locales a client may list: the source locale and every `<locale>.yaml` catalog, sorted."""
    source = read_yaml_mapping(i18n_dir / "messages.yaml").get("source_locale", "en_US")
    names = {p.stem for p in i18n_dir.glob("*.yaml")} - {"messages", Path(LOCALES_FILE).stem}
    return sorted(names | {source})


def load_catalog(i18n_dir: Path, locales: list[str]) -> Catalog:
    """Load the source messages and the translations for `locales`. Raises RenderError for a locale without a
    catalog file or without its locales.yaml entry; untranslated messages go to `missing`, translations
    whose placeholders differ from the message's to `mismatched`."""
    try:
        source = read_yaml_mapping(i18n_dir / "messages.yaml")
    except YamlError as exc:
        raise RenderError(str(exc)) from None
    messages = tuple(source.get("messages") or ())
    source_locale = source.get("source_locale", "en_US")
    known = read_locales(i18n_dir)
    translations: dict[str, dict[str, str]] = {}
    missing: dict[str, tuple[str, ...]] = {}
    mismatched: dict[str, tuple[str, ...]] = {}
    problems: list[str] = []
    for locale in locales:
        if locale not in known and (locale == source_locale or (i18n_dir / f"{locale}.yaml").is_file()):
            problems.append(f"{LOCALES_FILE}: {locale!r} is not listed (its name and text direction)")
            continue
        if locale == source_locale:
            translations[locale] = {m: m for m in messages}
            continue
        path = i18n_dir / f"{locale}.yaml"
        if not path.is_file():
            available = ", ".join(shipped_locales(i18n_dir))
            problems.append(f"locales: {locale!r} has no translation catalog {path.name} (available: {available})")
            continue
        try:
            table = read_yaml_mapping(path)
        except YamlError as exc:
            problems.append(str(exc))
            continue
        untranslated, differing = [], []
        for msgid in messages:
            text = table.get(msgid)
            if not isinstance(text, str) or not text.strip():
                untranslated.append(msgid)
            elif not placeholders_match(msgid, text):
                differing.append(msgid)
        if untranslated:
            missing[locale] = tuple(untranslated)
        if differing:
            mismatched[locale] = tuple(differing)
        blank = set(untranslated) | set(differing)
        translations[locale] = {m: "" if m in blank else str(table[m]) for m in messages}
    if problems:
        raise RenderError("\n".join(problems))
    return Catalog(
        source_locale=source_locale,
        messages=messages,
        translations=translations,
        missing=missing,
        mismatched=mismatched,
        directions={loc: known[loc]["direction"] for loc in translations},
    )


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

"""The config reference (docs/config-reference.md), generated from the JSON Schema so the two never drift."""

from __future__ import annotations

from typing import Any

HEADER = """# Client config reference

One YAML file per client in `client_configs/` (or `PSP_CLIENT_CONFIGS_DIR`). Editors validate it with
`schema/client_config.schema.json` (add `# yaml-language-server: $schema=../schema/client_config.schema.json`
at the top). `psp validate` checks every file and names file, field and reason for each problem;
`psp new-client ID` writes a valid starter.

This page is generated from the model by `psp schema`; CI fails when it is out of date.

| field | type | required | default | rules and meaning |
|---|---|---|---|---|
"""


MAX_LISTED = 30  # longer enums (the ISO 4217 codes) are named by count; the schema lists them
MAX_PATTERN = 80  # longer patterns (IBAN lengths per country, host names) are left to the schema


def _type(node: dict[str, Any], defs: dict[str, Any]) -> str:
    if "$ref" in node:
        return node["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in node:
        return " or ".join(_type(n, defs) for n in node["anyOf"])
    if "oneOf" in node:
        return " or ".join(_type(n, defs) for n in node["oneOf"])
    if node.get("type") == "array":
        items = node.get("items", {})
        return "list of " + ("string" if len(items.get("enum", ())) > MAX_LISTED else _type(items, defs))
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    if "const" in node:
        return f"`{node['const']}`"
    return node.get("type", "any")


def _enum(values: list[Any]) -> str:
    if len(values) > MAX_LISTED:
        return f"one of {len(values)} values (listed in the schema)"
    return "one of " + ", ".join(f"`{v}`" for v in values)


def _pattern(pattern: str) -> str:
    return f"`{pattern}`" if len(pattern) <= MAX_PATTERN else "the pattern in the schema"


def _rules(node: dict[str, Any]) -> str:
    parts = []
    if node.get("description"):
        parts.append(node["description"].rstrip("."))
    strings = [b for b in node.get("anyOf", []) if b.get("type") == "string"]
    for source in [node, *strings]:
        for key, label in (
            ("pattern", "matches"),
            ("minLength", "min length"),
            ("maxLength", "max length"),
            ("minimum", "min"),
            ("maximum", "max"),
            ("minItems", "at least"),
            ("format", "format"),
        ):
            if key in source:
                value = _pattern(source[key]) if key == "pattern" else source[key]
                parts.append(f"{label} {value}")
    if node.get("uniqueItems"):
        parts.append("no repeats")
    items = node.get("items", {})
    if "pattern" in items:
        parts.append(f"each matches {_pattern(items['pattern'])}")
    if "enum" in items:
        parts.append("each " + _enum(items["enum"]))
    if "propertyNames" in node and "enum" in node["propertyNames"]:
        parts.append("keys " + _enum(node["propertyNames"]["enum"]))
    return "; ".join(str(p) for p in parts).replace("|", "\\|")


def _rows(node: dict[str, Any], defs: dict[str, Any], prefix: str, seen: set[str]) -> list[str]:
    rows = []
    required = set(node.get("required", []))
    for name, prop in node.get("properties", {}).items():
        path = f"{prefix}{name}"
        default = prop.get("default", "")
        default = "" if isinstance(default, dict | list) and not default else f"`{default}`" if default != "" else ""
        rows.append(
            f"| `{path}` | {_type(prop, defs)} | {'yes' if name in required else ''} | {default} | {_rules(prop)} |"
        )
        targets = [prop] + prop.get("anyOf", []) + ([prop["items"]] if "items" in prop else [])
        subs: list[str] = []
        for target in targets:
            ref = target.get("$ref") or target.get("items", {}).get("$ref")
            for sub in [ref] if ref else [o.get("$ref") for o in target.get("oneOf", []) if o.get("$ref")]:
                if sub and sub not in seen and sub not in subs:
                    subs.append(sub)
        for sub in subs:
            sub_node = defs[sub.rsplit("/", 1)[-1]]
            suffix = "[]." if prop.get("type") == "array" else "."
            rows += _rows(sub_node, defs, path + suffix, seen | {sub})
    return rows


def config_reference(schema: dict[str, Any]) -> str:
    defs = schema.get("$defs", {})
    text = HEADER + "\n".join(_rows(schema, defs, "", set())) + "\n"
    if schema.get("$comment"):
        text += "\n" + schema["$comment"] + " Everything else above is in the schema, so an editor shows it too.\n"
    return text

"""Strict YAML reading: duplicate keys and non-mapping documents are errors, not silent overwrites."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_YAML_BYTES = 1024 * 1024


class _StrictLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in mapping:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {mark.line + 1}); each key may appear once", mark
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class YamlError(ValueError):
    """The file is not readable YAML; the message names the file and the position."""


def read_yaml_mapping(path: Path, label: str | None = None) -> dict[str, Any]:
    """Read a YAML file whose top level must be a mapping."""
    label = label or str(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise YamlError(f"{label}: cannot read file ({exc.strerror})") from exc
    if size > MAX_YAML_BYTES:
        raise YamlError(f"{label}: file is {size} bytes; at most {MAX_YAML_BYTES} are accepted")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise YamlError(f"{label}: not UTF-8 text (byte {exc.start})") from exc
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise YamlError(f"{label}: {where}invalid YAML: {exc.problem or exc.context}") from exc
    except yaml.YAMLError as exc:
        raise YamlError(f"{label}: invalid YAML: {exc}") from exc
    if data is None:
        raise YamlError(f"{label}: file is empty; expected a mapping of settings")
    if not isinstance(data, dict):
        raise YamlError(f"{label}: top level is a {type(data).__name__}; expected a mapping of settings")
    return data

"""Strict YAML reading: duplicate keys and non-mapping documents are errors, not silent overwrites.

Config files come from people and from tools, so the reader is bounded: at most MAX_YAML_BYTES of UTF-8
text, MAX_DEPTH levels of nesting, MAX_ALIASES aliases and MAX_NODES values once aliases are expanded (a
600-byte "billion laughs" alias bomb expands to hundreds of millions of values), plain keys only. A file
that breaks a limit is refused with its name, the setting where it happened and the limit, before any of
it reaches validation.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import yaml

MAX_YAML_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_ALIASES = 100
MAX_NODES = 50_000


class YamlError(ValueError):
    """The file is not readable YAML; the message names the file and the position."""


class _LimitError(yaml.YAMLError):
    def __init__(self, where: str, reason: str, mark: yaml.Mark | None = None) -> None:
        super().__init__(reason)
        self.where, self.reason, self.mark = where, reason, mark


def _where(path: list[str]) -> str:
    if len(path) > 8:
        path = [*path[:4], f"...({len(path) - 6} levels)...", *path[-2:]]
    out = ""
    for part in path:
        out += part if part.startswith("[") or not out else "." + part
    return out or "(top level)"


class _StrictLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[str] = []
        self._aliases = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        # `index` is the key node of a mapping value, the position of a sequence item, None for a key
        if isinstance(parent, yaml.MappingNode):
            part = str(index.value)[:40] if isinstance(index, yaml.ScalarNode) else "(key)"
        elif isinstance(parent, yaml.SequenceNode):
            part = f"[{index}]"
        else:
            part = ""
        if part:
            self._path.append(part)
        try:
            if self.check_event(yaml.AliasEvent):
                self._aliases += 1
                if self._aliases > MAX_ALIASES:
                    raise _LimitError(
                        _where(self._path),
                        f"more than {MAX_ALIASES} aliases (*name); write the values out",
                        self.peek_event().start_mark,
                    )
                return super().compose_node(parent, index)
            if len(self._path) > MAX_DEPTH:
                raise _LimitError(
                    _where(self._path), f"nested more than {MAX_DEPTH} levels deep", self.peek_event().start_mark
                )
            node = super().compose_node(parent, index)
            if isinstance(node, yaml.MappingNode):
                self._check_keys(node)
            return node
        finally:
            if part:
                self._path.pop()

    def _check_keys(self, node: yaml.MappingNode) -> None:
        # here, not at construction, so the message names the setting; equal values written differently
        # (1 and 0x1) are still caught when the mapping is constructed
        seen: set[tuple[str, str]] = set()
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode):
                kind = "list" if isinstance(key, yaml.SequenceNode) else "mapping"
                raise _LimitError(_where(self._path), f"a key is a {kind}; keys must be plain names", key.start_mark)
            if key.tag == "tag:yaml.org,2002:merge":
                continue
            if (key.tag, key.value) in seen:
                raise _LimitError(
                    _where([*self._path, str(key.value)[:40]]),
                    "duplicate key; each key may appear once",
                    key.start_mark,
                )
            seen.add((key.tag, key.value))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _check_expanded_size(root: yaml.Node) -> None:
    """Refuse a document that holds more than MAX_NODES values once its aliases are expanded, or an
    alias inside its own anchor (a value that contains itself). Iterative, so depth costs no stack."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    total = 0
    tops = root.value if isinstance(root, yaml.MappingNode) else [(None, root)]
    for key, top in tops:
        where = str(key.value)[:40] if isinstance(key, yaml.ScalarNode) else "(top level)"
        stack: list[tuple[yaml.Node, bool]] = [(top, False)]
        while stack:
            node, done = stack.pop()
            ident = id(node)
            if done:
                on_path.discard(ident)
                sizes[ident] = 1 + sum(sizes[id(c)] for c in _children(node))
                if total + sizes[ident] > MAX_NODES:
                    raise _LimitError(
                        where,
                        f"expands to more than {MAX_NODES} values (through aliases?); a config is far smaller",
                        node.start_mark,
                    )
                continue
            if ident in sizes:
                continue
            if ident in on_path:
                raise _LimitError(where, "an alias refers to the value that contains it (a loop)", node.start_mark)
            on_path.add(ident)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
        total += sizes[id(top)]


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        mark = key_node.start_mark
        if not isinstance(key_node, yaml.ScalarNode):
            kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
            raise yaml.constructor.ConstructorError(
                None, None, f"a key is a {kind} (line {mark.line + 1}); keys must be plain names", mark
            )
        key = loader.construct_object(key_node, deep=deep)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r:.60} (line {mark.line + 1}); each key may appear once", mark
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


def _refuse_tag(loader: _StrictLoader, node: yaml.Node) -> None:
    raise yaml.constructor.ConstructorError(
        None,
        None,
        f"the tag {node.tag.rsplit(':', 1)[-1]!r} is not accepted; write plain text, numbers, lists",
        node.start_mark,
    )


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
# Types JSON has no word for: bytes would pass as text unseen, sets and ordered pairs as lists.
for _tag in ("binary", "set", "omap", "pairs"):
    _StrictLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _refuse_tag)

_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a named pipe",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFLNK: "a symbolic link",
}


def file_kind(mode: int) -> str:
    """What a file of this st_mode is, in words ("a regular file", "a symbolic link", ...)."""
    return "a regular file" if stat.S_ISREG(mode) else _KINDS.get(stat.S_IFMT(mode), "a special file")


def read_file_bytes(path: Path, label: str, follow_symlinks: bool = True, limit: int = MAX_YAML_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes. Without `follow_symlinks` a symbolic link is
    refused (O_NOFOLLOW: no window between the check and the open); pipes, devices and directories are
    always refused, so a read can neither block nor run forever."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        info = os.stat(path, follow_symlinks=follow_symlinks)
        if stat.S_ISLNK(info.st_mode):
            raise OSError(errno.ELOOP, "symbolic link")
        if not stat.S_ISREG(info.st_mode):
            raise YamlError(f"{label}: (file): is {file_kind(info.st_mode)}, not a regular file")
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise YamlError(
                f"{label}: (file): is a symbolic link; links are not followed, put the file itself here"
            ) from None
        raise YamlError(f"{label}: (file): cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise YamlError(f"{label}: (file): is {file_kind(info.st_mode)}, not a regular file")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise YamlError(f"{label}: (file): is larger than {limit} bytes; at most {limit} are accepted")
    return data


def _decode(data: bytes, label: str) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise YamlError(f"{label}: (file): is UTF-16 or UTF-32 text (byte order mark); save it as UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise YamlError(f"{label}: (file): contains a NUL byte (offset {nul}); a config is UTF-8 text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise YamlError(f"{label}: line {line}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def parse_yaml(text: str, label: str) -> Any:
    """One YAML document within the limits above (None for an empty one); YamlError names `label`."""
    loader = None
    try:
        loader = _StrictLoader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node)
        return loader.construct_document(node)
    except _LimitError as exc:
        line = f" (line {exc.mark.line + 1})" if exc.mark else ""
        raise YamlError(f"{label}: {exc.where}: {exc.reason}{line}") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise YamlError(f"{label}: {where}invalid YAML: {exc.problem or exc.context}") from None
    except yaml.reader.ReaderError as exc:
        line = text[: exc.position].count("\n") + 1
        raise YamlError(f"{label}: line {line}: invalid YAML: {exc.reason} (character {exc.character!r})") from None
    except yaml.YAMLError as exc:
        raise YamlError(f"{label}: (file): invalid YAML: {str(exc)[:200]}") from None
    except (ValueError, OverflowError, TypeError) as exc:
        # a value YAML's own constructors refuse: a timestamp like 2024-13-45, an integer of 5,000 digits
        raise YamlError(f"{label}: (file): invalid YAML value: {str(exc).split(';')[0][:200]}") from None
    except RecursionError:
        raise YamlError(f"{label}: (top level): nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_yaml_mapping(path: Path, label: str | None = None, follow_symlinks: bool = True) -> dict[str, Any]:
    """Read a YAML file whose top level must be a mapping."""
    label = label or str(path)
    data = parse_yaml(_decode(read_file_bytes(path, label, follow_symlinks), label), label)
    if data is None:
        raise YamlError(f"{label}: (file): is empty; expected a mapping of settings")
    if not isinstance(data, dict):
        raise YamlError(f"{label}: (top level): is a {type(data).__name__}; expected a mapping of settings")
    return data

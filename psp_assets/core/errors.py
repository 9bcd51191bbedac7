"""One exception type per domain. Messages name the file, field or target, what was wrong, and what
would be right, so the person reading a failed run can act without opening the code."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError


class PspError(Exception):
    """Base class for every error the platform raises on purpose."""


class ConfigError(PspError):
    """A client config file is missing, malformed or invalid."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class TemplateError(PspError):
    """A platform template (template.yaml or its files) is unusable."""


class RenderError(PspError):
    """Rendering a template for a client failed; nothing was written."""


class PackageError(PspError):
    """A rendered tree could not be packaged into an installable artifact."""


class DeployError(PspError):
    """A deploy to a store target failed; the store keeps serving its last good release."""


class ReconciliationError(PspError):
    """Payments or store orders could not be read, reconciled or healed (ledger, store API, export file)."""


class AlertError(PspError):
    """An alert could not be delivered to a channel (Slack, email)."""


class PublishError(PspError):
    """Publishing a built artifact as a GitHub release failed; names org/repo, tag and what to do."""


class CompatError(PspError):
    """The compatibility matrix could not be built, stored or compared (names the file or cell)."""


# --- how a problem is worded ------------------------------------------------------------------------


def shown(value: Any, width: int = 60) -> str:
    """A client value for an error message: scalars quoted and cut to `width`, anything else by its type
    only (the repr of a list built from YAML aliases can be gigabytes long)."""
    if isinstance(value, str):
        text = repr(value[:width])
        return text if len(value) <= width else text[:-1] + "..." + text[-1]
    if value is None or isinstance(value, bool | float):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if abs(value) < 10**30 else "a very large integer"
    if isinstance(value, dict):
        return f"a mapping ({len(value)} keys)"
    if isinstance(value, list | tuple | set | frozenset):
        return f"a list ({len(value)} items)"
    return f"a {type(value).__name__} value"


MAX_PROBLEMS_PER_FILE = 25


def _format_loc(loc: Iterable[Any], tags: tuple[str, ...]) -> str:
    out = ""
    previous: Any = None
    for part in loc:
        if isinstance(previous, int) and part in tags:
            previous = part
            continue  # the discriminated-union tag, not a field
        previous = part
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "literal[")):
            continue  # pydantic's internal validator names, not a field
        else:
            name = str(part)
            out += ("." if out else "") + (name if len(name) <= 40 else shown(name, 40))
    return out or "(top level)"


def _describe(err: Mapping[str, Any], hints: Mapping[str, str], tags: tuple[str, ...], tag_name: str) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown setting; remove it or check its spelling against schema/client_config.schema.json"
    elif err["type"] == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        msg = f"{shown(err['input'])} " + hints.get(pattern, f"must match {pattern}")
    elif err["type"] == "literal_error":
        msg = f"{shown(err['input'])} is not one of {err.get('ctx', {}).get('expected', '')}"
    elif err["type"] == "union_tag_invalid":
        got = err["input"].get(tag_name) if isinstance(err["input"], dict) else None
        msg = f"unknown {tag_name} {shown(got)}" if isinstance(err["input"], dict) else msg
        msg += f"; supported {tag_name}s: " + ", ".join(tags)
    elif "input" in err and not isinstance(err["input"], dict | list) and err["type"] != "missing":
        msg = f"{msg} (got {shown(err['input'])})"
    return msg[:500]


def pydantic_problems(
    exc: ValidationError,
    label: str,
    hints: Mapping[str, str] | None = None,
    tags: tuple[str, ...] = (),
    tag_name: str = "kind",
) -> list[str]:
    """A file's validation errors as lines `<label>: <field path>: <what is wrong>`, at most
    MAX_PROBLEMS_PER_FILE of them. `hints` words a pattern mismatch by pattern; `tags` are the values of a
    discriminated union's tag (`tag_name`), left out of field paths."""
    errors = exc.errors()
    lines = [
        f"{label}: {_format_loc(e['loc'], tags)}: {_describe(e, hints or {}, tags, tag_name)}"
        for e in errors[:MAX_PROBLEMS_PER_FILE]
    ]
    if len(errors) > MAX_PROBLEMS_PER_FILE:
        lines.append(f"{label}: (top level): {len(errors) - MAX_PROBLEMS_PER_FILE} more problems not shown")
    return lines

"""Client configuration: one YAML file per client, validated by a typed model.

A client is the partition key of the whole pipeline, so nothing downstream runs for a config this
module rejects. Errors name the file, the field and what would be right.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AnyUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError
from .iso4217 import ISO_4217
from .yamlio import YamlError, read_yaml_mapping

PLATFORMS: tuple[str, ...] = ("woocommerce", "magento2", "shopify", "prestashop", "opencart")
CLIENT_ID_PATTERN = r"^[a-z][a-z0-9-]{1,38}$"
SLUG_PATTERN = r"^[a-z][a-z0-9-]{1,48}[a-z0-9]$"
CONFIG_SUFFIXES = (".yaml", ".yml")

PAYMENT_METHODS: tuple[str, ...] = (
    "card",
    "ideal",
    "bancontact",
    "sepa_direct_debit",
    "sepa_credit_transfer",
    "eps",
    "przelewy24",
    "blik",
    "mb_way",
    "multibanco",
    "trustly",
    "paypal",
    "apple_pay",
    "google_pay",
    "klarna",
)

# Display text may land in plugin headers and comments: letters of any script, digits, spaces and a
# little punctuation. No newline, no comment or PHP delimiters, no markup.
DISPLAY_TEXT_PATTERN = r"^[\w .,&()'+-]{2,80}$"

Locale = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}_[A-Z]{2}$")]
TargetName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,30}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


def _safe_relative_path(value: str) -> str:
    path = PurePosixPath(value)
    if not value or path.is_absolute() or "\\" in value:
        raise ValueError("must be a relative path inside the stores directory, e.g. 'shop/wp-content/plugins/x'")
    if any(part in ("..", ".", "") for part in value.split("/")):
        raise ValueError("must not contain '..', '.' or empty segments; paths may not leave their directory")
    if not re.fullmatch(r"[A-Za-z0-9._/-]{1,240}", value):
        raise ValueError("may contain only letters, digits, '.', '_', '-' and '/'")
    return value


class LocalTarget(_Strict):
    """A store on this machine (or a mounted volume): the plugin lives at `path` under the stores root."""

    name: TargetName
    transport: Literal["local"]
    path: str = Field(description="Live plugin path, relative to the local stores root (PSP_STORES_DIR).")
    keep_releases: int = Field(5, ge=2, le=50, description="Releases kept on the store, live one included.")

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        return _safe_relative_path(value)


Target = Annotated[LocalTarget, Field(discriminator="transport")]


class PlatformSettings(_Strict):
    enabled: bool = True
    slug: Annotated[str, StringConstraints(pattern=SLUG_PATTERN)] | None = Field(
        None, description="Plugin slug / module folder name; derived from the client id when omitted."
    )
    targets: list[Target] = Field(default_factory=list, description="Stores to deploy to, in rollout order.")

    @field_validator("targets")
    @classmethod
    def _unique_target_names(cls, targets: list[Target]) -> list[Target]:
        names = [t.name for t in targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"target names must be unique; repeated: {', '.join(dupes)}")
        return targets


class Platforms(_Strict):
    woocommerce: PlatformSettings | None = None
    magento2: PlatformSettings | None = None
    shopify: PlatformSettings | None = None
    prestashop: PlatformSettings | None = None
    opencart: PlatformSettings | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_platforms(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(k) for k in data if k not in PLATFORMS)
            if unknown:
                raise ValueError(
                    f"unknown platform {', '.join(repr(u) for u in unknown)}; expected any of {', '.join(PLATFORMS)}"
                )
        return data


class Features(_Strict):
    refunds: bool = True
    partial_refunds: bool = True
    manual_capture: bool = Field(False, description="Authorize at checkout, capture when the order ships.")
    debug_logging: bool = False


class Checkout(_Strict):
    """Free text shown to shoppers at checkout. It is data: escaped wherever it lands, never code."""

    title: str = Field("Pay by card or bank", min_length=1, max_length=200)
    description: str = Field("You will be redirected to our secure payment page.", max_length=1000)

    @field_validator("title", "description")
    @classmethod
    def _printable(cls, value: str, info: Any) -> str:
        allowed_breaks = "\n" if info.field_name == "description" else ""
        bad = [c for c in value if (ord(c) < 32 and c not in allowed_breaks) or ord(c) == 127]
        if bad:
            what = "a line break" if bad[0] in "\r\n" else f"control character U+{ord(bad[0]):04X}"
            raise ValueError(f"contains {what}; use plain text" + (" on one line" if not allowed_breaks else ""))
        return value


class Webhooks(_Strict):
    tolerance_seconds: int = Field(300, ge=30, le=3600, description="Accepted clock skew of signed webhooks.")


class ClientConfig(_Strict):
    """One client (bank or merchant group) of the PSP and the plugins it needs."""

    id: Annotated[str, StringConstraints(pattern=CLIENT_ID_PATTERN)] = Field(
        description="Client id; the partition key. Lowercase letters, digits and '-'."
    )
    name: Annotated[str, StringConstraints(pattern=DISPLAY_TEXT_PATTERN)] = Field(
        description="Display name shown to merchants and in plugin headers."
    )
    api_base_url: AnyUrl = Field(description="The PSP API base URL the plugins call (https only).")
    locales: list[Locale] = Field(min_length=1, description="Locales to ship translations for, e.g. nl_NL.")
    currencies: list[str] = Field(min_length=1, description="ISO 4217 currency codes.")
    payment_methods: list[Literal[PAYMENT_METHODS]] = Field(min_length=1)  # type: ignore[valid-type]
    features: Features = Field(default_factory=Features)
    checkout: Checkout = Field(default_factory=Checkout)
    webhooks: Webhooks = Field(default_factory=Webhooks)
    platforms: Platforms

    @field_validator("api_base_url")
    @classmethod
    def _https_only(cls, url: AnyUrl) -> AnyUrl:
        if url.scheme != "https":
            raise ValueError(f"must use https (got {url.scheme}://); plugins never talk to the PSP in clear text")
        if url.query or url.fragment or url.username or url.password:
            raise ValueError("must be a plain base URL without credentials, query or fragment")
        if not re.fullmatch(r"[A-Za-z0-9._~/-]*", url.path or ""):
            raise ValueError("path may contain only letters, digits and . _ ~ / -")
        return url

    @field_validator("currencies")
    @classmethod
    def _iso_currencies(cls, codes: list[str]) -> list[str]:
        bad = [c for c in codes if c not in ISO_4217]
        if bad:
            raise ValueError(f"not ISO 4217 currency codes: {', '.join(map(repr, bad))} (use e.g. 'EUR', 'PLN')")
        return _unique(codes, "currencies")

    @field_validator("locales", "payment_methods")
    @classmethod
    def _no_repeats(cls, values: list[str]) -> list[str]:
        return _unique(values, "values")

    @model_validator(mode="after")
    def _some_platform(self) -> ClientConfig:
        if not self.enabled_platforms():
            raise ValueError("platforms: enable at least one of " + ", ".join(PLATFORMS))
        return self

    # --- derived facts --------------------------------------------------------------------------

    @property
    def api_base(self) -> str:
        return str(self.api_base_url).rstrip("/")

    def platform(self, name: str) -> PlatformSettings | None:
        return getattr(self.platforms, name)

    def enabled_platforms(self) -> list[str]:
        return [p for p in PLATFORMS if (s := self.platform(p)) is not None and s.enabled]

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def config_hash(self) -> str:
        """Hash of the validated values: comment or formatting edits don't rebuild anything."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def _unique(values: list[str], what: str) -> list[str]:
    dupes = sorted({v for v in values if values.count(v) > 1})
    if dupes:
        raise ValueError(f"repeated {what}: {', '.join(dupes)}")
    return values


_PATTERN_HINTS = {
    DISPLAY_TEXT_PATTERN: "must be 2-80 letters, digits, spaces or . , & ( ) ' + - (no newlines or code delimiters)",
}
TRANSPORTS = ("local",)


def _format_loc(loc: Iterable[Any]) -> str:
    out = ""
    previous: Any = None
    for part in loc:
        if isinstance(previous, int) and part in TRANSPORTS:
            previous = part
            continue  # the discriminated-union tag, not a field
        previous = part
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-", "literal[")):
            continue  # pydantic's internal validator names, not a field
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _describe(err: dict[str, Any]) -> str:
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown setting; remove it or check its spelling against schema/client_config.schema.json"
    elif err["type"] == "string_pattern_mismatch":
        pattern = err.get("ctx", {}).get("pattern", "")
        msg = f"{err['input']!r:.60} " + _PATTERN_HINTS.get(pattern, f"must match {pattern}")
    elif err["type"] == "literal_error":
        msg = f"{err['input']!r:.60} is not one of {err.get('ctx', {}).get('expected', '')}"
    elif err["type"] == "union_tag_invalid":
        msg = f"unknown transport {err['input'].get('transport')!r}" if isinstance(err["input"], dict) else msg
        msg += "; supported transports: " + ", ".join(TRANSPORTS)
    elif "input" in err and not isinstance(err["input"], dict | list) and err["type"] != "missing":
        msg = f"{msg} (got {err['input']!r:.60})"
    return msg


def validation_problems(exc: ValidationError, label: str) -> list[str]:
    return [f"{label}: {_format_loc(e['loc'])}: {_describe(e)}" for e in exc.errors()]


def parse_client(data: dict[str, Any], label: str) -> ClientConfig:
    """Validate an already-parsed mapping; raises ConfigError naming `label` and each field."""
    try:
        return ClientConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, label)) from None


def load_client(path: Path, label: str | None = None) -> ClientConfig:
    label = label or str(path)
    try:
        data = read_yaml_mapping(path, label)
    except YamlError as exc:
        raise ConfigError([str(exc)]) from None
    return parse_client(data, label)


@dataclass(frozen=True)
class LoadedClient:
    config: ClientConfig
    path: Path

    @property
    def id(self) -> str:
        return self.config.id


@dataclass
class Fleet:
    """Every client config in a directory: the valid ones, and the problems of the others."""

    clients: dict[str, LoadedClient] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if self.problems:
            raise ConfigError([p for problems in self.problems.values() for p in problems])

    def client(self, client_id: str) -> ClientConfig:
        if client_id not in self.clients:
            known = ", ".join(sorted(self.clients)) or "none"
            detail = ""
            for problems in self.problems.values():
                detail = "; " + problems[0] if any(client_id in p for p in problems) else detail
            raise ConfigError([f"client {client_id!r}: no valid config found (valid clients: {known}){detail}"])
        return self.clients[client_id].config

    def partition_keys(self) -> list[str]:
        return [f"{cid}|{p}" for cid in sorted(self.clients) for p in self.clients[cid].config.enabled_platforms()]


def config_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise ConfigError([f"{directory}: client config directory does not exist (set PSP_CLIENT_CONFIGS_DIR)"])
    return sorted(p for p in directory.iterdir() if p.suffix in CONFIG_SUFFIXES and p.is_file())


def load_fleet(directory: Path, paths: Iterable[Path] | None = None) -> Fleet:
    """Load configs; invalid files are kept out of `clients` and reported in `problems`.

    A client id used by two files is a problem of the later file (by name), so the earlier keeps working.
    """
    fleet = Fleet()
    for path in sorted(paths) if paths is not None else config_files(directory):
        label = _label(path, directory)
        try:
            config = load_client(path, label)
        except ConfigError as exc:
            fleet.problems[label] = exc.problems
            continue
        if config.id in fleet.clients:
            first = _label(fleet.clients[config.id].path, directory)
            fleet.problems[label] = [
                f"{label}: id: {config.id!r} is already used by {first}; client ids must be unique"
            ]
            continue
        fleet.clients[config.id] = LoadedClient(config, path)
    return fleet


def _label(path: Path, directory: Path) -> str:
    try:
        return str(path.resolve().relative_to(directory.resolve().parent))
    except ValueError:
        return str(path)


def json_schema() -> dict[str, Any]:
    schema = ClientConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "client_config.schema.json"
    schema["title"] = "PSP client config"
    return schema


def starter_config(client_id: str) -> str:
    """A valid starter config for `psp new-client`, as YAML text with guiding comments."""
    if not re.fullmatch(CLIENT_ID_PATTERN, client_id):
        raise ConfigError([f"client id {client_id!r} must match {CLIENT_ID_PATTERN}"])
    name = " ".join(part.capitalize() for part in client_id.split("-"))
    text = f"""\
# yaml-language-server: $schema=../schema/client_config.schema.json
# Client config for {name}. Reference: docs/config-reference.md
id: {client_id}
name: {name}
api_base_url: https://api.psp.example/v1
locales: [en_US]
currencies: [EUR]
payment_methods: [card]
features:
  refunds: true
  partial_refunds: true
platforms:
  woocommerce:
    slug: {client_id}-payments
    targets:
      - name: staging
        transport: local
        path: {client_id}-staging/wp-content/plugins/{client_id}-payments
"""
    parse_client(yaml.safe_load(text), f"{client_id}.yaml")  # never hand out an invalid starter
    return text

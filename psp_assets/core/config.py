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
from .iban import bic_problem, iban_problem, normalize_bic, normalize_iban
from .identity import clash_problem
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


EnvVarName = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{1,80}$")]


class HealthGate(_Strict):
    """HTTP checks run after every switch; any failure rolls the store back to its previous release."""

    store_url: AnyUrl = Field(description="Storefront URL; must answer 200 without PHP fatal-error output.")
    health_url: AnyUrl | None = Field(
        None, description="Plugin health route; default: store_url + the template's deploy.health_route."
    )
    count: int = Field(3, ge=1, le=30, description="Rounds of checks after the switch.")
    interval_seconds: float = Field(1.0, ge=0, le=60, description="Pause between rounds.")
    failure_limit: int = Field(
        0, ge=0, le=29, description="Failed rounds (5xx, PHP error output) tolerated before rolling back."
    )
    inconclusive_limit: int | None = Field(
        None,
        ge=0,
        le=29,
        description="Inconclusive rounds (no answer, timeout, 4xx, another version) tolerated before rolling "
        "back; default: failure_limit.",
    )
    timeout_seconds: float = Field(5.0, gt=0, le=60, description="Per-request timeout, body included.")
    deadline_seconds: float = Field(
        60.0, gt=0, le=600, description="The whole gate's deadline; past it the gate fails and the store rolls back."
    )

    @field_validator("store_url", "health_url")
    @classmethod
    def _web_url(cls, url: AnyUrl | None) -> AnyUrl | None:
        if url is not None and url.scheme not in ("http", "https"):
            raise ValueError("must be an http(s) URL")
        if url is not None and (url.username or url.password):
            raise ValueError("must not carry credentials")
        return url

    @model_validator(mode="after")
    def _limit_below_count(self) -> HealthGate:
        if self.failure_limit >= self.count:
            raise ValueError(f"failure_limit ({self.failure_limit}) must be below count ({self.count})")
        if self.inconclusive_limit is not None and self.inconclusive_limit >= self.count:
            raise ValueError(f"inconclusive_limit ({self.inconclusive_limit}) must be below count ({self.count})")
        return self


class LocalTarget(_Strict):
    """A store on this machine (or a mounted volume): the plugin lives at `path` under the stores root."""

    name: TargetName
    transport: Literal["local"]
    path: str = Field(description="Live plugin path, relative to the local stores root (PSP_STORES_DIR).")
    keep_releases: int = Field(
        5, ge=2, le=50, description="Release folders kept on the store, the live one and the rollback target included."
    )
    health: HealthGate | None = None

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        return _safe_relative_path(value)


class SftpTarget(_Strict):
    """A store reached over SFTP. The host key is pinned here; an unknown or changed key is refused."""

    name: TargetName
    transport: Literal["sftp"]
    host: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$")]
    port: int = Field(22, ge=1, le=65535)
    user: Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_.-]{0,31}$")]
    private_key_env: EnvVarName | None = Field(None, description="Env var holding the private key (PEM/OpenSSH).")
    private_key_file: str | None = Field(None, description="Key file, relative to PSP_SSH_KEYS_DIR.")
    known_host: str = Field(description="The host's public key as in known_hosts: '<type> <base64>'.")
    path: str = Field(description="Absolute live plugin path on the store.")
    keep_releases: int = Field(
        5, ge=2, le=50, description="Release folders kept on the store, the live one and the rollback target included."
    )
    connect_timeout_seconds: float = Field(10, gt=0, le=120)
    command_timeout_seconds: float = Field(60, gt=0, le=900)
    health: HealthGate | None = None

    @field_validator("known_host")
    @classmethod
    def _key_line(cls, value: str) -> str:
        parts = value.split()
        if len(parts) not in (2, 3) or not re.fullmatch(r"(ssh|ecdsa)-[a-z0-9-]+(@openssh\.com)?", parts[-2]):
            raise ValueError("must be '<key type> <base64 key>' as printed by ssh-keyscan (e.g. 'ssh-ed25519 AAAA...')")
        if not re.fullmatch(r"[A-Za-z0-9+/=]{40,}", parts[-1]):
            raise ValueError("the key part is not base64")
        return value

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or any(p in ("..", ".") for p in value.split("/")) or "//" in value:
            raise ValueError("must be an absolute path without '..' or '.' segments, e.g. /var/www/plugins/x")
        if not re.fullmatch(r"[A-Za-z0-9._/-]{2,240}", value):
            raise ValueError("may contain only letters, digits, '.', '_', '-' and '/'")
        return value.rstrip("/")

    @field_validator("private_key_file")
    @classmethod
    def _key_file(cls, value: str | None) -> str | None:
        return None if value is None else _safe_relative_path(value)

    @model_validator(mode="after")
    def _one_key_source(self) -> SftpTarget:
        if (self.private_key_env is None) == (self.private_key_file is None):
            raise ValueError("set exactly one of private_key_env or private_key_file")
        return self


Target = Annotated[LocalTarget | SftpTarget, Field(discriminator="transport")]


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


class StoreOrdersSource(_Strict):
    """Where the reconciliation reads one store's orders: the platform's own API, or an export file."""

    name: TargetName
    platform: Literal[PLATFORMS]  # type: ignore[valid-type]
    api_base_url: AnyUrl | None = Field(None, description="Store base URL the platform's order API lives under.")
    export_file: str | None = Field(None, description="CSV or Parquet order export, relative to PSP_DATA_DIR.")
    key_env: EnvVarName | None = Field(None, description="Env var holding the API user / consumer key.")
    secret_env: EnvVarName | None = Field(None, description="Env var holding the API secret, token or password.")

    @field_validator("export_file")
    @classmethod
    def _export_path(cls, value: str | None) -> str | None:
        if value is not None and not value.endswith((".csv", ".parquet")):
            raise ValueError("must be a .csv or .parquet file")
        return None if value is None else _safe_relative_path(value)

    @model_validator(mode="after")
    def _one_source(self) -> StoreOrdersSource:
        if (self.api_base_url is None) == (self.export_file is None):
            raise ValueError("set exactly one of api_base_url or export_file")
        if self.api_base_url is not None and self.secret_env is None:
            raise ValueError("api_base_url needs secret_env (the env var holding the store API credential)")
        return self


class Reconciliation(_Strict):
    """How the PSP's payments are reconciled with this client's store orders."""

    max_open_hours: float = Field(24, gt=0, le=720, description="A divergence open longer than this fails its check.")
    pending_max_age_minutes: int = Field(
        60, ge=1, le=43200, description="A payment pending at the PSP longer than this is reported as stale."
    )
    healing: bool = Field(
        False, description="Push the PSP's state to the store for safe divergences (paid at PSP, pending in store)."
    )
    stores: list[StoreOrdersSource] = Field(default_factory=list, description="Stores whose orders are reconciled.")


class KpiThresholds(_Strict):
    """Hourly payment KPI limits per client x platform; a breach raises an alert."""

    min_authorization_rate: float = Field(0.80, ge=0, le=1)
    max_decline_rate: float = Field(0.20, ge=0, le=1)
    max_error_rate: float = Field(0.02, ge=0, le=1)
    max_p95_latency_ms: int = Field(3000, ge=1, le=120000)
    min_attempts: int = Field(20, ge=1, description="Hours with fewer payment attempts are not judged on rates.")


class Settlement(_Strict):
    """The client's payout account, where the PSP settles the money its merchants take. Checked with the
    rules the plugins apply at checkout (core/iban.py, the same vectors), and kept in electronic form."""

    iban: str = Field(description="IBAN of the payout account; spaces are allowed and removed (ISO 13616).")
    bic: str | None = Field(None, description="BIC of the account's bank, 8 or 11 characters (ISO 9362).")

    @field_validator("iban")
    @classmethod
    def _iban(cls, value: str) -> str:
        problem = iban_problem(value)
        if problem:
            raise ValueError(problem)
        return normalize_iban(value)

    @field_validator("bic")
    @classmethod
    def _bic(cls, value: str | None) -> str | None:
        if value is None:
            return None
        problem = bic_problem(value)
        if problem:
            raise ValueError(problem)
        return normalize_bic(value)


GITHUB_LOGIN_PATTERN = r"^[A-Za-z0-9]+(-[A-Za-z0-9]+)*$"
GitHubRepoName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,100}$")]
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class GitHubApp(_Strict):
    """A GitHub App installed on the organization; releases are made with its installation token."""

    app_id: int = Field(ge=1, description="The App's id (its settings page).")
    installation_id: int = Field(ge=1, description="The App's installation id on the organization.")
    private_key_env: EnvVarName = Field(description="Env var holding the App's PEM private key; ends in _PRIVATE_KEY.")

    @field_validator("private_key_env")
    @classmethod
    def _key_suffix(cls, value: str) -> str:
        if not value.endswith("_PRIVATE_KEY"):
            raise ValueError(f"{value!r} must end in _PRIVATE_KEY, so the secret scan of rendered plugins covers it")
        return value


class GitHubSource(_Strict):
    """The client's source repository: each tested build's rendered source and a CI workflow arrive there as a
    pull request from a branch `psp/<platform>/<version>-<build>` (docs/github-releases.md, Client repositories)."""

    repository: GitHubRepoName = Field(
        description="Repository in github.organization receiving the source; may be the release repository."
    )
    base_branch: str = Field("main", description="Branch the pull requests target (it must exist).")

    @field_validator("repository")
    @classmethod
    def _not_dots(cls, value: str) -> str:
        if value in (".", ".."):
            raise ValueError("'.' and '..' are not repository names")
        return value

    @field_validator("base_branch")
    @classmethod
    def _branch_name(cls, value: str) -> str:
        # git check-ref-format, the subset a person would type
        parts = value.split("/")
        if (
            not re.fullmatch(r"[A-Za-z0-9._/-]{1,100}", value)
            or any(not part or part.startswith((".", "-")) or part.endswith((".lock", ".")) for part in parts)
            or ".." in value
        ):
            raise ValueError("not a branch name: use letters, digits, . _ - and / between parts, e.g. main")
        return value


class GitHubSettings(_Strict):
    """Where the client's plugin releases are published: github.com or GitHub Enterprise (docs/github-releases.md)."""

    organization: str = Field(max_length=39, pattern=GITHUB_LOGIN_PATTERN, description="Organization or account.")
    repository: GitHubRepoName = Field(description="Repository receiving one release per plugin build.")
    repositories: dict[str, GitHubRepoName] = Field(
        default_factory=dict, description="Per-platform repository overrides, e.g. {magento2: bank-magento-module}."
    )
    base_url: str = Field("https://api.github.com", description="API base URL; GitHub Enterprise: https://HOST/api/v3.")
    token_env: EnvVarName | None = Field(None, description="Env var holding the organization's token; ends in _TOKEN.")
    app: GitHubApp | None = Field(None, description="GitHub App installation auth, instead of token_env.")
    source: GitHubSource | None = Field(
        None, description="Also publish each tested build's source, with a CI workflow, as a pull request here."
    )

    @field_validator("token_env")
    @classmethod
    def _token_suffix(cls, value: str | None) -> str | None:
        if value is not None and not value.endswith("_TOKEN"):
            raise ValueError(f"{value!r} must end in _TOKEN, so the secret scan of rendered plugins covers it")
        return value

    @field_validator("repository", "repositories")
    @classmethod
    def _not_dots(cls, value: Any) -> Any:
        names = [value] if isinstance(value, str) else list(value.values())
        if any(n in (".", "..") for n in names):
            raise ValueError("'.' and '..' are not repository names")
        if isinstance(value, dict) and (unknown := sorted(k for k in value if k not in PLATFORMS)):
            raise ValueError(f"unknown platform {', '.join(map(repr, unknown))}; use any of {', '.join(PLATFORMS)}")
        return value

    @field_validator("base_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        url = urlsplit(value.rstrip("/"))
        loopback = url.hostname in LOOPBACK_HOSTS
        if url.scheme != "https" and not (url.scheme == "http" and loopback):
            raise ValueError(f"must use https (got {url.scheme or 'no scheme'}://); http is accepted for loopback only")
        if not url.hostname or url.username or url.password or url.query or url.fragment:
            raise ValueError("must be a plain API base URL without credentials, query or fragment")
        if url.hostname != "api.github.com" and url.path != "/api/v3":
            raise ValueError(f"GitHub Enterprise API URLs end in /api/v3, e.g. https://{url.hostname}/api/v3")
        if url.hostname == "api.github.com" and url.path:
            raise ValueError("use https://api.github.com (no path) for github.com")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_credential(self) -> GitHubSettings:
        if (self.token_env is None) == (self.app is None):
            raise ValueError("set exactly one of token_env (a token) or app (GitHub App installation)")
        return self

    @property
    def api_base(self) -> str:
        return self.base_url

    def repository_for(self, platform: str) -> str:
        return self.repositories.get(platform, self.repository)


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
    reconciliation: Reconciliation = Field(default_factory=Reconciliation)
    kpis: KpiThresholds = Field(default_factory=KpiThresholds)
    settlement: Settlement | None = Field(None, description="The client's payout account (IBAN, optional BIC).")
    github: GitHubSettings | None = Field(None, description="Publish each plugin build as a GitHub release.")
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
        # Operations settings (reconciliation, KPI limits, the payout account) never reach a plugin: changing
        # them rebuilds nothing.
        values = self.model_dump(mode="json", exclude={"reconciliation", "kpis", "settlement"})
        if values.get("github") and values["github"].get("source") is None:
            del values["github"]["source"]  # added later: configs without it keep their hash and build id
        return json.dumps(values, sort_keys=True, separators=(",", ":"))

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
TRANSPORTS = ("local", "sftp")


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

    A client id used by two files is a problem of the later file (by name), so the earlier keeps working;
    so is a client whose plugin names would clash with an earlier client's in a store that installs both
    (identity.clash_problem).
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
        clash = next(
            (
                problem
                for other in fleet.clients.values()
                if (problem := clash_problem(label, config, other.config, _label(other.path, directory)))
            ),
            None,
        )
        if clash is not None:
            fleet.problems[label] = [clash]
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

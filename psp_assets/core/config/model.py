"""Client configuration: one YAML file per client, validated by a typed model.

A client is the partition key of the whole pipeline, so nothing downstream runs for a config this
module rejects. Errors name the file, the field and what would be right.
"""

from __future__ import annotations

import hashlib
import json
import re
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
    create_model,
    field_validator,
    model_validator,
)

from psp_assets.core import i18n
from psp_assets.core.errors import ConfigError, pydantic_problems, shown
from psp_assets.core.payments.iban import (
    BIC_OTHER_COUNTRIES,
    IBAN_LENGTHS,
    bic_problem,
    iban_problem,
    normalize_bic,
    normalize_iban,
)
from psp_assets.core.payments.iso4217 import ISO_4217
from psp_assets.core.templates.spec import PLATFORMS
from psp_assets.core.yamlio import YamlError, read_yaml_mapping

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

# language, optionally with a region: nl_NL, pt_BR, or ar alone; a catalog file must ship for it (i18n.py)
LOCALE_PATTERN = r"^[a-z]{2,3}(_[A-Z]{2})?$"
Locale = Annotated[str, StringConstraints(pattern=LOCALE_PATTERN)]
TargetName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,30}$")]


def host_problem(host: str | None) -> str:
    """'' when `host` (as a URL parser returns it: IDNA-encoded, lower case) is a DNS name or an IP
    address, else why not. DNS names: labels of letters, digits and inner '-', each at most 63
    characters, at most 253 in all (RFC 1035); Unicode names are checked in their IDNA (xn--) form."""
    import ipaddress

    if not host:
        return "has no host"
    try:
        ipaddress.ip_address(host.strip("[]"))
        return ""
    except ValueError:
        pass
    if len(host) > 253:
        return f"host is {len(host)} characters long; a DNS name has at most 253"
    labels = host.split(".")
    for label in labels:
        if not label:
            return f"host {shown(host)} has an empty label; write it as a DNS name like api.psp.example"
        if len(label) > 63:
            return f"host label {shown(label)} is {len(label)} characters long; at most 63 are allowed"
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", label):
            return f"host {shown(host)} is not a DNS name (letters, digits and '-' between dots, IDNA for others)"
        if label.startswith("xn--"):
            try:
                label.encode().decode("idna")
            except UnicodeError:
                return f"host label {shown(label)} is not valid IDNA (punycode)"
    if labels[-1].isdigit():
        return f"host {shown(host)} is neither an IP address nor a DNS name (its last label is all digits)"
    return ""


def _web_url_problem(url: AnyUrl, schemes: tuple[str, ...]) -> str:
    if url.scheme not in schemes:
        return f"must be an {'/'.join(schemes)} URL (got {url.scheme}://)"
    if url.username or url.password:
        return "must not carry credentials"
    if url.port == 0:
        return "port 0 is not a port"
    return host_problem(url.host)


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
        0, ge=0, le=29, description="Failed rounds (5xx, PHP error output) tolerated before rolling back; below count."
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
        if url is not None and (problem := _web_url_problem(url, ("http", "https"))):
            raise ValueError(problem)
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
    private_key_env: EnvVarName | None = Field(
        None, description="Env var holding the private key (PEM/OpenSSH); set this or private_key_file."
    )
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
    targets: list[Target] = Field(
        default_factory=list, description="Stores to deploy to, in rollout order; target names are unique."
    )
    contributors: list[Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{1,59}$")]] = Field(
        default_factory=list,
        description="WooCommerce: wordpress.org usernames for readme.txt Contributors; default the client id "
        "without '-' (e.g. nordbank).",
    )

    @field_validator("targets")
    @classmethod
    def _unique_target_names(cls, targets: list[Target]) -> list[Target]:
        names = [t.name for t in targets]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"target names must be unique; repeated: {', '.join(dupes)}")
        return targets


class _PlatformsBase(_Strict):
    """`Platforms` without its fields: one optional `PlatformSettings` per name of PLATFORMS, added below."""

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


# One optional section per platform, named and ordered as PLATFORMS: a platform is added there, not here.
Platforms = create_model(
    "Platforms",
    __base__=_PlatformsBase,
    __module__=__name__,
    **{name: (PlatformSettings | None, None) for name in PLATFORMS},
)


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
    api_base_url: AnyUrl | None = Field(
        None, description="Store base URL (http or https) the order API lives under; set this or export_file."
    )
    export_file: str | None = Field(None, description="CSV or Parquet order export, relative to PSP_DATA_DIR.")
    key_env: EnvVarName | None = Field(None, description="Env var holding the API user / consumer key.")
    secret_env: EnvVarName | None = Field(
        None, description="Env var holding the API secret, token or password; required with api_base_url."
    )

    @field_validator("api_base_url")
    @classmethod
    def _store_url(cls, url: AnyUrl | None) -> AnyUrl | None:
        if url is not None and (problem := _web_url_problem(url, ("http", "https"))):
            raise ValueError(problem)
        return url

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


# --- rollout analysis (issue 19): payment KPIs gate each rollout wave ---------------------------------


class RolloutAnalysis(_Strict):
    """After each rollout wave, every upgraded store's payment KPIs from the PSP ledger are compared with
    its own baseline before the switch and with the platform's stores not upgraded yet
    (docs/rollout-analysis.md). A store whose KPIs got significantly and materially worse is rolled back."""

    enabled: bool = Field(False, description="Gate rollout waves of this client's stores on payment KPIs.")
    window_minutes: int = Field(60, ge=5, le=10080, description="Traffic after the switch a pass is judged on.")
    baseline_minutes: int = Field(1440, ge=60, le=43200, description="Traffic before the switch: the baseline.")
    looks: int = Field(4, ge=1, le=24, description="Evaluations spread over the window; a fail can come at any.")
    min_payments: int = Field(
        100, ge=10, description="Payment attempts needed after the switch (and before it) for any verdict."
    )
    max_authorization_rate_drop: float = Field(0.05, gt=0, le=1, description="Tolerated drop, in rate points.")
    max_decline_rate_increase: float = Field(0.05, gt=0, le=1, description="Tolerated rise per decline reason.")
    max_error_rate_increase: float = Field(0.01, gt=0, le=1, description="Tolerated rise of the PSP error rate.")
    max_webhook_failure_rate_increase: float = Field(0.02, gt=0, le=1, description="Tolerated rise of failures.")
    max_p95_latency_increase_ms: int = Field(500, ge=1, le=120000, description="Tolerated rise of P95 latency.")
    false_rollback_rate: float = Field(
        0.01, gt=0, lt=0.5, description="Chance a rollout rolls back any store of a release that changed nothing."
    )
    inconclusive: Literal["hold", "promote"] = Field(
        "hold", description="Too little traffic at the window's end: wait for it (hold) or go on (promote)."
    )


class Settlement(_Strict):
    """The client's payout account, where the PSP settles the money its merchants take. Checked with the
    rules the plugins apply at checkout (core/payments/iban.py, the same vectors), and kept in electronic form."""

    iban: str = Field(
        description="IBAN of the payout account (ISO 13616): a known country's length; spaces are allowed and "
        "removed; check digits verified by psp validate."
    )
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
    token_env: EnvVarName | None = Field(
        None, description="Env var holding the organization's token; ends in _TOKEN; set this or app."
    )
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
        try:
            port = url.port
        except ValueError:
            port = 0
        if port == 0 and ":" in url.netloc.rsplit("]", 1)[-1]:
            raise ValueError("the port must be a number from 1 to 65535")
        if problem := host_problem(url.hostname):
            raise ValueError(problem)
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
    api_base_url: AnyUrl = Field(
        description="The PSP API base URL the plugins call: https, a DNS name (IDNA) or IP address as host, no "
        "credentials, query or fragment."
    )
    locales: list[Locale] = Field(
        min_length=1, description="Locales to ship translations for, e.g. nl_NL; each has a catalog in templates."
    )
    currencies: list[str] = Field(min_length=1, description="ISO 4217 currency codes, upper case, e.g. EUR.")
    payment_methods: list[Literal[PAYMENT_METHODS]] = Field(min_length=1)  # type: ignore[valid-type]
    features: Features = Field(default_factory=Features)
    checkout: Checkout = Field(default_factory=Checkout)
    webhooks: Webhooks = Field(default_factory=Webhooks)
    reconciliation: Reconciliation = Field(default_factory=Reconciliation)
    kpis: KpiThresholds = Field(default_factory=KpiThresholds)
    rollout_analysis: RolloutAnalysis = Field(default_factory=RolloutAnalysis)
    settlement: Settlement | None = Field(None, description="The client's payout account (IBAN, optional BIC).")
    github: GitHubSettings | None = Field(None, description="Publish each plugin build as a GitHub release.")
    platforms: Platforms = Field(description="The platforms to build plugins for; at least one enabled.")

    @field_validator("api_base_url")
    @classmethod
    def _https_only(cls, url: AnyUrl) -> AnyUrl:
        if url.scheme != "https":
            raise ValueError(f"must use https (got {url.scheme}://); plugins never talk to the PSP in clear text")
        if url.query is not None or url.fragment is not None or url.username or url.password:
            raise ValueError("must be a plain base URL without credentials, query or fragment")
        if problem := host_problem(url.host) or ("port 0 is not a port" if url.port == 0 else ""):
            raise ValueError(problem)
        if not re.fullmatch(r"[A-Za-z0-9._~/-]*", url.path or ""):
            raise ValueError("path may contain only letters, digits and . _ ~ / -")
        return url

    @field_validator("currencies")
    @classmethod
    def _iso_currencies(cls, codes: list[str]) -> list[str]:
        bad = [c for c in codes if c not in ISO_4217]
        if bad:
            raise ValueError(f"not ISO 4217 currency codes: {', '.join(map(shown, bad[:5]))} (use e.g. 'EUR', 'PLN')")
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
        values = self.model_dump(mode="json", exclude={"reconciliation", "kpis", "settlement", "rollout_analysis"})
        if values.get("github") and values["github"].get("source") is None:
            del values["github"]["source"]  # added later: configs without it keep their hash and build id
        return json.dumps(values, sort_keys=True, separators=(",", ":"))

    def config_hash(self) -> str:
        """Hash of the validated values: comment or formatting edits don't rebuild anything."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def _unique(values: list[str], what: str) -> list[str]:
    seen: set[str] = set()
    dupes = sorted({v for v in values if v in seen or seen.add(v)})
    if dupes:
        raise ValueError(f"repeated {what}: {', '.join(d[:40] for d in dupes[:5])}")
    return values


_PATTERN_HINTS = {
    DISPLAY_TEXT_PATTERN: "must be 2-80 letters, digits, spaces or . , & ( ) ' + - (no newlines or code delimiters)",
}
TRANSPORTS = ("local", "sftp")


def validation_problems(exc: ValidationError, label: str) -> list[str]:
    """A config file's pydantic errors as problem lines, with the config's own hints and transports."""
    return pydantic_problems(exc, label, hints=_PATTERN_HINTS, tags=TRANSPORTS, tag_name="transport")


def parse_client(data: dict[str, Any], label: str) -> ClientConfig:
    """Validate an already-parsed mapping; raises ConfigError naming `label` and each field."""
    try:
        return ClientConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, label)) from None
    except RecursionError:
        raise ConfigError([f"{label}: (top level): nested too deeply to validate"]) from None


def read_client_file(path: Path, label: str | None = None) -> dict[str, Any]:
    """The YAML mapping of one client file, read as the loader reads every config: a regular file (a
    symbolic link is refused, not followed), bounded in size, nesting and aliases (yamlio)."""
    label = label or str(path)
    try:
        return read_yaml_mapping(path, label, follow_symlinks=False)
    except YamlError as exc:
        raise ConfigError([str(exc)]) from None


def load_client(path: Path, label: str | None = None) -> ClientConfig:
    label = label or str(path)
    return parse_client(read_client_file(path, label), label)


REPO_I18N_DIR = Path(__file__).resolve().parents[3] / "templates" / "_shared" / "i18n"


def shipped_locales(i18n_dir: Path = REPO_I18N_DIR) -> list[str]:
    """The locales a config may list: the catalog's source locale and one per `<locale>.yaml` catalog."""
    try:
        return i18n.shipped_locales(i18n_dir)
    except YamlError as exc:
        raise ConfigError([str(exc)]) from None


# What only code can check; the schema-parity test (tests/core/config/test_schema_parity.py) allows exactly these.
CODE_ONLY_RULES: dict[str, str] = {
    "IBAN check digits (ISO 7064 mod 97-10)": "the IBAN check digits do not match",
    "unique target names per platform (JSON Schema has no uniqueness by key)": "target names must be unique",
    "IDNA validity and encoded length of Unicode host names": "not valid IDNA",
    "a complete translation catalog for each locale": "is not translated for",
}

# ECMA-262 regular expressions for the schema (editors evaluate them as JavaScript does): no \d or \w,
# which mean different things in different engines.
_PORT = r"(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?"
_IPV4_PART = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = rf"(?:{_IPV4_PART}\.){{3}}{_IPV4_PART}"


def _host_pattern(chars: str) -> str:
    label = rf"[{chars}](?:[{chars}-]{{0,61}}[{chars}])?"
    end = r"(?:[:/?#]|$)"
    return rf"(?:{_IPV4}(?={end})|(?=[^:/?#]{{1,253}}{end})(?:{label}\.)*(?![0-9]+{end}){label}(?={end}))"


_HOST = _host_pattern(r"A-Za-z0-9\u00a1-\uffff")
_LOWER_HOST = _host_pattern(r"a-z0-9\u00a1-\uffff")
_RELATIVE_PATH = r"(?=[A-Za-z0-9._/-]{1,240}$)(?!/)(?!.*//)(?!.*/$)(?!(?:.*/)?\.\.?(?:/|$))"
_SPACE_CLASS = "[" + "".join(f"\\u{c:04x}" for c in (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0xA0, 0x2007, 0x202F)) + "]"
_GIT_PART = r"[A-Za-z0-9_][A-Za-z0-9._-]*(?<!\.)(?<!\.lock)"


def _caseless(text: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in text)


def _iban_pattern() -> str:
    s = _SPACE_CLASS + "*"
    alnum = "[A-Za-z0-9]"
    per_country = [
        f"{_caseless(cc[0])}{s}{_caseless(cc[1])}{s}[0-9]{s}[0-9](?:{s}{alnum}){{{n - 4}}}"
        for cc, n in sorted(IBAN_LENGTHS.items())
    ]
    return f"^{s}(?:{'|'.join(per_country)}){s}$"


def _bic_pattern() -> str:
    countries = "|".join(_caseless(c) for c in sorted({*IBAN_LENGTHS, *BIC_OTHER_COUNTRIES}))
    s = _SPACE_CLASS + "*"
    return f"^{s}[A-Za-z]{{4}}(?:{countries})[A-Za-z0-9]{{2}}(?:[A-Za-z0-9]{{3}})?{s}$"


def _string_of(prop: dict[str, Any]) -> dict[str, Any]:
    """The string schema of a property, inside `anyOf: [..., null]` for an optional one."""
    for branch in prop.get("anyOf", []):
        if branch.get("type") == "string":
            return branch
    return prop


def _exactly_one(a: str, b: str) -> dict[str, Any]:
    def only(this: str, other: str) -> dict[str, Any]:
        return {"required": [this], "properties": {this: {"not": {"type": "null"}}, other: {"type": "null"}}}

    return {"oneOf": [only(a, b), only(b, a)]}


def _tighten(schema: dict[str, Any], locales: list[str]) -> None:
    """Add to pydantic's schema every rule of the model's validators that JSON Schema can express."""
    defs, top = schema["$defs"], schema["properties"]

    def prop(model: str, name: str) -> dict[str, Any]:
        return _string_of(defs[model]["properties"][name])

    top["api_base_url"]["pattern"] = rf"^https://{_HOST}{_PORT}(?:/[A-Za-z0-9._~/-]*)?$"
    top["locales"]["items"] = {"type": "string", "enum": locales}
    top["currencies"]["items"] = {"type": "string", "enum": sorted(ISO_4217)}
    for name in ("locales", "currencies", "payment_methods"):
        top[name]["uniqueItems"] = True

    defs["Platforms"]["minProperties"] = 1
    defs["Platforms"]["anyOf"] = [
        {"required": [p], "properties": {p: {"type": "object", "properties": {"enabled": {"const": True}}}}}
        for p in PLATFORMS
    ]
    web_url = rf"^https?://{_HOST}{_PORT}(?:[/?#]\S*)?$"
    for model, name in ("HealthGate", "store_url"), ("HealthGate", "health_url"), ("StoreOrdersSource", "api_base_url"):
        prop(model, name)["pattern"] = web_url
    defs["HealthGate"]["allOf"] = [
        {
            "if": {"required": ["count"], "properties": {"count": {"const": n}}},
            "then": {"properties": {"failure_limit": {"maximum": n - 1}}},
        }
        for n in range(1, 31)
    ] + [{"if": {"not": {"required": ["count"]}}, "then": {"properties": {"failure_limit": {"maximum": 2}}}}]

    relative = f"^{_RELATIVE_PATH}.+$"
    prop("LocalTarget", "path")["pattern"] = relative
    prop("SftpTarget", "private_key_file")["pattern"] = relative
    prop("StoreOrdersSource", "export_file")["pattern"] = rf"^{_RELATIVE_PATH}.+\.(?:csv|parquet)$"
    prop("SftpTarget", "path")["pattern"] = r"^(?!.*//)(?!(?:.*/)?\.\.?(?:/|$))/[A-Za-z0-9._/-]{1,239}$"
    prop("SftpTarget", "known_host")["pattern"] = (
        r"^(?:[^ \t]+[ \t]+)?(?:ssh|ecdsa)-[a-z0-9-]+(?:@openssh\.com)?[ \t]+[A-Za-z0-9+/=]{40,}$"
    )
    defs["SftpTarget"]["allOf"] = [_exactly_one("private_key_env", "private_key_file")]
    defs["StoreOrdersSource"]["allOf"] = [
        _exactly_one("api_base_url", "export_file"),
        {
            "if": {"required": ["api_base_url"], "properties": {"api_base_url": {"not": {"type": "null"}}}},
            "then": {"required": ["secret_env"], "properties": {"secret_env": {"not": {"type": "null"}}}},
        },
    ]

    prop("Checkout", "title")["pattern"] = r"^[^\u0000-\u001f\u007f]*$"
    prop("Checkout", "description")["pattern"] = r"^[^\u0000-\u0009\u000b-\u001f\u007f]*$"
    prop("Settlement", "iban")["pattern"] = _iban_pattern()
    prop("Settlement", "bic")["pattern"] = _bic_pattern()

    repo = r"^(?!\.\.?$)[A-Za-z0-9._-]{1,100}$"
    prop("GitHubSettings", "repository")["pattern"] = repo
    prop("GitHubSource", "repository")["pattern"] = repo
    repositories = defs["GitHubSettings"]["properties"]["repositories"]
    repositories["additionalProperties"]["pattern"] = repo
    repositories["propertyNames"] = {"enum": list(PLATFORMS)}
    prop("GitHubSettings", "token_env")["pattern"] = r"^(?=[A-Z][A-Z0-9_]{1,80}$).*_TOKEN$"
    prop("GitHubApp", "private_key_env")["pattern"] = r"^(?=[A-Z][A-Z0-9_]{1,80}$).*_PRIVATE_KEY$"
    prop("GitHubSettings", "base_url")["pattern"] = (
        rf"^(?:https://api\.github\.com|https://(?!api\.github\.com(?:[:/]|$)){_LOWER_HOST}{_PORT}/api/v3"
        rf"|http://(?:127\.0\.0\.1|localhost|\[::1\]){_PORT}/api/v3)/?$"
    )
    prop("GitHubSource", "base_branch")["pattern"] = (
        rf"^(?=[A-Za-z0-9._/-]{{1,100}}$)(?!.*\.\.){_GIT_PART}(?:/{_GIT_PART})*$"
    )
    defs["GitHubSettings"]["allOf"] = [_exactly_one("token_env", "app")]


def json_schema(i18n_dir: Path = REPO_I18N_DIR) -> dict[str, Any]:
    """The client config model as JSON Schema (2020-12), for editors: pydantic's schema plus every rule of
    the validators that JSON Schema can express. The locales are the catalogs shipped in `i18n_dir`; what
    only code can check is listed in CODE_ONLY_RULES."""
    schema = ClientConfig.model_json_schema()
    _tighten(schema, shipped_locales(i18n_dir))
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "client_config.schema.json"
    schema["title"] = "PSP client config"
    schema["$comment"] = "Checked by psp validate, not by this schema: " + "; ".join(CODE_ONLY_RULES) + "."
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

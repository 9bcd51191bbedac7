"""Publishing a built plugin as a GitHub release (PyGithub), safe to repeat and to retry.

One release per plugin build: the tag is `<client>-<platform>-v<plugin_version>-<build>`, so it names
exactly one reproducible artifact and never moves. The release carries three assets, uploaded in this
order: the archive, its manifest (sha256 of every file inside) and `SHA256SUMS` (`sha256sum -c`
format). `SHA256SUMS` goes last, so a consumer that waits for it never sees a half-published release.

Every step first reads what GitHub already has and only then writes, which makes each step safe to
run again: a release that exists is reused (also when a concurrent publisher wins the race and GitHub
answers 422 already_exists), an asset with the same size and sha256 is left alone, and an asset that
is partial (an upload cut off: state `starter`) or different is deleted and uploaded again. Because
the steps are idempotent, retrying them on 5xx answers, dropped connections and rate limits (waiting
for Retry-After or X-RateLimit-Reset, never longer than the policy allows) cannot duplicate anything.

Credentials never travel in configs: a client config names the environment variable holding a token
(`token_env`) or a GitHub App's private key (`app.private_key_env`), and the caller passes a lookup
that reads it. Values are used for the Authorization header only: they are not logged, not put in
errors or results, and PyGithub's own debug log is redacted while a publish runs.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import github
import jwt
import requests
import urllib3
from github import Auth, Github, GithubException

from .config import GitHubSettings
from .errors import PublishError
from .package import Artifact

DEFAULT_BASE_URL = "https://api.github.com"
SUMS_NAME = "SHA256SUMS"
_PYGITHUB_LOGGERS = ("github", "github.Requester", "github.GithubRetry")

SecretLookup = Callable[[str], str | None]
T = TypeVar("T")


# --- what to publish ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AssetFile:
    """One file of the release, held in memory (plugin archives are small)."""

    name: str
    data: bytes = field(repr=False)
    content_type: str

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class ReleasePlan:
    tag: str
    name: str
    body: str
    assets: tuple[AssetFile, ...]


def release_tag(client: str, platform: str, plugin_version: str, build: str) -> str:
    tag = f"{client}-{platform}-v{plugin_version}-{build}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}", tag):
        raise PublishError(f"{client}|{platform}: no valid git tag from version {plugin_version!r}, build {build!r}")
    return tag


def plan_release(artifact: Artifact, lineage: Mapping[str, Any] | None = None) -> ReleasePlan:
    """The release for one built artifact: tag, name, body and the three assets.

    The artifact's sha256 is checked against its file and manifest first: a changed or truncated
    archive is never published. `lineage` adds template_version/template_hash/config_hash to the body.
    """
    lineage = dict(lineage or {})
    try:
        doc = json.loads(artifact.manifest_path.read_text())
        data = artifact.path.read_bytes()
        manifest_bytes = artifact.manifest_path.read_bytes()
    except (OSError, ValueError) as exc:
        raise PublishError(f"{artifact.path}: artifact or manifest unreadable ({exc}); rebuild it") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != artifact.sha256 or doc.get("sha256") != artifact.sha256:
        raise PublishError(
            f"{artifact.path}: sha256 {digest} does not match the build ({artifact.sha256}) or its manifest "
            f"({doc.get('sha256')}); refusing to publish it, re-materialize built_artifact"
        )
    client, platform = doc["client"], doc["platform"]
    version, build = doc["plugin_version"], doc["build"]
    zip_asset = AssetFile(artifact.path.name, data, "application/zip")
    manifest_asset = AssetFile(artifact.manifest_path.name, manifest_bytes, "application/json")
    sums = "".join(f"{a.sha256}  {a.name}\n" for a in sorted((zip_asset, manifest_asset), key=lambda a: a.name))
    sums_asset = AssetFile(SUMS_NAME, sums.encode(), "text/plain")
    rows = [
        ("client", client),
        ("platform", platform),
        ("plugin version", version),
        ("build", build),
        ("release id", artifact.release_id),
        ("archive", f"{zip_asset.name} ({zip_asset.size} bytes)"),
        ("sha256", artifact.sha256),
        ("files in archive", str(len(artifact.manifest))),
    ]
    keys = ("template_version", "template_hash", "config_hash")
    rows += [(k.replace("_", " "), str(lineage[k])) for k in keys if k in lineage]
    body = "\n".join(
        [
            f"PSP payment plugin for **{client}** on **{platform}**, built by the PSP plugin platform.",
            "",
            "| | |",
            "|---|---|",
            *(f"| {k} | `{v}` |" for k, v in rows),
            "",
            f"Assets: the archive, `{manifest_asset.name}` (sha256 of every file inside) and `{SUMS_NAME}`,",
            f"uploaded last. Verify a download with `sha256sum -c {SUMS_NAME}`.",
            "",
        ]
    )
    return ReleasePlan(
        tag=release_tag(client, platform, version, build),
        name=f"{client} {platform} {version} (build {build})",
        body=body,
        assets=(zip_asset, manifest_asset, sums_asset),
    )


# --- where and as whom --------------------------------------------------------------------------


@dataclass(frozen=True)
class ReleaseTarget:
    organization: str
    repository: str
    base_url: str = DEFAULT_BASE_URL

    @property
    def full_name(self) -> str:
        return f"{self.organization}/{self.repository}"

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc or self.base_url


@dataclass(frozen=True)
class TokenCredentials:
    """A token (fine-grained or classic PAT, or any bearer token) read from environment variable `env`."""

    env: str

    def describe(self) -> str:
        return f"the token in ${self.env}"


@dataclass(frozen=True)
class AppCredentials:
    """A GitHub App installation: a JWT signed with the App's key buys a short-lived installation token."""

    app_id: int
    installation_id: int
    private_key_env: str

    def describe(self) -> str:
        return f"GitHub App {self.app_id} (installation {self.installation_id}, key in ${self.private_key_env})"


Credentials = TokenCredentials | AppCredentials


def credentials_for(settings: GitHubSettings) -> Credentials:
    """The credential a client's `github:` section names (a token variable or a GitHub App)."""
    if settings.app is not None:
        app = settings.app
        return AppCredentials(app.app_id, app.installation_id, app.private_key_env)
    assert settings.token_env is not None  # the config model requires exactly one of the two
    return TokenCredentials(settings.token_env)


def target_for(settings: GitHubSettings, platform: str) -> tuple[ReleaseTarget, Credentials]:
    """The repository and credentials a client's `github:` section names for one platform."""
    target = ReleaseTarget(settings.organization, settings.repository_for(platform), settings.api_base)
    return target, credentials_for(settings)


# --- what happened ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedAsset:
    name: str
    state: str  # uploaded | unchanged | replaced
    size: int
    sha256: str
    download_url: str


@dataclass(frozen=True)
class PublishResult:
    repository: str
    tag: str
    release_id: int
    release_url: str
    release_state: str  # created | reused
    assets: tuple[PublishedAsset, ...]
    retries: int
    waited_seconds: float

    @property
    def changed(self) -> bool:
        return self.release_state == "created" or any(a.state != "unchanged" for a in self.assets)

    def asset_rows(self) -> list[dict[str, Any]]:
        return [
            {"name": a.name, "state": a.state, "size": a.size, "sha256": a.sha256, "url": a.download_url}
            for a in self.assets
        ]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Rate-limit waits longer than `max_wait_seconds` fail at once, naming the reset."""

    attempts: int = 5
    backoff_seconds: float = 1.0  # doubled after each transient failure
    max_backoff_seconds: float = 30.0
    max_wait_seconds: float = 300.0
    secondary_wait_seconds: float = 60.0  # GitHub: wait at least a minute when no header says how long
    reset_margin_seconds: float = 1.0  # X-RateLimit-Reset has one-second resolution


# --- retry classification -----------------------------------------------------------------------


class _RetryNow(Exception):
    """A step saw the state change under it (e.g. 422 already_exists on upload); re-read and go again."""


_TRANSIENT_NETWORK = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)


def _header(exc: GithubException, name: str) -> str | None:
    headers = {str(k).lower(): v for k, v in (exc.headers or {}).items()}
    value = headers.get(name.lower())
    return None if value is None else str(value)


def _message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    text = str(data.get("message") or exc.message or "").strip()
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        text += " (" + "; ".join(json.dumps(e, sort_keys=True) if isinstance(e, dict) else str(e) for e in errors) + ")"
    return text or f"HTTP {exc.status}"


def _already_exists(exc: GithubException) -> bool:
    data = exc.data if isinstance(exc.data, dict) else {}
    errors = data.get("errors") or []
    return exc.status == 422 and any(isinstance(e, dict) and e.get("code") == "already_exists" for e in errors)


def _is_rate_limit(exc: GithubException) -> bool:
    if isinstance(exc, github.RateLimitExceededException) or exc.status == 429:
        return True
    if exc.status != 403:
        return False
    if _header(exc, "retry-after") is not None or _header(exc, "x-ratelimit-remaining") == "0":
        return True
    return "rate limit" in _message(exc).lower()


def _rate_limit_wait(exc: GithubException, policy: RetryPolicy, now: float) -> tuple[float, str]:
    retry_after = _header(exc, "retry-after")
    if retry_after is not None and retry_after.strip().isdigit():
        return float(retry_after), f"Retry-After: {retry_after} s"
    reset = _header(exc, "x-ratelimit-reset")
    if reset is not None and reset.strip().isdigit() and _header(exc, "x-ratelimit-remaining") == "0":
        at = datetime.fromtimestamp(int(reset), UTC).isoformat(timespec="seconds")
        return max(0.0, int(reset) - now) + policy.reset_margin_seconds, f"limit resets at {at}"
    return policy.secondary_wait_seconds, "secondary rate limit without a reset time"


# --- the publish --------------------------------------------------------------------------------


class _Redactor(logging.Filter):
    """Scrubs secrets out of PyGithub's debug log (it logs response bodies, e.g. installation tokens)."""

    _TOKEN_FIELD = re.compile(r"""(["']token["']\s*:\s*["'])[^"']+""")

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = self._TOKEN_FIELD.sub(r"\1(redacted)", text)
        for secret in self.secrets:
            clean = clean.replace(secret, "(redacted)")
        if clean != text:
            record.msg, record.args = clean, None
        return True


@contextmanager
def _redacted_pygithub_logs(secrets: list[str]) -> Iterator[None]:
    redactor = _Redactor(secrets)
    loggers = [logging.getLogger(name) for name in _PYGITHUB_LOGGERS]
    for lg in loggers:
        lg.addFilter(redactor)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(redactor)


RELEASE_PERMISSIONS = "contents: write"


def _read_secret(name: str, what: str, target: ReleaseTarget, secrets: SecretLookup, permissions: str) -> str:
    value = secrets(name)
    if not value or not value.strip():
        raise PublishError(
            f"{target.full_name}: environment variable {name} ({what}) is not set; set it where the Dagster runs "
            f"execute, to a credential allowed to write ({permissions}) on {target.full_name}"
        )
    return value.strip()


def _auth(
    credentials: Credentials, target: ReleaseTarget, secrets: SecretLookup, permissions: str = RELEASE_PERMISSIONS
) -> tuple[Auth.Auth, list[str]]:
    if isinstance(credentials, TokenCredentials):
        token = _read_secret(credentials.env, "github.token_env", target, secrets, permissions)
        return Auth.Token(token), [token]
    key = _read_secret(credentials.private_key_env, "github.app.private_key_env", target, secrets, permissions)
    if "\\n" in key and "\n" not in key:
        key = key.replace("\\n", "\n")  # keys pasted into one-line secret stores
    if "PRIVATE KEY-----" not in key:
        raise PublishError(
            f"{target.full_name}: {credentials.private_key_env} does not hold a PEM private key "
            "(expected '-----BEGIN RSA PRIVATE KEY-----' ...); paste the .pem file GitHub generated for the App"
        )
    app = Auth.AppAuth(credentials.app_id, key)
    try:
        app.create_jwt()  # fail here, clearly, rather than inside the first request
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        # the library's text is not repeated: it may quote the key
        raise PublishError(
            f"{target.full_name}: the private key in {credentials.private_key_env} could not sign a JWT "
            f"({type(exc).__name__}); paste the App's .pem file unchanged"
        ) from None
    return Auth.AppInstallationAuth(app, credentials.installation_id), [key]


@contextmanager
def github_session(
    target: ReleaseTarget,
    credentials: Credentials,
    secrets: SecretLookup,
    *,
    permissions: str = RELEASE_PERMISSIONS,
    timeout_seconds: int = 30,
    seconds_between_requests: float = 0.25,
    seconds_between_writes: float = 1.0,
) -> Iterator[Github]:
    """A PyGithub client for `target`, authenticated as `credentials`, with PyGithub's log redacted.

    PyGithub's own retry is off: callers retry per idempotent step (GitHubSteps.step), never inside a
    request that may have taken effect."""
    auth, secret_values = _auth(credentials, target, secrets, permissions)
    gh = Github(
        base_url=target.base_url.rstrip("/"),
        auth=auth,
        timeout=timeout_seconds,
        retry=None,
        user_agent="psp-plugin-platform",
        seconds_between_requests=seconds_between_requests,
        seconds_between_writes=seconds_between_writes,
    )
    try:
        with _redacted_pygithub_logs(secret_values):
            yield gh
    finally:
        gh.close()


class GitHubSteps:
    """Runs idempotent steps against one repository: 5xx answers, dropped connections and rate limits
    are retried within the RetryPolicy; any other answer becomes a PublishError saying what to do.
    Subclasses say where they are (`where`) and what the credential needs (`permissions`)."""

    permissions = RELEASE_PERMISSIONS
    repository_field = "github.repository"

    def __init__(
        self,
        target: ReleaseTarget,
        credentials: Credentials,
        policy: RetryPolicy,
        log: Callable[[str], None],
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        self.target, self.credentials = target, credentials
        self.policy, self.log, self.sleep, self.clock = policy, log, sleep, clock
        self.retries = 0
        self.waited = 0.0

    @property
    def where(self) -> str:
        return f"{self.target.full_name} at {self.target.host}"

    def _fail(self, what: str, exc: GithubException) -> PublishError:
        status, msg = exc.status, _message(exc)
        who = self.credentials.describe()
        if status == 401:
            hint = f"GitHub rejected {who} ({msg}); replace it with a valid credential"
        elif status == 403:
            hint = f"{who} may not {what} ({msg}); it needs '{self.permissions}' on {self.target.full_name}"
        elif status == 404:
            hint = (
                f"not found while trying to {what} ({msg}): check github.organization / {self.repository_field} "
                f"and that {who} can see {self.target.full_name}"
            )
        elif status == 422 and "release" in what:
            hint = (
                f"GitHub refused to {what} ({msg}); GitHub makes the tag from the default branch, so an empty "
                "repository needs a first commit"
            )
        else:
            hint = f"could not {what}: HTTP {status} {msg}"
        return PublishError(f"{self.where}: {hint}")

    def step(self, what: str, fn: Callable[[], T]) -> T:
        """Run an idempotent step; retry it on transient failures and rate limits, within the policy."""
        delay = self.policy.backoff_seconds
        for attempt in range(1, self.policy.attempts + 1):
            last = attempt == self.policy.attempts
            try:
                return fn()
            except _RetryNow as exc:
                if last:
                    raise PublishError(f"{self.where}: {what}: GitHub kept changing ({exc}); run again") from None
                self.retries += 1
                self.log(f"{what}: {exc}; re-reading and trying again")
                continue
            except GithubException as exc:
                if _is_rate_limit(exc):
                    wait, why = _rate_limit_wait(exc, self.policy, self.clock())
                    if wait > self.policy.max_wait_seconds:
                        raise PublishError(
                            f"{self.where}: rate limited while trying to {what} ({why}, {math.ceil(wait)} s away, "
                            f"more than the {self.policy.max_wait_seconds:g} s this run may wait); run again after "
                            "the reset, or give this organization a GitHub App (higher limits)"
                        ) from None
                    reason = f"rate limited ({why})"
                elif exc.status >= 500:
                    wait, reason = min(delay, self.policy.max_backoff_seconds), f"HTTP {exc.status} {_message(exc)}"
                    delay *= 2
                else:
                    raise self._fail(what, exc) from None
            except _TRANSIENT_NETWORK as exc:
                wait, reason = min(delay, self.policy.max_backoff_seconds), f"connection failed ({type(exc).__name__})"
                delay *= 2
            if last:
                raise PublishError(
                    f"{self.where}: gave up trying to {what} after {self.policy.attempts} attempts, last: {reason}; "
                    "nothing half-done is kept as good (a later run re-checks and repairs), run again later"
                )
            self.retries += 1
            self.log(f"{what}: {reason}; attempt {attempt + 1}/{self.policy.attempts} in {wait:.1f} s")
            if wait > 0:
                self.sleep(wait)
                self.waited += wait
        raise AssertionError("unreachable")


class _Publisher(GitHubSteps):
    def __init__(
        self,
        plan: ReleasePlan,
        target: ReleaseTarget,
        credentials: Credentials,
        gh: Github,
        policy: RetryPolicy,
        log: Callable[[str], None],
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        super().__init__(target, credentials, policy, log, sleep, clock)
        self.plan, self.gh = plan, gh

    @property
    def where(self) -> str:
        """Every message starts with org/repo, server and tag, so an operator knows what to look at."""
        return f"{self.target.full_name} at {self.target.host}, tag {self.plan.tag}"

    # --- the idempotent steps ---

    def open_repository(self) -> Any:
        return self.step(f"open {self.target.full_name}", lambda: self.gh.get_repo(self.target.full_name))

    def ensure_release(self, repo: Any) -> tuple[Any, str]:
        tried_create = False  # a create answered with 5xx may still have taken effect: then it is ours

        def attempt() -> tuple[Any, str]:
            nonlocal tried_create
            try:
                return repo.get_release(self.plan.tag), "created" if tried_create else "reused"
            except github.UnknownObjectException:
                pass
            tried_create = True
            try:
                release = repo.create_git_release(
                    self.plan.tag, name=self.plan.name, message=self.plan.body, make_latest="legacy"
                )
                return release, "created"
            except GithubException as exc:
                if not _already_exists(exc):
                    raise
            # someone else created it between our look and our create: fetch theirs and reuse it
            self.log(f"release {self.plan.tag} was created concurrently (422 already_exists); reusing it")
            tried_create = False
            return repo.get_release(self.plan.tag), "reused"

        return self.step(f"create or find release {self.plan.tag}", attempt)

    def _remote_sha256(self, remote: Any) -> str | None:
        digest = remote.digest  # GitHub reports "sha256:<hex>"; older Enterprise servers report nothing
        if digest:
            algo, _, value = str(digest).partition(":")
            return value.lower() if algo.lower() == "sha256" else None
        status, _headers, chunks = remote.download_asset(chunk_size=1 << 16)
        if status >= 400:
            raise GithubException(status, {"message": f"downloading {remote.name} failed"}, _headers)
        h = hashlib.sha256()
        for chunk in chunks:
            h.update(chunk)
        return h.hexdigest()

    def _mismatch(self, remote: Any, asset: AssetFile) -> str | None:
        if remote.state != "uploaded":
            return f"a partial upload (state {remote.state}, {remote.size} of {asset.size} bytes)"
        if remote.size != asset.size:
            return f"a different file ({remote.size} bytes, expected {asset.size})"
        remote_sha = self._remote_sha256(remote)
        if remote_sha != asset.sha256:
            return f"a different file (sha256 {remote_sha}, expected {asset.sha256})"
        return None

    def ensure_asset(self, release: Any, asset: AssetFile) -> PublishedAsset:
        replaced = tried_upload = False

        def state() -> str:
            return "replaced" if replaced else "uploaded" if tried_upload else "unchanged"

        def attempt() -> PublishedAsset:
            nonlocal replaced, tried_upload
            for remote in release.get_assets():
                if remote.name != asset.name:
                    continue
                problem = self._mismatch(remote, asset)
                if problem is None:
                    return PublishedAsset(asset.name, state(), asset.size, asset.sha256, remote.browser_download_url)
                self.log(f"{asset.name}: GitHub has {problem}; deleting it and uploading again")
                with suppress(github.UnknownObjectException):  # already gone is fine
                    remote.delete_asset()
                replaced = True
            tried_upload = True
            try:
                uploaded = release.upload_asset_from_memory(
                    io.BytesIO(asset.data), asset.size, asset.name, content_type=asset.content_type
                )
            except GithubException as exc:
                if _already_exists(exc):
                    raise _RetryNow(f"{asset.name} appeared while uploading (422 already_exists)") from None
                raise
            if uploaded.state != "uploaded" or uploaded.size != asset.size:
                replaced = True  # whatever is left there gets deleted on the next attempt
                raise _RetryNow(f"{asset.name} ended as state {uploaded.state}, {uploaded.size} of {asset.size} bytes")
            self.log(f"{asset.name}: {state()} ({asset.size} bytes, sha256 {asset.sha256[:12]})")
            return PublishedAsset(asset.name, state(), asset.size, asset.sha256, uploaded.browser_download_url)

        return self.step(f"upload {asset.name}", attempt)

    def run(self) -> PublishResult:
        repo = self.open_repository()
        release, release_state = self.ensure_release(repo)
        self.log(f"release {self.plan.tag}: {release_state} ({release.html_url})")
        assets = tuple(self.ensure_asset(release, a) for a in self.plan.assets)
        return PublishResult(
            repository=self.target.full_name,
            tag=self.plan.tag,
            release_id=release.id,
            release_url=release.html_url,
            release_state=release_state,
            assets=assets,
            retries=self.retries,
            waited_seconds=round(self.waited, 3),
        )


def publish_release(
    plan: ReleasePlan,
    target: ReleaseTarget,
    credentials: Credentials,
    *,
    secrets: SecretLookup = os.environ.get,
    policy: RetryPolicy | None = None,
    timeout_seconds: int = 30,
    seconds_between_requests: float = 0.25,
    seconds_between_writes: float = 1.0,
    log: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> PublishResult:
    """Create or reuse the release `plan.tag` in `target` and make its assets match `plan`.

    `secrets` reads an environment variable by name (the Dagster resource passes dg.EnvVar's reader).
    Raises PublishError naming org/repo, tag and what to do; never includes a credential value.
    """
    policy = policy or RetryPolicy()
    with github_session(
        target,
        credentials,
        secrets,
        timeout_seconds=timeout_seconds,
        seconds_between_requests=seconds_between_requests,
        seconds_between_writes=seconds_between_writes,
    ) as gh:
        return _Publisher(plan, target, credentials, gh, policy, log or (lambda _m: None), sleep, clock).run()


def publish_artifact(
    artifact: Artifact,
    settings: GitHubSettings,
    platform: str,
    lineage: Mapping[str, Any] | None = None,
    **options: Any,
) -> PublishResult:
    """Plan and publish one artifact where the client's `github:` section says (see publish_release)."""
    target, credentials = target_for(settings, platform)
    return publish_release(plan_release(artifact, lineage), target, credentials, **options)

"""The GitHub session shared by releases and client repositories: where and as whom (targets, token or App
credentials read through the secret lookup), the retry policy and its classification of GitHub's answers
(rate limits, transient network errors, "already exists"), and PyGithub's logs with secrets redacted."""

from __future__ import annotations

import http.client
import json
import logging
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import urlsplit

import github
import jwt
import requests
import urllib3
from github import Auth, Github, GithubException

from psp_assets.core.config.model import GitHubSettings
from psp_assets.core.errors import PublishError

DEFAULT_BASE_URL = "https://api.github.com"
_PYGITHUB_LOGGERS = ("github", "github.Requester", "github.GithubRetry")
SecretLookup = Callable[[str], str | None]
T = TypeVar("T")


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


class RetryNow(Exception):
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


def error_message(exc: GithubException) -> str:
    data = exc.data if isinstance(exc.data, dict) else {}
    text = str(data.get("message") or exc.message or "").strip()
    errors = data.get("errors")
    if isinstance(errors, list) and errors:
        text += " (" + "; ".join(json.dumps(e, sort_keys=True) if isinstance(e, dict) else str(e) for e in errors) + ")"
    return text or f"HTTP {exc.status}"


def already_exists(exc: GithubException) -> bool:
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
    return "rate limit" in error_message(exc).lower()


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
        status, msg = exc.status, error_message(exc)
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
            except RetryNow as exc:
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
                    wait = min(delay, self.policy.max_backoff_seconds)
                    reason = f"HTTP {exc.status} {error_message(exc)}"
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

"""The HTTP health gate run after every switch: the storefront answers, and the plugin reports exactly
the release that was deployed. Any failure beyond the tolerated count means rollback."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from .deploy import HealthResult

# Output a PHP store shows when a plugin broke it (PHP's own messages and WordPress' recovery page).
FATAL_MARKERS = re.compile(
    r"(Fatal error|Parse error|Uncaught (Error|Exception|TypeError)|There has been a critical error on this website)",
    re.I,
)
MAX_BODY = 2 * 1024 * 1024


@dataclass(frozen=True)
class GateSettings:
    store_url: str
    health_url: str
    count: int = 3
    interval_seconds: float = 1.0
    failure_limit: int = 0
    timeout_seconds: float = 5.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a redirect is an answer to judge, not to follow
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def fetch(url: str, timeout: float) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"User-Agent": "psp-deploy-health/1", "Cache-Control": "no-cache"})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read(MAX_BODY).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(MAX_BODY).decode("utf-8", "replace")


def check_round(
    settings: GateSettings, version: str | None, build: str | None, get: Callable[[str, float], tuple[int, str]] = fetch
) -> tuple[str, str]:
    """One round of checks: ('', '') when healthy, else (what was wrong, blame).

    Blame is "release" when the store shows the release broke it (HTTP 5xx, PHP error output) and
    "environment" when the store could not be asked or answers like a cache or routing problem (no answer,
    4xx, a different version): those roll back too, but the release is not marked bad.
    """
    for what, url in (("storefront", settings.store_url), ("health route", settings.health_url)):
        problem, blame, body = _probe(what, url, settings.timeout_seconds, get)
        if problem:
            return problem, blame
    try:
        report = json.loads(body)
    except ValueError:
        return f"health route {settings.health_url}: not JSON ({body[:80]!r})", "environment"
    got = (str(report.get("version")), str(report.get("build")))
    if version is not None and got != (version, build):
        return f"health route reports {got[0]} build {got[1]}, expected {version} build {build}", "environment"
    return "", ""


def _probe(
    what: str, url: str, timeout: float, get: Callable[[str, float], tuple[int, str]]
) -> tuple[str, str, str]:
    """GET one URL: (problem, blame, body); the problem is '' when it answered 200 without PHP errors."""
    try:
        status, body = get(url, timeout)
    except (OSError, TimeoutError) as exc:
        return f"{what} {url}: no answer ({exc})", "environment", ""
    if marker := FATAL_MARKERS.search(body):
        return f"{what} {url}: HTTP {status} with PHP error output ({marker.group(0)!r})", "release", body
    if status != 200:
        return f"{what} {url}: HTTP {status}", "release" if status >= 500 else "environment", body
    return "", "", body


def http_gate(
    settings: GateSettings,
    version: str | None,
    build: str | None,
    get: Callable[[str, float], tuple[int, str]] = fetch,
    sleep: Callable[[float], None] = time.sleep,
) -> HealthResult:
    failures: list[str] = []
    blames: set[str] = set()
    for round_no in range(settings.count):
        if round_no:
            sleep(settings.interval_seconds)
        problem, blame = check_round(settings, version, build, get)
        if problem:
            failures.append(f"round {round_no + 1}: {problem}")
            blames.add(blame)
            if len(failures) > settings.failure_limit:
                return HealthResult(False, "; ".join(failures), "release" if "release" in blames else "environment")
    tolerated = f" ({len(failures)} tolerated: {'; '.join(failures)})" if failures else ""
    return HealthResult(
        True,
        f"{settings.count} rounds: storefront 200, health reports {version or 'a version'} "
        f"build {build or '(not compared)'}{tolerated}",
    )

"""The HTTP health gate run after every switch: the storefront answers, and the plugin reports exactly
the release that was deployed.

Each round is healthy, failed (the store shows the release broke it: a 5xx, PHP error output) or
inconclusive (no answer, a timeout, a 4xx, another version reported). As in Argo Rollouts' analysis,
failed and inconclusive rounds are counted apart against `failure_limit` and `inconclusive_limit`;
going over either ends the gate unhealthy. The whole gate has one deadline, and every request's total
time (connect, headers, body) is bounded by what is left of it, so a store trickling its answer one byte
at a time cannot hold a deploy (and its lock) longer than that."""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from psp_assets.core.deploy.release import HealthResult

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
    inconclusive_limit: int = 0
    deadline_seconds: float = 60.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a redirect is an answer to judge, not to follow
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def fetch(url: str, timeout: float) -> tuple[int, str]:
    """GET `url`; `timeout` bounds the whole request, the body included (TimeoutError past it)."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"User-Agent": "psp-deploy-health/1", "Cache-Control": "no-cache"})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, _read_body(response, deadline)
    except urllib.error.HTTPError as exc:
        return exc.code, _read_body(exc, deadline)


def _read_body(response: Any, deadline: float) -> str:
    if isinstance(response, urllib.error.HTTPError) and response.fp is not None:
        response = response.fp
    body = bytearray()
    while len(body) < MAX_BODY:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the answer took longer than the request timeout ({len(body)} bytes read)")
        with contextlib.suppress(AttributeError, OSError):
            response.fp.raw._sock.settimeout(left)  # each socket read waits at most what is left
        chunk = response.read1(min(65536, MAX_BODY - len(body))) if hasattr(response, "read1") else response.read()
        if not chunk:
            break
        body += chunk
    return body.decode("utf-8", "replace")


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


def _probe(what: str, url: str, timeout: float, get: Callable[[str, float], tuple[int, str]]) -> tuple[str, str, str]:
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
    clock: Callable[[], float] = time.monotonic,
) -> HealthResult:
    deadline = clock() + settings.deadline_seconds
    failed: list[str] = []
    inconclusive: list[str] = []
    for round_no in range(settings.count):
        if round_no:
            sleep(max(0.0, min(settings.interval_seconds, deadline - clock())))
        left = deadline - clock()
        if left <= 0:
            return HealthResult(
                False,
                f"gate deadline of {settings.deadline_seconds:g} s reached after {round_no} of {settings.count} rounds"
                + (f" ({'; '.join(failed + inconclusive)})" if failed or inconclusive else ""),
                "release" if failed else "environment",
            )
        bounded = replace(settings, timeout_seconds=min(settings.timeout_seconds, left))
        problem, blame = check_round(bounded, version, build, get)
        if problem:
            (failed if blame == "release" else inconclusive).append(f"round {round_no + 1}: {problem}")
            if len(failed) > settings.failure_limit:
                return HealthResult(False, "; ".join(failed + inconclusive), "release")
            if len(inconclusive) > settings.inconclusive_limit:
                return HealthResult(False, "; ".join(failed + inconclusive), "release" if failed else "environment")
    tolerated = failed + inconclusive
    note = f" ({len(tolerated)} tolerated: {'; '.join(tolerated)})" if tolerated else ""
    return HealthResult(
        True,
        f"{settings.count} rounds: storefront 200, health reports {version or 'a version'} "
        f"build {build or '(not compared)'}{note}",
    )

"""Alerts: one shape for every reason to wake someone (a KPI breach, a failed run, a failed check), and
its delivery to Slack (Web API `chat.postMessage`) and email (SMTP).

The Dagster layer builds an `Alert` from whatever happened and hands it to `deliver`; the channels know
nothing about Dagster. Secrets (bot token, SMTP password) are passed in by the caller, never logged.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Literal, Protocol

from psp_assets.core.errors import AlertError
from psp_assets.core.reconciliation.kpis import Breach

Severity = Literal["critical", "warning", "info"]
_ICON = {"critical": ":red_circle:", "warning": ":large_orange_circle:", "info": ":information_source:"}


@dataclass(frozen=True)
class Alert:
    kind: Literal["kpi_breach", "run_failure", "check_failure", "deploy_failure", "kpi_rollback"]
    severity: Severity
    title: str
    summary: str
    facts: tuple[tuple[str, str], ...] = ()
    link: str | None = None
    dedupe_key: str = ""
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def text(self) -> str:
        lines = [f"[{self.severity.upper()}] {self.title}", self.summary]
        lines += [f"{k}: {v}" for k, v in self.facts]
        if self.link:
            lines.append(f"Open in Dagster: {self.link}")
        return "\n".join(lines)

    def slack_blocks(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = [
            {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"{_ICON[self.severity]} {_mrkdwn(self.summary)}"}},
        ]
        if self.facts:
            fields = [{"type": "mrkdwn", "text": f"*{_mrkdwn(k)}*\n{_mrkdwn(v)}"} for k, v in self.facts[:10]]
            blocks.append({"type": "section", "fields": fields})
        if self.link:
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"<{self.link}|Open in Dagster>"}})
        return blocks

    def email(self, sender: str, recipients: Sequence[str]) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = f"[{self.severity.upper()}] {self.title}"
        message["From"] = sender
        message["To"] = ", ".join(recipients)
        message["Date"] = formatdate(self.occurred_at.timestamp(), usegmt=True)
        message["Message-ID"] = make_msgid(domain="psp-platform")
        message["X-PSP-Alert-Kind"] = self.kind
        if self.dedupe_key:
            message["X-PSP-Alert-Key"] = self.dedupe_key
        message.set_content(self.text())
        return message


def _mrkdwn(text: str) -> str:
    """Slack's three control characters escaped, so data never becomes markup or a mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- building alerts --------------------------------------------------------------------------------


def run_link(base_url: str | None, run_id: str) -> str | None:
    return f"{base_url.rstrip('/')}/runs/{run_id}" if base_url else None


def kpi_alerts(found: Iterable[Breach], link: str | None = None) -> list[Alert]:
    """One alert per client x platform x hour, listing every KPI out of its limits."""
    grouped: dict[tuple[str, str, datetime], list[Breach]] = {}
    for breach in found:
        grouped.setdefault((breach.client_id, breach.platform, breach.hour), []).append(breach)
    alerts = []
    for (client, platform, hour), items in sorted(grouped.items()):
        kpis = ", ".join(b.kpi for b in items)
        alerts.append(
            Alert(
                kind="kpi_breach",
                severity="critical" if any(b.kpi in ("authorization_rate", "error_rate") for b in items) else "warning",
                title=f"Payment KPIs out of limits: {client}|{platform} at {hour:%Y-%m-%d %H:00} UTC",
                summary="; ".join(b.describe() for b in items),
                facts=(
                    ("client", client),
                    ("platform", platform),
                    ("hour", f"{hour:%Y-%m-%d %H:00} UTC"),
                    ("kpis", kpis),
                    ("attempts", str(items[0].attempts)),
                ),
                link=link,
                dedupe_key=f"kpi|{client}|{platform}|{hour:%Y%m%d%H}",
            )
        )
    return alerts


def run_failure_alert(
    job_name: str,
    run_id: str,
    error: str,
    partition: str | None = None,
    steps: Sequence[str] = (),
    base_url: str | None = None,
) -> Alert:
    facts = [("job", job_name), ("run", run_id)]
    if partition:
        facts.append(("partition", partition))
    if steps:
        facts.append(("failed steps", ", ".join(steps)))
    return Alert(
        kind="run_failure",
        severity="critical",
        title=f"Run failed: {job_name}" + (f" [{partition}]" if partition else ""),
        summary=error.strip()[:1500] or "the run failed without an error message",
        facts=tuple(facts),
        link=run_link(base_url, run_id),
        dedupe_key=f"run|{run_id}",
    )


def check_failure_alert(
    asset: str,
    check: str,
    run_id: str,
    partition: str | None = None,
    description: str = "",
    facts: Sequence[tuple[str, str]] = (),
    severity: Severity = "critical",
    base_url: str | None = None,
) -> Alert:
    where = f"{asset}" + (f"[{partition}]" if partition else "")
    return Alert(
        kind="check_failure",
        severity=severity,
        title=f"Check failed: {check} on {where}",
        summary=description.strip()[:1500] or f"{check} did not pass",
        facts=(
            ("asset", asset),
            ("check", check),
            *((("partition", partition),) if partition else ()),
            ("run", run_id),
            *facts,
        ),
        link=run_link(base_url, run_id),
        dedupe_key=f"check|{asset}|{check}|{partition or ''}|{run_id}",
    )


def deploy_failure_alert(
    partition: str,
    target: dict[str, Any],
    run_id: str,
    job_name: str,
    base_url: str | None = None,
) -> Alert:
    """One store target whose deploy failed, as deployed_store and the fleet rollout record it (`target`:
    target, health, rolled_back, deployed_version, error, steps)."""
    name = str(target.get("target", "?"))
    unhealthy = target.get("health") == "unhealthy"
    failed_steps = [str(s) for s in target.get("steps") or [] if "FAILED" in str(s)]
    detail = str(target.get("error") or "") or "; ".join(failed_steps) or "the deploy did not complete"
    serving = target.get("deployed_version") or "nothing (no release live)"
    outcome = f"rolled back, the store serves {serving}" if target.get("rolled_back") else f"the store serves {serving}"
    return Alert(
        kind="deploy_failure",
        severity="critical",
        title=f"{'Deploy health check failed' if unhealthy else 'Deploy failed'}: {partition} {name}",
        summary=f"{detail.strip()[:1400]} ({outcome})",
        facts=(
            ("partition", partition),
            ("target", name),
            ("health", str(target.get("health", ""))),
            ("store serves", str(serving)),
            ("job", job_name),
            ("run", run_id),
        ),
        link=run_link(base_url, run_id),
        dedupe_key=f"deploy|{partition}|{name}|{run_id}",
    )


# --- delivery ---------------------------------------------------------------------------------------


class Channel(Protocol):
    name: str

    def send(self, alert: Alert) -> str: ...


@dataclass
class SlackChannel:
    """Slack Web API chat.postMessage through slack_sdk's WebClient (base_url may point at a proxy or a
    test server)."""

    client: Any  # slack_sdk.WebClient
    channel: str
    name: str = "slack"

    def send(self, alert: Alert) -> str:
        from slack_sdk.errors import SlackApiError

        try:
            response = self.client.chat_postMessage(
                channel=self.channel, text=alert.text(), blocks=alert.slack_blocks()
            )
        except SlackApiError as exc:
            error = exc.response.get("error") if exc.response is not None else str(exc)
            raise AlertError(f"slack channel {self.channel}: chat.postMessage failed: {error}") from None
        except OSError as exc:
            raise AlertError(f"slack channel {self.channel}: chat.postMessage unreachable: {exc}") from None
        return f"slack {self.channel} ts={response.get('ts')}"


@dataclass
class EmailChannel:
    host: str
    port: int
    sender: str
    recipients: Sequence[str]
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str = ""
    password: str = ""
    timeout: float = 15.0
    name: str = "email"
    ssl_context: ssl.SSLContext | None = None

    def send(self, alert: Alert) -> str:
        if not self.recipients:
            raise AlertError("email: no recipients configured")
        message = alert.email(self.sender, self.recipients)
        context = self.ssl_context or ssl.create_default_context()
        try:
            if self.security == "ssl":
                server: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
            else:
                server = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with server:
                if self.security == "starttls":
                    server.starttls(context=context)
                if self.username:
                    server.login(self.username, self.password)
                refused = server.send_message(message)
        except (smtplib.SMTPException, OSError) as exc:
            raise AlertError(
                f"email via {self.host}:{self.port} ({self.security}): {exc.__class__.__name__}: {exc}"
            ) from None
        if refused:
            raise AlertError(f"email via {self.host}:{self.port}: refused recipients {', '.join(refused)}")
        return f"email to {', '.join(self.recipients)}"


@dataclass(frozen=True)
class Delivery:
    channel: str
    ok: bool
    detail: str


def deliver(alert: Alert, channels: Iterable[Channel]) -> list[Delivery]:
    """Send to every channel; one channel failing never stops the others."""
    results = []
    for channel in channels:
        try:
            results.append(Delivery(channel.name, True, channel.send(alert)))
        except AlertError as exc:
            results.append(Delivery(channel.name, False, str(exc)))
    return results

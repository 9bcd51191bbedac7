import json
import os
from pathlib import Path

import dagster as dg
from dagster_slack import SlackResource
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from psp_assets.core.alerts import Alert, Channel, Delivery, EmailChannel, SlackChannel, deliver
from psp_assets.core.workspace import Paths


class SlackAlertResource(SlackResource):
    """dagster-slack's SlackResource with the channel alerts go to and the Web API base URL (Slack's own
    unless a proxy or, in tests, a local server stands in). An empty token disables Slack."""

    channel: str = ""
    base_url: str = "https://slack.com/api/"

    def get_client(self) -> WebClient:
        client = WebClient(self.token, base_url=self.base_url)
        client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
        return client


class AlertsResource(dg.ConfigurableResource):
    """Where alerts go: Slack (chat.postMessage) and email (SMTP), each on when configured, plus a local
    JSON-lines log of every alert and its deliveries (under PSP_DATA_DIR/alerts unless `log_path`)."""

    slack: SlackAlertResource = SlackAlertResource(token="")
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_security: str = "starttls"
    smtp_username: str = ""
    smtp_password: str = ""
    email_from: str = ""
    email_to: list[str] = []
    webserver_base_url: str = ""
    log_path: str = ""

    def channels(self) -> list[Channel]:
        out: list[Channel] = []
        if self.slack.token and self.slack.channel:
            out.append(SlackChannel(self.slack.get_client(), self.slack.channel))
        if self.smtp_host and self.email_to:
            security = self.smtp_security if self.smtp_security in ("starttls", "ssl", "none") else "starttls"
            out.append(
                EmailChannel(
                    host=self.smtp_host,
                    port=self.smtp_port,
                    sender=self.email_from or "psp-alerts@localhost",
                    recipients=list(self.email_to),
                    security=security,  # type: ignore[arg-type]
                    username=self.smtp_username,
                    password=self.smtp_password,
                )
            )
        return out

    def send(self, alert: Alert) -> list[Delivery]:
        deliveries = deliver(alert, self.channels())
        path = Path(self.log_path) if self.log_path else Paths.from_env().data_dir / "alerts" / "alerts.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as log:
            log.write(
                json.dumps(
                    {
                        "alert": {**alert.__dict__, "occurred_at": alert.occurred_at.isoformat()},
                        "deliveries": [d.__dict__ for d in deliveries],
                    },
                    default=str,
                )
                + "\n"
            )
        return deliveries


def _env(name: str) -> dg.EnvVar | str:
    """The secret through dg.EnvVar when the deployment sets it; empty (channel off) when it doesn't."""
    return dg.EnvVar(name) if os.environ.get(name) else ""


def alerts_from_env() -> AlertsResource:
    """Alert channels as a deployment configures them (docs/reconciliation.md, "Alerts"). Secrets resolve
    through dg.EnvVar at run time; the other settings are plain environment values."""
    env = os.environ
    return AlertsResource(
        slack=SlackAlertResource(
            token=_env("PSP_SLACK_BOT_TOKEN"),
            channel=env.get("PSP_SLACK_CHANNEL", ""),
            base_url=env.get("PSP_SLACK_API_URL", "https://slack.com/api/"),
        ),
        smtp_host=env.get("PSP_SMTP_HOST", ""),
        smtp_port=int(env.get("PSP_SMTP_PORT", "587")),
        smtp_security=env.get("PSP_SMTP_SECURITY", "starttls"),
        smtp_username=env.get("PSP_SMTP_USERNAME", ""),
        smtp_password=_env("PSP_SMTP_PASSWORD"),
        email_from=env.get("PSP_ALERT_EMAIL_FROM", ""),
        email_to=[a.strip() for a in env.get("PSP_ALERT_EMAIL_TO", "").split(",") if a.strip()],
        webserver_base_url=env.get("PSP_DAGSTER_URL", ""),
    )

from collections.abc import Callable
from typing import Any

import dagster as dg
from pydantic import Field

from psp_assets.core.config.model import GitHubSettings
from psp_assets.core.errors import PublishError
from psp_assets.core.github.client_repo import SourcePlan, SourceResult, publish_source, source_target_for
from psp_assets.core.github.releases import PublishResult, publish_artifact
from psp_assets.core.github.session import RetryPolicy
from psp_assets.core.package import Artifact

PUBLISH_ENV = "PSP_GITHUB_PUBLISH"
_ON, _OFF = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")


def _read_env(name: str) -> str | None:
    # Every credential is read through dg.EnvVar, by the name the client config gives, at run time:
    # values are never resource fields, run config, log lines or metadata.
    return dg.EnvVar(name).get_value()


class GitHubPublisher(dg.ConfigurableResource):
    """Publishes built plugins as GitHub releases, and their source as pull requests to the client's
    repository (`github.source`), where each client's `github:` section says.

    Publishing is off unless PSP_GITHUB_PUBLISH=1 (or `publish: true` here), so a laptop or the demo
    never reaches for GitHub; a client without a `github:` section is never published. Tokens and App
    keys come from the environment variables the client config names, read through dg.EnvVar.
    """

    publish: bool | None = Field(None, description="None: follow the PSP_GITHUB_PUBLISH environment variable.")
    attempts: int = Field(5, ge=1, le=20, description="Tries per step on 5xx, dropped connections, rate limits.")
    max_wait_seconds: float = Field(300.0, ge=0, description="Longest rate-limit wait; longer fails the run.")
    backoff_seconds: float = Field(1.0, ge=0, description="First pause after a 5xx; doubled each time.")
    timeout_seconds: int = Field(30, ge=1, le=600, description="Per-request timeout.")
    seconds_between_requests: float = Field(0.25, ge=0, description="Pause between API calls (GitHub's guidance).")
    seconds_between_writes: float = Field(1.0, ge=0, description="Pause between writes (GitHub's guidance).")

    def enabled(self) -> bool:
        if self.publish is not None:
            return self.publish
        raw = (dg.EnvVar(PUBLISH_ENV).get_value() or "").strip().lower()
        if raw in _ON:
            return True
        if raw in _OFF:
            return False
        raise PublishError(f"{PUBLISH_ENV}={raw!r}: expected 1 (publish releases) or 0 (do not publish)")

    def _pacing(self) -> dict[str, Any]:
        """How both publishing calls talk to GitHub: credentials through dg.EnvVar, retries, pauses."""
        return {
            "secrets": _read_env,
            "policy": self.policy(),
            "timeout_seconds": self.timeout_seconds,
            "seconds_between_requests": self.seconds_between_requests,
            "seconds_between_writes": self.seconds_between_writes,
        }

    def policy(self) -> RetryPolicy:
        return RetryPolicy(
            attempts=self.attempts, backoff_seconds=self.backoff_seconds, max_wait_seconds=self.max_wait_seconds
        )

    def publish_artifact(
        self,
        artifact: Artifact,
        settings: GitHubSettings,
        platform: str,
        lineage: dict[str, Any],
        log: Callable[[str], None],
    ) -> PublishResult:
        return publish_artifact(
            artifact,
            settings,
            platform,
            lineage,
            log=log,
            **self._pacing(),
        )

    def publish_source(self, plan: SourcePlan, settings: GitHubSettings, log: Callable[[str], None]) -> SourceResult:
        target, credentials = source_target_for(settings)
        return publish_source(
            plan,
            target,
            credentials,
            log=log,
            **self._pacing(),
        )

"""One exception type per domain. Messages name the file, field or target, what was wrong, and what
would be right, so the person reading a failed run can act without opening the code."""

from __future__ import annotations


class PspError(Exception):
    """Base class for every error the platform raises on purpose."""


class ConfigError(PspError):
    """A client config file is missing, malformed or invalid."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class TemplateError(PspError):
    """A platform template (template.yaml or its files) is unusable."""


class RenderError(PspError):
    """Rendering a template for a client failed; nothing was written."""


class PackageError(PspError):
    """A rendered tree could not be packaged into an installable artifact."""


class DeployError(PspError):
    """A deploy to a store target failed; the store keeps serving its last good release."""


class ReconciliationError(PspError):
    """Payments or store orders could not be read, reconciled or healed (ledger, store API, export file)."""


class AlertError(PspError):
    """An alert could not be delivered to a channel (Slack, email)."""


class PublishError(PspError):
    """Publishing a built artifact as a GitHub release failed; names org/repo, tag and what to do."""


class CompatError(PspError):
    """The compatibility matrix could not be built, stored or compared (names the file or cell)."""

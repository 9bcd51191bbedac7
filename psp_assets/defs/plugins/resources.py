import os
from pathlib import Path

import dagster as dg
from pydantic import Field

from psp_assets.core.github.session import DEFAULT_BASE_URL
from psp_assets.core.github.template_repo import TemplateRepo, TemplateRepoClient
from psp_assets.core.workspace import Paths


class TemplateRepository(dg.ConfigurableResource):
    """The GitHub repository the platform templates come from (github.com or Enterprise via `base_url`).

    Empty `repository` (the default): templates come from the local directory (PSP_TEMPLATES_DIR) and
    `template_change_sensor` watches it. Set: the repository is the source of record,
    `github_template_sensor` follows `branch` and the local directory is no longer watched (two sources
    would re-record each other's template forever)."""

    repository: str = Field("", description="owner/name; empty: templates come from the local directory")
    branch: str = "main"
    path: str = Field("templates", description="Folder in the repository with one subfolder per platform.")
    base_url: str = DEFAULT_BASE_URL
    token: str = Field("", description="Read token (contents: read); set through dg.EnvVar.")
    checkouts_dir: str = Field("", description="Where checkouts go; default PSP_DATA_DIR/template-checkouts.")
    timeout_seconds: int = Field(30, ge=1, le=300)
    seconds_between_requests: float = Field(0.0, ge=0, description="Pause between API calls (all are reads).")

    @property
    def enabled(self) -> bool:
        return bool(self.repository.strip())

    def spec(self) -> TemplateRepo:
        return TemplateRepo(self.repository.strip(), self.branch, self.path, self.base_url)

    def client(self) -> TemplateRepoClient:
        return TemplateRepoClient(
            self.spec(),
            self.token or None,
            timeout=self.timeout_seconds,
            seconds_between_requests=self.seconds_between_requests,
        )

    def checkouts(self, paths: Paths) -> Path:
        return Path(self.checkouts_dir).resolve() if self.checkouts_dir else paths.data_dir / "template-checkouts"


def template_repository_from_env() -> TemplateRepository:
    """The template source as a deployment configures it (README, "Environment"); the token resolves
    through dg.EnvVar at run time."""
    env = os.environ
    return TemplateRepository(
        repository=env.get("PSP_TEMPLATE_REPO", ""),
        branch=env.get("PSP_TEMPLATE_REPO_BRANCH", "main"),
        path=env.get("PSP_TEMPLATE_REPO_PATH", "templates"),
        base_url=env.get("PSP_TEMPLATE_REPO_API_URL", DEFAULT_BASE_URL),
        token=dg.EnvVar("PSP_TEMPLATE_REPO_TOKEN") if env.get("PSP_TEMPLATE_REPO_TOKEN") else "",
    )

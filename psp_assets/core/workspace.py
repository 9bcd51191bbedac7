"""The workspace: where configs, templates and outputs live (the environment contract in DESIGN.md), and the
template and translation catalog a plugin is made from."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psp_assets.core.config.fleet import Fleet, load_fleet
from psp_assets.core.config.model import ClientConfig
from psp_assets.core.i18n import Catalog, load_catalog
from psp_assets.core.payments.openapi import contract_file
from psp_assets.core.templates.cache import TemplateCache
from psp_assets.core.templates.spec import SHARED_DIR, Template, load_template

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Paths:
    """Where configs, templates and outputs live (the environment contract in DESIGN.md)."""

    configs_dir: Path
    templates_dir: Path
    data_dir: Path
    stores_dir: Path
    ssh_keys_dir: Path = Path("/nonexistent")
    # The PSP API contract every plugin is checked against (docs/contract.md); part of each template hash.
    contract_file: Path = field(default_factory=contract_file)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Paths:
        env = os.environ if environ is None else environ
        data = Path(env.get("PSP_DATA_DIR") or REPO_ROOT / "var" / "data")
        return cls(
            configs_dir=Path(env.get("PSP_CLIENT_CONFIGS_DIR") or REPO_ROOT / "client_configs").resolve(),
            templates_dir=Path(env.get("PSP_TEMPLATES_DIR") or REPO_ROOT / "templates").resolve(),
            data_dir=data.resolve(),
            stores_dir=Path(env.get("PSP_STORES_DIR") or data / "stores").resolve(),
            ssh_keys_dir=Path(env.get("PSP_SSH_KEYS_DIR") or data / "ssh").resolve(),
            contract_file=contract_file(env),
        )

    def rendered_dir(self, client: str, platform: str, build: str) -> Path:
        return self.data_dir / "rendered" / client / platform / build

    def report_path(self, client: str, platform: str, build: str) -> Path:
        return self.data_dir / "reports" / client / platform / f"{build}.json"

    def artifact_dir(self, client: str, platform: str, release_id: str) -> Path:
        return self.data_dir / "artifacts" / client / platform / release_id

    def fleet(self) -> Fleet:
        return load_fleet(self.configs_dir)


def catalog_for(template: Template, config: ClientConfig, cache: TemplateCache | None = None) -> Catalog:
    if cache is not None:
        return cache.catalog(template, config.locales)
    return load_catalog(template.templates_dir / SHARED_DIR / "i18n", list(config.locales))


def template_for(paths: Paths, platform: str, cache: TemplateCache | None = None) -> Template:
    """The platform's template; with `cache` (one per run) loaded once however many plugins use it."""
    if cache is not None:
        return cache.template(paths.templates_dir, platform, paths.contract_file)
    return load_template(paths.templates_dir, platform, paths.contract_file)


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values the tree must never contain: secrets of the platform itself (env names with these
    suffixes). They are compared, never logged."""
    env = os.environ if environ is None else environ
    return [v for k, v in env.items() if k.endswith(("_TOKEN", "_SECRET", "_PASSWORD", "_PRIVATE_KEY", "_API_KEY"))]


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str)

"""One plugin's plan: everything a client's plugin for one platform is made from, built once and passed to
every stage (render, verify, package) instead of each stage loading the template and catalog again.

`plan_plugin(paths, config, platform, cache)` loads the template (through the run's `TemplateCache` when
given), the client's translation catalog, the derived identity and the render context; the build id is
the one the health route reports. `PluginPlan.deploy_facts()` is what the deploy needs from the template,
rendered for this client; packaging writes it into the artifact's manifest, so a deploy needs no template.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from psp_assets.core.config.identity import PluginIdentity, identity_for
from psp_assets.core.config.model import ClientConfig
from psp_assets.core.errors import RenderError
from psp_assets.core.i18n import Catalog
from psp_assets.core.package import DeployFacts
from psp_assets.core.render.engine import render_context, render_string
from psp_assets.core.templates.cache import TemplateCache
from psp_assets.core.templates.spec import Template
from psp_assets.core.workspace import Paths, catalog_for, template_for


@dataclass(frozen=True)
class PluginPlan:
    """A client's plugin for one platform, before anything is rendered."""

    paths: Paths
    config: ClientConfig
    template: Template
    catalog: Catalog
    identity: PluginIdentity
    context: Mapping[str, Any] = field(repr=False)
    build: str

    @property
    def client_id(self) -> str:
        return self.config.id

    @property
    def platform(self) -> str:
        return self.template.platform

    @property
    def key(self) -> str:
        return f"{self.config.id}|{self.template.platform}"

    @property
    def plugin_version(self) -> str:
        return self.template.spec.version

    @property
    def release_id(self) -> str:
        return f"{self.plugin_version}-{self.build}"

    @property
    def template_hash(self) -> str:
        return self.template.content_hash

    @property
    def config_hash(self) -> str:
        return self.config.config_hash()

    def render_value(self, text: str) -> str:
        """A template.yaml value (artifact name, packaging root, health route ...) rendered for this plugin."""
        return render_string(text, self.context)

    def deploy_facts(self) -> DeployFacts:
        """What the deploy and its health gate need from template.yaml's `deploy` and lint settings,
        rendered for this client; carried by the artifact's manifest."""
        deploy = self.template.spec.deploy
        return DeployFacts(
            health_route=self.render_value(deploy.health_route) if deploy.health_route else None,
            install_path=self.render_value(deploy.install_path) if deploy.install_path else None,
            lint_globs=tuple(self.template.spec.lint_globs),
            js_check_globs=tuple(self.template.spec.js_check_globs),
        )


def plan_for(paths: Paths, config: ClientConfig, template: Template, catalog: Catalog | None = None) -> PluginPlan:
    """The plan of `config`'s plugin from an already loaded template (and catalog)."""
    platform = template.platform
    if platform not in config.enabled_platforms():
        raise RenderError(f"client {config.id!r} does not enable platform {platform!r}")
    catalog = catalog if catalog is not None else catalog_for(template, config)
    context = render_context(template, config, catalog)
    return PluginPlan(
        paths=paths,
        config=config,
        template=template,
        catalog=catalog,
        identity=identity_for(config, platform),
        context=context,
        build=context["plugin"]["build"],
    )


def plan_plugin(paths: Paths, config: ClientConfig, platform: str, cache: TemplateCache | None = None) -> PluginPlan:
    """The plan of `config`'s plugin for `platform`; with `cache` (one per run) each template and catalog
    is loaded once however many plugins use it. Raises a PspError naming the template or config problem."""
    template = template_for(paths, platform, cache)
    return plan_for(paths, config, template, catalog_for(template, config, cache))

"""A run loads each template and translation catalog once, and renders exactly what an uncached call does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from psp_assets.core.errors import TemplateError
from psp_assets.core.lineage import render_plugin
from psp_assets.core.plan import plan_plugin
from psp_assets.core.templates.cache import TemplateCache
from psp_assets.core.workspace import Paths
from tests.conftest import TEMPLATES


def test_a_fleet_of_plugins_loads_each_template_once_and_renders_the_same_trees(paths: Paths, tmp_path):
    fleet = paths.fleet()
    keys = [(c, p) for c in sorted(fleet.clients) for p in fleet.clients[c].config.enabled_platforms()]
    cache = TemplateCache()
    for client, platform in keys:
        config = fleet.client(client)
        cached = render_plugin(
            plan_plugin(paths, config, platform, cache=cache), tmp_path / "cached" / client / platform
        )
        plain = render_plugin(plan_plugin(paths, config, platform), tmp_path / "plain" / client / platform)
        assert cached.tree.files == plain.tree.files and cached.template_hash == plain.template_hash
    assert cache.loads == len({p for _, p in keys}) < len(keys)
    template = cache.template(paths.templates_dir, "woocommerce", paths.contract_file)
    assert cache.template(paths.templates_dir, "woocommerce", paths.contract_file) is template
    assert cache.catalog(template, ["de_DE", "en_US"]) is cache.catalog(template, ["de_DE", "en_US"])


def test_a_template_that_fails_to_load_fails_every_time_with_its_reason(tmp_path: Path):
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    spec = templates / "opencart" / "template.yaml"
    spec.write_text(spec.read_text().replace("platform: opencart", "platform: shopify"))
    cache = TemplateCache()
    for _ in range(2):
        with pytest.raises(TemplateError, match="says 'shopify' but lives in templates/opencart/"):
            cache.template(templates, "opencart")
    assert cache.loads == 0

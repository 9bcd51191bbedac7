"""One plan per plugin (core/plan.py), the deploy facts the artifact's manifest carries, the install path
a target must match, and the typed handles the assets pass on (core/handles.py), old ones included."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from psp_assets.core.config.model import parse_client
from psp_assets.core.deploy.release import LocalFS, current_release
from psp_assets.core.deploy.stores import deploy_plugin
from psp_assets.core.errors import DeployError
from psp_assets.core.handles import (
    LINEAGE_KEYS,
    BuiltHandle,
    HandleError,
    Lineage,
    RenderedHandle,
    TestReportHandle,
    TreeRef,
    load_handle,
)
from psp_assets.core.lineage import deploy_facts_of, load_rendered, render_plugin
from psp_assets.core.package import DeployFacts, load_artifact, manifest_path_for, package
from psp_assets.core.plan import PluginPlan, plan_plugin
from psp_assets.core.render.engine import RenderedTree
from psp_assets.core.workspace import Paths
from psp_assets.defs.resources import JsonHandleIOManager
from tests.conftest import DEMO_CLIENTS, TEMPLATES, client_dict

SLUG = yaml.safe_load((DEMO_CLIENTS / "nordbank.yaml").read_text())["platforms"]["woocommerce"]["slug"]


def config_with(path: str):
    data = client_dict()
    data["platforms"] = {
        "woocommerce": {"slug": SLUG, "targets": [{"name": "production", "transport": "local", "path": path}]}
    }
    return parse_client(data, "client_configs/nordbank.yaml")


def workspace(tmp_path: Path, templates: Path = TEMPLATES) -> Paths:
    return Paths(tmp_path / "configs", templates, tmp_path / "data", tmp_path / "stores")


def built(plan: PluginPlan, out: Path, tree: RenderedTree | None = None, facts: DeployFacts | None = None):
    tree = tree or render_plugin(plan, out / "src").tree
    root = plan.render_value(plan.template.spec.packaging.root)
    return package(tree, root, f"{SLUG}.zip", out / "artifact", facts or plan.deploy_facts())


def test_the_manifest_carries_the_deploy_facts_rendered_for_the_client(tmp_path):
    plan = plan_plugin(workspace(tmp_path), config_with(f"shop/wp-content/plugins/{SLUG}"), "woocommerce")
    artifact = built(plan, tmp_path)
    doc = json.loads(manifest_path_for(artifact.path).read_text())["deploy"]
    # template.yaml: health_route /wp-json/{{ ids.rest_namespace }}/health, rest_namespace = <slug>/v1
    assert doc["health_route"] == f"/wp-json/{SLUG}/v1/health"
    assert doc["install_path"] == f"wp-content/plugins/{SLUG}"
    assert doc["lint_globs"] == ["**/*.php"]
    assert load_artifact(artifact.path).deploy == artifact.deploy == plan.deploy_facts()


def test_a_deploy_reads_the_manifest_and_loads_no_template(tmp_path, php):
    config = config_with(f"shop/wp-content/plugins/{SLUG}")
    plan = plan_plugin(workspace(tmp_path), config, "woocommerce")
    broken = {**render_plugin(plan, tmp_path / "src").tree.files, "includes/broken.php": b"<?php function ( {\n"}
    tree = RenderedTree(config.id, "woocommerce", plan.plugin_version, plan.build, broken)
    gone = workspace(tmp_path, templates=tmp_path / "no-templates-here")  # a template load would fail

    linted = built(plan, tmp_path / "a", tree)  # the manifest says: lint every PHP file
    [result] = deploy_plugin(gone, config, "woocommerce", linted, php)
    assert not result.ok and "PHP lint failed" in result.error + " ".join(s.detail for s in result.steps)

    not_linted = built(plan, tmp_path / "b", tree, DeployFacts(install_path=f"wp-content/plugins/{SLUG}"))
    [result] = deploy_plugin(gone, config, "woocommerce", not_linted, php)
    assert result.ok, result.error


def test_an_artifact_built_before_the_manifest_carried_deploy_facts_is_refused_or_given_them_from_its_plan(tmp_path):
    plan = plan_plugin(workspace(tmp_path), config_with(f"shop/wp-content/plugins/{SLUG}"), "woocommerce")
    artifact = built(plan, tmp_path)
    manifest = manifest_path_for(artifact.path)
    old = json.loads(manifest.read_text())
    del old["deploy"]
    manifest.write_text(json.dumps(old))
    older = load_artifact(artifact.path)
    assert older.deploy is None

    with pytest.raises(
        DeployError, match=r"carries no deploy facts .* rebuild built_artifact\[nordbank\|woocommerce\]"
    ):
        deploy_plugin(plan.paths, plan.config, "woocommerce", older, php=None)  # type: ignore[arg-type]
    assert not (plan.paths.stores_dir / "shop").exists()

    planned = []
    given, note = deploy_facts_of(older, lambda: planned.append(1) or plan)
    assert given.deploy == plan.deploy_facts() and planned == [1]
    assert "predates deploy facts" in str(note) and str(manifest) in str(note)
    assert deploy_facts_of(artifact, lambda: pytest.fail("a manifest with facts needs no plan")) == (artifact, None)


@pytest.mark.parametrize(
    ("path", "suggested"),
    [
        ("shop/x", f"shop/wp-content/plugins/{SLUG}"),
        ("shop/wp-content/plugins/other-name", f"shop/wp-content/plugins/{SLUG}"),
        (f"shop/wp-content/{SLUG}", f"shop/wp-content/plugins/{SLUG}"),
        ("plugins", f"wp-content/plugins/{SLUG}"),
    ],
)
def test_a_target_outside_the_platforms_install_path_is_refused_before_the_store_is_touched(
    tmp_path, php, path, suggested
):
    config = config_with(path)
    plan = plan_plugin(workspace(tmp_path), config, "woocommerce")
    [result] = deploy_plugin(
        plan.paths, config, "woocommerce", built(plan, tmp_path), php, config_file="x/nordbank.yaml"
    )
    assert not result.ok and not result.steps
    assert result.error.startswith(f"x/nordbank.yaml: platforms.woocommerce.targets[0] (production).path: {path!r}")
    assert f"must end with 'wp-content/plugins/{SLUG}'" in result.error and f"e.g. {suggested!r}" in result.error
    assert not (plan.paths.stores_dir / "shop").exists()


def test_a_target_at_the_install_path_deploys(tmp_path, php):
    config = config_with(f"srv/shop/wp-content/plugins/{SLUG}")
    plan = plan_plugin(workspace(tmp_path), config, "woocommerce")
    artifact = built(plan, tmp_path)
    [result] = deploy_plugin(plan.paths, config, "woocommerce", artifact, php)
    assert result.ok, result.error
    live = config.platform("woocommerce").targets[0].path
    assert current_release(LocalFS(plan.paths.stores_dir), live) == artifact.release_id


# --- handles ---------------------------------------------------------------------------------------


@pytest.fixture
def rendered(tmp_path) -> RenderedHandle:
    plan = plan_plugin(workspace(tmp_path), config_with(f"shop/wp-content/plugins/{SLUG}"), "woocommerce")
    source = render_plugin(plan)
    return RenderedHandle(
        client=plan.client_id,
        platform=plan.platform,
        lineage=Lineage(
            template_version=plan.plugin_version,
            template_hash=plan.template_hash,
            config_hash=plan.config_hash,
            plugin_version=plan.plugin_version,
            build=plan.build,
        ),
        config=plan.config,
        config_path="client_configs/nordbank.yaml",
        templates_dir=str(TEMPLATES),
        tree=TreeRef(path=str(source.path), tree_sha256=source.tree.digest(), file_count=len(source.tree.files)),
    )


def test_the_lineage_keys_are_the_lineage_model(rendered):
    assert LINEAGE_KEYS == ("template_version", "template_hash", "config_hash", "plugin_version", "build")
    assert list(rendered.lineage.metadata()) == list(LINEAGE_KEYS)
    assert Lineage(config_hash="c").metadata() == {"config_hash": "c"}


def test_a_handle_stored_as_json_comes_back_as_the_same_typed_value(rendered):
    stored = json.loads(json.dumps(rendered.to_json()))
    again = load_handle("rendered_source", "nordbank|woocommerce", stored, "x.json")
    assert again == rendered and again.config == rendered.config  # the config is a ClientConfig, not a dict
    assert load_rendered(again).digest() == rendered.tree.tree_sha256


def test_handles_an_older_version_stored_load_into_the_current_shape(rendered):
    flat = {  # rendered_source as the dict handles stored it
        "client": rendered.client,
        "platform": rendered.platform,
        "path": rendered.tree.path,
        "release_id": rendered.release_id,
        "tree_sha256": rendered.tree.tree_sha256,
        "file_count": rendered.tree.file_count,
        **rendered.lineage.metadata(),
        "config": rendered.config.model_dump(mode="json"),
        "config_path": rendered.config_path,
        "templates_dir": rendered.templates_dir,
        "run_id": "r1",
    }
    old_rendered = load_handle("rendered_source", "k", flat, "x.json")
    assert old_rendered == rendered.model_copy(update={"run_id": "r1"})

    nested = {  # test_report nested the whole rendered handle
        **rendered.lineage.metadata(),
        "client": rendered.client,
        "platform": rendered.platform,
        "report_path": "/r.json",
        "passed": True,
        "rendered": flat,
        "run_id": "r2",
    }
    report = load_handle("test_report", "k", nested, "x.json")
    assert isinstance(report, TestReportHandle) and report.passed and report.run_id == "r2"
    assert report.rendered.fields() == old_rendered.fields()  # the same source, stamped by the report's run

    built_flat = {
        **rendered.lineage.metadata(),
        "client": rendered.client,
        "platform": rendered.platform,
        "release_id": rendered.release_id,
        "artifact_path": "/a.zip",
        "sha256": "0" * 64,
        "size": 3,
        "config": flat["config"],
        "config_path": rendered.config_path,
        "templates_dir": rendered.templates_dir,
    }
    assert load_handle("built_artifact", "k", built_flat, "x.json").lineage == rendered.lineage


def test_a_stored_handle_that_fits_no_version_names_the_file_and_what_to_rematerialize(rendered, tmp_path):
    broken = {**rendered.to_json(), "tree": {"path": "/x"}}
    with pytest.raises(HandleError, match=r"x\.json: the stored rendered_source\[k\] is not a RenderedHandle \(tree"):
        load_handle("rendered_source", "k", broken, "x.json")

    io = JsonHandleIOManager(base_dir=str(tmp_path / "handles"))
    stored = tmp_path / "handles" / "built_artifact" / "nordbank__woocommerce.json"
    stored.parent.mkdir(parents=True)
    stored.write_text(json.dumps({"client": "nordbank", "platform": "woocommerce", "artifact_path": "/a.zip"}))
    with pytest.raises(HandleError, match=r"re-materialize built_artifact\[nordbank\|woocommerce\]"):
        io.read("built_artifact", "nordbank|woocommerce")
    sourced = {k: v for k, v in rendered.to_json().items() if k != "tree"}
    stored.write_text(json.dumps({**sourced, "release_id": "1-b", "artifact_path": "/a", "sha256": "0", "size": 1}))
    assert isinstance(io.read("built_artifact", "nordbank|woocommerce"), BuiltHandle)

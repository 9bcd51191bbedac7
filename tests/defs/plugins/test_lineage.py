"""The plugin lineage through Dagster itself: real runs on a real (temporary) instance, real PHP."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg

from psp_assets.core.config.fleet import load_fleet
from psp_assets.core.deploy.release import current_release
from psp_assets.core.templates.spec import PLATFORMS
from psp_assets.core.workspace import Paths
from psp_assets.definitions import defs
from psp_assets.defs.plugins.sensors import client_configs_sensor
from psp_assets.defs.resources import PspWorkspace
from psp_assets.fleet import latest_metadata, run_fleet

LINEAGE = ("template_version", "template_hash", "config_hash", "plugin_version", "build")


def meta(instance: dg.DagsterInstance, key: str, partition: str) -> dict:
    found = latest_metadata(instance, key, partition)
    assert found, f"{key}[{partition}] was not materialized"
    return found


def lineage_run(instance, partition: str) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("plugin_lineage_job").execute_in_process(
        partition_key=partition, instance=instance, raise_on_error=False
    )


def test_the_whole_demo_fleet_materializes_end_to_end_with_lineage_metadata(env: Paths, instance, capsys):
    assert run_fleet(env, instance=instance) == 0
    summary = capsys.readouterr().out
    keys = load_fleet(env.configs_dir).partition_keys()
    assert len(keys) == 7
    assert {k.split("|")[1] for k in keys} == set(PLATFORMS)  # every platform is built by a demo client
    for key in keys:
        client, platform = key.split("|")
        assert key in summary
        for asset in ("rendered_source", "test_report", "built_artifact", "deployed_store"):
            m = meta(instance, asset, key)
            assert all(m.get(k) for k in LINEAGE), (asset, m)
        artifact = meta(instance, "built_artifact", key)
        path = Path(artifact["artifact_path"])
        assert path.is_file() and str(path).startswith(str(env.data_dir))
        import hashlib

        assert hashlib.sha256(path.read_bytes()).hexdigest() == artifact["sha256"]
        targets = meta(instance, "deployed_store", key)["targets"]
        config = load_fleet(env.configs_dir).clients[client].config
        assert [t["target"] for t in targets] == [t.name for t in config.platform(platform).targets]
        manifest = json.loads(Path(str(path) + ".manifest.json").read_text())["files"]
        for t, target in zip(targets, config.platform(platform).targets, strict=True):
            assert t["health"] == "healthy" and not t["rolled_back"]
            assert t["deployed_version"] == artifact["release_id"]
            live = env.stores_dir / target.path
            assert live.is_symlink()
            for rel, digest in manifest.items():
                assert hashlib.sha256((live / rel).read_bytes()).hexdigest() == digest
        check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("test_report"), "plugin_checks_pass")]
        )
        assert check


def test_running_the_fleet_again_deploys_nothing_new(env: Paths, instance):
    assert run_fleet(env, instance=instance) == 0
    assert run_fleet(env, instance=instance) == 0
    targets = meta(instance, "deployed_store", "nordbank|woocommerce")["targets"]
    assert all(t["noop"] and t["health"] == "unchanged" for t in targets)


def test_a_platform_the_client_does_not_enable_is_skipped_not_failed(env: Paths, instance):
    instance.add_dynamic_partitions("client", ["alpenkasse"])
    assert run_fleet(env, clients=["alpenkasse"], instance=instance) == 0
    result = lineage_run(instance, "alpenkasse|woocommerce")
    assert result.success
    assert latest_metadata(instance, "rendered_source", "alpenkasse|woocommerce") == {}
    assert latest_metadata(instance, "deployed_store", "alpenkasse|woocommerce") == {}


def _break_a_php_template(templates: Path) -> None:
    main = next((templates / "woocommerce").glob("*.php.j2"))
    main.write_text(main.read_text() + "\nfunction broken( {\n")


def test_a_template_that_breaks_php_fails_the_check_builds_nothing_and_the_store_keeps_its_release(
    env: Paths, instance
):
    assert run_fleet(env, clients=["nordbank"], instance=instance) == 0
    good = meta(instance, "built_artifact", "nordbank|woocommerce")
    live = (
        env.stores_dir / load_fleet(env.configs_dir).clients["nordbank"].config.platform("woocommerce").targets[0].path
    )

    _break_a_php_template(env.templates_dir)
    assert run_fleet(env, clients=["nordbank"], instance=instance) == 1

    report = meta(instance, "test_report", "nordbank|woocommerce")
    assert report["passed"] is False and report["failed"] >= 1
    assert meta(instance, "built_artifact", "nordbank|woocommerce")["sha256"] == good["sha256"]  # nothing new built
    new_build = meta(instance, "rendered_source", "nordbank|woocommerce")["build"]
    assert new_build != good["build"]
    assert not (env.data_dir / "artifacts" / "nordbank" / "woocommerce" / f"1.0.0-{new_build}").exists()
    from psp_assets.core.deploy.release import LocalFS

    assert current_release(LocalFS(env.stores_dir), str(live.relative_to(env.stores_dir))) == good["release_id"]
    # the other platform of the same client is not blocked
    assert meta(instance, "test_report", "nordbank|magento2")["passed"] is True


def test_built_artifact_refuses_a_failed_report_even_when_run_alone(env: Paths, instance):
    instance.add_dynamic_partitions("client", ["nordbank"])
    _break_a_php_template(env.templates_dir)
    assert run_fleet(env, clients=["nordbank"], instance=instance) == 1
    result = defs.resolve_job_def("plugin_lineage_job").execute_in_process(
        partition_key="nordbank|woocommerce",
        instance=instance,
        raise_on_error=False,
        asset_selection=[dg.AssetKey("built_artifact")],
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "test report failed" in failure.step_failure_data.error.message


def test_an_invalid_config_fails_client_config_naming_file_and_field(env: Paths, instance):
    path = env.configs_dir / "nordbank.yaml"
    path.write_text(path.read_text().replace("currencies: [EUR]", "currencies: [EURO]"))
    instance.add_dynamic_partitions("client", ["nordbank"])
    result = defs.resolve_job_def("client_config_job").execute_in_process(
        partition_key="nordbank", instance=instance, raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert (
        "client_configs/nordbank.yaml: currencies: not ISO 4217"
        in failure.step_failure_data.user_failure_data.description
    )


def test_sensor_adds_new_clients_removes_deleted_ones_and_ignores_invalid_edits(env: Paths, instance):
    resources = {"workspace": PspWorkspace()}

    def tick(cursor):
        ctx = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources)
        result = client_configs_sensor(ctx)
        for request in result.dynamic_partitions_requests or []:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions("client", list(request.partition_keys))
            else:
                for key in request.partition_keys:
                    instance.delete_dynamic_partition("client", key)
        return result

    first = tick(None)
    assert sorted(instance.get_dynamic_partitions("client")) == ["alpenkasse", "baltic-credit", "nordbank"]
    assert sorted(r.partition_key for r in first.run_requests) == ["alpenkasse", "baltic-credit", "nordbank"]

    for request in first.run_requests:
        assert (
            defs.resolve_job_def("client_config_job")
            .execute_in_process(partition_key=request.partition_key, instance=instance)
            .success
        )
    second = tick(first.cursor)
    assert not second.run_requests and not second.dynamic_partitions_requests

    (env.configs_dir / "baltic-credit.yaml").unlink()
    bad = env.configs_dir / "nordbank.yaml"
    bad.write_text(bad.read_text().replace("id: nordbank", "id: Nordbank"))
    third = tick(second.cursor)
    assert sorted(instance.get_dynamic_partitions("client")) == ["alpenkasse", "nordbank"]
    assert not third.run_requests

    bad.write_text(bad.read_text().replace("id: Nordbank", "id: nordbank").replace("[EUR]", "[EUR, USD]"))
    fourth = tick(third.cursor)
    assert [r.partition_key for r in fourth.run_requests] == ["nordbank"]


def test_the_code_location_loads_without_errors():
    dg.Definitions.validate_loadable(defs)
    assert os.path.isfile(Path(__file__).parents[3] / "dagster.yaml")

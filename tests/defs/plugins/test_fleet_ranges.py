"""Fleet-wide runs: one run over a range of client|platform partitions, recorded partition by partition.

Real runs on a temporary instance, real PHP (the template's whole PHP range as WebAssembly). The
clients, in the client dimension's order: alpenkasse (magento2, prestashop), baltic-credit (woocommerce,
opencart), nordbank (woocommerce, magento2, shopify) and zeta-bank (a copy of baltic-credit, written by the tests).
So `baltic-credit|woocommerce .. zeta-bank|woocommerce` is three plugins, and
`alpenkasse|magento2 .. nordbank|magento2` covers baltic-credit, which has no magento2.
"""

from __future__ import annotations

import dagster as dg
import pytest

from psp_assets.core.runtimes import php, php_service
from psp_assets.core.workspace import Paths
from psp_assets.definitions import defs
from psp_assets.defs.plugins.assets import client_config, plugin_template, rendered_source
from psp_assets.defs.plugins.sensors import lineage_on_upstream_change_sensor
from psp_assets.defs.ranges import PER_PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG, range_tags
from psp_assets.defs.resources import JsonHandleIOManager, PspWorkspace

CLIENTS = ["alpenkasse", "baltic-credit", "nordbank", "zeta-bank"]
WOO = [f"{c}|woocommerce" for c in CLIENTS[1:]]
BUILD = ("rendered_source", "test_report", "built_artifact")
CHECK = dg.AssetCheckKey(dg.AssetKey("test_report"), "plugin_checks_pass")


def run(instance, job: str, tags: dict[str, str] | None = None, **kwargs) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance, raise_on_error=False, tags=tags or {}, **kwargs
    )


@pytest.fixture
def env(env: Paths) -> Paths:
    """The demo clients and zeta-bank, a third WooCommerce client."""
    text = (env.configs_dir / "baltic-credit.yaml").read_text()
    for old, new in [("baltic-credit", "zeta-bank"), ("Baltic Credit Union", "Zeta Bank"), ("baltic-", "zeta-")]:
        text = text.replace(old, new)
    (env.configs_dir / "zeta-bank.yaml").write_text(text)
    return env


def record_inputs(instance, platforms: list[str]) -> None:
    """What the upstream sensors do first: the clients become partitions, templates and configs are recorded."""
    instance.add_dynamic_partitions("client", CLIENTS)
    for platform in platforms:
        assert run(instance, "plugin_template_job", partition_key=platform).success
    for client in CLIENTS:
        assert run(instance, "client_config_job", partition_key=client).success


def materializations(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, dg.AssetMaterialization]:
    """partition -> the one materialization of `asset` this run recorded for it (several fail the test)."""
    found: dict[str, dg.AssetMaterialization] = {}
    for event in result.get_asset_materialization_events():
        m = event.event_specific_data.materialization
        if m.asset_key == dg.AssetKey(asset):
            assert m.partition not in found, f"{asset}[{m.partition}] recorded twice in one run"
            found[m.partition] = m
    return found


def check_results(instance, run_id: str) -> dict[str, bool]:
    """partition -> passed, for the plugin_checks_pass evaluations of one run."""
    rows = instance.event_log_storage.get_asset_check_execution_history(CHECK, limit=100)
    return {r.partition: r.status.value == "SUCCEEDED" for r in rows if r.run_id == run_id}


def value(m: dg.AssetMaterialization, key: str):
    return m.metadata[key].value


@pytest.mark.php_matrix  # counts the boots of every PHP version's runtime
def test_one_range_run_records_every_partition_on_its_own_and_boots_php_once(env: Paths, instance):
    record_inputs(instance, ["woocommerce"])
    php_service.shared_runtimes().close()  # a cold pool: this run's boots are the ones counted
    boots_before = php.BOOTS.copy()
    result = run(instance, "plugin_build_job", range_tags(WOO[0], WOO[-1]))
    assert result.success

    boots = php.BOOTS - boots_before
    assert boots and set(boots.values()) == {1}, f"one boot per PHP version for all {len(WOO)} partitions: {boots}"
    rendered, reports, artifacts = (materializations(result, asset) for asset in BUILD)
    assert sorted(rendered) == sorted(reports) == sorted(artifacts) == sorted(WOO)
    for key in WOO:
        client = key.split("|")[0]
        # the partition's own lineage, not one copied across the range
        assert value(rendered[key], "config_hash") == value(reports[key], "config_hash")
        assert value(artifacts[key], "release_id").endswith(value(rendered[key], "build"))
        assert client in value(rendered[key], "path") and client in value(artifacts[key], "artifact_path")
        # data version = the partition's content hash
        assert artifacts[key].tags["dagster/data_version"] == value(artifacts[key], "sha256")
        assert reports[key].metadata["passed"].value is True
    assert len({value(m, "config_hash") for m in rendered.values()}) == len(WOO)
    assert len({m.tags["dagster/data_version"] for m in artifacts.values()}) == len(WOO)
    assert check_results(instance, result.run_id) == dict.fromkeys(WOO, True)

    # a second run in the same process boots nothing: the pool outlives the run
    boots_before = php.BOOTS.copy()
    again = run(instance, "plugin_build_job", range_tags(WOO[0], WOO[0]))
    assert again.success and not (php.BOOTS - boots_before)
    # latest materialization of each partition: what the lineage reads
    latest = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("built_artifact"), asset_partitions=[WOO[1]]), limit=5
    ).records
    assert [r.run_id for r in latest] == [result.run_id]


def test_a_failing_partition_is_red_while_the_others_in_the_range_are_built(env: Paths, instance):
    # a template that breaks PHP for one client only: nordbank's plugin does not lint, the others do
    uninstall = env.templates_dir / "woocommerce" / "uninstall.php.j2"
    uninstall.write_text(uninstall.read_text() + '{% if client.id == "nordbank" %}\nfunction broken( {\n{% endif %}\n')
    record_inputs(instance, ["woocommerce"])
    result = run(instance, "plugin_build_job", range_tags(WOO[0], WOO[-1]))

    assert not result.success  # the run is red, and says which partition failed
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.user_failure_data.description
    assert "test_report[nordbank|woocommerce]: plugin_checks_pass failed" in message
    assert "zeta-bank" not in message and "baltic-credit" not in message
    assert check_results(instance, result.run_id) == {WOO[0]: True, WOO[1]: False, WOO[2]: True}
    assert sorted(materializations(result, "test_report")) == WOO  # every report is recorded, pass or fail
    built = materializations(result, "built_artifact")
    assert sorted(built) == [WOO[0], WOO[2]]  # nordbank's is not built, the clients on either side are
    assert all(str(value(m, "artifact_path")).endswith(".zip") for m in built.values())


def test_a_partition_that_fails_to_render_is_red_on_its_check_and_observed_failed(env: Paths, instance):
    # nordbank's plugin cannot be rendered (an undefined template value), the other two can
    readme = env.templates_dir / "woocommerce" / "readme.txt.j2"
    readme.write_text(readme.read_text() + '{% if client.id == "nordbank" %}{{ no_such_value.at_all }}{% endif %}\n')
    record_inputs(instance, ["woocommerce"])
    result = run(
        instance,
        "plugin_build_job",
        range_tags(WOO[0], WOO[-1]),
        asset_selection=[dg.AssetKey("rendered_source"), dg.AssetKey("test_report")],
        run_config={"resources": {"php": {"config": {"matrix": False}}}},
    )
    assert not result.success
    assert check_results(instance, result.run_id) == {WOO[0]: True, WOO[1]: False, WOO[2]: True}
    failed = {
        (o.asset_key.to_user_string(), o.partition)
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
        and getattr((o := e.event_specific_data.asset_observation).metadata.get("outcome"), "value", None) == "failed"
    }
    assert failed == {("rendered_source", WOO[1]), ("test_report", WOO[1])}
    assert sorted(materializations(result, "test_report")) == [WOO[0], WOO[2]]


def test_a_range_skips_what_a_client_does_not_enable_and_records_nothing_for_it(env: Paths, instance):
    record_inputs(instance, ["magento2"])
    # a rectangle: alpenkasse|magento2 .. nordbank|magento2 also covers baltic-credit, which has no magento2
    result = run(
        instance,
        "plugin_build_job",
        range_tags("alpenkasse|magento2", "nordbank|magento2"),
        asset_selection=[dg.AssetKey("rendered_source")],
    )
    assert result.success
    assert sorted(materializations(result, "rendered_source")) == ["alpenkasse|magento2", "nordbank|magento2"]


def backfill_run(instance, tags: dict[str, str]) -> dg.ExecuteInProcessResult:
    """rendered_source over a range the way a UI backfill of the assets runs it: no per-partition tag."""
    return dg.materialize(
        [plugin_template, client_config, rendered_source],
        selection=[rendered_source],
        instance=instance,
        tags=tags,
        resources={"workspace": PspWorkspace(), "io_manager": JsonHandleIOManager()},
        raise_on_error=False,
    )


def test_without_the_per_partition_tag_a_range_is_recorded_whole_and_skips_are_labelled(env: Paths, instance):
    record_inputs(instance, ["woocommerce", "magento2"])
    whole = backfill_run(instance, {RANGE_START_TAG: WOO[0], RANGE_END_TAG: WOO[-1]})
    assert whole.success
    recorded = materializations(whole, "rendered_source")
    assert sorted(recorded) == WOO
    assert len({value(m, "config_hash") for m in recorded.values()}) == len(WOO)  # still each partition's own

    # a backfill of the asset graph covers clients that do not enable the platform: they are recorded as
    # skipped (Dagster cannot leave them out of a range output) and nothing is rendered for them
    mixed = backfill_run(instance, {RANGE_START_TAG: "alpenkasse|magento2", RANGE_END_TAG: "nordbank|magento2"})
    assert mixed.success
    recorded = materializations(mixed, "rendered_source")
    assert value(recorded["baltic-credit|magento2"], "outcome") == "skipped"
    assert "baltic-credit does not enable magento2" in value(recorded["baltic-credit|magento2"], "reason")
    assert value(recorded["nordbank|magento2"], "files")
    assert not (env.data_dir / "rendered" / "baltic-credit" / "magento2").exists()


def render_fleet(instance) -> None:
    """Every enabled plugin rendered once from the recorded inputs (what `psp fleet` leaves recorded)."""
    for request in tick(instance).run_requests:
        assert run(instance, request.job_name, request.tags, asset_selection=[dg.AssetKey("rendered_source")]).success
    assert not tick(instance).run_requests


def tick(instance) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, resources={"workspace": PspWorkspace()})
    return lineage_on_upstream_change_sensor(context)


@pytest.mark.parametrize("platform", ["woocommerce", "magento2"])
def test_a_template_change_starts_one_range_run_over_exactly_the_enabling_clients(env: Paths, instance, platform):
    record_inputs(instance, ["woocommerce", "magento2"])
    render_fleet(instance)
    readme = next((env.templates_dir / platform).glob("*.j2"))
    readme.write_text(readme.read_text() + "\n{# a template edit #}\n")
    assert run(instance, "plugin_template_job", partition_key=platform).success  # what template_change_sensor runs
    changed = tick(instance)

    [request] = changed.run_requests
    enabling = {"woocommerce": CLIENTS[1:], "magento2": ["alpenkasse", "nordbank"]}[platform]
    assert request.job_name == "plugin_build_job" and request.partition_key is None
    assert request.tags[RANGE_START_TAG] == f"{enabling[0]}|{platform}"
    assert request.tags[RANGE_END_TAG] == f"{enabling[-1]}|{platform}"
    assert request.tags["psp/rollout"] == platform and request.tags[PER_PARTITION_TAG] == "true"
    # the same inputs recorded again start nothing new: the run key is the inputs'
    assert run(instance, "plugin_template_job", partition_key=platform).success
    repeated = tick(instance)
    assert [r.run_key for r in repeated.run_requests] == [request.run_key]


def test_a_range_run_built_by_the_sensor_covers_exactly_the_enabling_clients(env: Paths, instance):
    record_inputs(instance, ["magento2"])
    render_fleet(instance)
    template = next((env.templates_dir / "magento2").glob("*.j2"))
    template.write_text(template.read_text() + "\n{# a template edit #}\n")
    assert run(instance, "plugin_template_job", partition_key="magento2").success
    [request] = [r for r in tick(instance).run_requests if r.job_name == "plugin_build_job"]
    result = run(instance, "plugin_build_job", request.tags, asset_selection=[dg.AssetKey("rendered_source")])
    assert result.success
    assert sorted(materializations(result, "rendered_source")) == ["alpenkasse|magento2", "nordbank|magento2"]


def test_a_config_change_run_deploys_each_platform_and_a_failed_deploy_stops_only_its_own(env: Paths, instance):
    # nordbank's Magento store does not answer its health check: that deploy rolls back, the others go live
    config = env.configs_dir / "nordbank.yaml"
    config.write_text(
        config.read_text().replace(
            "        path: nordbank-magento/app/code/PspNordbank/Payment\n",
            "        path: nordbank-magento/app/code/PspNordbank/Payment\n"
            "        health: {store_url: 'http://127.0.0.1:9/', count: 1, timeout_seconds: 0.5}\n",
        )
    )
    record_inputs(instance, ["woocommerce", "magento2", "shopify"])
    result = run(instance, "plugin_lineage_job", range_tags("nordbank|woocommerce", "nordbank|shopify"))

    assert not result.success
    deployed = materializations(result, "deployed_store")
    assert sorted(deployed) == ["nordbank|shopify", "nordbank|woocommerce"]
    for m in deployed.values():
        assert {t["health"] for t in value(m, "targets")} == {"healthy"}
    assert sorted(materializations(result, "built_artifact")) == [
        "nordbank|magento2",
        "nordbank|shopify",
        "nordbank|woocommerce",
    ]
    [observation] = [
        e.event_specific_data.asset_observation
        for e in result.all_events
        if e.event_type_value == "ASSET_OBSERVATION"
        and e.event_specific_data.asset_observation.asset_key == dg.AssetKey("deployed_store")
    ]
    assert observation.partition == "nordbank|magento2" and value(observation, "outcome") == "failed"
    [target] = value(observation, "targets")
    assert target["rolled_back"] or target["error"]
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.user_failure_data.description
    assert "deployed_store[nordbank|magento2]: nordbank|magento2: deploy to production failed" in message


def build_job() -> dg.JobDefinition:
    return defs.resolve_job_def("plugin_build_job")


def test_a_retry_from_failure_still_fails_for_the_partitions_that_failed_before(env: Paths, instance):
    uninstall = env.templates_dir / "woocommerce" / "uninstall.php.j2"
    uninstall.write_text(uninstall.read_text() + '{% if client.id == "nordbank" %}\nfunction broken( {\n{% endif %}\n')
    record_inputs(instance, ["woocommerce"])
    first = run(instance, "plugin_build_job", range_tags(WOO[0], WOO[-1]))
    assert not first.success
    # what the daemon's run retries do: re-execute only the failed steps, in a new run
    options = dg.ReexecutionOptions.from_failure(first.run_id, instance)
    tags = instance.get_run_by_id(first.run_id).tags  # a retry keeps its run's tags: the range among them
    with dg.execute_job(dg.reconstructable(build_job), instance, tags=tags, reexecution_options=options) as retry:
        assert not retry.success
        steps = {e.step_key for e in retry.all_events if e.is_step_start}
        assert "test_report" not in steps  # it succeeded the first time; its red check stays the reason
        failure = next(e for e in retry.all_events if e.is_step_failure)
        assert "test_report[nordbank|woocommerce]: plugin_checks_pass failed" in (
            failure.step_failure_data.user_failure_data.description
        )


def test_a_fleet_range_is_cut_into_chunk_runs_that_roll_out_once(env: Paths, instance, monkeypatch):
    from psp_assets.core.ranges import plan_ranges
    from psp_assets.defs import ranges
    from psp_assets.defs.plugins.sensors import BATCH_SIZE_TAG, BATCH_TAG

    monkeypatch.setattr(ranges, "FLEET_CHUNK", 2)
    record_inputs(instance, ["woocommerce"])
    render_fleet(instance)
    template = next((env.templates_dir / "woocommerce").glob("*.j2"))
    template.write_text(template.read_text() + "\n{# a template edit #}\n")
    assert run(instance, "plugin_template_job", partition_key="woocommerce").success
    requests = tick(instance).run_requests
    # baltic-credit, nordbank, zeta-bank enable WooCommerce: two chunk runs of one rebuild
    assert [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in requests] == [
        ("baltic-credit|woocommerce", "nordbank|woocommerce"),
        ("zeta-bank|woocommerce", "zeta-bank|woocommerce"),
    ]
    assert len({r.tags[BATCH_TAG] for r in requests}) == 1 and {r.tags[BATCH_SIZE_TAG] for r in requests} == {"2"}
    assert len({r.run_key for r in requests}) == 2
    enabled = {"a": ["woocommerce"], "b": ["woocommerce"], "c": ["woocommerce", "opencart"]}
    assert plan_ranges(["a", "b", "c"], enabled, chunk=2) == [
        ("a|woocommerce", "b|woocommerce"),
        ("c|woocommerce", "c|woocommerce"),
        ("c|opencart", "c|opencart"),
    ]


def test_the_sensor_plans_the_ranges_psp_fleet_plans_and_a_template_range_ends_before_a_changed_config(
    env: Paths, instance
):
    """A WooCommerce template edit and a nordbank config edit in one tick. nordbank lies between
    baltic-credit and zeta-bank: the template's range must not cross it (its lineage run rebuilds it), so
    the sensor asks for what `psp fleet`'s planner (core/ranges.py) plans for the same stale plugins."""
    from psp_assets.core.config.fleet import load_fleet
    from psp_assets.core.ranges import client_ranges, plan_ranges, platform_ranges

    record_inputs(instance, ["woocommerce", "magento2"])
    render_fleet(instance)
    template = next((env.templates_dir / "woocommerce").glob("*.j2"))
    template.write_text(template.read_text() + "\n{# a template edit #}\n")
    assert run(instance, "plugin_template_job", partition_key="woocommerce").success
    config = env.configs_dir / "nordbank.yaml"
    config.write_text(config.read_text().replace("name: Nord Bank", "name: Nord Bank Europe", 1))
    assert run(instance, "client_config_job", partition_key="nordbank").success

    requests = tick(instance).run_requests
    planned = {
        job: [(r.tags[RANGE_START_TAG], r.tags[RANGE_END_TAG]) for r in requests if r.job_name == job]
        for job in ("plugin_build_job", "plugin_lineage_job")
    }
    assert planned == {
        "plugin_build_job": [("baltic-credit|woocommerce",) * 2, ("zeta-bank|woocommerce",) * 2],
        "plugin_lineage_job": [("nordbank|woocommerce", "nordbank|magento2")],
    }
    fleet = load_fleet(env.configs_dir)
    enabled = {c: fleet.clients[c].config.enabled_platforms() for c in CLIENTS}
    template_change = {"baltic-credit": ["woocommerce"], "zeta-bank": ["woocommerce"]}
    config_change = {"nordbank": ["woocommerce", "magento2"]}
    # psp fleet's planner, given the same stale plugins, plans the same runs
    assert plan_ranges(CLIENTS, template_change, enabled) == planned["plugin_build_job"]
    assert plan_ranges(CLIENTS, config_change, enabled) == planned["plugin_lineage_job"]
    assert platform_ranges(CLIENTS, template_change, enabled) == planned["plugin_build_job"]
    assert client_ranges(CLIENTS, config_change, enabled) == planned["plugin_lineage_job"]

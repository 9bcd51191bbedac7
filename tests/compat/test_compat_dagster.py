"""The compatibility matrix and the per-version test report through Dagster: real runs, real PHP."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from psp_assets.core.templates.spec import PHP_VERSIONS
from psp_assets.core.workspace import Paths
from psp_assets.definitions import defs
from psp_assets.defs.compat import compatibility_matrix_job, nightly_compatibility_matrix
from psp_assets.fleet import latest_metadata, run_fleet
from tests.compat.conftest import ENUM_FILE, add_file
from tests.conftest import DEMO_CLIENTS

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def env(templates_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    shutil.copytree(DEMO_CLIENTS, tmp_path / "client_configs")
    for key, value in {
        "PSP_CLIENT_CONFIGS_DIR": tmp_path / "client_configs",
        "PSP_TEMPLATES_DIR": templates_dir,
        "PSP_DATA_DIR": tmp_path / "data",
        "PSP_STORES_DIR": tmp_path / "stores",
    }.items():
        monkeypatch.setenv(key, str(value))
    return Paths.from_env()


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def nightly(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("compatibility_matrix_job").execute_in_process(instance=instance, raise_on_error=False)


def checks_of(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_nightly_matrix_is_stored_and_shown_as_a_table_and_a_heatmap(env: Paths, instance):
    result = nightly(instance)
    assert result.success
    [materialization] = result.asset_materializations_for_node("compatibility_matrix")
    meta = materialization.metadata
    stored = pd.read_parquet(meta["path"].value)
    assert len(stored) == meta["dagster/row_count"].value == 6 * len(PHP_VERSIONS)
    assert set(stored.loc[stored["declared"], "status"]) == {"pass"}
    table = meta["cells"].value
    assert len(table.records) == len(stored)
    assert {r.data["php_version"] for r in table.records} == set(PHP_VERSIONS)
    assert meta["heatmap"].value.startswith("![compatibility matrix](data:image/png;base64,iVBOR")
    assert Path(meta["heatmap_path"].value).read_bytes()[:4] == b"\x89PNG"
    assert set(meta["php_runtime_boots"].value) <= set(PHP_VERSIONS)
    assert all(n <= 1 for n in meta["php_runtime_boots"].value.values())  # one boot per version at most
    assert {k: e.passed for k, e in checks_of(result).items()} == {
        "no_cell_regressed": True,
        "declared_cells_pass": True,
    }


def test_a_cell_that_went_from_pass_to_fail_fails_the_check_naming_it(env: Paths, templates_dir: Path, instance):
    assert checks_of(nightly(instance))["no_cell_regressed"].passed
    add_file(templates_dir, "woocommerce", "includes/policy-probe.php", ENUM_FILE)
    second = nightly(instance)
    regression = checks_of(second)["no_cell_regressed"]
    assert not regression.passed
    text = regression.metadata["regressed_cells"].value
    named = {line.split(":")[0].removeprefix("- ") for line in text.splitlines()}
    assert named == {f"woocommerce {pv} x PHP {php}" for pv in ("8.9", "9.4", "10.2") for php in ("7.4", "8.0")}
    assert "includes/policy-probe.php" in text
    assert regression.metadata["regressed"].value == 6
    assert not checks_of(second)["declared_cells_pass"].passed


def test_the_matrix_job_is_scheduled_every_night_at_two(env: Paths, instance):
    assert nightly_compatibility_matrix.cron_schedule == "0 2 * * *"
    assert nightly_compatibility_matrix.job_name == compatibility_matrix_job.name
    assert nightly_compatibility_matrix.default_status == dg.DefaultScheduleStatus.RUNNING
    context = dg.build_schedule_context(instance=instance)
    assert isinstance(nightly_compatibility_matrix.evaluate_tick(context).run_requests[0], dg.RunRequest)


def test_test_report_shows_each_declared_php_version_and_blocks_the_build_on_the_old_ones(
    env: Paths, templates_dir: Path, instance
):
    add_file(templates_dir, "woocommerce", "includes/policy-probe.php", ENUM_FILE)
    # the private templates hold WooCommerce and Magento 2 only: a config enabling Shopify would be refused
    config = env.configs_dir / "nordbank.yaml"
    config.write_text(config.read_text().replace("  shopify:\n", "  shopify:\n    enabled: false\n", 1))
    run_fleet(env, clients=["nordbank"], instance=instance)
    woo = latest_metadata(instance, "test_report", "nordbank|woocommerce")
    assert woo["passed"] is False
    assert woo["php_version"] == ", ".join(PHP_VERSIONS)
    table = woo["php_matrix"]
    assert "| 7.4 | **FAIL** | 1 | 0 |" in table and "| 8.0 | **FAIL** | 1 | 0 |" in table
    assert all(f"| {v} | pass | 0 | 0 |" in table for v in PHP_VERSIONS[2:])
    assert not latest_metadata(instance, "built_artifact", "nordbank|woocommerce")  # nothing was built
    magento = latest_metadata(instance, "test_report", "nordbank|magento2")
    assert magento["passed"] is True and magento["php_version"] == "8.1, 8.2, 8.3, 8.4"
    assert latest_metadata(instance, "built_artifact", "nordbank|magento2")

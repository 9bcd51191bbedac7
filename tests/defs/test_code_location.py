"""One code location name everywhere: `dagster dev` (pyproject.toml or workspace.yaml), the daemon and
every `dagster ... -w workspace.yaml` command act on the same location, so `dagster sensor stop -w
workspace.yaml` stops the sensors `make ui` serves."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def _locations(workspace: Path) -> set[str]:
    entries = yaml.safe_load(workspace.read_text())["load_from"]
    return {next(iter(entry.values())).get("location_name") for entry in entries}


def test_pyproject_and_every_workspace_file_name_the_same_code_location():
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dagster"]
    assert _locations(REPO / "workspace.yaml") == {tool["code_location_name"]}
    assert _locations(REPO / "deploy" / "postgres" / "workspace.yaml") == {tool["code_location_name"]}
    # `make ui` serves the workspace file the CLI commands are pointed at
    ui = next(line for line in (REPO / "Makefile").read_text().splitlines() if "dagster dev" in line)
    assert "-w workspace.yaml" in ui


def test_the_code_location_loads_every_area_with_its_definitions_and_the_shared_resources():
    """psp_assets/definitions.py loads psp_assets/defs/ (dg.load_from_defs_folder): one `definitions.py`
    per area and defs/location.py. Pinned by name, so an area that stops loading fails here."""
    import dagster as dg

    from psp_assets.definitions import defs

    repo = defs.get_repository_def()
    assert sorted(k.to_user_string() for k in defs.resolve_all_asset_keys()) == [
        "built_artifact",
        "client_config",
        "client_repository",
        "compatibility_matrix",
        "deployed_store",
        "fleet_rollout",
        "github_release",
        "payment_healing",
        "payment_kpis",
        "payment_reconciliation",
        "plugin_template",
        "psp_payments",
        "rendered_source",
        "store_orders",
        "test_report",
    ]
    assert sorted(k.to_user_string() for k in repo.asset_graph.asset_check_keys) == [
        "compatibility_matrix:declared_cells_pass",
        "compatibility_matrix:no_cell_regressed",
        "fleet_rollout:payment_kpis_after_switch",
        "payment_kpis:kpis_within_limits",
        "payment_reconciliation:divergences_within_age_limit",
        "payment_reconciliation:no_paid_in_store_without_psp_payment",
        "test_report:plugin_checks_pass",
    ]
    assert sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")) == [
        "client_config_job",
        "compatibility_matrix_job",
        "fleet_rollout_job",
        "payment_kpis_job",
        "payment_reconciliation_job",
        "plugin_build_job",
        "plugin_lineage_job",
        "plugin_template_job",
    ]
    assert sorted(s.name for s in repo.schedule_defs) == [
        "nightly_compatibility_matrix",
        "payment_kpis_hourly",
        "payment_reconciliation_every_15_minutes",
    ]
    assert sorted(s.name for s in repo.sensor_defs) == [
        "check_failure_alerts",
        "client_configs_sensor",
        "github_template_sensor",
        "lineage_on_upstream_change_sensor",
        "rollout_after_build_sensor",
        "rollout_payment_gate_sensor",
        "run_failure_alerts",
        "template_change_sensor",
    ]
    assert sorted(defs.resources) == [
        "alerts",
        "compat_io_manager",
        "github",
        "io_manager",
        "ledger",
        "php",
        "template_repo",
        "workspace",
    ]
    assert defs.executor is dg.in_process_executor
    areas = sorted(p.parent.name for p in (REPO / "psp_assets" / "defs").glob("*/definitions.py"))
    assert areas == ["alerts", "compat", "github", "plugins", "reconciliation"]


def test_the_beta_and_preview_filters_silence_exactly_the_apis_they_name():
    """In a fresh interpreter showing every warning: importing the areas' modules directly (outside the
    loader, which mutes Dagster's warnings while it imports) and recording a data version (a run does, at
    every materialization) warn nothing; another beta API still warns."""
    import subprocess
    import sys

    script = "\n".join(
        [
            "import warnings, dagster as dg",
            "import psp_assets.defs.plugins.assets, psp_assets.defs.plugins.rollout, psp_assets.defs.compat.checks",
            "import psp_assets.defs.reconciliation.assets, psp_assets.defs.github.assets",
            "dg.Output(1, data_version=dg.DataVersion('x'))",
            "warnings.warn('Function `other_api` is currently in beta', dg.BetaWarning)",
        ]
    )
    result = subprocess.run([sys.executable, "-W", "always", "-c", script], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    shown = [line for line in result.stderr.splitlines() if "Warning" in line]
    assert len(shown) == 1 and "other_api" in shown[0], result.stderr

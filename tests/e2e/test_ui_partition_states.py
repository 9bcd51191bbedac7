"""The UI shows what happened to each partition of a range run: a client whose plugin failed inside a
fleet range is red (its check failed, an observation `outcome: failed`), not merely absent; a platform a
client does not enable says "not applicable", not only "missing". Launched through the webserver's
GraphQL API as the sensors launch range runs, read in headless Chromium; screenshots in
var/test-artifacts/."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import quote

import pytest

from psp_assets.defs.ranges import range_tags
from tests.e2e.browser import Page, chromium
from tests.e2e.test_ui_lineage import ADD_PARTITION, SKIP_WELCOME
from tests.production.conftest import LINEAGE_RUN_CONFIG, Workspace, write_client
from tests.production.services import Dagster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GOOD, RED = "ui-good-bank", "ui-red-bank"
BODY_TEXT = "document.body ? document.body.innerText : ''"


def _text_once_it_shows(page: Page, *needles: str) -> str | None:
    page.evaluate(SKIP_WELCOME)
    text = page.evaluate(BODY_TEXT) or ""
    return text if all(n in text for n in needles) else None


def _events_page(dagster: Dagster, asset: str, key: str) -> str:
    """The asset's events of one partition: materializations, observations (with their metadata)."""
    return f"{dagster.url}/assets/{asset}?view=events&partition={quote(key, safe='')}"


def test_a_failed_partition_of_a_range_run_is_red_and_a_disabled_platform_is_not_applicable(
    e2e_dagster: Dagster, e2e_workspace: Workspace, artifacts_dir: Path, tmp_path: Path
):
    # The workspace and the Dagster it serves are shared by the package's tests, in whatever order
    # pytest-xdist runs them: the broken template and the red client go again afterwards, or the
    # daemon's sensors would keep starting runs that fail for the red client under the next test.
    readme = e2e_workspace.root / "templates" / "woocommerce" / "readme.txt.j2"
    original = readme.read_text()
    clients = [write_client(e2e_workspace, client) for client in (GOOD, RED)]  # WooCommerce only
    try:
        # the template cannot be rendered for RED alone (an undefined value)
        readme.write_text(original + f'{{% if client.id == "{RED}" %}}{{{{ no_such.value }}}}{{% endif %}}\n')
        repo = {"repositoryLocationName": e2e_dagster.location, "repositoryName": "__repository__"}
        for client in (GOOD, RED):
            added = e2e_dagster.graphql(ADD_PARTITION, {"repo": repo, "key": client})["addDynamicPartition"]
            assert added["__typename"] == "AddDynamicPartitionSuccess", added
        upstream = [e2e_dagster.launch("plugin_template_job", "woocommerce", {})]
        upstream += [e2e_dagster.launch("client_config_job", client, {}) for client in (GOOD, RED)]
        for run_id in upstream:
            assert e2e_dagster.wait_run(run_id, timeout=300) == "SUCCESS", e2e_dagster.logs()

        # one range run over both clients, recorded partition by partition, as the lineage sensor starts it
        tags = range_tags(f"{GOOD}|woocommerce", f"{RED}|woocommerce")
        run_id = e2e_dagster.launch(
            "plugin_build_job", None, LINEAGE_RUN_CONFIG, tags=tags, assets=["rendered_source", "test_report"]
        )
        assert e2e_dagster.wait_run(run_id, timeout=420) == "FAILURE", e2e_dagster.logs()

        profile = tmp_path / "chromium-profile"
        profile.mkdir()
        started = time.monotonic()
        with chromium(profile) as page:
            page.navigate(_events_page(e2e_dagster, "rendered_source", f"{RED}|woocommerce"))
            try:
                red = wait_for("the failed observation", lambda: _text_once_it_shows(page, "outcome", "failed"), 120, 1)
            finally:
                page.screenshot(artifacts_dir / "failed-partition-events.png")
            page.navigate(f"{e2e_dagster.url}/assets/test_report?view=checks")
            try:
                check = wait_for("the red check", lambda: _text_once_it_shows(page, "Failed", RED), 120, 1)
            finally:
                page.screenshot(artifacts_dir / "failed-partition-check.png")
            page.navigate(_events_page(e2e_dagster, "rendered_source", f"{GOOD}|opencart"))
            try:
                na = wait_for(
                    "the not-applicable observation", lambda: _text_once_it_shows(page, "not applicable"), 120, 1
                )
            finally:
                page.screenshot(artifacts_dir / "not-applicable-partition.png")
    finally:
        readme.write_text(original)
        for partition in clients:
            (e2e_workspace.configs / f"{partition.split('|')[0]}.yaml").unlink(missing_ok=True)
    (artifacts_dir / "pages.txt").write_text(f"--- failed ---\n{red}\n--- check ---\n{check}\n--- n/a ---\n{na}\n")
    print(f"\ne2e: partition pages checked in {time.monotonic() - started:.1f} s")
    assert f"{GOOD} does not enable opencart" in na
    assert "no_such" in red
    assert "plugin_checks_pass" in check and f"not tested: rendered_source[{RED}|woocommerce]" in check

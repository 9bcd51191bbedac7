"""Runs launched from outside the UI keep the jobs' executor: Dagster's own GraphQL client
(`dagster_graphql.DagsterGraphQLClient`) against the real webserver and daemon, with no run config at
all, as scripts and other services launch them. Every step runs in the run's process."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from dagster_graphql import DagsterGraphQLClient

from tests.production.services import Dagster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUN_MESSAGES = """
query Logs($runId: ID!) {
  logsForRun(runId: $runId) {
    __typename ... on EventConnection { events { __typename ... on MessageEvent { message } } }
  }
}"""


def messages(dagster: Dagster, run_id: str) -> list[str]:
    events = dagster.graphql(RUN_MESSAGES, {"runId": run_id})["logsForRun"]["events"]
    return [e.get("message") or "" for e in events]


@pytest.mark.parametrize(
    ("job", "partition", "assets"),
    [
        ("plugin_template_job", "woocommerce", None),  # a job of the code location
        ("__ASSET_JOB", "woocommerce", ["plugin_template"]),  # what the asset graph's Materialize launches
    ],
)
def test_a_run_launched_through_the_graphql_client_executes_in_process(
    e2e_dagster: Dagster, job: str, partition: str, assets: list[str] | None
):
    url = urlparse(e2e_dagster.url)
    client = DagsterGraphQLClient(url.hostname or "127.0.0.1", port_number=url.port, timeout=60)
    run_id = client.submit_job_execution(
        job,
        repository_location_name=e2e_dagster.location,
        repository_name="__repository__",
        tags={"dagster/partition": partition},
        asset_selection=assets,
    )
    status = wait_for(
        f"run {run_id}",
        lambda: (s := client.get_run_status(run_id).value) in ("SUCCESS", "FAILURE", "CANCELED") and s,
        300,
        interval=1,
    )
    logged = messages(e2e_dagster, run_id)
    assert status == "SUCCESS", "\n".join(logged[-20:]) + e2e_dagster.logs()
    assert any(m.startswith("Executing steps in process") for m in logged), logged
    assert not any("multiprocess executor" in m for m in logged), logged

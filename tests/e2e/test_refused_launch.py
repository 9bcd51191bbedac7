"""A run launched for a partition whose upstream was never materialized is refused at launch, on the
embedded default instance (the repository's dagster.yaml): the run coordinator marks it failed with the
reason before any process starts, and it is not retried. Launched through GraphQL, as the UI does."""

from __future__ import annotations

import pytest

from tests.e2e.test_graphql_executor import messages
from tests.production.services import Dagster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADD_PARTITION = """
mutation Add($selector: RepositorySelector!, $name: String!, $key: String!) {
  addDynamicPartition(repositorySelector: $selector, partitionsDefName: $name, partitionKey: $key) {
    __typename ... on PythonError { message } ... on UnauthorizedError { message }
  }
}"""
RUN_TAGS = "query Tags($runId: ID!) { runOrError(runId: $runId) { ... on Run { status tags { key value } } } }"


def assert_refused(dagster: Dagster, run_id: str, missing: str) -> None:
    """Failed with the reason at submission: no step ever started, and no retry is planned."""
    status = wait_for(f"run {run_id} to be failed", lambda: (s := dagster.run_status(run_id)) != "QUEUED" and s, 60)
    logged = messages(dagster, run_id)
    assert status == "FAILURE", logged
    refusals = [m for m in logged if m.startswith("refused before it started")]
    assert len(refusals) == 1 and missing in refusals[0] and "not been materialized yet" in refusals[0], logged
    assert not any(m.startswith(("Started execution of step", "Executing steps")) for m in logged), "\n".join(logged)
    run = dagster.graphql(RUN_TAGS, {"runId": run_id})["runOrError"]
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["psp/refused"] == "missing upstream" and tags["dagster/max_retries"] == "0"
    assert tags.get("dagster/will_retry") in (None, "false"), tags


def test_a_run_of_a_partition_whose_client_config_was_never_materialized_is_refused_at_launch(e2e_dagster: Dagster):
    selector = {"repositoryLocationName": e2e_dagster.location, "repositoryName": "__repository__"}
    added = e2e_dagster.graphql(ADD_PARTITION, {"selector": selector, "name": "client", "key": "unrecorded-bank"})
    assert added["addDynamicPartition"]["__typename"] == "AddDynamicPartitionSuccess", added
    run_id = e2e_dagster.launch("plugin_lineage_job", "unrecorded-bank|woocommerce")
    assert_refused(e2e_dagster, run_id, "client_config[unrecorded-bank]")

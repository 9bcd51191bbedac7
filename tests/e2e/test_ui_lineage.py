"""The UI as its users use it: a partition materialized through the webserver's GraphQL API (what the
asset graph's Materialize button sends), then the asset's lineage page in a real headless Chromium,
which must draw the path plugin_template -> rendered_source -> test_report -> built_artifact ->
deployed_store. The screenshot is kept in var/test-artifacts/."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e.browser import Page, chromium
from tests.production.conftest import LINEAGE_RUN_CONFIG, Workspace, write_client
from tests.production.services import Dagster, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LINEAGE_PATH = [
    ("plugin_template", "rendered_source"),
    ("client_config", "rendered_source"),
    ("rendered_source", "test_report"),
    ("test_report", "built_artifact"),
    ("built_artifact", "deployed_store"),
]
ADD_PARTITION = """
mutation Add($repo: RepositorySelector!, $key: String!) {
  addDynamicPartition(repositorySelector: $repo, partitionsDefName: "client", partitionKey: $key) {
    __typename ... on PythonError { message } ... on DuplicateDynamicPartitionError { partitionName } } }"""
IN_PROCESS: dict = {}  # every job runs in process (its executor_def); nothing to choose in run config

# Reads the lineage graph the page drew: each node (an SVG foreignObject) by its name, and each edge
# (an SVG path) by the nodes its two ends touch. Returns null until the graph is on the page.
READ_GRAPH = """
(() => {
  const svg = document.querySelector('svg[class*="sVGContainer"]');
  if (!svg) return null;
  const nodes = [...svg.querySelectorAll('foreignObject')].map(f => {
    const label = f.querySelector('[data-tooltip]');
    const at = (attr) => +f.getAttribute(attr);
    return {name: label ? label.getAttribute('data-tooltip') : null, text: f.textContent,
            x: at('x'), y: at('y'), w: at('width'), h: at('height')};
  });
  const touching = (x, y, side) => nodes.find(n => y >= n.y && y <= n.y + n.h &&
      Math.abs((side === 'out' ? n.x + n.w : n.x) - x) <= 12);
  const edges = [...svg.querySelectorAll(':scope > path')].map(p => {
    const v = (p.getAttribute('d').match(/-?[0-9.]+/g) || []).map(Number);
    const from = touching(v[0], v[1], 'out'), to = touching(v[v.length - 2], v[v.length - 1], 'in');
    return [from ? from.name : null, to ? to.name : null];
  });
  const modal = [...document.querySelectorAll('button')].some(b => b.innerText.trim() === 'Skip');
  return JSON.stringify({nodes: nodes.map(n => [n.name, n.text]), edges, modal});
})()"""
SKIP_WELCOME = """
(() => { const b = [...document.querySelectorAll('button')].find(b => b.innerText.trim() === 'Skip');
         if (b) b.click(); return !!b; })()"""


def _graph_drawn(page: Page) -> dict | None:
    raw = page.evaluate(READ_GRAPH)
    if not raw:
        return None
    graph = json.loads(raw)
    if graph["modal"]:  # the first-visit "Join the Dagster community" dialog: a user clicks Skip
        page.evaluate(SKIP_WELCOME)
        return None
    nodes = dict(graph["nodes"])
    edges = {tuple(edge) for edge in graph["edges"]}
    drawn = {a for pair in LINEAGE_PATH for a in pair} <= set(nodes) and set(LINEAGE_PATH) <= edges
    # node details load after the graph: wait until they show the materialization that was just made
    return graph if drawn and _shows_materialization(nodes) else None


def _shows_materialization(nodes: dict[str, str]) -> bool:
    # The node's check summary counts every partition: "1 / 1 Passed" only while no partition of the
    # package's shared instance has a red check (test_ui_partition_states leaves one, and pytest-xdist may
    # run it first). This partition's check passed: the run succeeded, and the check blocks the build.
    return "Latest event\u2013" not in nodes["deployed_store"] and "/ 1 Passed" in nodes["test_report"]


def test_a_materialized_partition_shows_its_lineage_from_template_to_store_in_the_browser(
    e2e_dagster: Dagster, e2e_workspace: Workspace, artifacts_dir: Path, tmp_path: Path
):
    started = time.monotonic()
    partition = write_client(e2e_workspace, "browser-bank")
    client = partition.split("|")[0]
    repo = {"repositoryLocationName": e2e_dagster.location, "repositoryName": "__repository__"}
    added = e2e_dagster.graphql(ADD_PARTITION, {"repo": repo, "key": client})["addDynamicPartition"]
    assert added["__typename"] == "AddDynamicPartitionSuccess", added
    upstream = [
        e2e_dagster.launch("plugin_template_job", "woocommerce", IN_PROCESS),
        e2e_dagster.launch("client_config_job", client, IN_PROCESS),
    ]
    for run_id in upstream:
        assert e2e_dagster.wait_run(run_id, timeout=300) == "SUCCESS", e2e_dagster.logs()

    # what the asset graph's "Materialize" sends for one partition of the four lineage assets
    run_id = e2e_dagster.launch(
        "__ASSET_JOB",
        partition,
        LINEAGE_RUN_CONFIG,
        assets=["rendered_source", "test_report", "built_artifact", "deployed_store"],
    )
    assert e2e_dagster.wait_run(run_id, timeout=420) == "SUCCESS", e2e_dagster.logs()
    materialized = time.monotonic()

    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    with chromium(profile) as page:
        page.navigate(f"{e2e_dagster.url}/assets/deployed_store?view=lineage&lineageScope=upstream&lineageDepth=5")
        try:
            graph = wait_for("the lineage graph plugin_template -> deployed_store", lambda: _graph_drawn(page), 120, 1)
        finally:
            shot = page.screenshot(artifacts_dir / "asset-lineage.png")
    (artifacts_dir / "asset-lineage.json").write_text(json.dumps(graph, indent=2))
    print(
        f"\ne2e: upstream + partition materialized in {materialized - started:.1f} s, lineage page checked in "
        f"{time.monotonic() - materialized:.1f} s; screenshot {shot}"
    )
    assert _shows_materialization(dict(graph["nodes"]))
    assert shot.stat().st_size > 10_000

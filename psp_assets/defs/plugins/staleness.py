"""What is out of date, read from what the instance recorded, whoever launched the runs that recorded it.

`plugin_template[P]` records its content hash and `client_config[c]` its config hash (both also their
data versions); every `rendered_source[c|P]` records the template and config hashes it was rendered
from. A plugin partition is stale when those differ from the latest upstream records, or when it was
never rendered. No sensor cursor or run key takes part: a fresh daemon, a second daemon or a run
launched from the UI, the CLI or `psp fleet` all see the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg

from psp_assets.core.config.fleet import Fleet
from psp_assets.core.templates.spec import PLATFORMS

PAGE = 1000


def latest_metadata(instance: dg.DagsterInstance, asset: str, partitions: Iterable[str]) -> dict[str, dict[str, Any]]:
    """partition -> metadata of its latest materialization, for the `partitions` that have one. Reads the
    newest records first, page by page, and stops once every wanted partition is seen."""
    wanted = set(partitions)
    found: dict[str, dict[str, Any]] = {}
    if not wanted:
        return found
    records_filter = dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=sorted(wanted))
    cursor = None
    while len(found) < len(wanted):
        page = instance.fetch_materializations(records_filter, limit=PAGE, cursor=cursor, ascending=False)
        for record in page.records:
            key, event = record.partition_key, record.asset_materialization
            if key is not None and key not in found and event is not None:
                found[key] = {k: getattr(v, "value", v) for k, v in event.metadata.items()}
        if not page.has_more:
            break
        cursor = page.cursor
    return found


def recorded(instance: dg.DagsterInstance, asset: str, partitions: Iterable[str], field_name: str) -> dict[str, str]:
    """partition -> the `field_name` its latest materialization recorded (a content hash)."""
    return {
        key: str(meta[field_name])
        for key, meta in latest_metadata(instance, asset, partitions).items()
        if meta.get(field_name)
    }


@dataclass(frozen=True)
class Staleness:
    """The enabled plugin partitions whose recorded inputs differ from the latest upstream records."""

    templates: dict[str, str]  # platform -> recorded template hash
    configs: dict[str, str]  # client -> recorded config hash
    # client -> its stale platforms (config changed, or never rendered: its lineage runs through deploy)
    by_client: dict[str, list[str]] = field(default_factory=dict)
    # platform -> its clients whose template changed (a fleet rebuild, deployed by the rollout after)
    by_platform: dict[str, list[str]] = field(default_factory=dict)


def stale_partitions(instance: dg.DagsterInstance, fleet: Fleet, clients: list[str]) -> Staleness:
    """Which enabled `client|platform` partitions are out of date, grouped by their cause. `clients`:
    the client dimension's partitions in its own order. Partitions whose template or config was never
    recorded wait: recording it makes them stale."""
    templates = recorded(instance, "plugin_template", PLATFORMS, "template_hash")
    configs = recorded(instance, "client_config", clients, "config_hash")
    enabled = {
        c: [p for p in PLATFORMS if p in fleet.clients[c].config.enabled_platforms() and p in templates]
        for c in clients
        if c in configs and c in fleet.clients
    }
    keys = [f"{c}|{p}" for c, platforms in enabled.items() for p in platforms]
    rendered = latest_metadata(instance, "rendered_source", keys)
    result = Staleness(templates, configs)
    for client, platforms in enabled.items():
        for platform in platforms:
            was = rendered.get(f"{client}|{platform}")
            if was is None or was.get("config_hash") != configs[client]:
                result.by_client.setdefault(client, []).append(platform)
            elif was.get("template_hash") != templates[platform]:
                result.by_platform.setdefault(platform, []).append(client)
    return result

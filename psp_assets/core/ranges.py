"""Range runs over the `client|platform` partition grid: which rectangles cover exactly the plugins to
build. `psp fleet` and the lineage sensor both plan with these functions; the Dagster layer only turns
each range into run tags (defs/ranges.py).

A range `first .. last` is a rectangle of the grid, in the dimensions' own orders: the client order of
the dynamic partitions, the platform order of `PLATFORMS`. Inside it the assets skip a platform its client
does not enable; any other partition inside it would be built. So a range may pass over a client (or
platform) that does not enable the platform (or is not enabled by the client), and ends at one that is
enabled but not to be built."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

from psp_assets.core.templates.spec import PLATFORMS


class PartitionRange(NamedTuple):
    """One run's partitions, `first .. last` (keys `client|platform`)."""

    first: str
    last: str


def chunked(items: Sequence[str], size: int) -> list[list[str]]:
    """`items` in order, cut into lists of at most `size`."""
    size = max(1, size)
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def platform_ranges(
    order: Sequence[str],
    wanted: Mapping[str, Collection[str]],
    enabled: Mapping[str, Collection[str]] | None = None,
    chunk: int = 100,
    platforms: Sequence[str] = PLATFORMS,
) -> list[PartitionRange]:
    """Per platform, ranges over consecutive clients of `order` that want it built. `wanted`: client ->
    the platforms to build; `enabled`: client -> the platforms it enables (default `wanted`). A client
    that does not enable the platform is passed over; any other client not wanting it (or absent from
    `enabled`) ends the range. At most `chunk` clients to build per range."""
    enabled = wanted if enabled is None else enabled
    result: list[PartitionRange] = []
    for platform in platforms:
        segment: list[str] = []
        for client in [*order, None]:
            if client is not None and platform in wanted.get(client, ()):
                segment.append(client)
                continue
            if client is not None and client in enabled and platform not in enabled[client]:
                continue
            result += [PartitionRange(f"{p[0]}|{platform}", f"{p[-1]}|{platform}") for p in chunked(segment, chunk)]
            segment = []
    return result


def client_ranges(
    order: Sequence[str],
    wanted: Mapping[str, Collection[str]],
    enabled: Mapping[str, Collection[str]] | None = None,
    platforms: Sequence[str] = PLATFORMS,
) -> list[PartitionRange]:
    """Per client of `order`, ranges over consecutive platforms it wants built, passing over the platforms
    it does not enable and ending at one it enables (or may: a client absent from `enabled`) but does
    not want built."""
    enabled = wanted if enabled is None else enabled
    result: list[PartitionRange] = []
    for client in order:
        want, has = wanted.get(client, ()), enabled.get(client, platforms)
        segment: list[str] = []
        for platform in [*platforms, None]:
            if platform is not None and platform in want:
                segment.append(platform)
                continue
            if platform is not None and platform not in has:
                continue
            if segment:
                result.append(PartitionRange(f"{client}|{segment[0]}", f"{client}|{segment[-1]}"))
            segment = []
    return result


def plan_ranges(
    order: Sequence[str],
    wanted: Mapping[str, Collection[str]],
    enabled: Mapping[str, Collection[str]] | None = None,
    chunk: int = 100,
    platforms: Sequence[str] = PLATFORMS,
) -> list[PartitionRange]:
    """The fewer runs of `platform_ranges` and `client_ranges` (per platform on a tie): a fleet-wide build
    is one run per platform, one new client one run over its platforms."""
    per_platform = platform_ranges(order, wanted, enabled, chunk, platforms)
    per_client = client_ranges(order, wanted, enabled, platforms)
    return per_platform if len(per_platform) <= len(per_client) else per_client


def covered(
    ranges: Sequence[PartitionRange], order: Sequence[str], platforms: Sequence[str] = PLATFORMS
) -> list[set[str]]:
    """The partitions inside each range (the rectangle), for checking a plan."""
    result = []
    for first, last in ranges:
        (c0, p0), (c1, p1) = first.split("|", 1), last.split("|", 1)
        clients = order[order.index(c0) : order.index(c1) + 1]
        in_range = platforms[platforms.index(p0) : platforms.index(p1) + 1]
        result.append({f"{c}|{p}" for c in clients for p in in_range})
    return result

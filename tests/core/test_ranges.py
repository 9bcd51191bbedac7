"""The range planner of `psp fleet` and the lineage sensor (core/ranges.py), on random fleets: every
plugin to build is in exactly one range, and no range covers a plugin that is enabled but not to be built."""

from __future__ import annotations

import random

import pytest

from psp_assets.core.ranges import PartitionRange, client_ranges, covered, plan_ranges, platform_ranges
from psp_assets.core.templates.spec import PLATFORMS


def random_fleet(rng: random.Random) -> tuple[list[str], dict[str, list[str]], dict[str, list[str]]]:
    order = [f"c{i:02d}" for i in range(rng.randint(0, 12))]
    enabled = {c: [p for p in PLATFORMS if rng.random() < 0.5] for c in order if rng.random() < 0.9}
    wanted = {c: w for c, ps in enabled.items() if (w := [p for p in ps if rng.random() < 0.6])}
    return order, wanted, enabled


def assert_exact(ranges: list[PartitionRange], order, wanted, enabled) -> None:
    keys = {f"{c}|{p}" for c, ps in wanted.items() for p in ps}
    built: list[str] = []
    for rectangle in covered(ranges, order):
        inside = [k for k in rectangle if k in keys]
        assert inside, f"a range with nothing to build: {rectangle}"
        built += inside
        for key in rectangle - keys:
            client, platform = key.split("|")
            # what the assets would build without being asked: an enabled plugin, or an unknown client's
            assert client in enabled and platform not in enabled[client], f"{key} is rebuilt by {sorted(rectangle)}"
    assert sorted(built) == sorted(keys)  # each wanted plugin once


@pytest.mark.parametrize("seed", range(300))
def test_every_plan_covers_exactly_the_plugins_to_build(seed: int) -> None:
    rng = random.Random(seed)
    order, wanted, enabled = random_fleet(rng)
    chunk = rng.randint(1, 4)
    for ranges in (
        platform_ranges(order, wanted, enabled, chunk),
        client_ranges(order, wanted, enabled),
        plan_ranges(order, wanted, enabled, chunk),
    ):
        assert_exact(ranges, order, wanted, enabled)
    # psp fleet builds every enabled plugin: what it wants is what is enabled
    assert_exact(plan_ranges(order, wanted, None, chunk), order, wanted, wanted)
    for first, last in platform_ranges(order, wanted, enabled, chunk):
        platform = first.split("|")[1]
        clients = order[order.index(first.split("|")[0]) : order.index(last.split("|")[0]) + 1]
        assert sum(platform in wanted.get(c, ()) for c in clients) <= chunk


def test_a_client_that_does_not_enable_the_platform_is_passed_over_and_an_up_to_date_one_ends_the_range() -> None:
    order = ["a", "b", "c", "d", "e"]
    enabled = {c: ["woocommerce"] for c in order} | {"b": ["opencart"]}
    wanted = {"a": ["woocommerce"], "c": ["woocommerce"], "e": ["woocommerce"]}  # d is up to date
    assert platform_ranges(order, wanted, enabled) == [("a|woocommerce", "c|woocommerce"), ("e|woocommerce",) * 2]
    assert client_ranges(["x"], {"x": ["woocommerce", "opencart"]}, {"x": PLATFORMS}) == [
        ("x|woocommerce", "x|woocommerce"),
        ("x|opencart", "x|opencart"),
    ]
    assert client_ranges(["x"], {"x": ["woocommerce", "opencart"]}, {"x": ["woocommerce", "opencart"]}) == [
        ("x|woocommerce", "x|opencart")
    ]

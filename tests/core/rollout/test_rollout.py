import pytest

from psp_assets.core.rollout.waves import StoreVersion, WavePolicy, plan_waves, roll_out, versions_markdown

STORES = [f"s{i:02d}" for i in range(20)]


def test_waves_start_with_the_canary_and_grow():
    waves = plan_waves(STORES, WavePolicy(canary=1, growth=2))
    assert [len(w) for w in waves] == [1, 2, 4, 8, 5]
    assert [s for w in waves for s in w] == STORES


def test_named_canaries_go_first():
    waves = plan_waves(STORES, WavePolicy(growth=3), canaries=["s07", "s13"])
    assert waves[0] == ["s07", "s13"] and waves[1] == STORES[:6] and sum(map(len, waves)) == 20


def test_a_failing_canary_stops_the_rollout_before_any_other_store():
    deployed = []

    def deploy(store):
        deployed.append(store)
        return store != "s00", "1.0.0-old" if store == "s00" else "1.1.0-new"

    report = roll_out(plan_waves(STORES, WavePolicy()), WavePolicy(), deploy, current=lambda _s: "1.0.0-old")
    assert report.stopped and deployed == ["s00"]
    assert "wave 1 (canary): 1 of 1 failed" in report.reason and "19 stores not reached" in report.reason
    assert report.versions["s00"] == "1.0.0-old" and report.versions["s19"] == "not reached (1.0.0-old)"
    assert report.not_reached == 19


def test_a_wave_within_the_failure_limit_continues_and_one_beyond_it_stops():
    policy = WavePolicy(canary=2, growth=2, max_failure_share=0.25)
    bad = {"s02", "s06", "s07", "s08"}  # wave 2 (s02-s05): 1/4 = 25% ok; wave 3 (s06-s13): 3/8 > 25%
    report = roll_out(plan_waves(STORES, policy), policy, lambda s: (s not in bad, "new" if s not in bad else "old"))
    assert report.stopped and [len(w.items) for w in report.waves] == [2, 4, 8]
    assert report.waves[1].failure_share == 0.25 and report.waves[2].failed == ["s06", "s07", "s08"]


def test_a_clean_rollout_reaches_every_store():
    report = roll_out(plan_waves(STORES, WavePolicy()), WavePolicy(), lambda s: (True, "new"))
    assert not report.stopped and set(report.versions.values()) == {"new"}


def test_policy_rejects_nonsense():
    with pytest.raises(ValueError):
        WavePolicy(max_failure_share=1.5)


def test_the_version_table_has_one_row_per_store_and_keeps_data_out_of_the_markup():
    rows = [
        StoreVersion("a|woocommerce production", 1, "rolled back", "1.0.0-aaa", "1.0.0-aaa", "health: a | b\nc"),
        StoreVersion("b|woocommerce production", 2, "not reached", "1.0.0-bbb"),
        StoreVersion("c|woocommerce production", None, "not built", ""),
    ]
    lines = versions_markdown(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert lines[2] == r"| a\|woocommerce production | 1 | **rolled back** | 1.0.0-aaa | 1.0.0-aaa | health: a \| b c |"
    assert lines[4] == r"| c\|woocommerce production | - | not built | unknown | - |  |"

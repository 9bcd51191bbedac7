"""Deploys side by side (core/deploy/parallel.py) and waves deployed concurrently (core/rollout/waves.py):
who ran together is proven by barriers and the order of events, never by timing."""

from __future__ import annotations

import threading

import pytest

from psp_assets.core.deploy.parallel import Job, deploy_workers, in_parallel, side_by_side
from psp_assets.core.errors import PspError
from psp_assets.core.rollout.waves import WavePolicy, plan_waves, roll_out


class Log:
    def __init__(self) -> None:
        self.events: list[str] = []
        self._lock = threading.Lock()

    def add(self, event: str) -> None:
        with self._lock:
            self.events.append(event)


def test_jobs_on_different_hosts_overlap_and_results_keep_the_jobs_order():
    log, barrier = Log(), threading.Barrier(3)

    def job(name: str):
        def run() -> str:
            log.add(f"start {name}")
            barrier.wait(timeout=60)  # breaks unless all three run at once
            log.add(f"end {name}")
            return name.upper()

        return run

    jobs = [Job(n, job(n), frozenset({f"host-{n}"})) for n in ("c", "a", "b")]
    assert list(side_by_side(jobs, workers=3).items()) == [("c", "C"), ("a", "A"), ("b", "B")]
    assert all(e.startswith("start") for e in log.events[:3]), log.events


def test_jobs_sharing_a_store_host_never_run_at_the_same_time():
    log = Log()
    running: dict[str, int] = {}
    lock = threading.Lock()
    overlaps: list[str] = []

    def job(name: str, hosts: set[str]):
        def run() -> str:
            with lock:
                for host in hosts:
                    running[host] = running.get(host, 0) + 1
                    if running[host] > 1:
                        overlaps.append(f"{name} on {host}")
            log.add(f"start {name}")
            log.add(f"end {name}")
            with lock:
                for host in hosts:
                    running[host] -= 1
            return name

        return Job(name, run, frozenset(hosts))

    jobs = [job(f"p{i}", {f"h{i % 2}", "shared" if i % 3 == 0 else f"own{i}"}) for i in range(12)]
    assert list(side_by_side(jobs, workers=4)) == [f"p{i}" for i in range(12)]
    assert overlaps == []
    assert len([e for e in log.events if e.startswith("end")]) == 12


def test_a_failing_job_does_not_stop_the_others_and_its_error_comes_after_all_ended():
    ran: list[str] = []

    def fails() -> None:
        raise RuntimeError("boom on a")

    jobs = [Job("a", fails, frozenset({"h1"})), Job("b", lambda: ran.append("b"), frozenset({"h2"}))]
    jobs.append(Job("c", lambda: ran.append("c"), frozenset({"h1"})))  # same host as the failing one
    for workers in (1, 3):
        ran.clear()
        with pytest.raises(RuntimeError, match="boom on a"):
            side_by_side(jobs, workers)
        assert sorted(ran) == ["b", "c"]


def test_the_workers_setting_is_checked(monkeypatch):
    monkeypatch.delenv("PSP_DEPLOY_WORKERS", raising=False)
    assert deploy_workers() == 4
    monkeypatch.setenv("PSP_DEPLOY_WORKERS", "2")
    assert deploy_workers() == 2
    for bad in ("0", "many", "-3", "65"):
        monkeypatch.setenv("PSP_DEPLOY_WORKERS", bad)
        with pytest.raises(PspError, match=f"PSP_DEPLOY_WORKERS={bad!r}"):
            deploy_workers()


def test_in_parallel_runs_calls_together_and_returns_in_order():
    barrier = threading.Barrier(2)

    def call(n: int):
        def run() -> int:
            barrier.wait(timeout=60)  # breaks unless both run at once
            return n

        return run

    assert in_parallel([call(1), call(2)], 2) == [1, 2]


@pytest.mark.parametrize("failing", [set(), {"s3"}, {"s2", "s5"}, {"s0"}, {"s1", "s2", "s3", "s4"}])
@pytest.mark.parametrize("share", [0.0, 0.5])
def test_a_wave_deployed_concurrently_is_judged_exactly_as_one_deployed_store_by_store(failing, share):
    stores = [f"s{i}" for i in range(9)]
    policy = WavePolicy(canary=1, growth=2.0, max_failure_share=share)
    waves = plan_waves(stores, policy)

    def deploy(item: str) -> tuple[bool, str]:
        return item not in failing, "old" if item in failing else "new"

    serial = roll_out(waves, policy, deploy, current=lambda _s: "old")
    log = Log()

    def deploy_logged(item: str) -> tuple[bool, str]:
        log.add(f"start {item}")
        result = deploy(item)
        log.add(f"end {item}")
        return result

    parallel = roll_out(waves, policy, deploy_logged, current=lambda _s: "old", workers=4)
    assert (parallel.stopped, parallel.reason, parallel.versions) == (serial.stopped, serial.reason, serial.versions)
    assert [(w.items, w.failed) for w in parallel.waves] == [(w.items, w.failed) for w in serial.waves]
    # no store of a later wave starts before every store of the wave before it ended
    wave_of = {s: n for n, wave in enumerate(waves) for s in wave}
    ends = [i for i, e in enumerate(log.events) if e.startswith("end")]
    for i, event in enumerate(log.events):
        if event.startswith("start"):
            earlier = [j for j in ends if wave_of[log.events[j].split()[1]] < wave_of[event.split()[1]]]
            assert all(j < i for j in earlier)


def test_a_wave_deploys_its_stores_at_the_same_time():
    policy = WavePolicy(canary=1, growth=3.0)
    waves = plan_waves(["canary", "a", "b", "c"], policy)
    assert waves == [["canary"], ["a", "b", "c"]]
    barrier = threading.Barrier(3)

    def deploy(item: str) -> tuple[bool, str]:
        if item != "canary":
            barrier.wait(timeout=60)  # breaks unless the wave's three stores deploy at once
        return True, "new"

    report = roll_out(waves, policy, deploy, workers=3)
    assert not report.stopped and report.versions == {s: "new" for s in ["canary", "a", "b", "c"]}


def test_a_wave_never_deploys_two_stores_of_one_host_at_once():
    policy = WavePolicy(canary=1, growth=4.0)
    waves = plan_waves(["canary", "a1", "a2", "b1", "b2"], policy)
    assert waves == [["canary"], ["a1", "a2", "b1", "b2"]]
    barrier, lock = threading.Barrier(2), threading.Lock()
    running: dict[str, int] = {"a": 0, "b": 0, "c": 0}
    overlaps: list[str] = []

    def deploy(item: str) -> tuple[bool, str]:
        with lock:
            running[item[0]] += 1
            if running[item[0]] > 1:
                overlaps.append(item)
        if item[1:] == "1":
            barrier.wait(timeout=60)  # the first store of each host deploy together, the second ones wait
        with lock:
            running[item[0]] -= 1
        return True, "new"

    report = roll_out(waves, policy, deploy, workers=4, hosts=lambda item: frozenset({item[0]}))
    assert not report.stopped and overlaps == []

"""Deploys side by side: a run's plugin deploys (each one plugin's targets in order) handed to a bounded set
of threads, one per store host. The work comes as callables, so this knows nothing of what a deploy takes.

    side_by_side([Job("acme|woocommerce", lambda: deploy(...), frozenset({"shop1:22"})), ...], workers=4)

Each job runs in one thread from start to end: a plugin's staging still goes before its production, and
a failure stops that plugin's later targets only. Two jobs that deploy to one store host never run at the
same time, so a host sees one deploy at a time and its pooled SSH connection (sftp.SftpPool.lease, one
thread at a time) is reused. Results come back in the jobs' order, whatever order they ended in.
"""

from __future__ import annotations

import os
import posixpath
import threading
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from psp_assets.core.config.model import ClientConfig, LocalTarget, SftpTarget
from psp_assets.core.errors import PspError

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")
T = TypeVar("T")

WORKERS_ENV = "PSP_DEPLOY_WORKERS"
DEFAULT_WORKERS = 4  # threads mostly wait on SSH and HTTP; 4 keeps a 2-core machine responsive
MAX_WORKERS = 64


def deploy_workers(value: str | int | None = None) -> int:
    """Threads a deploy step may use: `value`, else $PSP_DEPLOY_WORKERS, else 4. 1 deploys one plugin at
    a time, as before."""
    raw = os.environ.get(WORKERS_ENV, "") if value is None else value
    if raw == "":
        return DEFAULT_WORKERS
    try:
        workers = int(raw)
    except ValueError:
        raise PspError(f"{WORKERS_ENV}={raw!r}: expected a whole number of deploy threads (1-{MAX_WORKERS})") from None
    if not 1 <= workers <= MAX_WORKERS:
        raise PspError(f"{WORKERS_ENV}={raw!r}: expected a whole number of deploy threads (1-{MAX_WORKERS})")
    return workers


def store_hosts(config: ClientConfig, platform: str) -> frozenset[str]:
    """The store hosts a plugin deploys to: host:port of each SFTP target; a local target's directory is
    its own store."""
    settings = config.platform(platform)
    return frozenset(_host(t) for t in (settings.targets if settings else []))


def _host(target: LocalTarget | SftpTarget) -> str:
    if isinstance(target, SftpTarget):
        return f"{target.host}:{target.port}"
    return "local:" + posixpath.normpath(target.path)


@dataclass(frozen=True)
class Job(Generic[K, R]):
    """One unit deployed in one thread: `key` names it, `run` does it, `hosts` are the stores it touches."""

    key: K
    run: Callable[[], R]
    hosts: frozenset[str] = frozenset()


def threads_for(jobs: Sequence[Job[K, R]], workers: int) -> int:
    """One thread per store host the jobs reach (a job without hosts is its own), at most `workers`."""
    hosts = set().union(*(j.hosts for j in jobs)) if jobs else set()
    return max(1, min(workers, len(jobs), len(hosts) + sum(1 for j in jobs if not j.hosts)))


def side_by_side(jobs: Sequence[Job[K, R]], workers: int) -> dict[K, R]:
    """Run every job, up to `threads_for(jobs, workers)` at once and never two that share a store host at
    the same time (a host's deploys follow one another, on its one pooled connection).
    Returns {key: result} in the jobs' order. Every job runs to its end even when another raised; the
    first exception (in job order) is raised then."""
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"jobs share a key: {sorted({str(k) for k in keys if keys.count(k) > 1})}")
    threads = threads_for(jobs, workers)
    if threads == 1:
        done = [_now(j.run) for j in jobs]
        return dict(zip(keys, [f.result() for f in done], strict=True))
    futures: list[Future[R]] = [Future() for _ in jobs]
    pending = list(range(len(jobs)))
    busy: set[str] = set()  # store hosts a running job deploys to
    turn = threading.Condition()

    def work() -> None:
        while True:
            with turn:
                while (pick := next((i for i in pending if not jobs[i].hosts & busy), None)) is None:
                    if not pending:
                        return
                    turn.wait()
                pending.remove(pick)
                busy.update(jobs[pick].hosts)
            try:
                futures[pick].set_result(jobs[pick].run())
            except BaseException as exc:  # raised below, once every job ended
                futures[pick].set_exception(exc)
            finally:
                with turn:
                    busy.difference_update(jobs[pick].hosts)
                    turn.notify_all()

    pool = [threading.Thread(target=work, name=f"psp-deploy-{n}", daemon=True) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return dict(zip(keys, [f.result() for f in futures], strict=True))


def in_parallel(calls: Iterable[Callable[[], T]], workers: int) -> list[T]:
    """Call each, up to `workers` at once, and return their results in order. With one worker, or one call,
    they run in this thread, one after the other. All calls end before the first exception is raised."""
    calls = list(calls)
    if workers <= 1 or len(calls) <= 1:
        futures = [_now(call) for call in calls]
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(calls)), thread_name_prefix="psp-deploy") as pool:
            futures = [pool.submit(call) for call in calls]
        # leaving the `with` waited for every call: no deploy is still running when an error is raised
    return [f.result() for f in futures]


def _now(call: Callable[[], T]) -> Future[T]:
    done: Future[T] = Future()
    try:
        done.set_result(call())
    except Exception as exc:  # raised by the caller of in_parallel, after the other calls ran
        done.set_exception(exc)
    return done

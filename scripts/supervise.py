#!/usr/bin/env python3
"""Runs one command (`dagster dev`, `psp fleet`) and makes sure that everything it starts stops with it.

`make ui` / `make demo` start `dagster dev`, which starts a webserver, a daemon and code servers; the
daemon launches runs, and runs boot PHP and Node runtimes. On Ctrl-C (SIGINT) or SIGTERM, `dagster dev`
stops its own children, but a code server waits for its heartbeat to time out (30-45 s) and a run's
runtimes live as long as their run. This wrapper becomes the "child subreaper" of everything below it
(Linux prctl PR_SET_CHILD_SUBREAPER), so processes whose parent died are re-parented here instead of to
init. On a signal it passes SIGINT on to the command, gives it GRACE seconds to shut down cleanly, then
sends SIGTERM and, KILL_AFTER seconds later, SIGKILL to every process still below it. Everything is
gone within GRACE + KILL_AFTER + 1 seconds (6 s by default).

Usage: scripts/supervise.py [--grace SECONDS] -- COMMAND [ARGS...]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
KILL_AFTER = 2.0


def become_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False  # not Linux: only the process group is signalled


def descendants(root: int) -> list[int]:
    """Every process below `root` (children first seen by their parent pid in /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ")"
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":  # an exited process waiting to be reaped is no longer running
            children.setdefault(int(ppid), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def reap() -> None:
    """Collect every exited child (our own and the orphans re-parented to us)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grace", type=float, default=3.0, help="seconds the command has to stop by itself")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    become_subreaper()
    me = os.getpid()
    stopping: list[float] = []

    def on_signal(signum: int, _frame: object) -> None:
        if not stopping:
            stopping.append(time.monotonic())
            # the command may have had the signal already (Ctrl-C reaches the whole process group)
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGINT)

    child = subprocess.Popen(command)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    code = None
    while True:
        time.sleep(0.2)
        if code is None and (polled := child.poll()) is not None:
            code = polled
        reap()
        left = descendants(me)
        if code is not None and not stopping:
            stopping.append(time.monotonic() - args.grace)  # the command ended: clear up what it left
        if stopping:
            waited = time.monotonic() - stopping[0]
            if not left:
                break
            if waited >= args.grace + KILL_AFTER:
                signal_all(left, signal.SIGKILL)
            elif waited >= args.grace:
                signal_all(left, signal.SIGTERM)
    if code is None:
        code = child.returncode if child.returncode is not None else 128 + signal.SIGINT
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())

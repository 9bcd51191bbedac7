"""The PHP runtime service (core/runtimes/php_service.py): a real service process with real PHP-as-WebAssembly
runtimes. Whatever happens to it, a plugin gets the verdict in-process runtimes give it: a failing plugin
fails through the service, when the service is killed mid-test, and when it answers garbage."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from psp_assets.core import lineage
from psp_assets.core.lineage import render_plugin
from psp_assets.core.plan import plan_plugin
from psp_assets.core.render.engine import read_tree
from psp_assets.core.runtimes import check_cache, php_service
from psp_assets.core.runtimes.php import NativePhp, PhpRuntimes, WasmPhp
from psp_assets.core.workspace import Paths
from tests.compat.conftest import READONLY_FILE
from tests.conftest import DEMO_CLIENTS, TEMPLATES

PLATFORM = "woocommerce"


@pytest.fixture(autouse=True)
def no_cache(monkeypatch: pytest.MonkeyPatch):
    """Every check reaches PHP: these tests are about who runs it."""
    monkeypatch.setenv(check_cache.CACHE_ENV, "0")


@pytest.fixture(scope="module")
def in_process():
    """The reference: in-process runtimes, as without a service."""
    with PhpRuntimes(WasmPhp) as pool:
        yield pool


@pytest.fixture(scope="module")
def failing_plugin(tmp_path_factory: pytest.TempPathFactory):
    """nordbank's WooCommerce plugin with two faults: a PHP 8.1 readonly property (lint fails on 7.4
    and 8.0 only) and one byte in the signature check (hash_equals -> hash_equalz: it still lints,
    the contract fails on every version)."""
    root = tmp_path_factory.mktemp("svc")
    paths = Paths(DEMO_CLIENTS, TEMPLATES, root / "data", root / "stores")
    config = paths.fleet().client("nordbank")
    source = render_plugin(plan_plugin(paths, config, PLATFORM))
    (source.path / "includes" / "class-psp-readonly-probe.php").write_text(READONLY_FILE)
    signature = source.path / "includes" / "core" / "Signature.php"
    signature.write_bytes(signature.read_bytes().replace(b"hash_equals(", b"hash_equalz(", 1))
    t = source.tree
    return paths, config, read_tree(source.path, t.client_id, t.platform, t.plugin_version, t.build), source.path


def verdict(report) -> list[tuple[str, str, bool, str | None]]:
    return sorted((r.check, r.name, r.passed, r.php_version) for r in report.results)


@pytest.fixture(scope="module")
def expected(failing_plugin, in_process) -> list[tuple[str, str, bool, str | None]]:
    paths, config, tree, root = failing_plugin
    report = lineage.test_plugin(plan_plugin(paths, config, tree.platform), tree, root, NativePhp(), in_process)
    failed = {(r.check, r.php_version) for r in report.failures()}
    assert {("lint", "7.4"), ("lint", "8.0"), ("contract", "8.5")} <= failed and ("lint", "8.5") not in failed
    return verdict(report)


def start_service(path: Path, idle: float = 120, watch_pid: int | None = None) -> int:
    return php_service.start(path, idle_seconds=idle, watch_pid=watch_pid or os.getpid())


def end(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # the service and its Node runtimes (its own process group)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


@pytest.fixture
def service(tmp_path: Path):
    path = php_service.socket_path(tmp_path / "data")
    pid = start_service(path)
    yield path, pid
    php_service.stop(path)
    end(pid)


def through(path: Path, fallback: Callable[[str], object] | None = None) -> PhpRuntimes:
    return PhpRuntimes(php_service.ServiceRuntimes(php_service.ServiceClient(path), fallback))


def test_a_failing_plugin_fails_through_the_service_as_it_does_in_process(service, failing_plugin, expected):
    path, _pid = service
    paths, config, tree, root = failing_plugin
    with through(path) as pool:
        report = lineage.test_plugin(plan_plugin(paths, config, tree.platform), tree, root, NativePhp(), pool)
        used = [pool.get(v) for v in pool.versions]
        assert all(rt.served > 0 and rt.fallbacks == 0 for rt in used), [(rt.version, rt.last_error) for rt in used]
        assert sum(pool.boots().values()) == 0, "no runtime booted in this process"
    assert verdict(report) == expected
    stats = php_service.ServiceClient(path).request("stats", 10)
    assert stats["boots"] and set(stats["boots"].values()) == {1}


def test_killing_the_service_mid_test_falls_back_and_gives_the_same_verdict(service, failing_plugin, expected):
    path, pid = service
    paths, config, tree, root = failing_plugin
    done: dict[str, object] = {}
    with through(path) as pool:

        def test() -> None:
            done["report"] = lineage.test_plugin(
                plan_plugin(paths, config, tree.platform), tree, root, NativePhp(), pool
            )

        worker = threading.Thread(target=test)
        worker.start()
        deadline = time.monotonic() + 60
        while not _children(pid) and time.monotonic() < deadline:  # the service is booting a runtime for us
            time.sleep(0.01)
        assert _children(pid), "the service never started a runtime"
        end(pid)
        worker.join(300)
        fallbacks = sum(pool.get(v).fallbacks for v in pool.versions)
    assert fallbacks > 0
    assert verdict(done["report"]) == expected
    assert php_service.ping(path) is None


def _children(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


class GarbledService:
    """A stand-in that speaks the socket but answers wrongly (the real service cannot be made to): each
    reply would pass every file and every script if the client believed it."""

    def __init__(self, path: Path, answer: Callable[[dict], bytes | None]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(str(path))
        self.server.listen(16)
        self.answer = answer
        self.requests = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                line = conn.makefile("rb").readline()
                self.requests += 1
                reply = self.answer(json.loads(line))
                if reply is not None:
                    conn.sendall(reply)

    def close(self) -> None:
        self.server.close()


def _passing(request: dict) -> dict:
    """What a lying service would say: every file lints, every script exits 0 with empty output."""
    if request["op"] == "lint":
        return {"ok": True, "results": [{"path": f, "ok": True, "message": ""} for f in request["files"]]}
    return {"ok": True, "returncode": 0, "stdout": "", "stderr": ""}


def _answer(request: dict, **changes) -> bytes:
    base = {"id": request["id"], "nonce": request["nonce"], "protocol": 1, "php": request["version"] + ".0"}
    return json.dumps({**base, **_passing(request), **changes}).encode() + b"\n"


GARBLES: dict[str, Callable[[dict], bytes | None]] = {
    "not JSON": lambda r: b"all good\n",
    "an answer to another request": lambda r: _answer(r, nonce="0" * 16),
    "another PHP version": lambda r: _answer(r, php="5.6.40"),
    "results for other files, a returncode as text": lambda r: _answer(
        r, results=[{"path": "x.php", "ok": True, "message": ""}], returncode="0"
    ),
    "a run without stdout": lambda r: _answer(r, stdout=None, results=None),
    "another protocol": lambda r: _answer(r, protocol=2),
    "hangs up": lambda r: None,
}


@pytest.mark.parametrize("garble", list(GARBLES))
def test_a_garbled_reply_falls_back_and_the_plugin_still_fails(
    garble: str, tmp_path: Path, failing_plugin, expected, in_process
):
    path = tmp_path / "garbled.sock"
    fake = GarbledService(path, GARBLES[garble])
    paths, config, tree, root = failing_plugin
    try:
        with through(path, in_process.get) as pool:
            report = lineage.test_plugin(plan_plugin(paths, config, tree.platform), tree, root, NativePhp(), pool)
            used = [pool.get(v) for v in pool.versions]
            assert fake.requests > 0 and all(rt.fallbacks > 0 and rt.served == 0 for rt in used)
    finally:
        fake.close()
    assert verdict(report) == expected


def test_without_a_service_runs_boot_their_own_runtimes(tmp_path: Path):
    with through(tmp_path / "absent.sock") as pool:
        php = pool.get("8.3")
        (tmp_path / "v.php").write_text("<?php echo PHP_VERSION;")
        out = php.run(tmp_path / "v.php", [], tmp_path)
        assert out.stdout.startswith("8.3.") and php.fallbacks == 1 and pool.boots() == {"8.3": 1}


def test_the_service_stops_by_itself_when_idle(tmp_path: Path):
    path = php_service.socket_path(tmp_path / "data")
    pid = start_service(path, idle=1)
    try:
        assert php_service.ping(path)["pid"] == pid
        deadline = time.monotonic() + 30
        while path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not path.exists() and php_service.ping(path) is None
        assert os.waitpid(pid, 0)[1] == 0, "it exited cleanly"
    finally:
        end(pid)


def test_the_service_stops_with_the_process_that_started_it(tmp_path: Path):
    daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    path = php_service.socket_path(tmp_path / "data")
    pid = start_service(path, watch_pid=daemon.pid)
    try:
        assert php_service.ping(path) is not None
        daemon.kill()
        daemon.wait()
        deadline = time.monotonic() + 30
        while path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert php_service.ping(path) is None
    finally:
        daemon.kill()
        end(pid)


def test_two_starters_at_once_get_one_service(tmp_path: Path):
    path = php_service.socket_path(tmp_path / "data")
    pids: list[int] = []
    threads = [threading.Thread(target=lambda: pids.append(start_service(path))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert len(set(pids)) == 1
    finally:
        php_service.stop(path)
        end(pids[0])


def test_auto_starts_the_service_on_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from psp_assets.defs.resources import PhpResource

    monkeypatch.setenv("PSP_DATA_DIR", str(tmp_path / "data"))
    path = php_service.socket_path()
    assert php_service.ping(path) is None
    pool = PhpResource(shared=False, service="auto").runtimes
    pid = None
    try:
        php = pool.get("8.3")
        (tmp_path / "v.php").write_text("<?php echo PHP_VERSION;")
        out = php.run(tmp_path / "v.php", [], tmp_path)
        found = php_service.ping(path)
        assert found is not None
        pid = int(found["pid"])
        assert out.stdout.startswith("8.3.") and php.served == 1 and php.fallbacks == 0
        assert sum(pool.boots().values()) == 0, "booted in the service, not here"
    finally:
        pool.close()
        php_service.stop(path)
        if pid is not None:
            end(pid)

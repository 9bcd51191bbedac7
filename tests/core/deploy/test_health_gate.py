"""The HTTP health gate's verdicts and blame, with the store's answers given directly."""

import contextlib
import http.server
import threading
import time

import pytest

from psp_assets.core.deploy.health import GateSettings, check_round, fetch, http_gate

GATE = GateSettings("http://shop/", "http://shop/health", count=3, interval_seconds=0, failure_limit=0)
OK = (200, '{"version": "1.0.0", "build": "abcdefabcdef"}')


def answers(store=(200, "<html>shop</html>"), health=OK):
    def get(url, _timeout):
        result = health if url.endswith("health") else store
        if isinstance(result, Exception):
            raise result
        return result

    return get


def test_a_healthy_store_passes():
    assert check_round(GATE, "1.0.0", "abcdefabcdef", answers()) == ("", "")


def test_php_error_output_blames_the_release_even_with_http_200():
    problem, blame = check_round(GATE, "1.0.0", "abcdefabcdef", answers(store=(200, "<b>Fatal error</b>: boom")))
    assert "PHP error output" in problem and blame == "release"


def test_a_5xx_blames_the_release_and_a_4xx_or_timeout_the_environment():
    assert check_round(GATE, "1.0.0", "abcdefabcdef", answers(store=(500, "")))[1] == "release"
    assert check_round(GATE, "1.0.0", "abcdefabcdef", answers(health=(404, "")))[1] == "environment"
    problem, blame = check_round(GATE, "1.0.0", "abcdefabcdef", answers(health=TimeoutError("slow")))
    assert "no answer" in problem and blame == "environment"


def test_a_different_version_is_reported_and_not_blamed_on_the_release():
    problem, blame = check_round(GATE, "1.1.0", "abcdefabcdef", answers())
    assert "reports 1.0.0 build abcdefabcdef, expected 1.1.0" in problem and blame == "environment"


def test_failures_up_to_the_limit_are_tolerated():
    calls = iter([(500, ""), (200, "ok"), (200, "ok")])

    def flaky(url, _timeout):
        return OK if url.endswith("health") else next(calls)

    tolerant = GateSettings("http://shop/", "http://shop/health", count=3, interval_seconds=0, failure_limit=1)
    assert http_gate(tolerant, "1.0.0", "abcdefabcdef", flaky, sleep=lambda _s: None).ok
    calls = iter([(500, ""), (200, "ok"), (200, "ok")])
    strict = http_gate(GATE, "1.0.0", "abcdefabcdef", flaky, sleep=lambda _s: None)
    assert not strict.ok and strict.blame == "release"


def test_failed_and_inconclusive_rounds_are_counted_apart():
    gate = GateSettings("http://shop/", "http://shop/health", count=4, interval_seconds=0, inconclusive_limit=2)
    flaky = iter([TimeoutError("slow"), OK, TimeoutError("slow"), OK])

    def get(url, _timeout):
        if not url.endswith("health"):
            return (200, "shop")
        answer = next(flaky)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert http_gate(gate, "1.0.0", "abcdefabcdef", get, sleep=lambda _s: None).ok  # 2 inconclusive tolerated
    one_failure = http_gate(gate, "1.0.0", "abcdefabcdef", answers(store=(503, "")), sleep=lambda _s: None)
    assert not one_failure.ok and one_failure.blame == "release"  # failure_limit 0: one 5xx is enough


def test_the_gate_ends_at_its_deadline_however_many_rounds_are_left():
    now = [0.0]

    def get(url, timeout):
        now[0] += timeout  # every request takes as long as it may
        raise TimeoutError("no answer")

    gate = GateSettings(
        "http://shop/", "http://shop/health", count=30, interval_seconds=1, inconclusive_limit=29, deadline_seconds=10
    )
    result = http_gate(
        gate, "1.0.0", "abcdefabcdef", get, sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0]
    )
    assert not result.ok and "deadline of 10 s reached" in result.detail and result.blame == "environment"
    assert now[0] <= 10.0


def test_a_body_trickled_byte_by_byte_cannot_outlast_the_request_timeout():
    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            with contextlib.suppress(OSError):
                for _ in range(1000):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.05)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(TimeoutError):
            fetch(f"http://127.0.0.1:{server.server_address[1]}/", 0.5)  # 1000 bytes would take 50 s
    finally:
        server.shutdown()

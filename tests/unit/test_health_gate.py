"""The HTTP health gate's verdicts and blame, with the store's answers given directly."""

from psp_assets.core.health import GateSettings, check_round, http_gate

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

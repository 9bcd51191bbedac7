"""The contract tests execute a rendered plugin's PHP core with the machine's PHP.

A correct core passes every vector; a core tampered with after rendering (the way a hand edit or a
template bug would change it) fails exactly the vectors that pin what was broken.
"""

from __future__ import annotations

import http.server
import json
import re
import shutil
import ssl
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from psp_assets.core.config.model import load_client
from psp_assets.core.render.engine import render, render_context, write_tree
from psp_assets.core.runtimes.php import NativePhp
from psp_assets.core.templates.spec import load_template
from psp_assets.core.verify.checks import CheckResult
from psp_assets.core.verify.contract.bridge import contract_target
from psp_assets.core.verify.contract.cases import run_contract_tests, run_value_roundtrip
from psp_assets.core.workspace import catalog_for
from tests.conftest import DEMO_CLIENTS, TEMPLATES
from tests.support.standins import standin


@dataclass(frozen=True)
class Rendered:
    root: Path
    namespace: str
    bootstrap: list[str]
    define: dict[str, str]
    status_map: dict[str, str]
    version: str
    build: str

    def contract(self, php, root: Path | None = None, **kwargs) -> dict[str, CheckResult]:
        args = {"version": self.version, "build": self.build, **kwargs}
        results = run_contract_tests(
            root or self.root, self.namespace, self.bootstrap, self.define, self.status_map, php, **args
        )
        return {r.name: r for r in results}


def render_woocommerce(client_id: str, out: Path) -> Rendered:
    template = load_template(TEMPLATES, "woocommerce")
    config = load_client(DEMO_CLIENTS / f"{client_id}.yaml")
    tree = render(template, config)
    write_tree(tree, out)
    target = contract_target(template, render_context(template, config, catalog_for(template, config)))
    return Rendered(
        out, target.namespace, target.bootstrap, target.define, target.status_map, target.version, target.build
    )


@pytest.fixture(scope="module")
def nordbank(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    return render_woocommerce("nordbank", tmp_path_factory.mktemp("nordbank") / "plugin")


@pytest.fixture
def tamper(nordbank: Rendered, tmp_path: Path) -> Callable[[str, str, str], Path]:
    """Copy the rendered plugin and replace `old` (a regex matching exactly once) in one core file."""

    def edit(rel: str, old: str, new: str) -> Path:
        root = tmp_path / "tampered"
        if not root.exists():
            shutil.copytree(nordbank.root, root)
        path = root / "includes" / "core" / rel
        text, count = re.subn(old, new, path.read_text(), flags=re.S)
        assert count == 1, f"{old!r} matched {count} times in {rel}: the test no longer tampers with anything"
        path.write_text(text)
        return root

    return edit


def failed(results: dict[str, CheckResult]) -> dict[str, str]:
    return {name: r.detail for name, r in results.items() if not r.passed}


# --- a correct core ----------------------------------------------------------------------------------


@pytest.mark.parametrize("client_id", ["nordbank", "baltic-credit"])
def test_rendered_core_passes_every_contract_vector(client_id: str, php: NativePhp, tmp_path: Path) -> None:
    rendered = render_woocommerce(client_id, tmp_path / "plugin")
    results = rendered.contract(php)
    assert failed(results) == {}
    assert all(r.check == "contract" and r.php_version == php.version for r in results.values())
    names = "\n".join(results)
    for required in (
        "Signature::verify: valid signature accepted",
        "Signature::verify: tampered body rejected",
        "Signature::verify: wrong secret rejected",
        "Signature::verify: garbage header is malformed",
        "Signature::verify: stale timestamp in the past rejected",
        "Signature::verify: timestamp in the future rejected",
        "Signature::verify compares MACs with hash_equals (valid)",
        "StatusMap::toPlatform(chargeback) is the template's 'on-hold'",
        "StatusMap::canTransition from 'paid' matches payments/statuses.py",
        "StatusMap::canTransition from no status yet matches payments/statuses.py",
        "WebhookProcessor: late pending never downgrades a paid order",
        "WebhookProcessor: the same event twice is applied once",
        "WebhookProcessor: the payload status is a hint: the re-fetched PSP status is applied",
        "WebhookProcessor: a payment locked by another process is not processed",
        "WebhookProcessor: an unknown order is not touched",
        "WebhookProcessor: a bad signature applies nothing and asks the PSP nothing",
        "PspClient sends Bearer key, a fresh UUIDv4 X-Correlation-ID and a versioned User-Agent",
        "Health::report names plugin, version, build and PHP",
        *INTEGRITY_VECTORS,
    ):
        assert required in names


def test_whole_contract_runs_in_one_php_process(nordbank: Rendered, php: NativePhp) -> None:
    class Counting:
        version = php.version
        runs = 0

        def lint(self, root, files):
            return php.lint(root, files)

        def run(self, script, args, cwd, timeout=60):
            Counting.runs += 1
            return php.run(script, args, cwd, timeout)

    results = nordbank.contract(Counting())
    assert Counting.runs == 1
    assert len(results) > 60


# --- tampered cores fail the vectors that pin the broken behaviour -----------------------------------


def test_status_map_edited_after_rendering_fails_mapping_and_webhook_vectors(tamper, nordbank, php) -> None:
    root = tamper("StatusMap.php", r"'paid' => 'processing',", "'paid' => 'completed',")
    failures = failed(nordbank.contract(php, root))
    assert failures["StatusMap::toPlatform(paid) is the template's 'processing'"] == (
        "expected 'processing', got 'completed'"
    )
    assert "WebhookProcessor: late pending never downgrades a paid order" in failures
    assert all(name.startswith(("StatusMap::toPlatform(paid)", "WebhookProcessor:")) for name in failures)
    assert not any(name.startswith("Signature") for name in failures)


def test_mac_compared_with_double_equals_fails_the_constant_time_vectors(tamper, nordbank, php) -> None:
    root = tamper("Signature.php", r"hash_equals\(\$expected, \$candidate\)", "$expected == $candidate")
    failures = failed(nordbank.contract(php, root))
    # == still accepts and rejects the same headers: only the constant-time probe can tell
    assert sorted(failures) == [
        "Signature::verify compares MACs with hash_equals (mismatch)",
        "Signature::verify compares MACs with hash_equals (valid)",
    ]
    assert "never ==" in failures["Signature::verify compares MACs with hash_equals (valid)"]


def test_timestamp_window_checked_in_one_direction_only_fails_the_future_vector(tamper, nordbank, php) -> None:
    root = tamper("Signature.php", r"abs\(\$now - \$timestamp\)", "($now - $timestamp)")
    failures = failed(nordbank.contract(php, root))
    assert failures == {"Signature::verify: timestamp in the future rejected": "expected 'stale', got 'ok'"}


def test_processor_trusting_the_payload_status_fails_the_refetch_vector(tamper, nordbank, php) -> None:
    root = tamper(
        "WebhookProcessor.php",
        r"\$status = isset\(\$payment\['status'\]\) && [^;]*;",
        "$status = $event['status'];",
    )
    failures = failed(nordbank.contract(php, root))
    detail = failures["WebhookProcessor: the payload status is a hint: the re-fetched PSP status is applied"]
    assert "'status': 'paid'" in detail and "'status': 'pending'" in detail


def test_widened_transition_table_lets_late_pending_through_and_fails(tamper, nordbank, php) -> None:
    root = tamper(
        "StatusMap.php",
        r"'paid' => \['partially_refunded', 'refunded', 'chargeback'\],",
        "'paid' => ['partially_refunded', 'refunded', 'chargeback', 'pending'],",
    )
    failures = failed(nordbank.contract(php, root))
    assert (
        "'pending': True (expected False)"
        in failures["StatusMap::canTransition from 'paid' matches payments/statuses.py"]
    )
    assert "'result': 'applied'" in failures["WebhookProcessor: late pending never downgrades a paid order"]


INTEGRITY_VECTORS = (
    "WebhookProcessor: a signed paid event for a superseded payment of the order, for PLN 1.00, never marks it paid",
    "WebhookProcessor: a signed paid event for a payment never created for the order never marks it paid",
    "WebhookProcessor: a signed paid event for the wrong amount never marks the order paid",
    "WebhookProcessor: a signed paid event in the wrong currency never marks the order paid",
    "WebhookProcessor: an authorization for another amount is not applied",
    "WebhookProcessor: a superseded payment that expires leaves the order alone",
    "WebhookProcessor: an order without a recorded payment is never marked paid",
    "WebhookProcessor: a capture larger than the payment, or a paid payment with nothing captured, is not applied",
    "WebhookProcessor: a partial capture is applied, and refunds are checked against what was captured",
)


def test_processor_ignoring_the_amount_marks_a_wrongly_paid_order_paid_and_fails(tamper, nordbank, php) -> None:
    root = tamper(
        "WebhookProcessor.php", r"\$matches = \$detail\['expected_amount'\] > 0 && [^;]*;", "$matches = true;"
    )
    failures = failed(nordbank.contract(php, root))
    assert (
        "'result': 'applied'"
        in failures["WebhookProcessor: a signed paid event for the wrong amount never marks the order paid"]
    )
    assert "WebhookProcessor: a signed paid event in the wrong currency never marks the order paid" in failures
    assert (
        "WebhookProcessor: a signed paid event for a superseded payment of the order, for PLN 1.00, never marks it paid"
        not in failures
    )


def test_processor_accepting_any_payment_of_the_order_fails_the_superseded_payment_vectors(
    tamper, nordbank, php
) -> None:
    root = tamper(
        "WebhookProcessor.php", r"if \(\$currentId === '' \|\| \$paymentId !== \$currentId\) \{", "if (false) {"
    )
    failures = failed(nordbank.contract(php, root))
    superseded = (
        "WebhookProcessor: a signed paid event for a superseded payment of the order, for PLN 1.00, never marks it paid"
    )
    assert "'result': 'amount_mismatch'" in failures[superseded]
    assert "WebhookProcessor: a superseded payment that expires leaves the order alone" in failures
    assert (
        "WebhookProcessor: a signed paid event for a payment never created for the order never marks it paid"
        in failures
    )


def test_processor_that_forgets_the_hold_fails_naming_the_missing_hold(tamper, nordbank, php) -> None:
    root = tamper(
        "WebhookProcessor.php", r"\$this->orders->hold\(\$orderRef, \$result, \$event\['id'\], \$detail\);", ""
    )
    failures = failed(nordbank.contract(php, root))
    detail = failures["WebhookProcessor: a signed paid event in the wrong currency never marks the order paid"]
    assert "orders put on hold with [], expected [['1023', 'amount_mismatch', 'evt_1', 'corr:pay_1023']]" in detail


def test_refund_larger_than_the_capture_is_caught_by_the_amount_vectors(tamper, nordbank, php) -> None:
    tamper("WebhookProcessor.php", r"if \(\$refunded < 0 \|\| \$refunded > \$taken\) \{", "if ($refunded < 0) {")
    root = tamper("WebhookProcessor.php", r"return \$refunded > 0 && \$refunded < \$taken;", "return true;")
    failures = failed(nordbank.contract(php, root))
    vector = "WebhookProcessor: a partial capture is applied, and refunds are checked against what was captured"
    assert "delivery 2" in failures[vector]


def test_lock_not_released_is_reported(tamper, nordbank, php) -> None:
    root = tamper("WebhookProcessor.php", r"\} finally \{\s*\$this->lock->release\(\$lockName\);\s*\}", "} finally {}")
    failures = failed(nordbank.contract(php, root))
    assert (
        "lock(s) still held afterwards: ['payment:pay_1001']"
        in failures["WebhookProcessor: late pending never downgrades a paid order"]
    )
    assert "WebhookProcessor: the lock is released when the PSP cannot be reached" in failures


def test_duplicate_event_check_removed_applies_twice_and_fails(tamper, nordbank, php) -> None:
    root = tamper(
        "WebhookProcessor.php",
        r"if \(\$this->orders->hasProcessedEvent\(",
        "if (false && $this->orders->hasProcessedEvent(",
    )
    failures = failed(nordbank.contract(php, root))
    assert "expected {'result': 'duplicate'" in failures["WebhookProcessor: the same event twice is applied once"]


def test_repeated_correlation_id_fails_the_client_vector(tamper, nordbank, php) -> None:
    root = tamper("PspClient.php", r"\$bytes = random_bytes\(16\);", "$bytes = str_repeat('a', 16);")
    failures = failed(nordbank.contract(php, root))
    assert (
        "X-Correlation-ID repeated across calls"
        in failures["PspClient sends Bearer key, a fresh UUIDv4 X-Correlation-ID and a versioned User-Agent"]
    )


def test_php_warning_raised_by_the_core_fails_that_vector(tamper, nordbank, php) -> None:
    root = tamper("Health.php", r"'php' => PHP_MAJOR_VERSION", "'php' => $undefined . PHP_MAJOR_VERSION")
    failures = failed(nordbank.contract(php, root))
    assert list(failures) == ["Health::report names plugin, version, build and PHP"]
    assert (
        "Warning: Undefined variable $undefined in includes/core/Health.php"
        in failures["Health::report names plugin, version, build and PHP"]
    )


def test_health_showing_the_php_patch_level_fails(tamper, nordbank, php) -> None:
    root = tamper("Health.php", r"'php' => PHP_MAJOR_VERSION [^,]*,", "'php' => PHP_VERSION,")
    failures = failed(nordbank.contract(php, root))
    assert "a public route shows major.minor, never" in failures["Health::report names plugin, version, build and PHP"]


def test_health_must_report_the_release_python_expects(nordbank: Rendered, php: NativePhp) -> None:
    failures = failed(nordbank.contract(php, version="9.9.9", build="0123456789ab"))
    detail = failures["Health::report names plugin, version, build and PHP"]
    assert "version is '1.0.0', expected '9.9.9'" in detail
    assert f"build is '{nordbank.build}', expected '0123456789ab'" in detail
    assert (
        "does not name the plugin version and build"
        in failures["PspClient sends Bearer key, a fresh UUIDv4 X-Correlation-ID and a versioned User-Agent"]
    )


def test_stray_output_from_a_core_file_fails_loading(tamper, nordbank, php) -> None:
    root = tamper("Health.php", r"\Z", "?>\n\n")
    failures = failed(nordbank.contract(php, root))
    assert list(failures) == ["core loads under php -n"]
    assert "whitespace outside the PHP tags" in failures["core loads under php -n"]


def test_unparseable_core_is_one_clear_failure(tamper, nordbank, php) -> None:
    root = tamper("Signature.php", r"final class Signature", "final class Signature extends {")
    results = nordbank.contract(php, root)
    assert list(results) == ["core loads under php -n"]
    assert "ParseError" in results["core loads under php -n"].detail


def test_missing_bootstrap_file_is_named(nordbank: Rendered, php: NativePhp) -> None:
    results = run_contract_tests(
        nordbank.root,
        nordbank.namespace,
        [*nordbank.bootstrap, "includes/core/Nope.php"],
        nordbank.define,
        nordbank.status_map,
        php,
    )
    assert [r.name for r in results] == ["core loads under php -n"]
    assert "includes/core/Nope.php" in results[0].detail


def test_interface_changed_incompatibly_stops_the_harness_with_the_reason(tamper, nordbank, php) -> None:
    root = tamper(
        "OrderStoreInterface.php",
        r"public function getStatus\(string \$orderRef\): \?string;",
        "public function getStatus(string $orderRef): string;",
    )
    results = nordbank.contract(php, root)
    assert not results["harness completed"].passed
    assert "must be compatible" in results["harness completed"].detail
    assert "the harness stopped first" in results["Health::report names plugin, version, build and PHP"].detail


# --- value round trip --------------------------------------------------------------------------------


def test_value_roundtrip_compares_each_value_exactly(nordbank: Rendered, php: NativePhp) -> None:
    expected = {
        "checkout_title": "Betalen met Nord Bank",
        "locales": ["nl_NL", "en_US"],
        "version": "1.0.0",
        "name": "Nord Bank ",  # one trailing space too many
    }
    results = {
        r.name: r
        for r in run_value_roundtrip(
            nordbank.root, nordbank.namespace, nordbank.bootstrap, nordbank.define, expected, php
        )
    }
    assert results["ClientInfo::values()['checkout_title'] comes back literally"].passed
    assert results["ClientInfo::values()['locales'] comes back literally"].passed
    assert results["ClientInfo::values()['name'] comes back literally"].detail == (
        "expected 'Nord Bank ', got 'Nord Bank'"
    )


# --- the core's dependency-free HTTPS transport, against a local TLS server ---------------------------

TRANSPORT_SCRIPT = standin("_shared", "contract_transport.php")


@pytest.fixture
def tls_server(tmp_path: Path):
    """A local HTTPS server with its own CA-less self-signed certificate for `localhost`."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    seen: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "https://localhost/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if self.path.startswith("/v1/payments/"):
                payload = {"id": "pay_9", "status": "paid", "amount": 100, "currency": "EUR", "order_reference": "7"}
            else:
                payload = {"echo": body}
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}", cert, seen
    finally:
        server.shutdown()
        server.server_close()


def test_stream_transport_speaks_verified_https_only(
    nordbank: Rendered, php: NativePhp, tls_server, tmp_path: Path
) -> None:
    base, ca, seen = tls_server
    script = tmp_path / "transport.php"
    script.write_text(TRANSPORT_SCRIPT)
    run = php.run(script, [str(nordbank.root), nordbank.namespace, base, str(ca)], cwd=tmp_path)
    out = json.loads(run.stdout)
    assert out["post"] == {"status": 200, "body": '{"echo": "{\\"a\\":1}"}'}
    assert seen[0]["method"] == "POST" and seen[0]["headers"]["X-Correlation-ID"] == "c-1"
    assert out["redirect"]["status"] == 302  # answered, never followed
    assert out["untrusted"].startswith(
        "threw PspNordbank\\WooCommerce\\Core\\PspException: The PSP could not be reached"
    )
    assert out["plain_http"].endswith("PspException: Refusing to call a non-https URL.")
    assert out["header_injection"].endswith("PspException: Invalid HTTP header: X-Evil")
    assert out["get_payment"] == {
        "id": "pay_9",
        "status": "paid",
        "amount": 100,
        "currency": "EUR",
        "order_reference": "7",
    }
    assert seen[-1]["path"] == "/v1/payments/pay_9" and seen[-1]["headers"]["Authorization"] == "Bearer key_123"
    assert out["errors"] == []
    assert len(seen) == 3  # the refused calls never left PHP

"""The WooCommerce template: a plugin a WordPress installer accepts, that lints on PHP, passes the shared
contract, ships complete translations, and handles checkout, webhooks and refunds when it runs.

The runtime tests load the rendered plugin into a stand-in WordPress/WooCommerce
(tests/standins/woocommerce/wordpress.php, driven by runtime_scenario.php beside it): WooCommerce is in no
package registry this machine reaches, so only the API the plugin calls is imitated, recording what the plugin asks of it. Everything else is real: the rendered files, PHP, the
plugin's own core.
"""

from __future__ import annotations

import gettext
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from psp_assets.core.config.model import ClientConfig, load_client
from psp_assets.core.i18n import load_catalog
from psp_assets.core.render.engine import RenderedTree, render, render_context, render_string, write_tree
from psp_assets.core.runtimes.php import NativePhp
from psp_assets.core.templates.spec import load_template
from psp_assets.core.verify import checks
from psp_assets.core.verify.contract.bridge import contract_results
from psp_assets.core.verify.contract.cases import run_value_roundtrip
from tests.conftest import DEMO_CLIENTS, TEMPLATES, make_client
from tests.support.standins import standin

WP_STANDIN = standin("woocommerce", "wordpress.php", "runtime_scenario.php")


@dataclass(frozen=True)
class Plugin:
    root: Path
    tree: RenderedTree
    config: ClientConfig
    context: dict[str, Any]

    @property
    def main(self) -> Path:
        return self.root / f"{self.context['ids']['slug']}.php"

    def text(self, rel: str) -> str:
        return self.tree.files[rel].decode()


def render_plugin(config: ClientConfig, out: Path) -> Plugin:
    template = load_template(TEMPLATES, "woocommerce")
    catalog = load_catalog(TEMPLATES / "_shared" / "i18n", list(config.locales))
    tree = render(template, config, catalog)
    write_tree(tree, out)
    return Plugin(out, tree, config, render_context(template, config, catalog))


def demo(client_id: str, out: Path) -> Plugin:
    return render_plugin(load_client(DEMO_CLIENTS / f"{client_id}.yaml"), out / client_id)


@pytest.fixture(scope="module")
def nordbank(tmp_path_factory: pytest.TempPathFactory) -> Plugin:
    return demo("nordbank", tmp_path_factory.mktemp("woo"))


@pytest.fixture(scope="module")
def baltic(tmp_path_factory: pytest.TempPathFactory) -> Plugin:
    return demo("baltic-credit", tmp_path_factory.mktemp("woo"))


def run_standin(php: NativePhp, workdir: Path, mode: str, gateway_id: str, *mains: Path) -> dict[str, Any]:
    script = workdir / "wp-standin.php"
    script.write_text(WP_STANDIN)
    run = php.run(script, [mode, gateway_id, *map(str, mains)], cwd=workdir)
    assert run.returncode == 0, run.stderr
    try:
        return json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"the stand-in printed no JSON: {run.stdout[:2000]} {run.stderr[:2000]}")


# --- packaging: what WordPress's installer and the checks expect -----------------------------------------


@pytest.mark.parametrize("client_id", ["nordbank", "baltic-credit"])
def test_demo_client_plugin_lints_and_passes_packaging_and_translation_checks(
    client_id: str, php: NativePhp, tmp_path: Path
) -> None:
    plugin = demo(client_id, tmp_path)
    template = load_template(TEMPLATES, "woocommerce")
    catalog = load_catalog(TEMPLATES / "_shared" / "i18n", list(plugin.config.locales))
    lint = checks.check_lint(plugin.root, plugin.tree.files, template, php)
    packaging = checks.check_packaging(template, plugin.tree.files, lambda t: render_string(t, plugin.context))
    translations = checks.check_translations(plugin.tree.files, catalog, plugin.config.locales)
    assert len(lint) >= 25
    assert [r for r in lint + packaging + translations if not r.passed] == []
    assert len(packaging) == len(template.spec.rules)


def test_plugin_is_one_folder_named_after_the_slug_with_a_full_header(baltic: Plugin) -> None:
    spec = load_template(TEMPLATES, "woocommerce").spec
    assert render_string(spec.packaging.root, baltic.context) == "baltic-credit-pay"
    assert render_string(spec.packaging.artifact, baltic.context) == "baltic-credit-pay-1.0.0.zip"
    header = dict(re.findall(r"^ \* ([A-Za-z ]+):\s+(.+)$", baltic.text("baltic-credit-pay.php"), re.M))
    assert header["Plugin Name"] == "Baltic Credit Union Payments for WooCommerce"
    assert header["Version"] == "1.0.0"
    assert header["Requires PHP"] == "7.4"
    assert header["Text Domain"] == "baltic-credit-pay"
    assert header["Domain Path"] == "/languages"
    assert header["License"] == "GPLv2 or later"
    assert header["WC requires at least"] == spec.platform_versions[0]
    assert header["WC tested up to"] == spec.platform_versions[-1]
    readme = baltic.text("readme.txt")
    assert re.search(r"^Stable tag: 1\.0\.0$", readme, re.M)
    assert "blik" in readme and "PLN" in readme


def test_every_folder_has_a_silent_index_and_every_php_file_an_abspath_guard(nordbank: Plugin) -> None:
    folders = {str(Path(p).parent) for p in nordbank.tree.files}
    assert {f for f in folders if f"{f}/index.php".removeprefix("./") not in nordbank.tree.files} == set()
    for path, data in nordbank.tree.files.items():
        if path.endswith(".php"):
            assert re.search(r"^defined\( ?'ABSPATH' ?\) \|\| exit;$", data.decode(), re.M), path


def test_packaging_rules_catch_a_stable_tag_drift_and_a_missing_guard(nordbank: Plugin) -> None:
    template = load_template(TEMPLATES, "woocommerce")
    files = dict(nordbank.tree.files)
    files["readme.txt"] = files["readme.txt"].replace(b"Stable tag: 1.0.0", b"Stable tag: 0.9.0")
    files["includes/class-lock.php"] = files["includes/class-lock.php"].replace(b"defined( 'ABSPATH' ) || exit;", b"")
    failures = {
        r.name: r.detail
        for r in checks.check_packaging(template, files, lambda t: render_string(t, nordbank.context))
        if not r.passed
    }
    assert any("'0.9.0' != nordbank-payments.php: '1.0.0'" in d for d in failures.values()), failures
    assert any(d == "not in: includes/class-lock.php" for d in failures.values()), failures


def test_compiled_translations_load_with_gettext(baltic: Plugin) -> None:
    languages = baltic.root / "languages"
    for locale, expected in (("lt_LT", "Nustatymai"), ("pl_PL", "Ustawienia"), ("en_GB", "Settings")):
        with (languages / f"baltic-credit-pay-{locale}.mo").open("rb") as handle:
            catalog = gettext.GNUTranslations(handle)
        assert catalog.gettext("Settings") == expected
        assert catalog.gettext("authorized") != "" and catalog.info()["language"] == locale
    pot = (languages / "baltic-credit-pay.pot").read_text()
    assert 'msgid "Enable %s payments"' in pot and "#, php-format" in pot


def test_every_gettext_call_uses_the_plugins_text_domain_and_a_catalog_message(nordbank: Plugin) -> None:
    messages = set(nordbank.context["messages"])
    call = re.compile(
        r"\b(?:__|_e|esc_html__|esc_html_e|esc_attr__|esc_attr_e)\(\s*'((?:[^'\\]|\\.)*)'\s*(,\s*'([^']*)')?"
    )
    found = 0
    for path, data in nordbank.tree.files.items():
        if path.endswith(".php"):
            for msgid, _, domain in call.findall(data.decode()):
                found += 1
                assert domain == "nordbank-payments", f"{path}: {msgid!r} has text domain {domain!r}"
                assert msgid.replace("\\'", "'") in messages, f"{path}: {msgid!r} is not in messages.yaml"
    assert found > 40


def test_checkout_script_is_valid_javascript_and_names_only_the_gateway(nordbank: Plugin, tmp_path: Path) -> None:
    script = nordbank.text("assets/js/checkout.js")
    assert 'var gatewayId = "psp_nordbank";' in script
    assert "Nord Bank" not in script  # shopper-facing text comes from the server at run time
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    path = tmp_path / "checkout.js"
    path.write_text(script)
    subprocess.run([node, "--check", str(path)], check=True, capture_output=True)


def test_contract_passes_for_the_rendered_plugin(nordbank: Plugin, php: NativePhp) -> None:
    template = load_template(TEMPLATES, "woocommerce")
    results = contract_results(nordbank.root, template, nordbank.context, php)
    assert [r for r in results if not r.passed] == []
    assert len(results) > 60


# --- client values are data --------------------------------------------------------------------------

HOSTILE_TITLE = (
    'It\'s "quoted" \\ back\\slash ?> <?php exit; ?> */ /* <script>alert(1)</script> ]]> {{ ids.slug }} '
    "{% raw %} ${x} %s %1$s 東京 Ελληνικά עברית Платите "
)
HOSTILE_DESCRIPTION = (
    "First line: 'single' \"double\" ?> */ <script>alert('x')</script> ]]> <![CDATA[\n"
    "Second line: \\\\server\\share {{ client.name }} {# no comment #}\n\n"
    "日本語 • Ελληνικά • עברית — ends with a backslash \\"
)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Plugin:
    title = (HOSTILE_TITLE * 3)[:200]
    config = make_client(checkout={"title": title, "description": HOSTILE_DESCRIPTION})
    return render_plugin(config, tmp_path_factory.mktemp("hostile") / "plugin")


def test_hostile_checkout_text_renders_lints_and_comes_back_literally(hostile: Plugin, php: NativePhp) -> None:
    assert len(hostile.config.checkout.title) == 200
    lint = php.lint(hostile.root, [p for p in hostile.tree.files if p.endswith(".php")])
    assert [r for r in lint if not r.ok] == []
    template = load_template(TEMPLATES, "woocommerce")
    spec = template.spec.contract
    expected = {
        "checkout_title": hostile.config.checkout.title,
        "checkout_description": HOSTILE_DESCRIPTION,
        "name": "Nord Bank",
        "api_base": "https://api.nordbank.psp.example/v1",
        "locales": ["nl_NL", "en_US"],
        "currencies": ["EUR"],
        "payment_methods": ["card", "ideal", "sepa_direct_debit"],
        "version": "1.0.0",
        "build": hostile.tree.build,
    }
    results = run_value_roundtrip(
        hostile.root,
        render_string(spec.namespace, hostile.context),
        spec.bootstrap,
        dict(spec.define),
        expected,
        php,
    )
    assert [(r.name, r.detail) for r in results if not r.passed] == []
    assert len(results) == 1 + len(expected)
    # the free text lives in one place only: never in headers, readme, catalogs or scripts
    for path, data in hostile.tree.files.items():
        if path != "includes/core/ClientInfo.php":
            assert b"<script>alert(1)</script>" not in data, path


def test_hostile_checkout_text_is_shown_as_text_at_checkout(hostile: Plugin, php: NativePhp, tmp_path: Path) -> None:
    seen = run_standin(php, tmp_path, "woo", "psp_nordbank", hostile.main)
    assert seen["errors"] == []
    title = hostile.config.checkout.title
    escaped = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    assert seen["title"] == escaped.replace("'", "&#039;")
    assert "<script>" not in seen["payment_fields"]
    assert "&lt;script&gt;alert(&#039;x&#039;)&lt;/script&gt;" in seen["payment_fields"]
    assert seen["blocks"]["data"]["title"] == title  # raw data; React renders it as text
    assert seen["blocks"]["data"]["description"] == HOSTILE_DESCRIPTION


# --- running in WordPress ----------------------------------------------------------------------------


def test_plugin_loads_without_woocommerce_and_still_serves_its_rest_routes(
    nordbank: Plugin, php: NativePhp, tmp_path: Path
) -> None:
    seen = run_standin(php, tmp_path, "bare", "psp_nordbank", nordbank.main)
    assert seen["errors"] == []
    assert seen["routes"] == ["nordbank-payments/v1/webhook", "nordbank-payments/v1/health"]
    assert seen["gateways"] == []
    assert seen["health"] == {
        "status": 200,
        "methods": "GET",
        "data": {
            "plugin": "nordbank-payments",
            "version": "1.0.0",
            "build": nordbank.tree.build,
            "php": seen["health"]["data"]["php"],
            "woocommerce": False,
        },
    }
    assert re.fullmatch(r"\d+\.\d+", seen["health"]["data"]["php"])  # no patch level on a public route
    assert seen["unconfigured_webhook"] == {"status": 503, "result": "woocommerce_inactive"}
    assert "need WooCommerce" in seen["admin_notices"]
    assert seen["textdomains"][0][0] == "nordbank-payments"


def test_checkout_webhooks_and_refunds_in_woocommerce(nordbank: Plugin, php: NativePhp, tmp_path: Path) -> None:
    seen = run_standin(php, tmp_path, "woo", "psp_nordbank", nordbank.main)
    assert seen["errors"] == []
    assert seen["gateways"] == ["PspNordbank\\WooCommerce\\Gateway"]
    assert seen["available"] is True and seen["supports"] == ["products", "refunds"]

    # checkout: a hosted payment for the order's amount in minor units, then a redirect to it
    assert seen["process_payment"] == {"result": "success", "redirect": "https://pay.example/c/1"}
    create = seen["create_request"]
    assert (create["method"], create["url"]) == ("POST", "https://api.nordbank.psp.example/v1/payments")
    assert create["headers"]["Authorization"] == "Bearer key_abc_123"
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", create["headers"]["X-Correlation-ID"]
    )
    body = json.loads(create["body"])
    assert (body["amount"], body["currency"], body["order_reference"]) == (1250, "EUR", "1001")
    assert body["webhook_url"] == "https://shop.example/wp-json/nordbank-payments/v1/webhook"
    assert seen["after_checkout"]["meta"]["_psp_nordbank_payment_id"] == "pay_1"
    assert seen["after_checkout"]["meta"]["_psp_nordbank_status"] == "pending"

    # webhooks: HTTP codes tell the PSP whether to retry
    assert seen["steps"] == {
        "paid": {"status": 200, "result": "applied"},
        "same event again": {"status": 200, "result": "duplicate"},
        "late pending": {"status": 200, "result": "ignored"},
        "wrong signature": {"status": 401, "result": "rejected_signature"},
        "no signature": {"status": 401, "result": "rejected_signature"},
        "stale": {"status": 401, "result": "rejected_stale"},
        "psp unreachable": {"status": 503, "result": "psp_unavailable"},
        "order of another gateway": {"status": 404, "result": "unknown_order"},
        "partial refund": {"status": 200, "result": "applied"},
        "oversized": {"status": 413, "result": "payload_too_large"},
        "authorized": {"status": 200, "result": "applied"},
        "paid for PLN 1.00": {"status": 200, "result": "amount_mismatch"},
        "superseded payment paid": {"status": 200, "result": "payment_mismatch"},
        "current payment paid": {"status": 200, "result": "applied"},
    }
    cheap, twice = seen["mismatch"]["1004"], seen["mismatch"]["1005"]
    assert cheap["status"] == "on-hold" and cheap["meta"]["_psp_nordbank_status"] == "pending"
    assert "pay_4" in cheap["notes"][-1] and "1.00 PLN" in cheap["notes"][-1] and "1000.00 EUR" in cheap["notes"][-1]
    assert cheap["notes"][-1].startswith("On hold: Nord Bank reports payment pay_4 as paid for 1.00 PLN")
    assert twice["meta"]["_psp_nordbank_payment_ids"] == ["pay_5a", "pay_5b"]
    assert "pay_5a" in twice["notes"][-2] and "expects payment pay_5b" in twice["notes"][-2]
    assert twice["status"] == "processing" and twice["meta"]["_psp_nordbank_status"] == "paid"
    after = seen["after_webhooks"]
    assert after["status"] == "processing"  # paid -> processing; the late pending changed nothing
    assert after["meta"]["_psp_nordbank_events"] == ["evt_1", "evt_5"]
    assert after["meta"]["_psp_nordbank_status"] == "partially_refunded"
    assert seen["other_order_status"] == "pending"
    assert seen["authorized_status"] == "on-hold"
    assert seen["capture_requests"] == []  # Nord Bank captures automatically

    # refunds go to the PSP with an idempotency key; a refusal is reported with its correlation id
    assert seen["refund"] is True
    refund = seen["refund_request"]
    assert refund["url"] == "https://api.nordbank.psp.example/v1/payments/pay_1/refunds"
    assert json.loads(refund["body"]) == {"amount": 500, "currency": "EUR", "reason": "Damaged"}
    assert refund["headers"]["Idempotency-Key"]
    assert re.fullmatch(
        r"Nord Bank did not accept the refund \(correlation id [0-9a-f-]{36}\)\. .*", seen["failed_refund"]
    )

    # block checkout integration
    assert seen["blocks"]["active"] is True
    assert seen["blocks"]["handles"] == ["nordbank-payments-checkout"]
    assert seen["blocks"]["scripts"]["nordbank-payments-checkout"].endswith("/assets/js/checkout.js")

    # the API key and webhook secret are stored sealed with the site's salts; the plugin runs on them
    assert seen["sealed"]["api_key"].startswith("pspenc:o1:") and "key_abc_123" not in seen["sealed"]["api_key"]
    assert seen["sealed"]["webhook_secret"].startswith("pspenc:o1:") and seen["sealed"]["title"] == "plain"
    assert seen["opened"] == ["key_abc_123", "whsec_stub_secret"]
    # logs help support (correlation ids) and never contain the key or the secret
    logs = "\n".join(seen["logs"])
    assert "correlation id" in logs
    assert "key_abc_123" not in logs and "whsec_stub_secret" not in logs
    # three refused deliveries (wrong, missing and stale signature) within a minute: one log line
    refused = [line for line in seen["logs"] if "refused deliveries" in line]
    assert refused == ["warning: Webhook rejected_signature (1 refused deliveries since the last line) [psp_nordbank]"]
    assert "Webhook amount_mismatch for order 1004" in logs and "put on hold" in logs
    assert seen["domains"] == ["nordbank-payments"]


def test_manual_capture_client_captures_when_the_order_is_completed(php: NativePhp, tmp_path: Path) -> None:
    config = make_client(features={"refunds": True, "partial_refunds": False, "manual_capture": True})
    plugin = render_plugin(config, tmp_path / "plugin")
    seen = run_standin(php, tmp_path, "woo", "psp_nordbank", plugin.main)
    assert seen["errors"] == []
    assert json.loads(seen["create_request"]["body"])["capture"] == "manual"
    assert seen["authorized_status"] == "on-hold"
    [capture] = seen["capture_requests"]
    assert capture["url"] == "https://api.nordbank.psp.example/v1/payments/pay_3/captures"
    assert json.loads(capture["body"]) == {"amount": 2000, "currency": "EUR"}
    # partial refunds are off for this client: the 5.00 refund of a 12.50 order is refused before any call
    assert seen["refund"] == "Nord Bank only refunds the full order amount."
    assert seen["refund_request"] is None


def test_the_same_plugin_loaded_twice_defers_to_the_first_copy(
    nordbank: Plugin, php: NativePhp, tmp_path: Path
) -> None:
    copy = tmp_path / "release-copy"
    shutil.copytree(nordbank.root, copy)
    seen = run_standin(php, tmp_path, "bare", "psp_nordbank", nordbank.main, copy / nordbank.main.name)
    assert seen["errors"] == []
    assert seen["routes"] == ["nordbank-payments/v1/webhook", "nordbank-payments/v1/health"]

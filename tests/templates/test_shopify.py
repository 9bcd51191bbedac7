# ruff: noqa: E501  (the Node driver below is JavaScript source in a string)
"""The Shopify template: a payments app (app server in Node, offsite payments extension) whose configuration
Shopify CLI reads, whose JavaScript passes `node --check`, whose core passes the same contract vectors as
the PHP cores, and whose session endpoints behave when they run.

The runtime test starts the rendered app's own HTTP server in Node and talks to it over HTTP. Shopify and
the PSP cannot be reached from here: tests/support/psp_standin.py serves the parts of their APIs the app
calls over real HTTPS on loopback (the app's own HTTPS transport is used unchanged; only the
*.myshopify.com host is routed to the stand-in, for want of DNS).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
import zipfile
from pathlib import Path
from typing import Any

import pytest

from psp_assets.core.config.model import ClientConfig, load_client
from psp_assets.core.i18n import load_catalog
from psp_assets.core.package import package
from psp_assets.core.payments.openapi import Contract
from psp_assets.core.render.engine import render_string
from psp_assets.core.runtimes.node import NodeRuntime
from psp_assets.core.runtimes.php import NativePhp
from psp_assets.core.templates.spec import SHARED_DIR
from psp_assets.core.verify import checks
from psp_assets.core.verify.contract.bridge import contract_results
from psp_assets.core.verify.contract.node import run_node_contract_tests, run_node_value_roundtrip
from tests.conftest import DEMO_CLIENTS, TEMPLATES, make_client
from tests.support.psp_standin import REDIRECTS, StandInServer
from tests.support.rendered import RenderedPlugin, render_to

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")

SHOP = "standin-shop.myshopify.com"
APP_SECRET = "shpss_standin_app_secret_0123456789"


App = RenderedPlugin


def render_app(config: ClientConfig, out: Path) -> App:
    return render_to("shopify", config, lambda _ids: out, App)


@pytest.fixture(scope="module")
def node() -> NodeRuntime:
    return NodeRuntime()


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory):
    server = StandInServer(tmp_path_factory.mktemp("standin"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def nordbank(tmp_path_factory: pytest.TempPathFactory) -> App:
    return render_app(load_client(DEMO_CLIENTS / "nordbank.yaml"), tmp_path_factory.mktemp("shopify") / "nordbank")


@pytest.fixture(scope="module")
def manual_capture(tmp_path_factory: pytest.TempPathFactory, standin: StandInServer) -> App:
    """A client whose app talks to the stand-in PSP, authorizes and captures later."""
    config = make_client(
        api_base_url=standin.url + "/v1",
        features={"refunds": True, "partial_refunds": True, "manual_capture": True},
        platforms={"shopify": {"slug": "nordbank-payments"}},
    )
    return render_app(config, tmp_path_factory.mktemp("shopify") / "standin")


# --- what Shopify CLI and Node accept ------------------------------------------------------------------


def test_every_module_passes_node_check(nordbank: App, node: NodeRuntime) -> None:
    template = nordbank.template
    results = checks.check_js_syntax(nordbank.root, nordbank.tree.files, template, node)
    assert {r.name for r in results} == {p for p in nordbank.tree.files if p.endswith(".mjs")}
    assert len(results) == 6 and all(r.passed for r in results), [(r.name, r.detail) for r in results]


def test_node_check_reports_a_syntax_error_with_its_file(nordbank: App, node: NodeRuntime, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(nordbank.root, broken)
    (broken / "src/i18n.mjs").write_text(
        (broken / "src/i18n.mjs").read_text().replace("negotiate(requested) {", "negotiate(requested) {{")
    )
    failed = [r for r in checks.check_js_syntax(broken, nordbank.tree.files, nordbank.template, node) if not r.passed]
    assert [r.name for r in failed] == ["src/i18n.mjs"]
    assert "SyntaxError" in failed[0].detail and str(broken) not in failed[0].detail


def test_app_and_extension_configuration_parse_as_shopify_cli_reads_them(nordbank: App) -> None:
    app = tomllib.loads(nordbank.text("shopify.app.toml"))
    assert app["embedded"] is False and app["handle"] == "nordbank-payments"
    base = "https://api.nordbank.psp.example/apps/shopify/nordbank-payments"
    assert app["application_url"] == base + "/app"
    assert app["auth"]["redirect_urls"] == [base + "/auth/callback"]
    topics = [s.get("topics") or s.get("compliance_topics") for s in app["webhooks"]["subscriptions"]]
    assert topics == [["app/uninstalled"], ["customers/data_request", "customers/redact", "shop/redact"]]

    extension_toml = tomllib.loads(nordbank.text("extensions/nordbank-payments/shopify.extension.toml"))
    assert extension_toml["api_version"] == nordbank.template.spec.platform_versions[-1]
    [extension] = extension_toml["extensions"]
    assert extension["type"] == "payments_extension"
    assert extension["targeting"] == [{"target": "payments.offsite.render"}]
    assert extension["payment_session_url"] == base + "/payment_sessions"
    assert extension["refund_session_url"] == base + "/refund_sessions"
    assert "capture_session_url" not in extension  # Nord Bank captures at checkout
    assert extension["merchant_label"] == "Nord Bank" and extension["buyer_label"] == "Betalen met Nord Bank"
    assert extension["supported_countries"] == ["NL", "US"]
    assert extension["supported_payment_methods"] == [
        "visa",
        "master",
        "american_express",
        "maestro",
        "ideal",
        "sepa_direct_debit",
    ]
    assert extension["test_mode_available"] is True
    assert extension["buyer_label_translations"] == [{"locale": "en", "label": "Pay securely with Nord Bank"}]


def test_manual_capture_client_declares_capture_and_void_sessions(manual_capture: App) -> None:
    [extension] = tomllib.loads(manual_capture.text("extensions/nordbank-payments/shopify.extension.toml"))[
        "extensions"
    ]
    assert extension["capture_session_url"].endswith("/capture_sessions")
    assert extension["void_session_url"].endswith("/void_sessions")


def test_packaging_rules_pass_and_the_zip_holds_one_app_folder(nordbank: App, tmp_path: Path) -> None:
    results = checks.check_packaging(
        nordbank.template, nordbank.tree.files, lambda t: render_string(t, nordbank.context)
    )
    assert [(r.name, r.detail) for r in results if not r.passed] == []
    root = render_string(nordbank.template.spec.packaging.root, nordbank.context)
    name = render_string(nordbank.template.spec.packaging.artifact, nordbank.context)
    artifact = package(nordbank.tree, root, name, tmp_path)
    names = zipfile.ZipFile(artifact.path).namelist()
    assert name == "nordbank-payments-shopify-app-1.0.0.zip"
    assert {n.split("/")[0] for n in names} == {"nordbank-payments"}
    assert "nordbank-payments/shopify.app.toml" in names
    assert "nordbank-payments/extensions/nordbank-payments/shopify.extension.toml" in names
    assert "nordbank-payments/server.mjs" in names and "nordbank-payments/package.json" in names


def test_the_app_has_no_third_party_dependencies(nordbank: App) -> None:
    package_json = json.loads(nordbank.text("package.json"))
    assert package_json["dependencies"] == {} and "devDependencies" not in package_json
    assert package_json["type"] == "module" and package_json["engines"] == {"node": ">=18"}
    for path in (p for p in nordbank.tree.files if p.endswith(".mjs")):
        for spec in re.findall(r"""^import .*? from '([^']+)';$""", nordbank.text(path), re.M):
            assert spec.startswith(("node:", "./", "../")), f"{path} imports {spec}"


def test_translations_ship_every_catalog_message_per_locale(nordbank: App) -> None:
    catalog = load_catalog(TEMPLATES / SHARED_DIR / "i18n", ["nl_NL", "en_US"])
    assert json.loads(nordbank.text("locales/nl-NL.json")) == catalog.translations["nl_NL"]
    assert json.loads(nordbank.text("locales/en-US.json")) == catalog.translations["en_US"]
    spec = nordbank.template.spec.translations
    results = checks.check_translations(
        nordbank.tree.files,
        catalog,
        ["nl_NL", "en_US"],
        spec,
        lambda t, loc: render_string(t, {**nordbank.context, "locale": loc}),
    )
    assert results and all(r.passed for r in results), [(r.name, r.detail) for r in results if not r.passed]
    assert any(r.name == "strings in src/app.mjs" for r in results)


# --- the contract, in Node ------------------------------------------------------------------------------


def test_js_core_passes_the_php_cores_contract_vectors(nordbank: App, node: NodeRuntime, php: NativePhp) -> None:
    results = contract_results(nordbank.root, nordbank.template, nordbank.context, php)
    assert [(r.name, r.detail) for r in results if not r.passed] == []
    assert len(results) > 60
    assert results[0].name == f"core module loads under {node.version}"
    assert any("crypto.timingSafeEqual" in r.name for r in results)
    assert "Health::report names plugin, version, build and node" in {r.name for r in results}


def test_contract_fails_a_core_that_compares_macs_with_triple_equals(
    nordbank: App, node: NodeRuntime, tmp_path: Path
) -> None:
    mutated = tmp_path / "mutated"
    shutil.copytree(nordbank.root, mutated)
    core = mutated / "src/core.mjs"
    source = core.read_text()
    assert "crypto.timingSafeEqual(expected, Buffer.from(candidate, 'utf8'))" in source
    core.write_text(
        source.replace(
            "crypto.timingSafeEqual(expected, Buffer.from(candidate, 'utf8'))", "expected.toString() === candidate"
        )
    )
    failed = [
        r
        for r in run_node_contract_tests(mutated, "src/core.mjs", dict(nordbank.template.spec.status_map), node)
        if not r.passed
    ]
    assert {r.name for r in failed} == {
        "Signature::verify compares MACs with crypto.timingSafeEqual (valid)",
        "Signature::verify compares MACs with crypto.timingSafeEqual (mismatch)",
    }


def test_contract_fails_a_core_that_lets_a_late_pending_downgrade_a_payment(
    nordbank: App, node: NodeRuntime, tmp_path: Path
) -> None:
    mutated = tmp_path / "mutated"
    shutil.copytree(nordbank.root, mutated)
    core = mutated / "src/core.mjs"
    core.write_text(core.read_text().replace("return TRANSITIONS.get(from).includes(to);", "return true;"))
    failed = {
        r.name
        for r in run_node_contract_tests(mutated, "src/core.mjs", dict(nordbank.template.spec.status_map), node)
        if not r.passed
    }
    assert "WebhookProcessor: late pending never downgrades a paid order" in failed
    assert "StatusMap::canTransition from 'paid' matches payments/statuses.py" in failed


HOSTILE_TITLE = 'It\'s "quoted" \\ </script><script>alert(1)</script> ${x} `tick` \u2028 東京 {{ ids.slug }}'
HOSTILE_DESCRIPTION = "Line one 'single' \"double\" */ <!-- -->\nLine two \\\\server\\share \u2029 end \\"


def test_hostile_checkout_text_comes_back_literally_from_the_js_core(node: NodeRuntime, tmp_path: Path) -> None:
    config = make_client(
        checkout={"title": HOSTILE_TITLE, "description": HOSTILE_DESCRIPTION}, platforms={"shopify": {}}
    )
    app = render_app(config, tmp_path / "hostile")
    assert [r.name for r in checks.check_js_syntax(app.root, app.tree.files, app.template, node) if not r.passed] == []
    results = run_node_value_roundtrip(
        app.root,
        "src/core.mjs",
        {"checkout_title": HOSTILE_TITLE, "checkout_description": HOSTILE_DESCRIPTION, "name": "Nord Bank"},
        node,
    )
    assert [(r.name, r.detail) for r in results if not r.passed] == [] and len(results) == 4
    extension = tomllib.loads(app.text("extensions/nordbank-payments/shopify.extension.toml"))["extensions"][0]
    assert extension["buyer_label"] == HOSTILE_TITLE
    assert "<script>" not in app.text("src/core.mjs")


# --- the app server running ----------------------------------------------------------------------------

DRIVER = r"""
// Runs the rendered app's own server on loopback and drives it like Shopify, the merchant, the buyer and
// the PSP would. Prints one JSON document of what it saw.
import crypto from 'node:crypto';
import http from 'node:http';
import { readFileSync, existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const [root, dataDir, standin, shop, appSecret] = process.argv.slice(2);
const { App } = await import(pathToFileURL(root + '/src/app.mjs').href);
const { HttpsTransport, Signature } = await import(pathToFileURL(root + '/src/core.mjs').href);
const { FileLock } = await import(pathToFileURL(root + '/src/store.mjs').href);

// The app's own HTTPS transport; only the shop's host is routed to the stand-in (no DNS for it here).
const https = new HttpsTransport(10);
const transport = {
  request(method, url, headers, body) {
    const target = new URL(url);
    if (target.hostname.endsWith('.myshopify.com')) {
      url = standin + target.pathname + target.search;
    }
    return https.request(method, url, headers, body);
  },
};
const logs = [];
let now = Math.floor(Date.now() / 1000);
const appUrl = 'https://apps.standin.invalid/apps/shopify/nordbank-payments';
const SUBJECT = 'CN=payments.shopify.com,O=Shopify Inc.';
const app = new App({ apiKey: 'app_client_id', apiSecret: appSecret, appUrl, dataDir, transport, now: () => now, mtlsSubject: SUBJECT, log: (level, message, fields) => logs.push(`${level}: ${message} ${JSON.stringify(fields)}`) });
// what the reverse proxy adds to a session request once Shopify's client certificate is verified
const MTLS = { 'X-SSL-Client-Verify': 'SUCCESS', 'X-SSL-Client-S-DN': SUBJECT };
const server = http.createServer(app.handler());
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${server.address().port}/apps/shopify/nordbank-payments`;

function call(method, path, { headers = {}, body = null } = {}) {
  return new Promise((resolve, reject) => {
    const request = http.request(base + path, { method, headers }, (res) => {
      let text = '';
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: text }));
    });
    request.on('error', reject);
    if (body !== null) request.write(body);
    request.end();
  });
}
const json = (r) => { try { return JSON.parse(r.body); } catch { return r.body; } };
const control = (command) => https.request('POST', standin + '/_standin/control', { 'Content-Type': 'application/json' }, JSON.stringify(command));
function shopifyHmac(params) {
  const message = [...params.entries()].filter(([k]) => k !== 'hmac').sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}=${v}`).join('&');
  params.set('hmac', crypto.createHmac('sha256', appSecret).update(message).digest('hex'));
  return params;
}
const out = {};

out.health = { status: (await call('GET', '/health')).status, body: json(await call('GET', '/health')) };
out.unknown_shop_session = (await call('POST', '/payment_sessions', { headers: { 'Shopify-Shop-Domain': shop, ...MTLS }, body: '{}' })).status;

// --- install (OAuth) and settings -------------------------------------------------------------------
const auth = await call('GET', '/auth?' + shopifyHmac(new URLSearchParams({ shop, timestamp: String(now) })));
const authorize = new URL(auth.headers.location);
out.authorize = { status: auth.status, host: authorize.host, path: authorize.pathname, scope: authorize.searchParams.get('scope'), redirect_uri: authorize.searchParams.get('redirect_uri') };
const state = authorize.searchParams.get('state');
const oauthCookie = auth.headers['set-cookie'][0].split(';')[0];
const tampered = shopifyHmac(new URLSearchParams({ code: 'code_1', shop, state, timestamp: String(now) }));
tampered.set('code', 'code_2');
out.tampered_callback = (await call('GET', '/auth/callback?' + tampered, { headers: { Cookie: oauthCookie } })).status;
out.stale_callback = (await call('GET', '/auth/callback?' + shopifyHmac(new URLSearchParams({ code: 'code_1', shop, state, timestamp: String(now - 3600) })), { headers: { Cookie: oauthCookie } })).status;
const callback = await call('GET', '/auth/callback?' + shopifyHmac(new URLSearchParams({ code: 'code_1', shop, state, timestamp: String(now) })), { headers: { Cookie: oauthCookie } });
out.callback = { status: callback.status, location: callback.headers.location };
const session = callback.headers['set-cookie'][0].split(';')[0];
const page = await call('GET', '/app', { headers: { Cookie: session, 'Accept-Language': 'nl-NL,nl;q=0.9' } });
const csrf = /name="csrf" value="([^"]+)"/.exec(page.body)[1];
out.settings_page = { status: page.status, dutch: page.body.includes('API-sleutel'), lang: /<html lang="([^"]+)"/.exec(page.body)[1], missing_notice: page.body.includes('role="alert"'), webhook_url: page.body.includes(appUrl + '/webhook/' + shop) };
out.forged_settings = (await call('POST', '/app', { headers: { Cookie: session, 'Content-Type': 'application/x-www-form-urlencoded' }, body: 'csrf=forged&api_key=x' })).status;
const saved = await call('POST', '/app', { headers: { Cookie: session, 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf, api_key: 'key_shop_1', webhook_secret: 'whsec_shop_secret_1', test_mode: '1' }).toString() });
out.saved = { status: saved.status, location: saved.headers.location };
const stored = readFileSync(`${dataDir}/shops/${shop}.json`, 'utf8');
out.stored_in_clear = ['key_shop_1', 'whsec_shop_secret_1', 'shpat_standin_token'].filter((s) => stored.includes(s));

// --- payment sessions ---------------------------------------------------------------------------------
const paymentRequest = (id, extra = {}) => JSON.stringify({
  id, gid: `gid://shopify/PaymentSession/${id}`, group: 'grp_' + id, session_id: 'cs_' + id, amount: '12.50', currency: 'EUR', test: false,
  kind: 'sale', merchant_locale: 'nl', proposed_at: new Date(now * 1000).toISOString(),
  customer: { email: 'buyer@example.org', billing_address: { country_code: 'NL' } },
  payment_method: { type: 'offsite', data: { cancel_url: 'https://shop.standin.invalid/checkouts/c/' + id } }, ...extra,
});
const start = (id, extra, proxy = MTLS) => call('POST', '/payment_sessions', { headers: { 'Shopify-Shop-Domain': shop, 'Content-Type': 'application/json', ...proxy }, body: paymentRequest(id, extra) });
const first = await start('sess_1');
const again = await Promise.all([start('sess_1'), start('sess_1')]);
out.payment = { status: first.status, body: json(first), again: again.map((r) => [r.status, json(r).redirect_url]) };
out.bad_currency = (await start('sess_usd', { currency: 'USD' })).status;

// --- PSP webhooks -------------------------------------------------------------------------------------
const secret = 'whsec_shop_secret_1';
const event = (id, paymentId, ref, status, created = now) => JSON.stringify({ id, type: 'payment.updated', created, data: { payment_id: paymentId, order_reference: ref, status } });
const deliver = async (body, header, target = shop) => {
  const r = await call('POST', '/webhook/' + target, { headers: { 'X-PSP-Signature': header, 'Content-Type': 'application/json' }, body });
  return [r.status, json(r).result];
};
const signed = (body, ts = now) => Signature.sign(secret, ts, body);
await control({ payment_id: 'pay_1', status: 'paid' });
const paid = event('evt_1', 'pay_1', 'sess_1', 'paid');
out.webhooks = {};
out.webhooks.paid = await deliver(paid, signed(paid));
out.webhooks.same_event_again = await deliver(paid, signed(paid));
await control({ payment_id: 'pay_1', status: 'pending' });
const late = event('evt_2', 'pay_1', 'sess_1', 'pending');
out.webhooks.late_pending = await deliver(late, signed(late));
out.webhooks.wrong_signature = await deliver(paid, Signature.sign('whsec_other', now, paid));
out.webhooks.stale = await deliver(paid, signed(paid, now - 3600));
out.webhooks.unknown_shop = await deliver(paid, signed(paid), 'other-shop.myshopify.com');
await control({ unavailable: true });
const unreachable = event('evt_3', 'pay_1', 'sess_1', 'paid');
out.webhooks.psp_unreachable = await deliver(unreachable, signed(unreachable));
await control({ unavailable: false });
await control({ payment_id: 'pay_1', status: 'paid' });
const back = await call('GET', '/return/' + shop + '/sess_1');
out.return_paid = [back.status, back.headers.location];

// failed at the PSP: rejected on Shopify with a reason in the merchant's language
await start('sess_2');
await control({ payment_id: 'pay_2', status: 'failed' });
const failed = event('evt_f', 'pay_2', 'sess_2', 'failed');
out.webhooks.failed = await deliver(failed, signed(failed));
// the buyer cancelled on the payment page: back to the checkout, nothing sent to Shopify
await start('sess_3');
await control({ payment_id: 'pay_3', status: 'cancelled' });
const cancelled = await call('GET', '/return/' + shop + '/sess_3');
out.return_cancelled = [cancelled.status, cancelled.headers.location];
// back before the PSP decided: pending on Shopify, resolved by the later webhook
await start('sess_4');
const undecided = await call('GET', '/return/' + shop + '/sess_4');
out.return_pending = [undecided.status, undecided.headers.location];
await control({ payment_id: 'pay_4', status: 'paid' });
const late_paid = event('evt_4', 'pay_4', 'sess_4', 'paid');
out.webhooks.paid_after_pending = await deliver(late_paid, signed(late_paid));
// another process holds the payment's lock: the buyer is asked to reload, in the browser's language
const other = new FileLock(dataDir);
await other.acquire('payment:pay_4', 0);
app.lockSeconds = 0;
const busy = await call('GET', '/return/' + shop + '/sess_4', { headers: { 'Accept-Language': 'nl-NL,nl;q=0.9' } });
out.return_locked = [busy.status, busy.headers['retry-after'], busy.body];
app.lockSeconds = 10;
await other.release('payment:pay_4');

// the PSP reports the session's payment paid for another amount: neither the webhook nor the buyer's
// return resolves the session; the mismatch is kept on the session record
await start('sess_m');
const mismatched = JSON.parse(readFileSync(`${dataDir}/shops/${shop}/payments/sess_m.json`, 'utf8')).psp_payment_id;
await control({ payment_id: mismatched, status: 'paid', fields: { amount: 1 } });
const cheap = event('evt_m', mismatched, 'sess_m', 'paid');
out.webhooks.paid_for_another_amount = await deliver(cheap, signed(cheap));
const cheapReturn = await call('GET', '/return/' + shop + '/sess_m');
const heldRecord = JSON.parse(readFileSync(`${dataDir}/shops/${shop}/payments/sess_m.json`, 'utf8'));
out.mismatch = { return_status: cheapReturn.status, status: heldRecord.status, held: heldRecord.held.result, detail: heldRecord.held.detail };
await app.idle();

// --- refunds, captures, voids -------------------------------------------------------------------------
const followUp = (kind, id, paymentId, amount, proxy = MTLS) => call('POST', `/${kind}_sessions`, { headers: { 'Shopify-Shop-Domain': shop, 'Content-Type': 'application/json', ...proxy }, body: JSON.stringify({ id, gid: `gid://shopify/${kind[0].toUpperCase() + kind.slice(1)}Session/${id}`, payment_id: paymentId, amount, currency: 'EUR', merchant_locale: 'nl' }) });
out.refund = (await followUp('refund', 'ref_1', 'sess_1', '5.00')).status;
await app.idle();
out.refund_again = (await followUp('refund', 'ref_1', 'sess_1', '5.00')).status;
await app.idle();
out.refund_too_much = (await followUp('refund', 'ref_big', 'sess_1', '99.00')).status;
await control({ follow_up_status: 422 });
out.refund_refused = (await followUp('refund', 'ref_2', 'sess_1', '1.00')).status;
await app.idle();
await control({ follow_up_status: 503 });
out.refund_psp_down = (await followUp('refund', 'ref_3', 'sess_1', '1.00')).status;
await control({ follow_up_status: 201 });
out.refund_retried = (await followUp('refund', 'ref_3', 'sess_1', '1.00')).status;
await app.idle();
// 6.00 of 12.50 refunded so far: refunds together never exceed what was captured
out.refund_over_cap = (await followUp('refund', 'ref_4', 'sess_1', '7.00')).status;
out.refund_rest = (await followUp('refund', 'ref_5', 'sess_1', '6.50')).status;
await app.idle();
out.refund_after_all = (await followUp('refund', 'ref_6', 'sess_1', '0.01')).status;
// without the proxy's verdict of Shopify's client certificate nothing reaches the PSP
out.unverified = {
  payment: [(await start('sess_x1', {}, {})).status, (await start('sess_x2', {}, { 'X-SSL-Client-Verify': 'FAILED:unable to verify', 'X-SSL-Client-S-DN': SUBJECT })).status, (await start('sess_x3', {}, { 'X-SSL-Client-Verify': 'SUCCESS', 'X-SSL-Client-S-DN': 'CN=evil.example' })).status],
  refund: (await followUp('refund', 'ref_x', 'sess_1', '0.01', {})).status,
  capture: (await followUp('capture', 'cap_x', 'sess_5', '1.00', { 'X-SSL-Client-Verify': 'SUCCESS' })).status,
  stored: ['sess_x1', 'sess_x2', 'sess_x3'].filter((id) => existsSync(`${dataDir}/shops/${shop}/payments/${id}.json`)),
};
await start('sess_5', { kind: 'authorization' });
out.capture = (await followUp('capture', 'cap_1', 'sess_5', '12.50')).status;
await start('sess_6', { kind: 'authorization' });
out.void = (await followUp('void', 'void_1', 'sess_6', undefined)).status;
await app.idle();

// --- Shopify's own webhooks ----------------------------------------------------------------------------
const uninstall = JSON.stringify({ id: 1, domain: shop });
out.uninstall_forged = (await call('POST', '/webhooks/shopify', { headers: { 'X-Shopify-Topic': 'app/uninstalled', 'X-Shopify-Shop-Domain': shop, 'X-Shopify-Hmac-Sha256': 'AAAA' }, body: uninstall })).status;
const hmac = crypto.createHmac('sha256', appSecret).update(uninstall).digest('base64');
out.uninstall = (await call('POST', '/webhooks/shopify', { headers: { 'X-Shopify-Topic': 'app/uninstalled', 'X-Shopify-Shop-Domain': shop, 'X-Shopify-Hmac-Sha256': hmac }, body: uninstall })).status;
out.shop_data_left = existsSync(`${dataDir}/shops/${shop}.json`) || existsSync(`${dataDir}/shops/${shop}`);
out.session_after_uninstall = (await start('sess_7')).status;
out.logs = logs;
server.close();
process.stdout.write(JSON.stringify(out) + '\n');
"""


@pytest.fixture(scope="module")
def ran(manual_capture: App, standin: StandInServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("driver")
    driver = work / "driver.mjs"
    driver.write_text(DRIVER)
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(standin.cert)}
    proc = subprocess.run(
        ["node", str(driver), str(manual_capture.root), str(work / "data"), standin.url, SHOP, APP_SECRET],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert proc.returncode == 0 and not proc.stderr, proc.stderr or proc.stdout
    return json.loads(proc.stdout)


def test_health_reports_version_and_build(ran: dict[str, Any], manual_capture: App) -> None:
    assert ran["health"]["status"] == 200
    assert ran["health"]["body"]["version"] == "1.0.0"
    assert ran["health"]["body"]["build"] == manual_capture.tree.build
    assert ran["health"]["body"]["shopify_api_version"] == "2025-07"


def test_install_verifies_shopifys_hmac_and_state_and_stores_credentials_encrypted(
    ran: dict[str, Any], standin: StandInServer
) -> None:
    assert ran["unknown_shop_session"] == 401
    assert ran["authorize"] == {
        "status": 302, "host": SHOP, "path": "/admin/oauth/authorize",
        "scope": "write_payment_gateways,write_payment_sessions",
        "redirect_uri": "https://apps.standin.invalid/apps/shopify/nordbank-payments/auth/callback",
    }  # fmt: skip
    assert ran["tampered_callback"] == 400 and ran["stale_callback"] == 400
    assert ran["callback"]["status"] == 302
    [exchange] = standin.state.calls("POST", "/admin/oauth/access_token")
    assert json.loads(exchange["body"]) == {"client_id": "app_client_id", "client_secret": APP_SECRET, "code": "code_1"}
    assert ran["settings_page"] == {
        "status": 200,
        "dutch": True,
        "lang": "nl-nl",
        "missing_notice": True,
        "webhook_url": True,
    }
    assert ran["forged_settings"] == 403
    assert ran["saved"]["status"] == 303
    assert ran["stored_in_clear"] == []  # API key, webhook secret and token are sealed with the app secret
    [configure] = standin.state.mutations("paymentsAppConfigure")
    assert configure["variables"] == {"ready": True, "externalHandle": SHOP}
    assert configure["headers"]["X-Shopify-Access-Token"] == "shpat_standin_token"


def test_payment_session_is_created_once_per_shopify_id(ran: dict[str, Any], standin: StandInServer) -> None:
    assert ran["payment"]["status"] == 200
    url = ran["payment"]["body"]["redirect_url"]
    assert url == "https://pay.standin.invalid/checkout/pay_1"
    assert ran["payment"]["again"] == [[200, url], [200, url]]  # a retried (even concurrent) request: same answer
    creates = [
        json.loads(r["body"])
        for r in standin.state.calls("POST", "/v1/payments")
        if json.loads(r["body"])["order_reference"] == "sess_1"
    ]
    assert len(creates) == 1
    [request] = [
        r for r in standin.state.calls("POST", "/v1/payments") if json.loads(r["body"])["order_reference"] == "sess_1"
    ]
    assert request["headers"]["Idempotency-Key"] == "shopify-payment-sess_1"
    assert request["headers"]["Authorization"] == "Bearer key_shop_1"
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", request["headers"]["X-Correlation-ID"]
    )
    body = creates[0]
    assert (body["amount"], body["currency"], body["capture"], body["test"]) == (1250, "EUR", "automatic", True)
    assert body["return_url"] == f"https://apps.standin.invalid/apps/shopify/nordbank-payments/return/{SHOP}/sess_1"
    assert body["webhook_url"] == f"https://apps.standin.invalid/apps/shopify/nordbank-payments/webhook/{SHOP}"
    assert body["cancel_url"] == "https://shop.standin.invalid/checkouts/c/sess_1"
    assert ran["bad_currency"] == 400


def test_psp_webhooks_follow_the_shared_rules_and_move_the_shopify_session(
    ran: dict[str, Any], standin: StandInServer
) -> None:
    assert ran["webhooks"] == {
        "paid": [200, "applied"],
        "same_event_again": [200, "duplicate"],
        "late_pending": [200, "ignored"],
        "wrong_signature": [401, "rejected_signature"],
        "stale": [401, "rejected_stale"],
        "unknown_shop": [404, "unknown_shop"],
        "psp_unreachable": [503, "psp_unavailable"],
        "failed": [200, "applied"],
        "paid_after_pending": [200, "applied"],
        "paid_for_another_amount": [200, "amount_mismatch"],
    }
    resolves = [m["variables"]["id"] for m in standin.state.mutations("paymentSessionResolve")]
    assert resolves == ["gid://shopify/PaymentSession/sess_1", "gid://shopify/PaymentSession/sess_4"]  # each once
    [reject] = standin.state.mutations("paymentSessionReject")
    assert reject["variables"]["id"] == "gid://shopify/PaymentSession/sess_2"
    assert reject["variables"]["reason"] == {
        "code": "PROCESSING_ERROR",
        "merchantMessage": "De betaling is niet voltooid. Probeer het opnieuw of kies een andere betaalmethode.",
    }
    # the payload's status is a hint: the PSP was asked every time a signature was valid
    fetched = [r["path"] for r in standin.state.calls("GET", r"/v1/payments/pay_1")]
    assert len(fetched) >= 4


def test_the_buyer_returns_where_shopify_says_and_a_cancel_is_never_a_rejection(
    ran: dict[str, Any], standin: StandInServer
) -> None:
    assert ran["return_paid"] == [302, REDIRECTS["paymentSessionResolve"]]
    assert ran["return_cancelled"] == [302, "https://shop.standin.invalid/checkouts/c/sess_3"]
    assert ran["return_pending"] == [302, REDIRECTS["paymentSessionPending"]]
    assert ran["return_locked"] == [
        503,
        "2",
        "Uw betaling wordt nog bevestigd. Vernieuw deze pagina over een ogenblik.",
    ]
    # sess_m (paid for another amount) stays pending too: it is never resolved from that payment
    pending, held = standin.state.mutations("paymentSessionPending")
    assert pending["variables"]["id"] == "gid://shopify/PaymentSession/sess_4"
    assert held["variables"]["id"] == "gid://shopify/PaymentSession/sess_m"
    assert pending["variables"]["reason"] == "PARTNER_ACTION_REQUIRED"
    touched = {m["variables"].get("id") for m in standin.state.mutations()}
    assert "gid://shopify/PaymentSession/sess_3" not in touched


def test_a_payment_for_another_amount_never_resolves_the_shopify_session(
    ran: dict[str, Any], standin: StandInServer
) -> None:
    assert ran["webhooks"]["paid_for_another_amount"] == [200, "amount_mismatch"]
    mismatch = ran["mismatch"]
    assert mismatch["status"] is None and mismatch["held"] == "amount_mismatch"
    assert (mismatch["detail"]["amount"], mismatch["detail"]["expected_amount"]) == (1, 1250)
    resolved = {m["variables"]["id"] for m in standin.state.mutations("paymentSessionResolve")}
    assert "gid://shopify/PaymentSession/sess_m" not in resolved
    assert any("amount_mismatch for session sess_m" in line and "correlation id" in line for line in ran["logs"])


def test_refunds_of_a_payment_together_never_exceed_what_was_captured(ran: dict[str, Any]) -> None:
    # 5.00 + 1.00 refunded (the refused 1.00 does not count): 7.00 more is over the 12.50 captured
    assert (ran["refund_over_cap"], ran["refund_rest"], ran["refund_after_all"]) == (400, 201, 400)


def test_a_session_request_without_verified_shopify_mtls_never_reaches_the_psp(
    ran: dict[str, Any], standin: StandInServer
) -> None:
    unverified = ran["unverified"]
    assert unverified["payment"] == [401, 401, 401]  # no verdict, a failed verdict, another subject
    assert (unverified["refund"], unverified["capture"]) == (401, 401)  # a verdict without the subject
    assert unverified["stored"] == []
    created = [json.loads(r["body"])["order_reference"] for r in standin.state.calls("POST", "/v1/payments")]
    assert not [ref for ref in created if ref.startswith("sess_x")]
    refunds = [r["headers"]["Idempotency-Key"] for r in standin.state.calls("POST", r"/v1/payments/pay_\d+/refunds")]
    assert "shopify-refund-ref_x" not in refunds
    captures = [r["headers"]["Idempotency-Key"] for r in standin.state.calls("POST", r"/v1/payments/pay_\d+/captures")]
    assert captures == ["shopify-capture-cap_1"]
    assert any("no verified Shopify client certificate" in line for line in ran["logs"])


def test_refunds_captures_and_voids_are_idempotent_and_finished_on_shopify(
    ran: dict[str, Any], standin: StandInServer
) -> None:
    assert (ran["refund"], ran["refund_again"], ran["refund_too_much"]) == (201, 201, 400)
    assert (ran["refund_refused"], ran["refund_psp_down"], ran["refund_retried"]) == (201, 503, 201)
    refunds = standin.state.calls("POST", r"/v1/payments/pay_1/refunds")
    keys = [r["headers"]["Idempotency-Key"] for r in refunds]
    assert keys == [
        "shopify-refund-ref_1",
        "shopify-refund-ref_2",
        "shopify-refund-ref_3",
        "shopify-refund-ref_3",
        "shopify-refund-ref_5",
    ]
    assert json.loads(refunds[0]["body"]) == {"amount": 500, "currency": "EUR", "reason": ""}
    resolved = [m["variables"]["id"] for m in standin.state.mutations("refundSessionResolve")]
    assert resolved == [
        "gid://shopify/RefundSession/ref_1",
        "gid://shopify/RefundSession/ref_3",
        "gid://shopify/RefundSession/ref_5",
    ]
    [rejected] = standin.state.mutations("refundSessionReject")
    assert rejected["variables"]["id"] == "gid://shopify/RefundSession/ref_2"
    message = rejected["variables"]["reason"]["merchantMessage"]
    assert re.fullmatch(
        r"Nord Bank heeft de terugbetaling niet geaccepteerd \(correlatie-ID [0-9a-f-]{36}\)\..*", message
    ), message
    [capture] = standin.state.calls("POST", r"/v1/payments/pay_\d+/captures")
    assert json.loads(capture["body"]) == {"amount": 1250, "currency": "EUR"}
    assert capture["headers"]["Idempotency-Key"] == "shopify-capture-cap_1"
    assert [m["variables"]["id"] for m in standin.state.mutations("captureSessionResolve")] == [
        "gid://shopify/CaptureSession/cap_1"
    ]
    [void] = standin.state.calls("POST", r"/v1/payments/pay_\d+/cancellations")
    assert void["headers"]["Idempotency-Key"] == "shopify-void-void_1"
    assert [m["variables"]["id"] for m in standin.state.mutations("voidSessionResolve")] == [
        "gid://shopify/VoidSession/void_1"
    ]


def test_every_psp_request_the_running_app_sends_is_in_the_psp_api_contract(
    ran: dict[str, Any], standin: StandInServer
) -> None:
    contract = Contract.load()
    sent = [r for r in standin.state.requests if r["path"].startswith("/v1/")]
    base = "https://psp.standin.invalid/v1"
    checked = {}
    for request in sent:
        found = contract.check_request(
            request["method"], base + request["path"][3:], request["headers"], request["body"] or None, base
        )
        assert found.problem == "", (request["method"], request["path"], found.problem)
        checked[found.operation.operation_id] = checked.get(found.operation.operation_id, 0) + 1
    assert set(checked) == {"createPayment", "getPayment", "refund", "capture", "cancel"}, checked


def test_uninstall_webhook_is_verified_and_deletes_the_shops_data(ran: dict[str, Any]) -> None:
    assert ran["uninstall_forged"] == 401
    assert ran["uninstall"] == 200
    assert ran["shop_data_left"] is False
    assert ran["session_after_uninstall"] == 401


def test_logs_carry_correlation_ids_and_never_keys_or_secrets(ran: dict[str, Any]) -> None:
    logs = "\n".join(ran["logs"])
    assert "correlation id" in logs
    for secret in ("key_shop_1", "whsec_shop_secret_1", "shpat_standin_token", APP_SECRET):
        assert secret not in logs


def test_refused_webhook_deliveries_are_logged_one_line_a_minute(ran: dict[str, Any]) -> None:
    # a wrong and a stale signature within the same minute: one line
    refused = [line for line in ran["logs"] if "refused deliveries" in line]
    assert len(refused) == 1 and refused[0].startswith("warning: webhook rejected_signature (1 refused")

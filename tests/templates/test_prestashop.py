"""The PrestaShop template: a `<module>/` folder PrestaShop's module installer accepts, that lints, passes
the shared contract, ships XLIFF catalogues for the new translation system, and handles checkout,
webhooks, the shopper's return, refunds and captures when it runs.

The runtime tests load the rendered module into a stand-in PrestaShop
(tests/standins/prestashop/prestashop.php): PrestaShop is in no package registry this machine reaches, so only the API the module calls is imitated (Module,
PaymentModule, ModuleFrontController, Configuration, Db, Order, OrderHistory, OrderState, Message,
Context/Link, PaymentOption, ...), recording what the module asks of it; the stand-in's translator reads
the module's own XLIFF files, as PrestaShop's does. Everything else is real: the rendered files, PHP, the
shared core and its HTTPS transport, talking to the stand-in PSP of tests/support/psp_standin.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from psp_assets.core.config.model import ClientConfig, load_client, parse_client
from psp_assets.core.i18n import load_catalog
from psp_assets.core.package import package
from psp_assets.core.render.engine import render_string
from psp_assets.core.runtimes.php import NativePhp
from psp_assets.core.templates.spec import SHARED_DIR
from psp_assets.core.verify import checks
from psp_assets.core.verify.contract.bridge import contract_results
from psp_assets.core.verify.contract.cases import sign
from tests.conftest import DEMO_CLIENTS, TEMPLATES, make_client
from tests.support.psp_standin import StandInServer
from tests.support.rendered import RenderedPlugin, render_to
from tests.support.standins import standin

XLIFF = "{urn:oasis:names:tc:xliff:document:1.2}"


class Module(RenderedPlugin):
    @property
    def name(self) -> str:
        return self.context["ids"]["module"]


def render_module(config: ClientConfig, modules_dir: Path) -> Module:
    return render_to("prestashop", config, lambda ids: modules_dir / ids["module"], Module)


@pytest.fixture(scope="module")
def alpenkasse(tmp_path_factory: pytest.TempPathFactory) -> Module:
    return render_module(load_client(DEMO_CLIENTS / "alpenkasse.yaml"), tmp_path_factory.mktemp("modules"))


@pytest.fixture(scope="module")
def nordbank(tmp_path_factory: pytest.TempPathFactory) -> Module:
    config = make_client(platforms={"prestashop": {"slug": "nordbank-payments"}})
    return render_module(config, tmp_path_factory.mktemp("modules"))


# --- what PrestaShop's installer accepts ---------------------------------------------------------------


@pytest.mark.parametrize("client", ["alpenkasse", "nordbank"])
def test_every_php_file_lints_and_the_packaging_rules_pass(
    client: str, request: pytest.FixtureRequest, php: NativePhp
) -> None:
    module: Module = request.getfixturevalue(client)
    php_files = [p for p in module.tree.files if p.endswith(".php")]
    assert len(php_files) > 30
    assert [f"{r.path}: {r.message}" for r in php.lint(module.root, php_files) if not r.ok] == []
    results = checks.check_packaging(module.template, module.tree.files, lambda t: render_string(t, module.context))
    assert len(results) == len(module.template.spec.rules)
    assert [(r.name, r.detail) for r in results if not r.passed] == []


def test_module_name_is_lowercase_alphanumeric_and_names_folder_file_and_class(alpenkasse: Module) -> None:
    assert re.fullmatch(r"[a-z0-9]+", alpenkasse.name) and alpenkasse.name == "alpenkassepayments"
    main = alpenkasse.text("alpenkassepayments.php")
    assert re.search(r"^class Alpenkassepayments extends PaymentModule$", main, re.M)
    assert "$this->name = 'alpenkassepayments';" in main
    assert "$this->ps_versions_compliancy = ['min' => '1.7.8.0', 'max' => '9.99.99'];" in main
    config = ET.fromstring(alpenkasse.tree.files["config.xml"])
    assert config.findtext("name") == "alpenkassepayments" and config.findtext("version") == "1.0.0"
    assert config.findtext("tab") == "payments_gateways"


def test_the_zip_holds_exactly_the_module_folder(alpenkasse: Module, tmp_path: Path) -> None:
    root = render_string(alpenkasse.template.spec.packaging.root, alpenkasse.context)
    name = render_string(alpenkasse.template.spec.packaging.artifact, alpenkasse.context)
    names = zipfile.ZipFile(package(alpenkasse.tree, root, name, tmp_path).path).namelist()
    assert name == "alpenkassepayments-1.0.0.zip"
    assert {n.split("/")[0] for n in names} == {"alpenkassepayments"}
    for required in ("alpenkassepayments.php", "config.xml", "logo.png", "index.php", "controllers/front/webhook.php"):
        assert f"alpenkassepayments/{required}" in names
    assert (
        zipfile.ZipFile(package(alpenkasse.tree, root, name, tmp_path / "again").path).read(
            "alpenkassepayments/logo.png"
        )[:4]
        == b"\x89PNG"
    )


def test_every_folder_has_an_index_guard_and_the_rule_names_a_missing_one(alpenkasse: Module) -> None:
    folders = {str(Path(p).parent) for p in alpenkasse.tree.files} | {"."}
    assert sorted(f for f in folders if f"{f}/index.php".removeprefix("./") not in alpenkasse.tree.files) == []
    files = dict(alpenkasse.tree.files)
    del files["translations/de-DE/index.php"]
    files["src/Lock.php"] = files["src/Lock.php"].replace(b"if (!defined('_PS_VERSION_')) {", b"if (true) {")
    failures = {
        r.detail
        for r in checks.check_packaging(alpenkasse.template, files, lambda t: render_string(t, alpenkasse.context))
        if not r.passed
    }
    assert "missing: translations/de-DE/index.php" in failures
    assert "not in: src/Lock.php" in failures


def test_contract_passes_in_the_modules_namespace(alpenkasse: Module, php: NativePhp) -> None:
    results = contract_results(alpenkasse.root, alpenkasse.template, alpenkasse.context, php)
    assert len(results) > 60 and [(r.name, r.detail) for r in results if not r.passed] == []


# --- translations ----------------------------------------------------------------------------------------


def _xliff(module: Module, path: str) -> dict[str, str]:
    doc = ET.fromstring(module.tree.files[path])
    return {u.findtext(f"{XLIFF}source"): u.findtext(f"{XLIFF}target") for u in doc.iter(f"{XLIFF}trans-unit")}


def test_xliff_catalogues_per_locale_hold_the_whole_catalog_in_two_domains(alpenkasse: Module) -> None:
    catalog = load_catalog(TEMPLATES / SHARED_DIR / "i18n", ["de_DE", "fr_FR"])
    for locale in ("de-DE", "fr-FR"):
        admin = _xliff(alpenkasse, f"translations/{locale}/ModulesAlpenkassepaymentsAdmin.{locale}.xlf")
        shop = _xliff(alpenkasse, f"translations/{locale}/ModulesAlpenkassepaymentsShop.{locale}.xlf")
        assert not set(admin) & set(shop)
        assert {**admin, **shop} == catalog.translations[locale.replace("-", "_")]
        root = ET.fromstring(alpenkasse.tree.files[f"translations/{locale}/ModulesAlpenkassepaymentsShop.{locale}.xlf"])
        assert root.find(f"{XLIFF}file").get("target-language") == locale
    spec = alpenkasse.template.spec.translations
    results = checks.check_translations(
        alpenkasse.tree.files,
        catalog,
        ["de_DE", "fr_FR"],
        spec,
        lambda t, loc: render_string(t, {**alpenkasse.context, "locale": loc}),
    )
    assert [(r.name, r.detail) for r in results if not r.passed] == []
    assert sum(r.name.startswith("strings in ") for r in results) >= 10


def test_every_translated_call_uses_a_module_domain_whose_catalogue_has_the_wording(alpenkasse: Module) -> None:
    calls = re.compile(r"->trans\(\s*'((?:[^'\\]|\\.)*)'\s*,\s*(?:\[[^\]]*\]|\$\w+)\s*,\s*'([^']+)'")
    smarty = re.compile(r"\{l s='((?:[^'\\]|\\.)*)'[^}]*\bd='([^']+)'")
    found = 0
    for path, data in alpenkasse.tree.files.items():
        if path.endswith((".php", ".tpl")):
            for wording, domain in calls.findall(data.decode()) + smarty.findall(data.decode()):
                if not domain.startswith("Modules."):
                    assert domain in ("Admin.Global", "Admin.Actions"), f"{path}: {domain}"
                    continue
                found += 1
                part = domain.split(".")[2]
                assert domain == f"Modules.Alpenkassepayments.{part}", f"{path}: {domain}"
                catalogue = _xliff(alpenkasse, f"translations/de-DE/ModulesAlpenkassepayments{part}.de-DE.xlf")
                assert wording.replace("\\'", "'") in catalogue, f"{path}: {wording!r} is not in the {domain} catalogue"
    assert found > 40


# --- running in PrestaShop ---------------------------------------------------------------------------

PS_STANDIN = standin("prestashop", "prestashop.php")


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory):
    server = StandInServer(tmp_path_factory.mktemp("standin"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def live(standin: StandInServer, tmp_path_factory: pytest.TempPathFactory) -> Module:
    """Alpenkasse's module (manual capture, de_DE/fr_FR), talking to the stand-in PSP."""
    data = yaml.safe_load((DEMO_CLIENTS / "alpenkasse.yaml").read_text())
    config = parse_client({**data, "api_base_url": standin.url + "/v1"}, "alpenkasse.yaml")
    return render_module(config, tmp_path_factory.mktemp("shop") / "modules")


class Shop:
    """One stand-in PrestaShop with its state, running the module's code request by request."""

    def __init__(self, module: Module, standin: StandInServer, php: NativePhp, work: Path) -> None:
        self.module, self.standin, self.php = module, standin, php
        self.runner = work / "runner.php"
        self.runner.write_text(PS_STANDIN)
        self.state = work / "state.json"

    def run(self, scenario: str, **argument: Any) -> dict[str, Any]:
        proc = subprocess.run(
            [self.php.binary, "-n", "-d", f"openssl.cafile={self.standin.cert}", str(self.runner), str(self.module.root), str(self.state), scenario, json.dumps(argument)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert "@@OUT@@" in proc.stdout, proc.stdout + proc.stderr
        out = json.loads(proc.stdout.rsplit("@@OUT@@", 1)[1])
        assert out["errors"] == [], out["errors"]
        return out

    def saved(self) -> dict[str, Any]:
        return json.loads(self.state.read_text())


@pytest.fixture
def shop(live: Module, standin: StandInServer, php: NativePhp, tmp_path: Path) -> Shop:
    standin.reset()
    return Shop(live, standin, php, tmp_path)


CONFIGURED = {"PSP_ALPENKASSE_API_KEY": "key_ps_1", "PSP_ALPENKASSE_WEBHOOK_SECRET": "whsec_ps_secret"}
# what the checkout's form sends: a POST with the customer's front-office token (Tools::getToken)
CHECKOUT_POST = {"method": "POST", "request": {"token": "front_token_42"}}


def test_install_registers_hooks_creates_the_table_and_named_order_states(shop: Shop) -> None:
    out = shop.run("install")
    assert out["installed"] is True and out["display_name"] == "Alpenkasse"
    assert (
        out["description"]
        == "Kunden bezahlen auf der sicheren Zahlungsseite von Alpenkasse und kehren anschließend in Ihren Shop zurück."
    )
    state = shop.saved()
    assert state["hooks"] == [
        "paymentOptions",
        "displayPaymentReturn",
        "displayAdminOrderMainBottom",
        "actionOrderSlipAdd",
        "actionOrderStatusPostUpdate",
    ]
    assert any("CREATE TABLE IF NOT EXISTS `ps_psp_alpenkasse_payment`" in q for q in state["queries"])
    ids = {
        key: int(state["config"][f"PSP_ALPENKASSE_{key}"])
        for key in ("OS_AWAITING", "OS_AUTHORIZED", "OS_PARTIAL_REFUND", "OS_CHARGEBACK")
    }
    names = {key: state["states"][str(i)]["name"] for key, i in ids.items()}
    assert names["OS_AWAITING"] == {"1": "Warten auf Alpenkasse-Zahlung", "2": "En attente du paiement Alpenkasse"}
    assert names["OS_AUTHORIZED"]["1"] == "Alpenkasse-Zahlung autorisiert"
    assert all(state["states"][str(i)]["module_name"] == "alpenkassepayments" for i in ids.values())
    assert state["states"][str(ids["OS_PARTIAL_REFUND"])]["paid"] is True
    assert shop.run("install")["installed"] is True
    assert len(shop.saved()["states"]) == 4  # reinstalling reuses the states


def test_payment_option_is_offered_only_configured_and_in_an_accepted_currency(shop: Shop) -> None:
    assert shop.run("options", currency=1)["options"] == []  # no API key yet
    [option] = shop.run("options", currency=1, config=CONFIGURED)["options"]
    assert option["callToActionText"] == "Sicher bezahlen mit Alpenkasse"
    assert option["action"] == "https://shop.standin.invalid/module/alpenkassepayments/payment?token=front_token_42"
    assert option["moduleName"] == "alpenkassepayments"
    assert option["additionalInformation"].startswith('<p style="white-space: pre-line">')
    assert shop.run("options", currency=3)["options"] != []  # CHF
    assert shop.run("options", currency=2)["options"] == []  # USD is not accepted


def test_checkout_places_the_order_and_redirects_to_the_psps_payment_page(shop: Shop) -> None:
    shop.run("install")
    out = shop.run("controller", controller="payment", config=CONFIGURED, **CHECKOUT_POST)
    assert out["redirect"] == "https://pay.standin.invalid/checkout/pay_1"
    state = shop.saved()
    [order] = state["orders"].values()
    assert order["module"] == "alpenkassepayments" and order["state"] == int(
        state["config"]["PSP_ALPENKASSE_OS_AWAITING"]
    )
    assert state["rows"][str(order["id"])]["payment_id"] == "pay_1"
    [create] = shop.standin.state.calls("POST", "/v1/payments")
    body = json.loads(create["body"])
    assert (body["amount"], body["currency"], body["order_reference"], body["capture"]) == (
        1250,
        "EUR",
        str(order["id"]),
        "manual",
    )
    assert body["description"] == f"Bestellung {order['reference']}"
    assert body["webhook_url"] == "https://shop.standin.invalid/module/alpenkassepayments/webhook"
    assert body["return_url"].startswith("https://shop.standin.invalid/module/alpenkassepayments/return?id_order=")
    assert create["headers"]["Idempotency-Key"] == f"order-{order['id']}-cart-77"
    assert "Alpenkasse" in state["messages"][0]["message"] and state["messages"][0]["private"] == 1


@pytest.mark.parametrize(
    "request_",
    [
        {"method": "GET", "request": {"token": "front_token_42"}},
        {"method": "POST"},
        {"method": "POST", "request": {"token": "guess"}},
    ],
    ids=["GET with the token", "POST without a token", "POST with another token"],
)
def test_the_payment_controller_places_no_order_without_a_post_and_the_customers_token(
    shop: Shop, request_: dict[str, Any]
) -> None:
    shop.run("install")
    out = shop.run("controller", controller="payment", config=CONFIGURED, **request_)
    assert out["redirect"] == "https://shop.standin.invalid/order"
    assert not shop.saved()["orders"]  # PHP writes an empty map as []
    assert shop.standin.state.calls("POST", "/v1/payments") == []


def test_checkout_gives_the_cart_back_when_the_psp_cannot_start_the_payment(shop: Shop, standin: StandInServer) -> None:
    out = shop.run(
        "controller",
        controller="payment",
        config={**CONFIGURED, "PSP_ALPENKASSE_API_KEY": "bad key with spaces"},
        **CHECKOUT_POST,
    )
    assert out["redirect"] == "https://shop.standin.invalid/order"
    assert out["notifications"] == [
        "Die Zahlung konnte nicht gestartet werden. Bitte versuchen Sie es erneut oder wählen Sie eine andere Zahlungsart."
    ]
    state = shop.saved()
    [order] = state["orders"].values()
    assert order["state"] == 8 and state["carts"] == ["duplicate of 77"]  # PS_OS_ERROR, cart restored
    assert standin.state.calls("POST", "/v1/payments") == []


def _paid_order(shop: Shop) -> tuple[str, int]:
    shop.run("install")
    shop.run("controller", controller="payment", config=CONFIGURED, **CHECKOUT_POST)
    [order] = shop.saved()["orders"].values()
    return str(order["id"]), order["id"]


def _deliver(
    shop: Shop, event_id: str, ref: str, status: str, *, secret: str = "whsec_ps_secret", age: int = 0
) -> dict[str, Any]:
    import time

    body = json.dumps(
        {
            "id": event_id,
            "type": "payment.updated",
            "created": int(time.time()),
            "data": {"payment_id": "pay_1", "order_reference": ref, "status": status},
        }
    )
    return shop.run(
        "controller",
        controller="webhook",
        method="POST",
        body=body,
        signature=sign(secret, int(time.time()) - age, body),
    )


def test_webhooks_move_the_order_through_the_shared_state_machine(shop: Shop, standin: StandInServer) -> None:
    ref, _ = _paid_order(shop)
    standin.state.set_status("pay_1", "authorized")
    out = _deliver(shop, "evt_1", ref, "authorized")
    assert (out["http_status"], json.loads(out["body"])) == (200, {"result": "applied"})
    state = shop.saved()
    authorized = int(state["config"]["PSP_ALPENKASSE_OS_AUTHORIZED"])
    assert state["orders"][ref]["state"] == authorized
    assert state["rows"][ref]["status"] == "authorized" and json.loads(state["rows"][ref]["events"]) == ["evt_1"]
    assert state["messages"][-1]["message"] == "Alpenkasse meldet den Zahlungsstatus: autorisiert (Ereignis evt_1)."
    assert json.loads(_deliver(shop, "evt_1", ref, "authorized")["body"]) == {"result": "duplicate"}
    standin.state.set_status("pay_1", "pending")
    assert json.loads(_deliver(shop, "evt_2", ref, "pending")["body"]) == {"result": "ignored"}
    assert shop.saved()["orders"][ref]["state"] == authorized
    bad = _deliver(shop, "evt_3", ref, "paid", secret="whsec_other")
    assert (bad["http_status"], json.loads(bad["body"])) == (401, {"result": "rejected_signature"})
    stale = _deliver(shop, "evt_3", ref, "paid", age=3600)
    assert (stale["http_status"], json.loads(stale["body"])) == (401, {"result": "rejected_stale"})
    standin.state.unavailable = True
    down = _deliver(shop, "evt_4", ref, "paid")
    assert (down["http_status"], json.loads(down["body"])) == (503, {"result": "psp_unavailable"})
    standin.state.unavailable = False
    standin.state.set_status("pay_1", "paid")
    assert json.loads(_deliver(shop, "evt_5", ref, "paid")["body"]) == {"result": "applied"}
    assert shop.saved()["orders"][ref]["state"] == 2  # PS_OS_PAYMENT
    get = shop.run("controller", controller="webhook", method="GET")
    assert get["http_status"] == 405


def test_secrets_are_stored_sealed_with_the_cookie_key_and_the_module_runs_on_them(
    shop: Shop, standin: StandInServer, live: Module
) -> None:
    shop.run("install")
    settings = live.context["vars"]["plugin_namespace"] + "\\Settings"
    out = shop.run(
        "save_settings", settings_class=settings, api_key="key_ps_1", webhook_secret="whsec_ps_secret", config={}
    )
    assert out["read_back"] == ["key_ps_1", "whsec_ps_secret"]
    config = shop.saved()["config"]
    assert config["PSP_ALPENKASSE_API_KEY"].startswith("pspenc:o1:")
    assert "key_ps_1" not in json.dumps(config) and "whsec_ps_secret" not in json.dumps(config)
    # an empty field keeps the stored secret (the form never shows it)
    kept = shop.run("save_settings", settings_class=settings, api_key="", webhook_secret="")["read_back"]
    assert kept == ["key_ps_1", "whsec_ps_secret"]
    # the checkout and the webhook run on the sealed settings
    shop.run("controller", controller="payment", **CHECKOUT_POST)
    [create] = standin.state.calls("POST", "/v1/payments")
    assert create["headers"]["Authorization"] == "Bearer key_ps_1"
    [order] = shop.saved()["orders"].values()
    standin.state.set_status("pay_1", "authorized")
    out = _deliver(shop, "evt_1", str(order["id"]), "authorized")
    assert (out["http_status"], json.loads(out["body"])) == (200, {"result": "applied"})


def test_a_flood_of_unsigned_webhooks_adds_one_log_row(shop: Shop, standin: StandInServer) -> None:
    ref, _ = _paid_order(shop)
    for n in range(5):
        out = _deliver(shop, f"evt_{n}", ref, "paid", secret="whsec_forged")
        assert (out["http_status"], json.loads(out["body"])) == (401, {"result": "rejected_signature"})
    state = shop.saved()
    assert [line for line in state["logs"] if "rejected" in line] == [
        "Webhook rejected_signature (1 refused deliveries since the last line)"
    ]
    assert re.fullmatch(r"\d+:4", state["config"]["PSP_ALPENKASSE_REJECTED_WEBHOOKS"])


def test_a_paid_webhook_in_another_currency_holds_the_order_and_never_marks_it_paid(
    shop: Shop, standin: StandInServer
) -> None:
    ref, _ = _paid_order(shop)
    standin.state.update("pay_1", status="paid", currency="CHF")
    out = _deliver(shop, "evt_1", ref, "paid")
    assert (out["http_status"], json.loads(out["body"])) == (200, {"result": "amount_mismatch"})
    state = shop.saved()
    assert state["orders"][ref]["state"] == 8  # PS_OS_ERROR, never PS_OS_PAYMENT
    assert state["rows"][ref]["status"] == "pending" and json.loads(state["rows"][ref]["events"]) == ["evt_1"]
    note = state["messages"][-1]
    assert note["private"] == 1 and "12.50 CHF" in note["message"] and "12.50 EUR" in note["message"]
    assert note["message"].startswith("Angehalten: Alpenkasse meldet die Zahlung pay_1")
    [line] = [entry for entry in state["logs"] if "amount_mismatch" in entry]
    assert re.search(r"correlation id [0-9a-f-]{36}", line)
    standin.state.update("pay_1", currency="EUR")
    assert json.loads(_deliver(shop, "evt_2", ref, "paid")["body"]) == {"result": "applied"}
    assert shop.saved()["orders"][ref]["state"] == 2  # PS_OS_PAYMENT


def test_the_return_page_re_reads_the_psp_and_sends_the_shopper_on(shop: Shop, standin: StandInServer) -> None:
    ref, _ = _paid_order(shop)
    key = shop.saved()["orders"][ref]["secure_key"]
    standin.state.set_status("pay_1", "paid")
    out = shop.run("controller", controller="return", request={"id_order": ref, "key": key})
    assert out["redirect"].startswith(
        "https://shop.standin.invalid/order-confirmation?id_cart=77&id_module=42&id_order=" + ref
    )
    assert shop.saved()["orders"][ref]["state"] == 2
    forged = shop.run("controller", controller="return", request={"id_order": ref, "key": "guess"})
    assert forged["redirect"] == "https://shop.standin.invalid/index"


def test_the_return_page_never_marks_an_order_paid_for_another_amount(shop: Shop, standin: StandInServer) -> None:
    ref, _ = _paid_order(shop)
    key = shop.saved()["orders"][ref]["secure_key"]
    standin.state.update("pay_1", status="paid", amount=1)
    for _ in range(2):  # a reload holds once
        shop.run("controller", controller="return", request={"id_order": ref, "key": key})
    state = shop.saved()
    assert state["orders"][ref]["state"] == 8 and state["rows"][ref]["status"] == "pending"
    notes = [m["message"] for m in state["messages"] if m["message"].startswith("Angehalten")]
    assert len(notes) == 1 and "0.01 EUR" in notes[0] and "12.50 EUR" in notes[0]


def test_a_failed_payment_brings_the_shopper_back_to_the_checkout_with_the_cart(
    shop: Shop, standin: StandInServer
) -> None:
    ref, _ = _paid_order(shop)
    key = shop.saved()["orders"][ref]["secure_key"]
    standin.state.set_status("pay_1", "failed")
    out = shop.run("controller", controller="return", request={"id_order": ref, "key": key})
    assert out["redirect"] == "https://shop.standin.invalid/order"
    assert out["notifications"] == [
        "Die Zahlung wurde nicht abgeschlossen. Bitte versuchen Sie es erneut oder wählen Sie eine andere Zahlungsart."
    ]
    assert shop.saved()["orders"][ref]["state"] == 8  # PS_OS_ERROR


def test_credit_slips_refund_at_the_psp_and_shipping_captures(shop: Shop, standin: StandInServer) -> None:
    ref, order_id = _paid_order(shop)
    standin.state.set_status("pay_1", "authorized")
    _deliver(shop, "evt_1", ref, "authorized")
    shop.run("shipped", order=order_id)
    [capture] = standin.state.calls("POST", "/v1/payments/pay_1/captures")
    assert json.loads(capture["body"]) == {"amount": 1250, "currency": "EUR"}
    assert capture["headers"]["Idempotency-Key"] == f"capture-{order_id}"
    shop.run("shipped", order=order_id)
    assert len(standin.state.calls("POST", "/v1/payments/pay_1/captures")) == 1  # captured once
    shop.run("slip", order=order_id, slip=4.5)
    [refund] = standin.state.calls("POST", "/v1/payments/pay_1/refunds")
    assert json.loads(refund["body"]) == {"amount": 450, "currency": "EUR", "reason": ""}
    assert refund["headers"]["Idempotency-Key"] == f"refund-{order_id}-31"
    assert re.fullmatch(
        r"Erstattung von 4,50 EUR an Alpenkasse übermittelt \(Korrelations-ID [0-9a-f-]{36}\)\.",
        shop.saved()["messages"][-1]["message"],
    )
    standin.state.follow_up_status = 422
    shop.run("slip", order=order_id, slip=1.0)
    assert "hat die Erstattung nicht angenommen" in shop.saved()["messages"][-1]["message"]
    panel = shop.run("admin_order", order=order_id)["panel"]
    assert '"psp_payment_id":"pay_1"' in panel and '"psp_status":"autorisiert"' in panel


def test_health_reports_version_build_and_prestashop(shop: Shop, live: Module) -> None:
    out = shop.run("controller", controller="health")
    report = json.loads(out["body"])
    assert out["http_status"] == 200
    assert (report["plugin"], report["version"], report["build"], report["prestashop"]) == (
        "alpenkasse-payments",
        "1.0.0",
        live.tree.build,
        "8.2.0",
    )

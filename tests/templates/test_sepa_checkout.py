"""IBAN and BIC at the edge: a SEPA Direct Debit client's checkout collects the debtor's account, refuses
what psp_assets/core/payments/iban.py refuses (with the platform's translated message, and no payment is created)
and sends the normalised account as `debtor` in the createPayment body; clients without SEPA Direct Debit
get no fields at all.

The platform code runs in the stand-in platforms the template tests already use (WordPress/WooCommerce,
PrestaShop), which imitate only the API the plugin calls: the platforms cannot be installed here.
Everything else is real: the rendered plugin, PHP, the shared core, and core/payments/iban.py as the oracle.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from psp_assets.core.config.model import load_client
from psp_assets.core.i18n import load_catalog, parse_po
from psp_assets.core.payments import iban
from psp_assets.core.render.engine import render, render_context, write_tree
from psp_assets.core.runtimes.php import NativePhp
from psp_assets.core.templates.spec import SHARED_DIR, load_template
from psp_assets.core.verify.contract.cases import bank_id_vectors
from tests.conftest import DEMO_CLIENTS, TEMPLATES, make_client
from tests.templates import test_woocommerce as woo
from tests.support.standins import standin

VECTORS = bank_id_vectors()

# The message id the shopper reads for each BankAccount error code (placeholders: country, length).
MESSAGES = {
    "iban_missing": "Enter the IBAN of the account to be debited.",
    "iban_format": "Enter the IBAN as printed on your bank statement: a country code, two check digits, then letters and digits.",
    "iban_country": "IBANs from %s cannot be used for this payment.",
    "iban_length": "An IBAN from %1$s has %2$s characters. Please check the IBAN you entered.",
    "iban_checksum": "The IBAN check digits do not match. Please check the IBAN for typing errors.",
    "bic_format": "Enter a valid BIC (8 or 11 letters and digits, e.g. DEUTDEFF) or leave it empty.",
    "bic_country": "Enter a valid BIC (8 or 11 letters and digits, e.g. DEUTDEFF) or leave it empty.",
}


def expected_messages(number: str, bic: str, required: bool) -> list[str]:
    country = iban.normalize_iban(number)[:2]
    length = iban.IBAN_LENGTHS.get(country, 0)
    check = iban.check_debtor(number, bic, required)
    fill = {"%s": country, "%1$s": country, "%2$s": str(length)}
    return [re.sub(r"%(?:\d\$)?s", lambda m: fill[m.group(0)], MESSAGES[code]) for code in check["errors"]]


def checkout_cases() -> dict[str, dict[str, Any]]:
    """Every shared IBAN vector (without BIC), the BIC vectors with a valid IBAN, and the debtor cases."""
    cases = {f"iban {value!r}": {"iban": value, "bic": ""} for value in VECTORS["iban"]}
    cases |= {f"bic {value!r}": {"iban": "NL91ABNA0417164300", "bic": value} for value in VECTORS["bic"]}
    cases |= {f"debtor: {c['name']}": {"iban": c["iban"], "bic": c["bic"]} for c in VECTORS["debtor"]}
    return cases


def test_the_debtor_collection_follows_the_clients_payment_methods() -> None:
    assert iban.debtor_collection(["card", "ideal", "sepa_direct_debit"]) == "optional"
    assert iban.debtor_collection(["sepa_direct_debit"]) == "required"
    assert iban.debtor_collection(["card", "sepa_credit_transfer"]) == ""


# --- WooCommerce: Gateway::payment_fields / validate_fields / process_payment ---------------------------

def run_woo(php: NativePhp, plugin: woo.Plugin, tmp_path: Path, cases: dict[str, dict[str, str]]) -> dict[str, Any]:
    script = tmp_path / "woo-sepa.php"
    script.write_text(standin("woocommerce", "wordpress.php", "sepa_scenario.php"))
    gateway = plugin.context["ids"]["gateway_id"]
    posted = {name: {f"{gateway}_iban": c["iban"], f"{gateway}_bic": c["bic"]} for name, c in cases.items()}
    (tmp_path / "cases.json").write_text(json.dumps(posted))
    run = php.run(script, ["woo", str(gateway), str(plugin.main), str(tmp_path / "cases.json")], cwd=tmp_path)
    assert run.returncode == 0, run.stderr or run.stdout
    out = json.loads(run.stdout)
    assert out["errors"] == []
    return out


@pytest.fixture(scope="module")
def woo_nordbank(tmp_path_factory: pytest.TempPathFactory) -> woo.Plugin:
    return woo.demo("nordbank", tmp_path_factory.mktemp("woo-sepa"))


def test_woocommerce_checkout_agrees_with_core_iban_on_every_vector(
    woo_nordbank: woo.Plugin, php: NativePhp, tmp_path: Path
) -> None:
    cases = checkout_cases()
    out = run_woo(php, woo_nordbank, tmp_path, cases)
    assert out["has_fields"] is True
    assert len(out["cases"]) == len(cases) > 40
    for name, case in cases.items():
        got = out["cases"][name]
        check = iban.check_debtor(case["iban"], case["bic"], False)  # Nord Bank: card and iDEAL too, so optional
        messages = expected_messages(case["iban"], case["bic"], False)
        assert got["validate_notices"] == messages, name
        assert got["validated"] is (not messages), name
        if messages:
            # refused before anything happens: no PSP call, no payment attempt recorded on the order
            assert (got["result"], got["payment_notices"], got["sent"], got["attempts"]) == (
                "failure",
                messages,
                [],
                "",
            ), name
        else:
            assert got["result"] == "success", name
            [body] = got["sent"]
            assert body.get("debtor") == check["debtor"], name
            assert check["debtor"] is None or " " not in body["debtor"]["iban"]


def test_woocommerce_fields_are_escaped_and_the_block_checkout_gets_their_names(
    woo_nordbank: woo.Plugin, php: NativePhp, tmp_path: Path
) -> None:
    out = run_woo(php, woo_nordbank, tmp_path, {})
    fields = out["payment_fields"]
    assert 'name="psp_nordbank_iban"' in fields and 'name="psp_nordbank_bic"' in fields
    # what the shopper typed comes back sanitised (wc_clean) and attribute-escaped: it cannot close the tag
    [typed] = re.findall(r'name="psp_nordbank_iban" [^>]*value="([^"]*)"', fields)
    assert typed.startswith("DE89 &quot;&gt;") and "<" not in typed
    assert 'value="deutdeff"' in fields
    assert "Leave the IBAN empty to choose how to pay on the payment page." in fields
    assert out["blocks"]["debtor"] == {
        "required": False,
        "ibanField": "psp_nordbank_iban",
        "bicField": "psp_nordbank_bic",
        "ibanLabel": "IBAN for SEPA Direct Debit",
        "bicLabel": "BIC (optional)",
        "hint": "Leave the IBAN empty to choose how to pay on the payment page.",
    }
    script = woo_nordbank.text("assets/js/checkout.js")
    assert "onPaymentSetup" in script and "paymentMethodData" in script


def test_woocommerce_messages_ship_translated_for_every_client_locale(woo_nordbank: woo.Plugin) -> None:
    po = parse_po(woo_nordbank.text("languages/nordbank-payments-nl_NL.po"))
    for message in {*MESSAGES.values(), "IBAN for SEPA Direct Debit", "BIC (optional)"}:
        assert po.get(message) and po[message] != message, message
    assert (
        po[MESSAGES["iban_checksum"]]
        == "De controlecijfers van de IBAN kloppen niet. Controleer de IBAN op typefouten."
    )


def test_woocommerce_requires_the_iban_when_sepa_direct_debit_is_the_only_method(
    php: NativePhp, tmp_path: Path
) -> None:
    plugin = woo.render_plugin(make_client(payment_methods=["sepa_direct_debit"]), tmp_path / "plugin")
    out = run_woo(
        php, plugin, tmp_path, {"empty": {"iban": "", "bic": ""}, "ok": {"iban": "BE68539007547034", "bic": ""}}
    )
    assert out["cases"]["empty"]["validate_notices"] == [MESSAGES["iban_missing"]]
    assert out["cases"]["empty"]["sent"] == []
    assert out["cases"]["ok"]["sent"][0]["debtor"] == {"iban": "BE68539007547034"}
    assert "validate-required" in out["payment_fields"] and "Leave the IBAN empty" not in out["payment_fields"]
    assert out["blocks"]["debtor"]["required"] is True and out["blocks"]["debtor"]["hint"] == ""


def test_woocommerce_without_sepa_direct_debit_has_no_account_fields(php: NativePhp, tmp_path: Path) -> None:
    plugin = woo.demo("baltic-credit", tmp_path)
    gateway = plugin.text("includes/class-gateway.php")
    assert "BankAccount" not in gateway and "$this->has_fields = false;" in gateway
    assert "debtor" not in plugin.text("assets/js/checkout.js")
    out = run_woo(php, plugin, tmp_path, {"iban ignored": {"iban": "not an iban", "bic": ""}})
    assert out["has_fields"] is False and "debtor" not in out["blocks"]
    case = out["cases"]["iban ignored"]
    assert case["result"] == "success" and "debtor" not in case["sent"][0]
    assert re.search(r"name=\"psp_baltic_credit_iban\"", out["payment_fields"]) is None


# --- Magento 2: checkout additional_data -> DataAssignObserver -> the "global" validator -> CreatePaymentBuilder

# A stand-in for the part of Magento these classes touch (magento/framework and the Payment, Quote and
# Sales modules cannot be installed here): the same class names, constants and signatures, recording
# nothing, with `__()` reading the module's own i18n/<locale>.csv as Magento's translator does.
MAGENTO_STANDIN = standin("magento2", "payment_framework.php")


def translated(messages: list[str], table: dict[str, str], country: str, length: int) -> str:
    fill = {"%s": country, "%1$s": country, "%2$s": str(length)}
    return "\n".join(re.sub(r"%(?:\d\$)?s", lambda m: fill[m.group(0)], table[m]) for m in messages)


def run_magento(
    php: NativePhp, module: Any, tmp_path: Path, cases: dict[str, dict[str, str]], locale: str
) -> dict[str, Any]:
    """Dispatch what etc/events.xml registers and validate with what etc/di.xml puts in the validator pool."""
    vendor = module.context["ids"]["vendor"]
    method = module.context["ids"]["gateway_id"]
    events = ET.fromstring(module.tree.files["etc/events.xml"])
    observers = [
        o.get("instance")
        for e in events.iter("event")
        if e.get("name") == f"payment_method_assign_data_{method}"
        for o in e.iter("observer")
    ]
    pool = next(
        v
        for v in ET.fromstring(module.tree.files["etc/di.xml"]).iter("virtualType")
        if v.get("name").endswith("PaymentValidatorPool")
    )
    validator = next(((i.text or "").strip() for i in pool.iter("item") if i.get("name") == "global"), "")
    script = tmp_path / "magento-sepa.php"
    script.write_text(MAGENTO_STANDIN)
    (tmp_path / "cases.json").write_text(
        json.dumps({n: {"debtor_iban": c["iban"], "debtor_bic": c["bic"]} for n, c in cases.items()})
    )
    args = [str(module.root), locale, vendor, method, str(tmp_path / "cases.json"), json.dumps(observers), validator]
    run = php.run(script, args, cwd=tmp_path)
    assert run.returncode == 0, run.stderr or run.stdout
    out = json.loads(run.stdout)
    assert out["errors"] == []
    return {"observers": observers, "validator": validator, **out}


@pytest.fixture(scope="module")
def magento_alpenkasse(tmp_path_factory: pytest.TempPathFactory):
    from tests.templates.test_magento2 import Rendered

    template = load_template(TEMPLATES, "magento2")
    config = load_client(DEMO_CLIENTS / "alpenkasse.yaml")
    tree = render(template, config)
    root = write_tree(tree, tmp_path_factory.mktemp("m2-sepa") / "alpenkasse")
    return Rendered(
        "alpenkasse",
        template,
        tree,
        root,
        render_context(template, config, load_catalog(TEMPLATES / SHARED_DIR / "i18n", list(config.locales))),
    )


def test_magento_places_no_order_for_an_account_core_iban_refuses(
    magento_alpenkasse, php: NativePhp, tmp_path: Path
) -> None:
    cases = checkout_cases()
    out = run_magento(php, magento_alpenkasse, tmp_path, cases, "de_DE")
    assert out["observers"] == ["PspAlpenkasse\\Payment\\Observer\\DataAssignObserver"]
    assert out["validator"] == "PspAlpenkasse\\Payment\\Gateway\\Validator\\DebtorAccountValidator"
    german = magento_alpenkasse.context["translations"]["de_DE"]
    for name, case in cases.items():
        got = out["cases"][name]
        check = iban.check_debtor(case["iban"], case["bic"], False)
        country = iban.normalize_iban(case["iban"])[:2]
        if check["errors"]:
            codes = [MESSAGES[c] for c in check["errors"]]
            assert got["refused"] == translated(codes, german, country, iban.IBAN_LENGTHS.get(country, 0)), name
            assert got["payload"] is None, name  # the initialize command never runs: no payment at the PSP
        else:
            assert got["refused"] is None, name
            assert got["payload"].get("debtor") == check["debtor"], name
            assert got["payload"]["order_reference"] == "000000042"
    assert out["cases"]["iban 'DE89370400440532013001'"]["refused"] == (
        "Die Prüfziffern der IBAN stimmen nicht. Bitte prüfen Sie die IBAN auf Tippfehler."
    )


def test_magento_stores_oversized_input_as_unreadable_and_the_builder_checks_again(
    magento_alpenkasse, php: NativePhp, tmp_path: Path
) -> None:
    out = run_magento(
        php, magento_alpenkasse, tmp_path, {"long": {"iban": "DE89" + "0" * 70, "bic": "DEUTDEFF"}}, "de_DE"
    )
    assert out["cases"]["long"]["stored"] == {"debtor_iban": "?", "debtor_bic": "DEUTDEFF"}
    assert out["cases"]["long"]["payload"] is None
    assert out["cases"]["long"]["refused"].startswith("Geben Sie die IBAN wie auf Ihrem Kontoauszug ein")
    # without the validator (a store that removed it from the pool) the builder still refuses: no PSP payment
    direct = run_magento_without_validator(php, magento_alpenkasse, tmp_path)
    assert (
        direct["refused_by_builder"]
        == "Die Prüfziffern der IBAN stimmen nicht. Bitte prüfen Sie die IBAN auf Tippfehler."
    )
    assert direct["payload"] is None


def run_magento_without_validator(php: NativePhp, module: Any, tmp_path: Path) -> dict[str, Any]:
    script = tmp_path / "magento-sepa.php"
    script.write_text(MAGENTO_STANDIN)
    (tmp_path / "one.json").write_text(json.dumps({"bad": {"debtor_iban": "DE89370400440532013001", "debtor_bic": ""}}))
    observer = json.dumps([f"{module.context['ids']['vendor']}\\Payment\\Observer\\DataAssignObserver"])
    args = [
        str(module.root),
        "de_DE",
        module.context["ids"]["vendor"],
        module.context["ids"]["gateway_id"],
        str(tmp_path / "one.json"),
        observer,
        "",
    ]
    run = php.run(script, args, cwd=tmp_path)
    assert run.returncode == 0, run.stderr or run.stdout
    return json.loads(run.stdout)["cases"]["bad"]


def test_magento_without_sepa_direct_debit_registers_no_observer_or_validator(php: NativePhp, tmp_path: Path) -> None:
    template = load_template(TEMPLATES, "magento2")
    tree = render(template, make_client(payment_methods=["card", "ideal"]))
    events = ET.fromstring(tree.files["etc/events.xml"])
    assert list(events.iter("event")) == []
    assert b"DebtorAccountValidator" not in tree.files["etc/di.xml"]
    assert b"debtor" not in tree.files["Gateway/Request/CreatePaymentBuilder.php"]
    assert b"debtor" not in tree.files["view/frontend/web/template/payment/redirect.html"]
    assert b"mage/translate" not in tree.files["view/frontend/web/js/view/payment/method-renderer/redirect.js"]


# --- PrestaShop: the payment option's form -> the payment controller ----------------------------------

# One case per outcome: each error code, a valid account with and without BIC, nothing entered.
REPRESENTATIVE = {
    "valid, typed with spaces": {"iban": "de89 3704 0044 0532 0130 00", "bic": ""},
    "valid with BIC": {"iban": "NL91ABNA0417164300", "bic": " abnanl2a "},
    "nothing entered": {"iban": "", "bic": ""},
    "check digits": {"iban": "DE89370400440532013001", "bic": ""},
    "length": {"iban": "NL91ABNA041716430", "bic": ""},
    "country": {"iban": "XX82WEST12345698765432", "bic": ""},
    "format": {"iban": "D189370400440532013000", "bic": ""},
    "BIC": {"iban": "BE68539007547034", "bic": "DEUTXXFF"},
    "BIC without IBAN": {"iban": "", "bic": "DEUTDEFF"},
}


@pytest.fixture(scope="module")
def ps_standin(tmp_path_factory: pytest.TempPathFactory):
    from tests.support.psp_standin import StandInServer

    server = StandInServer(tmp_path_factory.mktemp("ps-standin"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def ps_module(ps_standin, tmp_path_factory: pytest.TempPathFactory):
    import yaml

    from psp_assets.core.config.model import parse_client
    from tests.templates.test_prestashop import render_module

    data = yaml.safe_load((DEMO_CLIENTS / "alpenkasse.yaml").read_text())
    config = parse_client({**data, "api_base_url": ps_standin.url + "/v1"}, "alpenkasse.yaml")
    return render_module(config, tmp_path_factory.mktemp("ps-sepa") / "modules")


def test_prestashop_payment_controller_refuses_before_the_order_and_sends_the_debtor(
    ps_module, ps_standin, php: NativePhp, tmp_path: Path
) -> None:
    from tests.templates.test_prestashop import CONFIGURED, Shop

    german = ps_module.context["translations"]["de_DE"]
    for name, case in REPRESENTATIVE.items():
        ps_standin.reset()
        work = tmp_path / re.sub(r"\W+", "-", name)
        work.mkdir()
        shop = Shop(ps_module, ps_standin, php, work)  # a fresh shop (its own state file) per case
        shop.run("install")
        request = {"psp_alpenkasse_iban": case["iban"], "psp_alpenkasse_bic": case["bic"], "token": "front_token_42"}
        out = shop.run("controller", controller="payment", config=CONFIGURED, request=request, method="POST")
        check = iban.check_debtor(case["iban"], case["bic"], False)
        creates = ps_standin.state.calls("POST", "/v1/payments")
        if check["errors"]:
            country = iban.normalize_iban(case["iban"])[:2]
            want = translated(
                [MESSAGES[c] for c in check["errors"]], german, country, iban.IBAN_LENGTHS.get(country, 0)
            )
            assert out["notifications"] == want.split("\n"), name
            assert out["redirect"] == "https://shop.standin.invalid/order", name
            assert (list(shop.saved()["orders"]), creates) == ([], []), name  # no order, no payment
        else:
            assert out["redirect"].startswith("https://pay.standin.invalid/checkout/"), name
            [create] = creates
            assert json.loads(create["body"]).get("debtor") == check["debtor"], name


def test_prestashop_payment_option_carries_the_escaped_translated_form(
    ps_module, ps_standin, php: NativePhp, tmp_path: Path
) -> None:
    from tests.templates.test_prestashop import CONFIGURED, Shop

    shop = Shop(ps_module, ps_standin, php, tmp_path)
    [option] = shop.run("options", currency=1, config=CONFIGURED)["options"]
    form = option["form"]
    assert form.startswith(
        '<form action="https://shop.standin.invalid/module/alpenkassepayments/payment?token=front_token_42" method="post"'
    )
    assert 'name="psp_alpenkasse_iban"' in form and 'name="psp_alpenkasse_bic"' in form
    assert ">IBAN für SEPA-Lastschrift</label>" in form and ">BIC (optional)</label>" in form
    assert "Lassen Sie die IBAN leer" in form and " required" not in form


def test_prestashop_without_sepa_direct_debit_has_no_form(tmp_path: Path) -> None:
    from tests.templates.test_prestashop import render_module

    module = render_module(
        make_client(platforms={"prestashop": {"slug": "nordbank-payments"}}, payment_methods=["card"]), tmp_path
    )
    assert "setForm" not in module.text("nordbankpayments.php") and "BankAccount" not in module.text(
        "controllers/front/payment.php"
    )


# --- OpenCart 4: the payment block's form -> confirm() -----------------------------------------------


@pytest.fixture(scope="module")
def oc_extension(ps_standin, tmp_path_factory: pytest.TempPathFactory):
    from tests.templates.test_opencart import render_extension

    config = make_client(
        api_base_url=ps_standin.url + "/v1",
        locales=["pl_PL", "en_GB"],
        platforms={"opencart": {}},
    )
    return render_extension(config, tmp_path_factory.mktemp("oc-sepa") / "extension")


def test_opencart_confirm_refuses_a_bad_account_and_sends_a_good_one(
    oc_extension, ps_standin, php: NativePhp, tmp_path: Path
) -> None:
    from tests.templates.test_opencart import ORDER, Store

    settings = {
        "payment_psp_nordbank_status": "1",
        "payment_psp_nordbank_api_key": "key_oc_1",
        "payment_psp_nordbank_webhook_secret": "whsec_oc",
    }
    polish = oc_extension.context["translations"]["pl_PL"]
    for name, case in REPRESENTATIVE.items():
        ps_standin.reset()
        work = tmp_path / re.sub(r"\W+", "-", name)
        work.mkdir()
        store = Store(oc_extension, ps_standin, php, work)
        post = {"psp_nordbank_iban": case["iban"], "psp_nordbank_bic": case["bic"]}
        session = {"order_id": 17, "payment_method": {"code": "psp_nordbank.psp_nordbank"}}
        out = store.call(
            "catalog",
            "psp_nordbank",
            "confirm",
            config={**settings, "config_language": "pl-pl"},
            session=session,
            orders={"17": ORDER},
            post=post,
        )
        answer = json.loads(out["output"])
        check = iban.check_debtor(case["iban"], case["bic"], False)
        creates = ps_standin.state.calls("POST", "/v1/payments")
        if check["errors"]:
            country = iban.normalize_iban(case["iban"])[:2]
            want = translated(
                [MESSAGES[c] for c in check["errors"]], polish, country, iban.IBAN_LENGTHS.get(country, 0)
            )
            assert answer == {"error": want.replace("\n", " ")}, name
            assert creates == [] and out["state"].get("histories", []) == [], name
        else:
            assert answer == {"redirect": "https://pay.standin.invalid/checkout/pay_1"}, name
            [create] = creates
            assert json.loads(create["body"]).get("debtor") == check["debtor"], name


def test_opencart_payment_block_offers_the_fields_in_the_shoppers_language(
    oc_extension, ps_standin, php: NativePhp, tmp_path: Path
) -> None:
    from tests.templates.test_opencart import Store

    store = Store(oc_extension, ps_standin, php, tmp_path)
    block = store.view(store.call("catalog", "psp_nordbank", config={"config_language": "pl-pl"}))
    assert (block["iban_field"], block["bic_field"], block["iban_required"]) == (
        "psp_nordbank_iban",
        "psp_nordbank_bic",
        False,
    )
    assert (block["entry_iban"], block["entry_bic"]) == ("IBAN do polecenia zapłaty SEPA", "BIC (opcjonalnie)")
    view = oc_extension.text("catalog/view/template/payment/psp_nordbank.twig")
    assert "method: 'POST', body: new FormData(form)" in view and "name=\"{{ iban_field|e('html_attr') }}\"" in view


def test_opencart_without_sepa_direct_debit_keeps_the_plain_confirm(tmp_path: Path) -> None:
    from tests.templates.test_opencart import render_extension

    ext = render_extension(load_client(DEMO_CLIENTS / "baltic-credit.yaml"), tmp_path / "ext")
    assert "BankAccount" not in ext.text("catalog/controller/payment/psp_baltic_credit.php")
    assert "FormData" not in ext.text("catalog/view/template/payment/psp_baltic_credit.twig")
    assert "entry_iban" not in ext.text("catalog/language/lt-lt/payment/psp_baltic_credit.php")

"""The OpenCart 4 template: a `<code>.ocmod.zip` OpenCart's installer accepts (install.json at the archive
root, admin/ catalog/ system/ beside it), that lints, passes the shared contract, ships language files per
client locale, answers the checkout's payment-method call on 4.0.0-4.0.1 (getMethod) and 4.0.2+
(getMethods), and handles checkout, webhooks, the shopper's return, refunds and settings when it runs.

OpenCart is in no package registry this machine reaches. The payment-method API check runs the real
rendered model under stand-ins of OpenCart's Registry, Model, Loader and model proxy and of the two
versions of the checkout's loop (templates/_shared/api-checks/opencart/payment_model.php, the same
script the test report and the compatibility matrix run). The runtime tests load the extension's
controllers into a stand-in OpenCart (tests/standins/opencart/opencart.php) that imitates only the
registry objects they use and records what they ask of it. The PSP is the HTTPS stand-in of tests/support/psp_standin.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
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
from psp_assets.core.verify.platform_api import run_api_checks
from tests.conftest import DEMO_CLIENTS, TEMPLATES, make_client
from tests.support.psp_standin import StandInServer
from tests.support.rendered import RenderedPlugin, render_to
from tests.support.standins import standin

VERSIONS = ("4.0.0.0", "4.0.1.1", "4.0.2.3", "4.1.0.3")
CHECK_SCRIPT = TEMPLATES / SHARED_DIR / "api-checks/opencart/payment_model.php"


class Extension(RenderedPlugin):
    @property
    def code(self) -> str:
        return self.context["ids"]["prefix"]


def render_extension(config: ClientConfig, out: Path) -> Extension:
    return render_to("opencart", config, lambda ids: out / ids["prefix"], Extension)


@pytest.fixture(scope="module")
def baltic(tmp_path_factory: pytest.TempPathFactory) -> Extension:
    return render_extension(load_client(DEMO_CLIENTS / "baltic-credit.yaml"), tmp_path_factory.mktemp("extension"))


@pytest.fixture(scope="module")
def nordbank(tmp_path_factory: pytest.TempPathFactory) -> Extension:
    return render_extension(make_client(platforms={"opencart": {}}), tmp_path_factory.mktemp("extension"))


# --- what OpenCart's installer accepts -----------------------------------------------------------------


@pytest.mark.parametrize("client", ["baltic", "nordbank"])
def test_every_php_file_lints_and_the_packaging_rules_pass(
    client: str, request: pytest.FixtureRequest, php: NativePhp
) -> None:
    ext: Extension = request.getfixturevalue(client)
    php_files = [p for p in ext.tree.files if p.endswith(".php")]
    assert len(php_files) > 25
    assert [f"{r.path}: {r.message}" for r in php.lint(ext.root, php_files) if not r.ok] == []
    results = checks.check_packaging(ext.template, ext.tree.files, lambda t: render_string(t, ext.context))
    assert len(results) == len(ext.template.spec.rules)
    assert [(r.name, r.detail) for r in results if not r.passed] == []


def test_the_ocmod_zip_has_install_json_at_its_root_and_is_named_after_the_code(
    baltic: Extension, tmp_path: Path
) -> None:
    name = render_string(baltic.template.spec.packaging.artifact, baltic.context)
    archive = zipfile.ZipFile(package(baltic.tree, baltic.template.spec.packaging.root, name, tmp_path).path)
    assert name == "psp_baltic_credit.ocmod.zip" and name.removesuffix(".ocmod.zip") == baltic.code
    assert {n.split("/")[0] for n in archive.namelist()} == {"install.json", "admin", "catalog", "system"}
    install = json.loads(archive.read("install.json"))
    assert install == {
        "name": "Baltic Credit Union Payments",
        "version": "1.0.0",
        "author": "Baltic Credit Union",
        "link": "https://psp.balticcredit.example",
    }
    for path in (
        "admin/controller/payment/psp_baltic_credit.php",
        "catalog/controller/payment/psp_baltic_credit.php",
        "catalog/model/payment/psp_baltic_credit.php",
        "system/library/psp_baltic_credit.php",
        "system/library/core/WebhookProcessor.php",
    ):
        assert path in archive.namelist()


def test_classes_sit_where_opencarts_router_and_autoloader_look_for_them(baltic: Extension) -> None:
    for path in (
        p for p in baltic.tree.files if re.fullmatch(r"(admin|catalog)/(controller|model)/payment/\w+\.php", p)
    ):
        side, kind, _, file = path.split("/")
        route = f"extension/{baltic.code}/payment/{file[:-4]}"
        text = baltic.text(path)
        namespace = re.search(r"^namespace ([\w\\]+);", text, re.M).group(1)
        name = re.search(r"^class (\w+)", text, re.M).group(1)
        assert f"{namespace}\\{name}" == _oc_class(side, kind, route), path
        # the autoloader's file name for the class (CamelCase -> snake_case) is the file
        assert re.sub(r"([a-z])([A-Z0-9])", r"\1_\2", name).lower() + ".php" == file, path


def _oc_class(side: str, kind: str, route: str) -> str:
    words = re.split(r"([_/])", route)
    studly = "".join(w[:1].upper() + w[1:] if w not in "_/" else w for w in words)
    return f"Opencart\\{side.capitalize()}\\{kind.capitalize()}\\" + studly.replace("_", "").replace("/", "\\")


def test_contract_passes_in_the_extensions_namespace(baltic: Extension, php: NativePhp) -> None:
    results = contract_results(baltic.root, baltic.template, baltic.context, php)
    assert len(results) > 60 and [(r.name, r.detail) for r in results if not r.passed] == []


def test_language_files_per_client_locale_in_opencarts_folder_names(baltic: Extension) -> None:
    for side in ("admin", "catalog"):
        shipped = sorted(p.split("/")[2] for p in baltic.tree.files if p.startswith(f"{side}/language/"))
        assert shipped == ["en-gb", "lt-lt", "pl-pl"]  # lt_LT, pl_PL, en_GB
    catalog = load_catalog(TEMPLATES / SHARED_DIR / "i18n", ["lt_LT"])
    text = baltic.text("catalog/language/lt-lt/payment/psp_baltic_credit.php")
    assert (
        f"$_['error_start'] = '{catalog.translations['lt_LT']['The payment could not be started. Please try again or choose another payment method.']}';"
        in text
    )
    results = checks.check_translations(
        baltic.tree.files, catalog, ["lt_LT", "pl_PL", "en_GB"], baltic.template.spec.translations,
        lambda t, loc: render_string(t, {**baltic.context, "locale": loc}),
    )  # fmt: skip
    # per locale: catalog and placeholders, then each of the 6 files and its placeholders
    assert len(results) == 3 + 3 + 6 + 6 and all(r.passed for r in results), [(r.name, r.detail) for r in results]
    broken = dict(baltic.tree.files)
    broken["admin/language/pl-pl/payment/psp_baltic_credit.php"] = broken[
        "admin/language/pl-pl/payment/psp_baltic_credit.php"
    ].replace(b"$_['button_refund']", b"$_['button_refunded']")
    failures = [
        r.detail
        for r in checks.check_translations(
            broken,
            catalog,
            ["lt_LT", "pl_PL", "en_GB"],
            baltic.template.spec.translations,
            lambda t, loc: render_string(t, {**baltic.context, "locale": loc}),
        )
        if not r.passed
    ]
    assert failures == [
        "admin/language/pl-pl/payment/psp_baltic_credit.php: keys differ from the lt_LT file: button_refund, button_refunded"
    ]


def test_every_language_key_the_code_uses_is_in_every_language_file(baltic: Extension) -> None:
    for side in ("admin", "catalog"):
        code = "\n".join(
            baltic.text(p)
            for p in baltic.tree.files
            if p.startswith(f"{side}/") and p.endswith((".php", ".twig")) and "/language/" not in p
        )
        used = set(re.findall(r"language->get\('((?:text|error|entry|help|button)_\w+)'\)", code))
        used |= {f"text_status_{s}" for s in ("pending", "paid", "failed", "refunded")}
        defaults = {"text_home", "button_confirm", "button_save", "button_back", "entry_status", "entry_sort_order"}
        for language in ("lt-lt", "pl-pl", "en-gb"):
            keys = set(
                re.findall(
                    r"^\$_\['(\w+)'\]", baltic.text(f"{side}/language/{language}/payment/psp_baltic_credit.php"), re.M
                )
            )
            assert used - defaults <= keys, (side, language, sorted(used - defaults - keys))


# --- the platform-API difference: getMethod (4.0.0-4.0.1) and getMethods (4.0.2+) ------------------------


def _model_check(root: Path, version: str, php: NativePhp) -> dict[str, Any]:
    run = php.run(CHECK_SCRIPT, [str(root), version], cwd=root)
    assert run.returncode == 0 and not run.stderr, run.stderr
    return json.loads(run.stdout)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_catalog_model_answers_the_checkouts_call_on_each_version(
    baltic: Extension, php: NativePhp, version: str
) -> None:
    verdict = _model_check(baltic.root, version, php)
    assert verdict == {
        "ok": True,
        "detail": "",
        "version": version,
        "api": "getMethod" if version < "4.0.2" else "getMethods",
    }


def test_a_model_with_only_one_api_fails_the_versions_that_need_the_other(
    baltic: Extension, php: NativePhp, tmp_path: Path
) -> None:
    model = "catalog/model/payment/psp_baltic_credit.php"
    for missing, failing in (("getMethods", {"4.0.2.3", "4.1.0.3"}), ("getMethod", {"4.0.0.0", "4.0.1.1"})):
        root = tmp_path / missing / baltic.code
        shutil.copytree(baltic.root, root)
        source = (root / model).read_text()
        (root / model).write_text(source.replace(f"public function {missing}(", f"public function {missing}Gone("))
        verdicts = {v: _model_check(root, v, php)["ok"] for v in VERSIONS}
        assert {v for v, ok in verdicts.items() if not ok} == failing, (missing, verdicts)


def test_api_checks_in_template_yaml_run_per_platform_version(baltic: Extension, php: NativePhp) -> None:
    results = run_api_checks(baltic.template, baltic.root, baltic.tree.files, baltic.context, php)
    assert len(results) == 2 * len(VERSIONS)
    assert [(r.name, r.detail) for r in results if not r.passed] == []
    only = run_api_checks(baltic.template, baltic.root, baltic.tree.files, baltic.context, php, versions=["4.0.0.0"])
    assert [r.name for r in only] == [
        "opencart 4.0.0.0: the checkout's payment-method call returns this extension's method",
        "opencart 4.0.0.0: routes to controller methods use the version's separator",
    ]
    assert only[0].php_version == php.version and only[1].php_version is None


# --- running in OpenCart ---------------------------------------------------------------------------------

OC_STANDIN = standin("opencart", "opencart.php")


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory):
    server = StandInServer(tmp_path_factory.mktemp("standin"))
    yield server
    server.close()


@pytest.fixture(scope="module")
def live(standin: StandInServer, tmp_path_factory: pytest.TempPathFactory) -> Extension:
    """Baltic Credit's extension (lt/pl/en, full refunds only), talking to the stand-in PSP."""
    data = yaml.safe_load((DEMO_CLIENTS / "baltic-credit.yaml").read_text())
    config = parse_client({**data, "api_base_url": standin.url + "/v1"}, "baltic-credit.yaml")
    return render_extension(config, tmp_path_factory.mktemp("store") / "extension")


SETTINGS = {
    "payment_psp_baltic_credit_status": "1",
    "payment_psp_baltic_credit_api_key": "key_oc_1",
    "payment_psp_baltic_credit_webhook_secret": "whsec_oc_secret",
}


class Store:
    def __init__(self, ext: Extension, standin: StandInServer, php: NativePhp, work: Path) -> None:
        self.ext, self.standin, self.php = ext, standin, php
        self.runner = work / "runner.php"
        self.runner.write_text(OC_STANDIN)
        self.state = work / "state.json"

    def call(
        self, side: str, controller: str, method: str = "index", version: str = "4.0.2.3", **request: Any
    ) -> dict[str, Any]:
        request = {"side": side, "controller": controller, "method": method, **request}
        proc = subprocess.run(
            [self.php.binary, "-n", "-d", f"openssl.cafile={self.standin.cert}", str(self.runner), str(self.ext.root), str(self.state), version, json.dumps(request)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0 and not proc.stderr, proc.stderr or proc.stdout
        out = json.loads(proc.stdout)
        assert out["errors"] == [], out["errors"]
        return out

    def view(self, out: dict[str, Any]) -> dict[str, Any]:
        text = out["returned"] if isinstance(out["returned"], str) else out["output"]
        return json.loads(text.split(" ", 2)[2])


@pytest.fixture
def store(live: Extension, standin: StandInServer, php: NativePhp, tmp_path: Path) -> Store:
    standin.reset()
    return Store(live, standin, php, tmp_path)


ORDER = {
    "order_id": 17,
    "total": 24.0,
    "currency_code": "EUR",
    "currency_value": 1.0,
    "email": "pirkejas@example.org",
    "payment_iso_code_2": "LT",
}


@pytest.mark.parametrize(
    ("version", "method_code"), [("4.0.0.0", "psp_baltic_credit"), ("4.0.2.3", "psp_baltic_credit.psp_baltic_credit")]
)
def test_checkout_confirm_creates_the_payment_on_both_checkout_generations(
    store: Store, version: str, method_code: str
) -> None:
    block = store.view(store.call("catalog", "psp_baltic_credit", config=SETTINGS, version=version))
    separator = "|" if version == "4.0.0.0" else "."
    assert (
        block["confirm"]
        == f"https://shop.standin.invalid/index.php?route=extension/psp_baltic_credit/payment/psp_baltic_credit{separator}confirm&language=lt-lt"
    )
    assert block["description"] == "You will be redirected to our secure payment page."
    session = {"order_id": 17, "payment_method": {"code": method_code}}
    out = store.call(
        "catalog",
        "psp_baltic_credit",
        "confirm",
        version=version,
        config=SETTINGS,
        session=session,
        orders={"17": ORDER},
    )
    assert json.loads(out["output"]) == {"redirect": "https://pay.standin.invalid/checkout/pay_1"}
    [create] = store.standin.state.calls("POST", "/v1/payments")
    body = json.loads(create["body"])
    assert (body["amount"], body["currency"], body["order_reference"], body["capture"]) == (
        2400,
        "EUR",
        "17",
        "automatic",
    )
    assert (
        body["webhook_url"]
        == "https://shop.standin.invalid/index.php?route=extension/psp_baltic_credit/payment/psp_baltic_credit_webhook"
    )
    assert body["return_url"].startswith(
        "https://shop.standin.invalid/index.php?route=extension/psp_baltic_credit/payment/psp_baltic_credit_return&language=lt-lt&order_id=17&token="
    )
    assert body["description"] == "Užsakymas 17"
    assert create["headers"]["Idempotency-Key"] == "order-17-1"
    state = out["state"]
    assert state["rows"]["17"]["payment_id"] == "pay_1" and state["rows"]["17"]["status"] == "pending"
    [(order, status, comment)] = state["histories"]
    assert (order, status) == (17, 1) and "pay_1" in comment


def test_confirm_refuses_an_order_paid_another_way(store: Store) -> None:
    out = store.call(
        "catalog",
        "psp_baltic_credit",
        "confirm",
        config=SETTINGS,
        session={"order_id": 17, "payment_method": {"code": "cod.cod"}},
        orders={"17": ORDER},
    )
    assert json.loads(out["output"]) == {"error": "Užsakymas nerastas. Bandykite dar kartą."}
    assert store.standin.state.calls("POST", "/v1/payments") == []


def _confirmed(store: Store, attempts_before: int = 0) -> None:
    session = {"order_id": 17, "payment_method": {"code": "psp_baltic_credit.psp_baltic_credit"}}
    if attempts_before:
        session["psp_baltic_credit_attempt"] = attempts_before
    store.call("catalog", "psp_baltic_credit", "confirm", config=SETTINGS, session=session, orders={"17": ORDER})


def _deliver(
    store: Store,
    event_id: str,
    status: str,
    *,
    secret: str = "whsec_oc_secret",
    age: int = 0,
    method: str = "POST",
    payment_id: str = "pay_1",
) -> tuple[int, dict[str, Any], dict[str, Any]]:
    body = json.dumps(
        {
            "id": event_id,
            "type": "payment.updated",
            "created": int(time.time()),
            "data": {"payment_id": payment_id, "order_reference": "17", "status": status},
        }
    )
    server = {"REQUEST_METHOD": method, "HTTP_X_PSP_SIGNATURE": sign(secret, int(time.time()) - age, body)}
    out = store.call("catalog", "psp_baltic_credit_webhook", body=body, server=server)
    return out["status"], json.loads(out["output"]), out["state"]


def test_webhooks_add_order_history_through_the_shared_state_machine(store: Store) -> None:
    _confirmed(store)
    store.standin.state.set_status("pay_1", "paid")
    status, body, state = _deliver(store, "evt_1", "paid")
    assert (status, body) == (200, {"result": "applied"})
    order, status_id, comment = state["histories"][-1]
    assert (order, status_id) == (17, 2)  # processing (OpenCart's default id)
    assert comment.startswith("Baltic Credit Union") and "evt_1" in comment and "apmokėta" in comment
    assert state["rows"]["17"]["status"] == "paid" and json.loads(state["rows"]["17"]["events"]) == ["evt_1"]
    assert _deliver(store, "evt_1", "paid")[:2] == (200, {"result": "duplicate"})
    store.standin.state.set_status("pay_1", "pending")
    assert _deliver(store, "evt_2", "pending")[:2] == (200, {"result": "ignored"})
    assert _deliver(store, "evt_3", "paid", secret="whsec_other")[:2] == (401, {"result": "rejected_signature"})
    assert _deliver(store, "evt_3", "paid", age=3600)[:2] == (401, {"result": "rejected_stale"})
    assert _deliver(store, "evt_3", "paid", method="GET")[:2] == (405, {"result": "method_not_allowed"})
    store.standin.state.unavailable = True
    assert _deliver(store, "evt_4", "paid")[:2] == (503, {"result": "psp_unavailable"})
    store.standin.state.unavailable = False
    store.standin.state.set_status("pay_1", "refunded")
    status, body, state = _deliver(store, "evt_5", "refunded")
    assert (status, body, state["histories"][-1][1]) == (200, {"result": "applied"}, 11)  # refunded


def test_a_flood_of_unsigned_webhooks_writes_one_log_line(store: Store) -> None:
    _confirmed(store)
    for n in range(5):
        status, body, state = _deliver(store, f"evt_{n}", "paid", secret="whsec_forged")
        assert (status, body) == (401, {"result": "rejected_signature"})
    refused = [line for line in state["logs"] if "rejected_signature" in line]
    assert refused == ["psp_baltic_credit: webhook rejected_signature (1 refused deliveries since the last line)"]
    assert re.fullmatch(r"\d+:4", state["cache"]["psp_baltic_credit_rejected_webhooks"])


def test_a_paid_webhook_for_the_wrong_amount_puts_the_order_on_hold_and_never_marks_it_paid(store: Store) -> None:
    _confirmed(store)
    store.standin.state.update("pay_1", status="paid", amount=100, currency="PLN")
    status, body, state = _deliver(store, "evt_1", "paid")
    assert (status, body) == (200, {"result": "amount_mismatch"})
    order, status_id, note = state["histories"][-1]
    assert (order, status_id) == (17, 1)  # pending: unpaid, in front of the merchant
    assert "pay_1" in note and "1.00 PLN" in note and "24.00 EUR" in note and "corr" not in note
    assert note.startswith("Sulaikyta: Baltic Credit Union")
    assert state["rows"]["17"]["status"] == "pending" and json.loads(state["rows"]["17"]["events"]) == ["evt_1"]
    [line] = [entry for entry in state["logs"] if "amount_mismatch" in entry]
    correlation = re.search(r"correlation id ([0-9a-f-]{36})", line).group(1)
    assert correlation in note
    assert _deliver(store, "evt_1", "paid")[:2] == (200, {"result": "duplicate"})


def test_a_second_attempt_keeps_the_state_and_refuses_the_superseded_payment(store: Store) -> None:
    _confirmed(store)
    store.standin.state.set_status("pay_1", "failed")
    assert _deliver(store, "evt_1", "failed")[:2] == (200, {"result": "applied"})
    _confirmed(store, attempts_before=1)  # the shopper tries again: a new payment becomes the current one
    state = json.loads(store.state.read_text())
    row = state["rows"]["17"]
    assert row["payment_id"] == "pay_2" and row["status"] == "failed" and json.loads(row["events"]) == ["evt_1"]
    store.standin.state.set_status("pay_1", "paid")  # the first payment page, still open, is paid too
    status, body, state = _deliver(store, "evt_2", "paid", payment_id="pay_1")
    assert (status, body) == (200, {"result": "payment_mismatch"})
    assert state["rows"]["17"]["status"] == "failed" and "pay_2" in state["histories"][-1][2]
    store.standin.state.set_status("pay_2", "paid")
    assert _deliver(store, "evt_3", "paid", payment_id="pay_2")[:2] == (200, {"result": "applied"})


def test_the_return_link_never_marks_an_order_paid_for_another_currency(store: Store) -> None:
    _confirmed(store)
    [create] = store.standin.state.calls("POST", "/v1/payments")
    token = re.search(r"token=([0-9a-f]{64})", json.loads(create["body"])["return_url"]).group(1)
    store.standin.state.update("pay_1", status="paid", currency="PLN")
    for _ in range(2):  # a reload holds once
        out = store.call("catalog", "psp_baltic_credit_return", config=SETTINGS, get={"order_id": "17", "token": token})
    assert out["state"]["rows"]["17"]["status"] == "pending"
    notes = [comment for _, _, comment in out["state"]["histories"] if comment.startswith("Sulaikyta")]
    assert len(notes) == 1 and "24.00 PLN" in notes[0] and "24.00 EUR" in notes[0]


def test_the_return_link_is_signed_and_re_reads_the_psp(store: Store) -> None:
    _confirmed(store)
    [create] = store.standin.state.calls("POST", "/v1/payments")
    token = re.search(r"token=([0-9a-f]{64})", json.loads(create["body"])["return_url"]).group(1)
    store.standin.state.set_status("pay_1", "failed")
    failed = store.call("catalog", "psp_baltic_credit_return", config=SETTINGS, get={"order_id": "17", "token": token})
    assert failed["redirect"] == "https://shop.standin.invalid/index.php?route=checkout/failure&language=lt-lt"
    assert failed["state"]["histories"][-1][:2] == [17, 10]
    forged = store.call(
        "catalog", "psp_baltic_credit_return", config=SETTINGS, get={"order_id": "17", "token": "0" * 64}
    )
    assert forged["redirect"].startswith("https://shop.standin.invalid/index.php?route=common/home")
    store.standin.state.set_status("pay_1", "paid")  # a late success after a failed attempt is real
    paid = store.call("catalog", "psp_baltic_credit_return", config=SETTINGS, get={"order_id": "17", "token": token})
    assert paid["redirect"] == "https://shop.standin.invalid/index.php?route=checkout/success&language=lt-lt"
    assert paid["state"]["rows"]["17"]["status"] == "paid"


def test_health_reports_version_build_and_opencart(store: Store, live: Extension) -> None:
    report = json.loads(store.call("catalog", "psp_baltic_credit_health", version="4.1.0.3")["output"])
    assert (report["plugin"], report["version"], report["build"], report["opencart"]) == (
        "baltic-credit-payments",
        "1.0.0",
        live.tree.build,
        "4.1.0.3",
    )


def test_admin_settings_keep_secrets_and_need_permission(store: Store) -> None:
    page = store.view(store.call("admin", "psp_baltic_credit", config=SETTINGS, session={"user_token": "tok"}))
    assert (
        page["save"]
        == "https://shop.standin.invalid/index.php?route=extension/psp_baltic_credit/payment/psp_baltic_credit.save&amp;user_token=tok"
    )
    assert page["help_webhook_secret"].startswith(
        "Užregistruokite https://shop.standin.invalid/index.php?route=extension/psp_baltic_credit/payment/psp_baltic_credit_webhook"
    )
    # every canonical status has a select, defaulting to OpenCart's install ids of its status_map value
    assert [f["value"] for f in page["status_fields"]] == [1, 2, 2, 10, 7, 14, 11, 2, 13]
    assert page["api_key_set"] is True and page["webhook_secret_set"] is True
    post = {
        "payment_psp_baltic_credit_status": "1",
        "payment_psp_baltic_credit_api_key": "",
        "payment_psp_baltic_credit_webhook_secret": "",
        "payment_psp_baltic_credit_order_status_paid": "5",
    }
    denied = store.call(
        "admin",
        "psp_baltic_credit",
        "save",
        config=SETTINGS,
        session={"user_token": "tok"},
        post=post,
        permission=False,
    )
    assert json.loads(denied["output"]) == {"error": {"warning": "Neturite teisės keisti šių nustatymų."}}
    saved = store.call("admin", "psp_baltic_credit", "save", config=SETTINGS, session={"user_token": "tok"}, post=post)
    assert json.loads(saved["output"]) == {"success": "Nustatymai išsaugoti."}
    settings = saved["state"]["settings"]["payment_psp_baltic_credit"]
    # an empty password field keeps the key; kept from before encryption, it is stored sealed from now on
    stored_key = settings["payment_psp_baltic_credit_api_key"]
    stored_secret = settings["payment_psp_baltic_credit_webhook_secret"]
    assert stored_key.startswith("pspenc:o1:") and stored_secret.startswith("pspenc:o1:")
    assert "key_oc_1" not in json.dumps(saved["state"]["settings"]) and "whsec_oc_secret" not in json.dumps(
        saved["state"]["settings"]
    )
    assert settings["payment_psp_baltic_credit_order_status_paid"] == 5


def test_secrets_are_stored_sealed_and_the_extension_runs_on_them(store: Store) -> None:
    post = {
        "payment_psp_baltic_credit_status": "1",
        "payment_psp_baltic_credit_api_key": "key_oc_1",
        "payment_psp_baltic_credit_webhook_secret": "whsec_oc_secret",
    }
    saved = store.call("admin", "psp_baltic_credit", "save", config={}, session={"user_token": "tok"}, post=post)
    settings = saved["state"]["settings"]["payment_psp_baltic_credit"]
    assert settings["payment_psp_baltic_credit_api_key"].startswith("pspenc:o1:")
    assert "key_oc_1" not in json.dumps(saved["state"]) and "whsec_oc_secret" not in json.dumps(saved["state"])
    # the checkout and the webhook work on the sealed settings (the stand-in keeps the saved config)
    session = {"order_id": 17, "payment_method": {"code": "psp_baltic_credit.psp_baltic_credit"}}
    store.call("catalog", "psp_baltic_credit", "confirm", session=session, orders={"17": ORDER})
    [create] = store.standin.state.calls("POST", "/v1/payments")
    assert create["headers"]["Authorization"] == "Bearer key_oc_1"
    store.standin.state.set_status("pay_1", "paid")
    assert _deliver(store, "evt_1", "paid")[:2] == (200, {"result": "applied"})


def test_order_tab_refunds_the_full_amount_only_for_this_client(store: Store) -> None:
    _confirmed(store)
    store.standin.state.set_status("pay_1", "paid")
    _deliver(store, "evt_1", "paid")
    tab = store.view(
        store.call(
            "admin",
            "psp_baltic_credit",
            "order",
            session={"user_token": "tok"},
            get={"order_id": "17"},
            config=SETTINGS,
        )
    )
    assert (tab["payment_id"], tab["can_refund"], tab["can_capture"]) == ("pay_1", True, False)
    assert re.fullmatch(r"[0-9a-f]{32}", tab["refund_key"])
    request = {"session": {"user_token": "tok"}, "get": {"order_id": "17"}, "config": SETTINGS, "orders": {"17": ORDER}}
    partial = store.call(
        "admin", "psp_baltic_credit", "refund", post={"amount": "5", "key": tab["refund_key"]}, **request
    )
    assert json.loads(partial["output"]) == {"error": "Baltic Credit Union grąžina tik visą užsakymo sumą."}
    full = store.call(
        "admin", "psp_baltic_credit", "refund", post={"amount": "24", "key": tab["refund_key"]}, **request
    )
    assert json.loads(full["output"])["success"].startswith("Grąžinimas")
    [refund] = store.standin.state.calls("POST", "/v1/payments/pay_1/refunds")
    assert json.loads(refund["body"]) == {"amount": 2400, "currency": "EUR", "reason": ""}
    assert refund["headers"]["Idempotency-Key"] == f"refund-17-{tab['refund_key']}"


def test_a_client_id_with_digits_fails_the_code_rule_before_anything_is_built(tmp_path: Path) -> None:
    ext = render_extension(make_client(id="bank24", name="Bank 24", platforms={"opencart": {}}), tmp_path)
    assert ext.code == "psp_bank24"
    failed = [
        r
        for r in checks.check_packaging(ext.template, ext.tree.files, lambda t: render_string(t, ext.context))
        if not r.passed
    ]
    assert [r.name for r in failed] == [
        "matches: The extension code must be lowercase letters and underscores: OpenCart's autoloader turns class "
        "names into file names and splits them before digits (PspBank24 -> psp_bank_24.php)."
    ]

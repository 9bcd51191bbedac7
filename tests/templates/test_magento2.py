"""The Magento 2 template, rendered for the demo clients and checked with the machine's real PHP.

Magento itself cannot be installed here, so the module's Magento-facing classes are linted rather than
run; everything that runs without Magento (registration, constants, the core, amount conversion) is
executed by PHP.
"""

from __future__ import annotations

import csv
import io
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from psp_assets.core.config.model import load_client
from psp_assets.core.i18n import load_catalog
from psp_assets.core.payments.statuses import CANONICAL_STATUSES
from psp_assets.core.render.engine import RenderedTree, render, render_context, render_string, write_tree
from psp_assets.core.runtimes.php import NativePhp
from psp_assets.core.templates.spec import SHARED_DIR, Template, load_template
from psp_assets.core.verify import checks
from psp_assets.core.verify.contract.bridge import contract_results
from tests.conftest import DEMO_CLIENTS, TEMPLATES, make_client
from tests.support.standins import standin, standin_path

CLIENTS = ("nordbank", "alpenkasse")
EXPECTED_MODULE = {"nordbank": "PspNordbank_Payment", "alpenkasse": "PspAlpenkasse_Payment"}
DI = "{http://www.w3.org/2001/XMLSchema-instance}type"

# A stand-in for Magento's Magento\Framework\Component\ComponentRegistrar: the real class ships with
# magento/framework, which cannot be installed on this machine. It only records what registration.php
# registers, with the same constant and static signature as the platform class.
REGISTRAR_STUB = standin("magento2", "registrar.php")


@dataclass(frozen=True)
class Rendered:
    client: str
    template: Template
    tree: RenderedTree
    root: Path
    context: dict

    def text(self, path: str) -> str:
        return self.tree.files[path].decode("utf-8")

    def xml(self, path: str) -> ET.Element:
        return ET.fromstring(self.tree.files[path])


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(TEMPLATES, "magento2")


@pytest.fixture(scope="module")
def rendered(template: Template, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    out = {}
    for client in CLIENTS:
        config = load_client(DEMO_CLIENTS / f"{client}.yaml")
        tree = render(template, config)
        root = write_tree(tree, tmp_path_factory.mktemp("magento2") / client)
        out[client] = Rendered(client, template, tree, root, render_context(template, config, _catalog(config.locales)))
    return out


def _catalog(locales):
    return load_catalog(TEMPLATES / SHARED_DIR / "i18n", list(locales))


def _run_php(php: NativePhp, tmp_path: Path, code: str, *args: str) -> str:
    script = tmp_path / "probe.php"
    script.write_text(code)
    result = php.run(script, list(args), cwd=tmp_path)
    assert result.returncode == 0 and not result.stderr, result.stderr or result.stdout
    return result.stdout


@pytest.mark.parametrize("client", CLIENTS)
def test_every_php_file_lints_on_the_machines_php(rendered, php: NativePhp, client):
    r = rendered[client]
    php_files = [p for p in r.tree.files if p.endswith(".php")]
    assert len(php_files) > 30
    failures = [f"{x.path}: {x.message}" for x in php.lint(r.root, php_files) if not x.ok]
    assert failures == []


@pytest.mark.parametrize("client", CLIENTS)
def test_every_xml_file_parses(rendered, client):
    xml_files = [p for p in rendered[client].tree.files if p.endswith(".xml")]
    assert {"etc/module.xml", "etc/config.xml", "etc/di.xml", "etc/adminhtml/system.xml"} <= set(xml_files)
    for path in xml_files:
        rendered[client].xml(path)  # raises on malformed XML


@pytest.mark.parametrize("client", CLIENTS)
def test_composer_json_describes_an_installable_magento2_module(rendered, client):
    r = rendered[client]
    composer = json.loads(r.text("composer.json"))
    vendor = EXPECTED_MODULE[client].split("_")[0]
    assert composer["name"] == f"psp-{client}/module-payment"
    assert composer["type"] == "magento2-module"
    assert composer["version"] == r.tree.plugin_version == "1.0.0"
    assert composer["license"]
    assert composer["autoload"]["files"] == ["registration.php"]
    assert composer["autoload"]["psr-4"] == {f"{vendor}\\Payment\\": ""}
    # only PHP and Magento's own packages: the module has no third-party dependency
    assert set(composer["require"]) - {"php"} == {p for p in composer["require"] if p.startswith("magento/")}
    assert {"magento/framework", "magento/module-sales", "magento/module-payment", "magento/module-checkout"} <= set(
        composer["require"]
    )
    assert composer["require"]["php"] == "~8.1.0||~8.2.0||~8.3.0||~8.4.0"


@pytest.mark.parametrize("client", CLIENTS)
def test_registration_php_registers_exactly_the_module_and_its_directory(rendered, php: NativePhp, tmp_path, client):
    r = rendered[client]
    out = _run_php(php, tmp_path, REGISTRAR_STUB, str(r.root / "registration.php"))
    assert json.loads(out) == [["module", EXPECTED_MODULE[client], str(r.root.resolve())]]


@pytest.mark.parametrize("client", CLIENTS)
def test_module_xml_names_the_module_without_setup_version_and_loads_after_sales_payment_checkout(rendered, client):
    module = rendered[client].xml("etc/module.xml").find("module")
    assert module.get("name") == EXPECTED_MODULE[client]
    assert "setup_version" not in module.attrib
    assert [m.get("name") for m in module.find("sequence")] == ["Magento_Sales", "Magento_Payment", "Magento_Checkout"]


@pytest.mark.parametrize("client", CLIENTS)
def test_php_classes_sit_where_psr4_autoloading_looks_for_them(rendered, client):
    vendor = EXPECTED_MODULE[client].split("_")[0]
    r = rendered[client]
    for path in sorted(p for p in r.tree.files if p.endswith(".php") and p != "registration.php"):
        text = r.text(path)
        namespace = re.search(r"^namespace ([\w\\]+);", text, re.M).group(1)
        name = re.search(r"^(?:final |abstract )?(?:class|interface|trait) (\w+)", text, re.M).group(1)
        expected = f"{vendor}\\Payment\\" + path[: -len(".php")].replace("/", "\\")
        assert f"{namespace}\\{name}" == expected, path


@pytest.mark.parametrize("client", CLIENTS)
def test_module_php_files_declare_strict_types(rendered, client):
    r = rendered[client]
    for path in (p for p in r.tree.files if p.endswith(".php")):
        assert re.search(r"^declare\(strict_types=1\);$", r.text(path), re.M), path


@pytest.mark.parametrize("client", CLIENTS)
def test_di_xml_references_only_classes_and_virtual_types_that_exist(rendered, client):
    r = rendered[client]
    vendor = EXPECTED_MODULE[client].split("_")[0]
    di = r.xml("etc/di.xml")
    frontend_di = r.xml("etc/frontend/di.xml")
    virtual = {v.get("name") for v in di.iter("virtualType")}
    referenced = {e.get("type") for e in di.iter() if e.tag in ("virtualType", "preference")}
    referenced |= {e.get("name") for e in di.iter("type")} | {e.get("name") for e in frontend_di.iter("type")}
    referenced |= {
        (e.text or "").strip()
        for doc in (di, frontend_di)
        for e in doc.iter()
        if e.get(DI) in ("object", "string") and e.tag in ("argument", "item")
    }
    referenced |= {(e.text or "").strip() for e in di.iter("argument") if e.get(DI) == "const"}
    for name in sorted(n for n in referenced if n):
        if name.startswith(f"{vendor}\\Payment\\"):
            cls = name.split("::")[0]
            path = cls[len(f"{vendor}\\Payment\\") :].replace("\\", "/") + ".php"
            assert path in r.tree.files, f"di.xml names {name}, but {path} is not in the module"
        elif name.startswith(vendor):
            assert name in virtual, f"di.xml names {name}, which no virtualType defines"
    facade = r.xml("etc/config.xml").find(f"default/payment/psp_{client}/model").text
    assert facade in virtual
    for model in r.xml("etc/adminhtml/system.xml").iter("model"):
        assert model.text.replace(f"{vendor}\\Payment\\", "").replace("\\", "/") + ".php" in r.tree.files


@pytest.mark.parametrize("client", CLIENTS)
def test_checkout_layout_points_at_the_renderer_files_the_module_ships(rendered, client):
    r = rendered[client]
    vendor_module = EXPECTED_MODULE[client]
    layout = r.text("view/frontend/layout/checkout_index_index.xml")
    component = re.search(r'name="component" xsi:type="string">([^<]+)<', layout).group(1)
    assert component == f"{vendor_module}/js/view/payment/psp_{client}"
    assert component.replace(f"{vendor_module}/", "view/frontend/web/") + ".js" in r.tree.files
    registration = r.text(f"view/frontend/web/js/view/payment/psp_{client}.js")
    renderer = re.search(r'component: "([^"]+)"', registration).group(1)
    renderer_file = renderer.replace(f"{vendor_module}/", "view/frontend/web/") + ".js"
    assert renderer_file in r.tree.files
    ko_template = re.search(r'template: "([^"]+)"', r.text(renderer_file)).group(1)
    assert ko_template.replace(f"{vendor_module}/", "view/frontend/web/template/") + ".html" in r.tree.files


@pytest.mark.parametrize("client", CLIENTS)
def test_i18n_csv_has_one_row_per_catalog_message_for_each_locale(rendered, client):
    r = rendered[client]
    config = load_client(DEMO_CLIENTS / f"{client}.yaml")
    catalog = _catalog(config.locales)
    csv_files = sorted(p for p in r.tree.files if p.startswith("i18n/"))
    assert csv_files == sorted(f"i18n/{locale}.csv" for locale in config.locales)
    for locale in config.locales:
        rows = list(csv.reader(io.StringIO(r.text(f"i18n/{locale}.csv"))))
        assert [row[0] for row in rows] == list(catalog.messages)
        assert all(len(row) == 2 and row[1].strip() for row in rows)
        assert dict(rows) == catalog.translations[locale]


@pytest.mark.parametrize("client", CLIENTS)
def test_every_translatable_php_string_is_in_the_catalog(rendered, client):
    r = rendered[client]
    config = load_client(DEMO_CLIENTS / f"{client}.yaml")
    results = checks.check_translations(r.tree.files, _catalog(config.locales), config.locales)
    assert [f"{x.name}: {x.detail}" for x in results if not x.passed] == []


@pytest.mark.parametrize("client", CLIENTS)
def test_template_yaml_packaging_rules_pass(rendered, client):
    r = rendered[client]
    results = checks.check_packaging(r.template, r.tree.files, lambda s: render_string(s, r.context))
    assert len(results) == len(r.template.spec.rules)
    assert [f"{x.name}: {x.detail}" for x in results if not x.passed] == []


@pytest.mark.parametrize("client", CLIENTS)
def test_shared_core_passes_the_contract_tests_in_the_module_namespace(rendered, php: NativePhp, client):
    r = rendered[client]
    results = contract_results(r.root, r.template, r.context, php)
    assert results
    assert [f"{x.name}: {x.detail}" for x in results if not x.passed] == []


def test_status_map_gives_every_canonical_status_a_magento_order_state(template: Template):
    magento_states = {"new", "pending_payment", "processing", "complete", "closed", "canceled", "holded"}
    assert set(template.spec.status_map) == set(CANONICAL_STATUSES)
    assert set(template.spec.status_map.values()) <= magento_states
    assert template.spec.status_map["pending"] == "pending_payment"
    assert template.spec.status_map["paid"] == "processing"


def test_command_pool_and_can_flags_follow_the_client_features(rendered):
    def commands(r: Rendered) -> set[str]:
        pool = next(v for v in r.xml("etc/di.xml").iter("virtualType") if v.get("name").endswith("PaymentCommandPool"))
        return {item.get("name") for item in pool.iter("item")}

    def flags(r: Rendered) -> dict[str, str]:
        method = r.xml("etc/config.xml").find(f"default/payment/psp_{r.client}")
        return {child.tag: (child.text or "") for child in method}

    nordbank, alpenkasse = rendered["nordbank"], rendered["alpenkasse"]
    assert commands(nordbank) == {"initialize", "refund"}  # captured at checkout, refunds on
    assert commands(alpenkasse) == {"initialize", "capture", "refund"}  # manual capture
    assert flags(nordbank)["payment_action"] == "authorize_capture"
    assert flags(alpenkasse)["payment_action"] == "authorize"
    assert (flags(nordbank)["can_capture"], flags(alpenkasse)["can_capture"]) == ("0", "1")
    assert flags(nordbank)["can_refund"] == flags(alpenkasse)["can_refund"] == "1"
    assert flags(nordbank)["can_initialize"] == "1"
    assert flags(alpenkasse)["currency"] == "EUR,CHF"


def test_shopper_facing_text_arrives_literally_whatever_it_contains(template: Template, php: NativePhp, tmp_path):
    title = 'Pay "now" it\'s ?> */ <script>alert(1)</script> & ]]> \\ Ελληνικά'
    description = "Line one <b>bold</b> & 'quotes' ?>\n*/ second line {{ not jinja }} \\"
    config = make_client(checkout={"title": title, "description": description})
    tree = render(template, config)
    root = write_tree(tree, tmp_path / "hostile")
    assert [x.path for x in php.lint(root, [p for p in tree.files if p.endswith(".php")]) if not x.ok] == []
    method = ET.fromstring(tree.files["etc/config.xml"]).find("default/payment/psp_nordbank")
    assert method.find("title").text == title
    assert method.find("description").text == description
    out = _run_php(
        php,
        tmp_path,
        "<?php require $argv[1]; $v = \\PspNordbank\\Payment\\Model\\Core\\ClientInfo::values();"
        " echo json_encode([$v['checkout_title'], $v['checkout_description']]);",
        str(root / "Model/Core/ClientInfo.php"),
    )
    assert json.loads(out) == [title, description]


def test_amounts_go_to_the_psp_in_iso_4217_minor_units(rendered, php: NativePhp, tmp_path):
    r = rendered["alpenkasse"]
    out = _run_php(
        php,
        tmp_path,
        "<?php require $argv[1]; use PspAlpenkasse\\Payment\\Model\\Psp\\Amount;"
        " echo json_encode([Amount::toMinorUnits('12.3400', 'EUR'), Amount::toMinorUnits(19.99, 'chf'),"
        " Amount::toMinorUnits('1500.0000', 'JPY'), Amount::toMinorUnits('2.5', 'KWD'),"
        " Amount::toMinorUnits(0.1 + 0.2, 'EUR')]);",
        str(r.root / "Model/Psp/Amount.php"),
    )
    assert json.loads(out) == [1234, 1999, 1500, 2500, 30]


def test_health_route_and_webhook_controller_are_wired_to_the_clients_route(rendered):
    r = rendered["nordbank"]
    assert render_string(r.template.spec.deploy.health_route, r.context) == "/psp_nordbank/health"
    assert "Health::report()" in r.text("Controller/Health/Index.php")
    webhook = r.text("Controller/Webhook/Index.php")
    assert "implements HttpPostActionInterface, CsrfAwareActionInterface" in webhook
    assert "WebhookProcessor::SIGNATURE_HEADER" in webhook


# Magento's classes the order store touches, as far as it touches them (tests/standins/magento2/).
MAGENTO_ORDER_STANDIN = standin_path("magento2", "order_standin.php")


def test_order_store_books_what_the_psp_captured_holds_mismatches_and_stays_in_its_store(
    rendered, php: NativePhp, tmp_path
):
    result = php.run(MAGENTO_ORDER_STANDIN, [str(rendered["nordbank"].root)], cwd=tmp_path)
    assert result.returncode == 0 and not result.stderr, result.stderr or result.stdout
    out = json.loads(result.stdout)
    assert out["other_store"] is False and out["own_store"] is True
    assert out["filters"] == [["increment_id", "1001"], ["store_id", 1]]
    assert out["terms"] == {"amount": 1250, "currency": "EUR", "payment_ids": ["pay_1"]}
    # a partial capture of 6.00 is booked as 6.00, never as the order's total due (12.50)
    assert ["capture", 6.0] in out["notifications"] and ["capture", 12.5] not in out["notifications"]
    assert out["held"] is True and out["events"] == ["evt_1", "evt_2"]
    assert out["comments"][-1].startswith("On hold: Nord Bank reports payment pay_1 as paid for 0.01 EUR")
    assert "corr-1" in out["comments"][-1]

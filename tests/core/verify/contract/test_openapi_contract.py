"""The PSP API contract (psp_assets/contract/psp-api.openapi.yaml) and the checks it drives.

The contract is valid OpenAPI 3.1, its status enum is payments/statuses.py's, and every generated plugin's core
(rendered for a demo client, executed by the real PHP and Node) speaks it. A contract change that
breaks the plugins turns every platform's test report red with a message naming the field; a change
that does not (a new optional field, a wording edit, a new endpoint) keeps them green.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from psp_assets.core import lineage
from psp_assets.core.config.model import load_client
from psp_assets.core.lineage import render_plugin
from psp_assets.core.payments.openapi import DEFAULT_CONTRACT_FILE, Contract, contract_file
from psp_assets.core.payments.statuses import CANONICAL_STATUSES
from psp_assets.core.plan import plan_plugin
from psp_assets.core.runtimes.php import NativePhp
from psp_assets.core.templates.spec import PLATFORMS, load_template
from psp_assets.core.verify.contract import cases as contract_tests
from psp_assets.core.verify.contract.api import WITHOUT, Shapes, camel, leaf_fields
from psp_assets.core.workspace import Paths, catalog_for
from tests.conftest import DEMO_CLIENTS, TEMPLATES

# One demo client per platform: together they build every platform.
DEMO = {
    "woocommerce": "nordbank",
    "magento2": "nordbank",
    "shopify": "nordbank",
    "prestashop": "alpenkasse",
    "opencart": "baltic-credit",
}
RENAMED_MESSAGE = (
    "webhook field data.order_reference, read by the plugin (WebhookProcessor::PAYLOAD_FIELDS), is not in the "
    "contract's payment.updated payload (contract has: id, type, created, data.payment_id, data.order_ref, "
    "data.status)"
)


def document() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT_CONTRACT_FILE.read_text(encoding="utf-8"))


def write_contract(path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """A copy of the contract with `edit` applied to its document."""
    doc = document()
    edit(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def event_schema(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["components"]["schemas"]["PaymentEvent"]


def event_example(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["webhooks"]["payment.updated"]["post"]["requestBody"]["content"]["application/json"]["examples"]["paid"][
        "value"
    ]


def rename_order_reference(doc: dict[str, Any]) -> None:
    """data.order_reference -> data.order_ref in the webhook payload (schema and example)."""
    data = event_schema(doc)["properties"]["data"]
    data["properties"] = {("order_ref" if k == "order_reference" else k): v for k, v in data["properties"].items()}
    data["required"] = ["order_ref" if r == "order_reference" else r for r in data["required"]]
    example = event_example(doc)["data"]
    event_example(doc)["data"] = {("order_ref" if k == "order_reference" else k): v for k, v in example.items()}


def create_examples(doc: dict[str, Any]) -> list[dict[str, Any]]:
    content = doc["paths"]["/payments"]["post"]["requestBody"]["content"]["application/json"]
    return [example["value"] for example in content["examples"].values()]


def rename_create_order_reference(doc: dict[str, Any]) -> None:
    """order_reference -> order_ref in the createPayment request (schema and every example)."""
    schema = doc["components"]["schemas"]["CreatePaymentRequest"]
    schema["properties"] = {("order_ref" if k == "order_reference" else k): v for k, v in schema["properties"].items()}
    schema["required"] = ["order_ref" if r == "order_reference" else r for r in schema["required"]]
    for example in create_examples(doc):
        example["order_ref"] = example.pop("order_reference")


def unrelated_changes(doc: dict[str, Any]) -> None:
    """A new optional payload field (with an example), reworded descriptions, a new endpoint."""
    event_schema(doc)["properties"]["data"]["properties"]["amount"] = {"type": "integer", "minimum": 0}
    event_example(doc)["data"]["amount"] = 1250
    doc["info"]["description"] = "Reworded: the API the plugins use."
    doc["components"]["schemas"]["Payment"]["description"] = "A payment, as the PSP knows it."
    doc["paths"]["/refunds/{refund_id}"] = {
        "get": {
            "operationId": "getRefund",
            "parameters": [
                {"name": "refund_id", "in": "path", "required": True, "schema": {"type": "string"}, "example": "re_1"},
                {"$ref": "#/components/parameters/CorrelationId"},
            ],
            "responses": {
                "200": {
                    "description": "The refund.",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/FollowUp"},
                            "examples": {"one": {"value": {"id": "re_1", "status": "succeeded"}}},
                        }
                    },
                }
            },
        }
    }


def test_report(paths: Paths, platform: str, php: NativePhp):
    """The real test_report of a demo client's plugin, rendered and tested with `paths` (its contract)."""
    config = load_client(DEMO_CLIENTS / f"{DEMO[platform]}.yaml")
    source = render_plugin(plan_plugin(paths, config, platform))
    return lineage.test_plugin(plan_plugin(paths, config, source.tree.platform), source.tree, source.path, php)


test_report.__test__ = False  # a helper, not a test


def workspace(tmp_path: Path, contract: Path | None = None) -> Paths:
    extra = {"contract_file": contract} if contract else {}
    return Paths(
        configs_dir=DEMO_CLIENTS,
        templates_dir=TEMPLATES,
        data_dir=tmp_path / "data",
        stores_dir=tmp_path / "stores",
        **extra,
    )


# --- the document ------------------------------------------------------------------------------------


def test_contract_is_valid_openapi_3_1_with_examples_that_match_their_schemas() -> None:
    contract = Contract.load()
    assert contract.document["openapi"].startswith("3.1.")
    assert contract.problems == []
    ops = {op.operation_id: op.label for op in contract.operations}
    assert ops == {
        "createPayment": "POST /payments",
        "getPayment": "GET /payments/{payment_id}",
        "refund": "POST /payments/{payment_id}/refunds",
        "capture": "POST /payments/{payment_id}/captures",
        "cancel": "POST /payments/{payment_id}/cancellations",
    }
    signature = contract.webhooks["payment.updated"].parameter("header", "X-PSP-Signature")
    assert signature is not None and signature.required


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d.update(openapi="3.0.3"), "openapi: '3.0.3' does not match"),
        (lambda d: d["info"].pop("title"), "info: 'title' is a required property"),
        (
            lambda d: event_example(d).update(created="yesterday"),
            "request body: example 'paid': $.created: 'yesterday' is not of type 'integer'",
        ),
        (
            lambda d: d["components"]["schemas"]["Amount"].update(type="integr"),
            "components.schemas.Amount",
        ),
        (
            lambda d: d["paths"]["/payments/{payment_id}"]["get"]["responses"]["200"]["content"]["application/json"][
                "schema"
            ].update({"$ref": "#/components/schemas/Nope"}),
            "$ref '#/components/schemas/Nope' does not resolve",
        ),
    ],
    ids=["not 3.1", "info without title", "example against its schema", "bad schema", "dangling ref"],
)
def test_a_broken_contract_is_reported_with_file_and_place(tmp_path: Path, edit, expected: str) -> None:
    path = write_contract(tmp_path / "broken.yaml", edit)
    problems = Contract.load(path).problems
    assert problems, "the broken contract was accepted"
    assert all(p.startswith(str(path)) for p in problems)
    assert any(expected in p for p in problems), problems


def test_status_enum_is_statuses_py_canonical_list(tmp_path: Path) -> None:
    contract = Contract.load()
    enum = contract.schema_node(contract.schema("PaymentStatus"))["enum"]
    assert tuple(enum) == CANONICAL_STATUSES
    assert contract.status_problems() == []

    def drop_chargeback(doc: dict[str, Any]) -> None:
        doc["components"]["schemas"]["PaymentStatus"]["enum"].remove("chargeback")

    changed = Contract.load(write_contract(tmp_path / "statuses.yaml", drop_chargeback))
    [problem] = changed.status_problems()
    assert "components.schemas.PaymentStatus.enum" in problem and "payments/statuses.py" in problem


def test_requests_are_matched_to_operations_and_checked_against_their_schemas() -> None:
    contract = Contract.load()
    base = "https://psp.example/v1/"
    found = contract.match("POST", "https://psp.example/v1/payments/pay_%C3%A4%2F1/refunds", base)
    assert found.operation is not None and found.operation.operation_id == "refund"
    assert found.path_values == {"payment_id": "pay_ä/1"}
    assert "is not in the contract" in contract.match("POST", base + "payments/p/voids", base).problem
    assert "only GET on /payments/{payment_id}" in contract.match("DELETE", base + "payments/p", base).problem
    headers = {
        "Authorization": "Bearer k",
        "X-Correlation-ID": "0f8e4c1a-3b7d-4e2a-9c5f-6d1b2a3c4e5f",
        "Idempotency-Key": "refund-1",
        "Content-Type": "application/json",
    }
    ok = contract.check_request("POST", base + "payments/p/refunds", headers, '{"amount":5,"currency":"EUR"}', base)
    assert ok.problem == ""
    renamed = contract.check_request(
        "POST", base + "payments/p/refunds", headers, '{"amount":5,"currency":"EUR","note":"x"}', base
    )
    assert "body: $: Additional properties are not allowed ('note' was unexpected)" in renamed.problem
    bare = contract.check_request("GET", base + "payments/p", {}, None, base)
    assert "header parameter X-Correlation-ID missing (required)" in bare.problem
    assert "Authorization: Bearer" in bare.problem


def test_debtor_shape_agreed_with_the_iban_collection_is_in_create_payment() -> None:
    contract = Contract.load()
    schema = contract.operation("createPayment").body.schema
    request = {"amount": 100, "currency": "EUR", "order_reference": "7", "payment_method": "sepa_direct_debit"}
    valid = {**request, "debtor": {"iban": "DE89370400440532013000", "bic": "COBADEFFXXX", "name": "E. M."}}
    assert contract.validate(valid, schema) == []
    assert contract.validate({**request, "debtor": {"iban": "DE89370400440532013000"}}, schema) == []
    assert any("'iban' is a required property" in p for p in contract.validate({**request, "debtor": {}}, schema))
    assert contract.validate({**request, "debtor": {"iban": "de89 3704"}}, schema) != []


def test_wording_edits_leave_the_digest_alone_but_a_field_named_description_does_not(tmp_path: Path) -> None:
    base = Contract.load().digest

    def reword(doc: dict[str, Any]) -> None:
        doc["info"]["description"] = "Something else entirely."
        doc["paths"]["/payments"]["post"]["summary"] = "Start a payment"
        doc["components"]["schemas"]["Amount"]["description"] = "Cents."

    def drop_description_field(doc: dict[str, Any]) -> None:
        del doc["components"]["schemas"]["CreatePaymentRequest"]["properties"]["description"]

    def change_example_description(doc: dict[str, Any]) -> None:
        doc["paths"]["/payments"]["post"]["requestBody"]["content"]["application/json"]["examples"]["order"]["value"][
            "description"
        ] = "Order #1001"

    assert Contract.load(write_contract(tmp_path / "a.yaml", reword)).digest == base
    assert Contract.load(write_contract(tmp_path / "b.yaml", drop_description_field)).digest != base
    assert Contract.load(write_contract(tmp_path / "c.yaml", change_example_description)).digest != base


def test_a_contract_change_changes_every_template_hash_a_wording_edit_none(tmp_path: Path) -> None:
    renamed = write_contract(tmp_path / "renamed.yaml", rename_order_reference)
    reworded = write_contract(tmp_path / "reworded.yaml", lambda d: d["info"].update(description="New words."))
    for platform in PLATFORMS:
        before = load_template(TEMPLATES, platform).content_hash
        assert load_template(TEMPLATES, platform, renamed).content_hash != before
        assert load_template(TEMPLATES, platform, reworded).content_hash == before


def test_contract_path_comes_from_psp_contract_file(tmp_path: Path) -> None:
    assert contract_file({}) == DEFAULT_CONTRACT_FILE
    assert contract_file({"PSP_CONTRACT_FILE": str(tmp_path / "c.yaml")}) == tmp_path / "c.yaml"
    paths = Paths.from_env({"PSP_CONTRACT_FILE": str(tmp_path / "c.yaml")})
    assert paths.contract_file == tmp_path / "c.yaml"


# --- vectors from the examples -----------------------------------------------------------------------


def test_webhook_vectors_have_the_contract_examples_shape() -> None:
    contract = Contract.load()
    shapes = Shapes.of(contract)
    payload = contract.webhooks["payment.updated"].body.schema
    header = contract.webhooks["payment.updated"].parameter("header", "X-PSP-Signature").schema
    vectors = contract_tests.build_vectors("Ns", ["core.php"], {}, contract)
    invalid = next(s for s in vectors["webhooks"] if s["name"] == "a signed but invalid payload applies nothing")
    checked = 0
    for scenario in vectors["webhooks"]:
        for step in scenario["steps"]:
            body = json.loads(step["body"]) if step["body"].startswith("{") else None
            removed = scenario["name"].startswith(WITHOUT)  # the example without one field: invalid on purpose
            if scenario is invalid or removed or not isinstance(body, dict) or not step["header"].startswith("t="):
                continue
            assert contract.validate(body, payload) == [], (scenario["name"], step["body"])
            assert leaf_fields(body) == leaf_fields(shapes.event) or scenario["name"].startswith("contract:")
            if re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", step["header"]):
                assert contract.validate(step["header"], header) == []
            checked += 1
    assert checked > 20
    for payment_id, payment in (p for s in vectors["webhooks"] for st in s["steps"] for p in st["psp"].items()):
        if payment is not None:
            assert set(payment) == set(shapes.payment) and payment["id"] == payment_id


def test_vectors_follow_a_changed_example(tmp_path: Path) -> None:
    contract = Contract.load(write_contract(tmp_path / "renamed.yaml", rename_order_reference))
    vectors = contract_tests.build_vectors("Ns", ["core.php"], {}, contract)
    late = next(s for s in vectors["webhooks"] if s["name"] == "late pending never downgrades a paid order")
    body = json.loads(late["steps"][0]["body"])
    assert body["data"] == {"payment_id": "pay_1001", "order_ref": "1001", "status": "paid"}  # the example's shape
    removed = sorted(s["name"] for s in vectors["webhooks"] if s["name"].startswith("contract: "))
    assert "contract: the example event without data.order_ref" in removed


def test_client_arguments_are_named_after_contract_fields() -> None:
    assert camel("payment_id") == "paymentId"
    assert camel("Idempotency-Key") == "idempotencyKey"
    api = contract_tests.build_vectors("Ns", [], {})["api"]
    assert api["operations"]["refund"]["args"] == {
        "paymentId": "pay_7Hq2Lw9Xc",
        "idempotencyKey": "order-1001-attempt-1",
        "xCorrelationId": "0f8e4c1a-3b7d-4e2a-9c5f-6d1b2a3c4e5f",
        "amount": 500,
        "currency": "EUR",
        "reason": "Damaged item",
    }
    assert api["operations"]["createPayment"]["body"]["order_reference"] == "1001"


# --- every platform's test report, executed ----------------------------------------------------------


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_platforms_core_speaks_the_contract(platform: str, php: NativePhp, tmp_path: Path) -> None:
    report = test_report(workspace(tmp_path), platform, php)
    assert [(f.name, f.detail) for f in report.failures()] == []
    names = {r.name for r in report.results if r.check == "contract"}
    assert "the PSP API contract is valid OpenAPI 3.1" in names
    assert "WebhookProcessor applies the contract's example payment.updated event" in names
    assert "webhook field data.order_reference, read by the plugin, is required in the contract's payment.updated" in (
        names
    )
    called = {n.split(" ", 1)[0] for n in names if n.startswith("PspClient::") and " sends the contract's " in n}
    assert {"PspClient::getPayment", "PspClient::createPayment", "PspClient::refund", "PspClient::capture"} <= called
    if platform == "shopify":
        assert "PspClient::cancel" in called  # Shopify's void sessions


@pytest.mark.parametrize("platform", PLATFORMS)
def test_renaming_a_webhook_field_turns_every_platforms_report_red_naming_it(
    platform: str, php: NativePhp, tmp_path: Path
) -> None:
    renamed = write_contract(tmp_path / "psp-api.openapi.yaml", rename_order_reference)
    report = test_report(workspace(tmp_path, renamed), platform, php)
    assert not report.passed
    failures = {f.name: f.detail for f in report.failures()}
    first = report.failures()[0]
    assert first.detail == RENAMED_MESSAGE
    assert failures["WebhookProcessor applies the contract's example payment.updated event"] == (
        "the example event was answered invalid_payload, expected applied"
    )
    assert all(f.check == "contract" for f in report.failures())


@pytest.mark.parametrize("platform", PLATFORMS)
def test_unrelated_contract_changes_keep_every_report_green(platform: str, php: NativePhp, tmp_path: Path) -> None:
    changed = write_contract(tmp_path / "psp-api.openapi.yaml", unrelated_changes)
    assert Contract.load(changed).problems == []
    report = test_report(workspace(tmp_path, changed), platform, php)
    assert [(f.name, f.detail) for f in report.failures()] == []
    names = {r.name for r in report.results}
    # the new optional field is delivered, and removed, and neither matters to the plugin
    assert "WebhookProcessor needs data.amount exactly when WebhookProcessor::PAYLOAD_FIELDS says so" in names


@pytest.mark.parametrize("platform", PLATFORMS)
def test_renaming_a_create_payment_field_turns_every_platforms_report_red_naming_it(
    platform: str, php: NativePhp, tmp_path: Path
) -> None:
    """The body each platform's checkout sends is built by the core's PaymentRequest, which the report runs."""
    renamed = write_contract(tmp_path / "psp-api.openapi.yaml", rename_create_order_reference)
    assert Contract.load(renamed).problems == []
    report = test_report(workspace(tmp_path, renamed), platform, php)
    failures = {f.name: f.detail for f in report.failures()}
    builder = "PaymentRequest.create" if platform == "shopify" else "PaymentRequest::create"
    assert sorted(failures) == [
        f"{builder} builds the contract's createPayment body (example order)",
        f"{builder} builds the contract's createPayment body (example sepa_direct_debit)",
    ]
    for detail in failures.values():
        assert detail.startswith(
            "createPayment body field order_reference is not in the contract's request schema (it has: amount, "
            "currency, order_ref, "
        )
        assert "; createPayment body: required field order_ref missing; " in detail
        assert f"{builder} parameter orderReference matches no field of the contract's createPayment " in detail


def test_a_webhook_field_made_optional_is_named(php: NativePhp, tmp_path: Path) -> None:
    def optional_status(doc: dict[str, Any]) -> None:
        event_schema(doc)["properties"]["data"]["required"].remove("status")

    changed = write_contract(tmp_path / "psp-api.openapi.yaml", optional_status)
    report = test_report(workspace(tmp_path, changed), "woocommerce", php)
    assert [f.detail for f in report.failures()] == [
        "webhook field data.status, read by the plugin (WebhookProcessor::PAYLOAD_FIELDS), is optional in the "
        "contract's payment.updated payload: the PSP may leave it out, and the plugin would reject those events"
    ]


# --- a core that drifts from the contract ------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The woocommerce and shopify cores of nordbank, rendered once; tests copy them before editing."""
    out = {}
    for platform in ("woocommerce", "shopify"):
        tmp = tmp_path_factory.mktemp(platform)
        paths = workspace(tmp)
        config = load_client(DEMO_CLIENTS / "nordbank.yaml")
        out[platform] = (paths, config, render_plugin(plan_plugin(paths, config, platform)))
    return out


def contract_failures(
    rendered: dict[str, Any], platform: str, php: NativePhp, tmp_path: Path, file: str, old: str, new: str
) -> dict[str, str]:
    """Copy a rendered plugin, replace `old` (exactly once) in `file`, and run its contract checks."""
    paths, config, source = rendered[platform]
    root = tmp_path / "edited"
    shutil.copytree(source.path, root)
    path = root / file
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times in {file}"
    path.write_text(text.replace(old, new))
    from psp_assets.core.render.engine import render_context
    from psp_assets.core.verify.contract.bridge import contract_results

    template = load_template(paths.templates_dir, platform, paths.contract_file)
    context = render_context(template, config, catalog_for(template, config))
    return {r.name: r.detail for r in contract_results(root, template, context, php) if not r.passed}


def test_a_core_calling_a_path_the_contract_lacks_fails_naming_it(rendered, php, tmp_path) -> None:
    failures = contract_failures(
        rendered, "shopify", php, tmp_path, "src/core.mjs", "'/cancellations', {}", "'/voids', {}"
    )
    detail = failures["PspClient::cancel sends the contract's POST /payments/{payment_id}/cancellations"]
    assert detail.startswith("POST /payments/pay_7Hq2Lw9Xc/voids is not in the contract (it has: POST /payments, ")


def test_a_php_core_sending_a_field_the_contract_lacks_fails_naming_it(rendered, php, tmp_path) -> None:
    failures = contract_failures(
        rendered,
        "woocommerce",
        php,
        tmp_path,
        "includes/core/PspClient.php",
        "$body = ['amount' => $amount, 'currency' => $currency, 'reason' => $reason];",
        "$body = ['amount' => $amount, 'currency' => $currency, 'note' => $reason];",
    )
    assert failures == {
        "PspClient::refund sends the contract's POST /payments/{payment_id}/refunds": (
            "body: $: Additional properties are not allowed ('note' was unexpected)"
        )
    }


def test_a_payload_field_read_but_not_declared_is_named(rendered, php, tmp_path) -> None:
    failures = contract_failures(
        rendered,
        "woocommerce",
        php,
        tmp_path,
        "includes/core/WebhookProcessor.php",
        "public const PAYLOAD_FIELDS = ['id', 'type', ",
        "public const PAYLOAD_FIELDS = ['id', ",
    )
    assert failures == {
        "WebhookProcessor needs type exactly when WebhookProcessor::PAYLOAD_FIELDS says so": (
            "an event without type was answered invalid_payload: the processor needs type but "
            "WebhookProcessor::PAYLOAD_FIELDS does not declare it"
        )
    }


def test_a_declared_field_the_js_core_does_not_need_is_named(rendered, php, tmp_path) -> None:
    failures = contract_failures(rendered, "shopify", php, tmp_path, "src/core.mjs", "type: text(event, 'type'),", "")
    assert failures == {
        "WebhookProcessor needs type exactly when WebhookProcessor::PAYLOAD_FIELDS says so": (
            "an event without type was answered applied, but WebhookProcessor::PAYLOAD_FIELDS says the processor "
            "needs it (expected invalid_payload): the declaration does not match the code"
        )
    }


def test_a_client_returning_a_field_the_contract_lacks_is_named(rendered, php, tmp_path) -> None:
    failures = contract_failures(
        rendered,
        "woocommerce",
        php,
        tmp_path,
        "includes/core/PspClient.php",
        "return ['id' => $id, 'status' => self::field($data, 'status'), 'checkout_url' => $url];",
        "return ['id' => $id, 'status' => self::field($data, 'status'), 'checkout_url' => $url, 'url' => $url];",
    )
    detail = failures["PspClient::createPayment sends the contract's POST /payments"]
    assert "PspClient::createPayment returns 'url', which the contract's POST /payments 201 answer does not have" in (
        detail
    )


def test_a_core_building_a_field_the_contract_lacks_fails_naming_it(rendered, php, tmp_path) -> None:
    core = "includes/core/PaymentRequest.php"
    failures = contract_failures(
        rendered, "woocommerce", php, tmp_path, core, "'webhook_url' => $webhookUrl", "'notify_url' => $webhookUrl"
    )
    assert failures == {
        f"PaymentRequest::create builds the contract's createPayment body (example {name})": (
            "createPayment body field notify_url is not in the contract's request schema (it has: amount, currency, "
            "order_reference, description, capture, test, locale, payment_methods, payment_method, debtor, customer, "
            "return_url, cancel_url, webhook_url)"
        )
        for name in ("order", "sepa_direct_debit")
    }


def test_a_core_putting_a_value_in_the_wrong_field_fails_naming_it(rendered, php, tmp_path) -> None:
    failures = contract_failures(
        rendered, "shopify", php, tmp_path, "src/core.mjs", "cancel_url: cancelUrl,", "cancel_url: returnUrl,"
    )
    assert failures["PaymentRequest.create builds the contract's createPayment body (example order)"] == (
        "createPayment body field cancel_url is 'https://shop.example.nl/checkout/order-received/1001', but "
        "PaymentRequest.create was given the contract's example 'https://shop.example.nl/cart' for it"
    )


def test_a_debtor_field_the_contract_lacks_is_named_with_its_path(rendered, php, tmp_path) -> None:
    failures = contract_failures(
        rendered,
        "woocommerce",
        php,
        tmp_path,
        "includes/core/PaymentRequest.php",
        "$out = ['iban' =>",
        "$out = ['account' =>",
    )
    detail = failures["PaymentRequest::create builds the contract's createPayment body (example sepa_direct_debit)"]
    assert detail.startswith(
        "createPayment body field debtor.account is not in the contract's request schema (it has: debtor.iban, "
        "debtor.bic, debtor.name); createPayment body: required field debtor.iban missing"
    )


def test_payment_request_inputs_are_the_examples_fields_in_camel_case() -> None:
    cases = {c["name"]: c for c in contract_tests.build_vectors("Ns", [], {})["payment_request"]}
    order, sepa = cases["order"], cases["sepa_direct_debit"]
    assert order["args"]["orderReference"] == "1001"
    assert order["args"]["customerEmail"] == "jan@example.nl"
    assert "debtor" not in order["args"]
    # the SEPA example shows a few fields: they are laid over the first example's
    assert sepa["args"]["orderReference"] == "1002"
    assert sepa["args"]["debtor"] == {
        "iban": "DE89370400440532013000",
        "bic": "COBADEFFXXX",
        "name": "Erika Mustermann",
    }
    assert sepa["args"]["cancelUrl"] == "https://shop.example.nl/cart"
    assert sepa["expect"]["payment_method"] == "sepa_direct_debit"


def test_every_php_platform_builds_the_create_payment_body_with_the_core(tmp_path: Path) -> None:
    """No platform builds the body itself: only the core's PaymentRequest names the request's fields."""
    paths = workspace(tmp_path)
    for platform in ("woocommerce", "magento2", "prestashop", "opencart"):
        config = load_client(DEMO_CLIENTS / f"{DEMO[platform]}.yaml")
        source = render_plugin(plan_plugin(paths, config, platform))
        php_files = {p.relative_to(source.path).as_posix(): p.read_text() for p in source.path.rglob("*.php")}
        core = {f"{name}.php" for name in contract_tests.CORE_CLASSES}
        builders = [name for name, text in php_files.items() if "'order_reference' =>" in text]
        assert [name for name in builders if Path(name).name not in core] == [], platform
        assert any(Path(name).name == "PaymentRequest.php" for name in builders), platform
        assert any("PaymentRequest::create(" in text for text in php_files.values()), platform


def test_the_psp_standin_refuses_and_reports_a_request_the_contract_does_not_allow(tmp_path: Path) -> None:
    import ssl
    import urllib.error
    import urllib.request

    from tests.support.psp_standin import ContractViolation, StandInServer

    server = StandInServer(tmp_path)
    context = ssl.create_default_context(cafile=str(server.cert))

    def create(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            server.url + "/v1/payments",
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Authorization": "Bearer k",
                "Idempotency-Key": "order-1001-1",
                "X-Correlation-ID": "0f8e4c1a-3b7d-4e2a-9c5f-6d1b2a3c4e5f",
            },
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    try:
        example = Shapes.of(Contract.load()).create_request
        assert create(example)[0] == 201
        server.reset()  # nothing to report
        renamed = {("order_ref" if k == "order_reference" else k): v for k, v in example.items()}
        status, answer = create(renamed)
        assert status == 400 and answer["error"] == "contract_violation"
        assert "'order_ref' was unexpected" in answer["message"]
        assert "'order_reference' is a required property" in answer["message"]
        with pytest.raises(ContractViolation, match=r"POST /v1/payments: body: .*'order_ref' was unexpected"):
            server.reset()
    finally:
        server.close()


def test_shapes_copy_the_examples_and_never_add_fields() -> None:
    shapes = Shapes.of(Contract.load())
    before = copy.deepcopy(shapes.event)
    body = json.loads(shapes.event_body("evt_9", "pay_9", "9", "failed", 5))
    assert body == {"id": "evt_9", "type": "payment.updated", "created": 5, "data": {
        "payment_id": "pay_9", "order_reference": "9", "status": "failed"}}  # fmt: skip
    assert shapes.event == before
    assert shapes.payment_for("pay_9", "9", "paid") == {**shapes.payment, "id": "pay_9", "order_reference": "9"}


def test_every_debtor_the_plugins_accept_is_a_contract_debtor() -> None:
    """BankAccount::checkDebtor's accepted accounts (core/payments/iban.py is its reference) fit createPayment."""
    from psp_assets.core.payments import iban

    contract = Contract.load()
    accepted = [iban.check_debtor(i, b, r)["debtor"] for _, i, b, r in contract_tests.DEBTOR_CASES]
    accepted = [d for d in accepted if d is not None]
    assert len(accepted) >= 2
    for debtor in accepted:
        assert contract.validate(debtor, contract.schema("Debtor")) == [], debtor

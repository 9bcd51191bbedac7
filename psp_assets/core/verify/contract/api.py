"""The PSP API contract's part of the contract tests: a core's PSP calls and webhook parsing, judged
against psp-api.openapi.yaml.

Vectors come from the contract's examples: every operation's example response is what the harness's
transport answers, every public method of the core's PspClient is called with arguments taken from the
contract (path, header and body fields by name), and the webhook's example event is delivered whole and
with each of its fields removed. The judges then check, in Python:

- every request the client sent is an operation of the contract, with valid path values, headers and
  body (openapi.Contract.check_request), and what the client returns comes from the response schema;
- the processor reads its signature from the contract's header, applies the example event, and needs
  exactly the payload fields it declares (`WebhookProcessor::PAYLOAD_FIELDS`), each of which the
  contract must have, as a required field. That is how a renamed webhook field is reported by name;
- the createPayment body every platform's checkout sends, built by the core's PaymentRequest::create
  from each request example's values (by parameter name), is valid under the request schema and
  carries each value in the field it came from. That is how a renamed request field is reported.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from jsonschema.exceptions import SchemaError, UnknownType
from referencing.exceptions import Unresolvable

from psp_assets.core.payments.openapi import Contract, ContractError, Operation

WEBHOOK = "payment.updated"
SIGNATURE_PARAMETER = "X-PSP-Signature"
DECLARATION = "WebhookProcessor::PAYLOAD_FIELDS"
EXAMPLE_SCENARIO = "contract: the example event"
WITHOUT = "contract: the example event without "
BUILDER = "PaymentRequest::create"


def camel(name: str) -> str:
    """A contract name as a client parameter name: payment_id -> paymentId, Idempotency-Key -> idempotencyKey."""
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name) if w]
    return (words[0].lower() + "".join(w[:1].upper() + w[1:].lower() for w in words[1:])) if words else name


# --- examples --------------------------------------------------------------------------------------


def webhook(contract: Contract) -> Operation:
    op = contract.webhooks.get(WEBHOOK)
    if op is None or op.body is None or op.body.example() is None:
        raise ContractError(f"{contract.path}: webhooks.{WEBHOOK}: missing, or without a request body example")
    return op


def _success_example(contract: Contract, operation_id: str) -> dict[str, Any]:
    op = contract.operation(operation_id)
    body = op.success()[1] if op else None
    example = body.example() if body else None
    if not isinstance(example, dict):
        raise ContractError(f"{contract.path}: operation {operation_id}: no 2xx response example object")
    return example


def event_example(contract: Contract) -> dict[str, Any]:
    """The webhook's first example event: the shape every webhook vector is built from."""
    return webhook(contract).body.example()  # type: ignore[union-attr]


def payment_example(contract: Contract) -> dict[str, Any]:
    """getPayment's example answer: the shape of every payment the vectors' PSP returns."""
    return _success_example(contract, "getPayment")


def created_example(contract: Contract) -> dict[str, Any]:
    return _success_example(contract, "createPayment")


def create_request_example(contract: Contract) -> dict[str, Any]:
    op = contract.operation("createPayment")
    example = op.body.example() if op and op.body else None
    if not isinstance(example, dict):
        raise ContractError(f"{contract.path}: operation createPayment: no request body example")
    return example


def error_example(contract: Contract) -> dict[str, Any]:
    for op in contract.operations:
        body = op.error()
        if body is not None and isinstance(body.example(), dict):
            return body.example()
    raise ContractError(f"{contract.path}: no error response with an example")


def idempotency_example(contract: Contract) -> str:
    op = contract.operation("createPayment")
    parameter = op.parameter("header", "Idempotency-Key") if op else None
    return str(parameter.example) if parameter and parameter.example else "order-1001-attempt-1"


def replace_present(document: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of `document` with the dotted fields in `values` replaced where the document has them.

    Vectors vary ids, references and statuses but never add a field the contract's example lacks: the
    shape stays the contract's."""
    out = copy.deepcopy(document)
    for dotted, value in values.items():
        *parents, leaf = dotted.split(".")
        node: Any = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node:
            node[leaf] = value
    return out


def leaf_fields(document: Any, prefix: str = "") -> list[str]:
    """Every field of an example as a dotted path, objects walked, arrays and scalars as leaves."""
    out = []
    for key, value in document.items() if isinstance(document, dict) else []:
        dotted = f"{prefix}{key}"
        out += leaf_fields(value, dotted + ".") if isinstance(value, dict) and value else [dotted]
    return out


def without(document: dict[str, Any], dotted: str) -> dict[str, Any]:
    out = copy.deepcopy(document)
    *parents, leaf = dotted.split(".")
    node: Any = out
    for part in parents:
        node = node[part]
    del node[leaf]
    return out


# --- vectors ---------------------------------------------------------------------------------------


def api_vectors(contract: Contract, api_base: str) -> dict[str, Any]:
    """What the harness's routing transport answers, and the arguments for every client method."""
    routes, operations, defaults = [], {}, {}
    for op in contract.operations:
        status, body = op.success()
        example = body.example() if body else None
        routes.append(
            {
                "method": op.method,
                "segments": op.segments,
                "status": status,
                "body": json.dumps(example if example is not None else {}),
            }
        )
        args = {camel(p.name): p.example for p in op.parameters if p.example is not None}
        request = op.body.example() if op.body else None
        if isinstance(request, dict):
            args.update({camel(k): v for k, v in request.items()})
        operations[op.operation_id] = {"args": args, "body": request}
        for name, value in args.items():
            defaults.setdefault(name, value)
    return {
        "api_base": api_base,
        "routes": routes,
        "not_found": {"status": 404, "body": json.dumps(error_example(contract))},
        "operations": operations,
        "defaults": {"args": defaults, "body": None},
    }


def builder_args(body: dict[str, Any]) -> dict[str, Any]:
    """A request body as PaymentRequest::create's arguments: each field in camelCase, and the fields of a
    nested object flattened too (customer.email -> customerEmail), the object itself kept (debtor)."""
    args: dict[str, Any] = {}
    for key, value in body.items():
        args[camel(key)] = value
        if isinstance(value, dict):
            args.update({camel(f"{key}_{sub}"): v for sub, v in value.items()})
    return args


def payment_request_vectors(contract: Contract) -> list[dict[str, Any]]:
    """One PaymentRequest::create call per createPayment request example, with that example's values.

    An example that shows only some fields (the SEPA one) is laid over the first, so every parameter the
    platforms pass has a value; `expect` is the body those inputs stand for."""
    op = contract.operation("createPayment")
    examples = [(n, v) for n, v in (op.body.examples.items() if op and op.body else []) if isinstance(v, dict)]
    if not examples:
        raise ContractError(f"{contract.path}: operation createPayment: no request body example")
    first = examples[0][1]
    cases = []
    for name, example in examples:
        expect = copy.deepcopy({**first, **example})
        cases.append({"name": name, "args": builder_args(expect), "expect": expect})
    return cases


def webhook_vectors(contract: Contract, sign: Callable[[str], str], secret: str, tolerance: int, now: int) -> list:
    """Deliveries of the contract's example event: whole, then once without each of its fields."""
    event = event_example(contract)
    payment, order = _payment_for(contract, event)

    shapes = Shapes.of(contract)

    def scenario(name: str, body: dict[str, Any]) -> dict[str, Any]:
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
        return {
            "name": name,
            "orders": {order: None},
            "terms": {order: shapes.terms_for([str(payment.get("id", ""))])},
            "held_locks": [],
            "secret": secret,
            "tolerance": tolerance,
            "steps": [{"body": text, "header": sign(text), "now": now, "psp": {payment["id"]: payment}}],
        }

    return [scenario(EXAMPLE_SCENARIO, event)] + [
        scenario(WITHOUT + field, without(event, field)) for field in leaf_fields(event)
    ]


def _payment_for(contract: Contract, event: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The PSP's answer for the example event's payment, and the order it belongs to."""
    payment = payment_example(contract)
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    payment = replace_present(payment, {"id": data.get("payment_id", payment.get("id"))})
    if data.get("status") is not None:
        payment = replace_present(payment, {"status": data["status"]})
    order = str(data.get("order_reference", payment.get("order_reference", "")))
    return payment, order


# --- judges ----------------------------------------------------------------------------------------


def example_problems(contract: Contract) -> list[str]:
    """The examples the vectors combine must describe one payment (or the vectors contradict themselves)."""
    problems = []
    try:
        event, payment = event_example(contract), payment_example(contract)
        op = contract.operation("getPayment")
    except ContractError as exc:
        return [str(exc)]
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    parameter = op.parameter("path", "payment_id") if op else None
    pairs = [
        ("webhook data.payment_id", data.get("payment_id"), "getPayment example id", payment.get("id")),
        ("webhook data.order_reference", data.get("order_reference"), "getPayment example order_reference",
         payment.get("order_reference")),
        ("getPayment path parameter payment_id example", parameter.example if parameter else None,
         "getPayment example id", payment.get("id")),
    ]  # fmt: skip
    for left, a, right, b in pairs:
        if a is not None and b is not None and a != b:
            problems.append(
                f"{contract.path}: {left} is {a!r} but {right} is {b!r}: examples must describe one payment"
            )
    return problems


def _verdict(judge: Any, name: str, case_id: str, check: Callable[[Any], str]) -> None:
    """Judge one harness case like contract._Judge.case, but record it with add(): the standalone suite
    for clients' CI (verify/contract/standalone.py) translates case() judges only, and these need the contract and
    jsonschema, which that suite does not ship."""
    record = judge.cases.get(case_id)
    if record is None:
        why = f"the harness stopped first: {judge.fatal}" if judge.fatal else "the harness did not run it"
        judge.add(name, False, f"not run ({why})")
        return
    problems = [f"threw {record['exception']}"] if record.get("exception") else [check(record.get("value"))]
    if record.get("errors"):
        problems.append("raised: " + " | ".join(list(dict.fromkeys(record["errors"]))[:5]))
    if record.get("output"):
        problems.append(f"printed unexpected output {record['output'][:200]!r}")
    detail = "; ".join(p for p in problems if p)
    judge.add(name, not detail, detail)


def judge_api(judge: Any, document: dict[str, Any], vectors: dict[str, Any], contract: Contract) -> None:
    """Add the contract's results to `judge` (contract._Judge): the document, the webhook, the client."""
    judge.add("the PSP API contract is valid OpenAPI 3.1", not contract.problems, "; ".join(contract.problems[:8]))
    status = contract.status_problems()
    judge.add(
        "the contract's payment statuses are payments/statuses.py's canonical statuses", not status, "; ".join(status)
    )
    examples = example_problems(contract)
    judge.add("the contract's examples describe one payment", not examples, "; ".join(examples))
    _judge_webhook(judge, document, contract)
    if "api" in vectors:
        _judge_operations(judge, vectors["api"], contract)
    for case in vectors.get("payment_request") or []:
        _judge_payment_request(judge, case, contract)


def _judge_webhook(judge: Any, document: dict[str, Any], contract: Contract) -> None:
    op = webhook(contract)
    payload = op.body.schema if op.body else None
    fields = contract.fields(payload) if payload else {}
    listed = ", ".join(f for f in fields if not any(g.startswith(f + ".") for g in fields))
    declared_record = ((document.get("cases") or {}).get("webhook:declaration") or {}).get("value") or {}
    header = declared_record.get("signature_header")
    wanted = op.parameter("header", SIGNATURE_PARAMETER)
    wanted_name = wanted.name if wanted else "(none: the contract's webhook has no signature header)"
    _verdict(
        judge,
        f"WebhookProcessor reads the signature from the contract's {wanted_name} header",
        "webhook:declaration",
        lambda value: (
            ""
            if wanted and isinstance(header, str) and header.lower() == wanted.name.lower()
            else f"SIGNATURE_HEADER is {header!r}, the contract's {WEBHOOK} webhook sends {wanted_name}"
        ),
    )
    declared = declared_record.get("payload_fields")
    if not isinstance(declared, list) or not declared or not all(isinstance(f, str) and f for f in declared):
        judge.add(
            f"WebhookProcessor declares the payload fields it reads ({DECLARATION})",
            False,
            f"{DECLARATION} is {declared!r}; it must list every field of the {WEBHOOK} payload the processor "
            "needs, as dotted paths (e.g. data.order_reference)",
        )
        declared = []
    for name in declared:
        if name not in fields:
            detail = (
                f"webhook field {name}, read by the plugin ({DECLARATION}), is not in the contract's {WEBHOOK} "
                f"payload (contract has: {listed})"
            )
        elif not fields[name]:
            detail = (
                f"webhook field {name}, read by the plugin ({DECLARATION}), is optional in the contract's {WEBHOOK} "
                "payload: the PSP may leave it out, and the plugin would reject those events"
            )
        else:
            detail = ""
        judge.add(
            f"webhook field {name}, read by the plugin, is required in the contract's {WEBHOOK}", not detail, detail
        )

    cases = document.get("cases") or {}
    example = _delivery(cases.get("webhook:" + EXAMPLE_SCENARIO))
    accepted = example.get("result") == "applied"
    _verdict(
        judge,
        f"WebhookProcessor applies the contract's example {WEBHOOK} event",
        "webhook:" + EXAMPLE_SCENARIO,
        lambda _value: "" if accepted else f"the example event was answered {_outcome(example)}, expected applied",
    )
    if not accepted:
        return  # a field-by-field verdict means nothing while the whole example is refused
    for case_id in sorted(k for k in cases if k.startswith("webhook:" + WITHOUT)):
        field = case_id[len("webhook:" + WITHOUT) :]
        needs = field in declared or any(d.startswith(field + ".") for d in declared)

        def verdict(_value: Any, field: str = field, needs: bool = needs, case_id: str = case_id) -> str:
            got = _delivery(cases.get(case_id))
            if needs and got.get("result") != "invalid_payload":
                return (
                    f"an event without {field} was answered {_outcome(got)}, but {DECLARATION} says the processor "
                    "needs it (expected invalid_payload): the declaration does not match the code"
                )
            if not needs and got.get("result") != "applied":
                return (
                    f"an event without {field} was answered {_outcome(got)}: the processor needs {field} but "
                    f"{DECLARATION} does not declare it"
                )
            return ""

        _verdict(
            judge,
            f"WebhookProcessor needs {field} exactly when {DECLARATION} says so",
            case_id,
            verdict,
        )


def _delivery(record: Any) -> dict[str, Any]:
    steps = (record or {}).get("value")
    if not isinstance(steps, list) or not steps or not isinstance(steps[0], dict):
        return {}
    step = steps[0]
    result = step.get("result") if isinstance(step.get("result"), dict) else {}
    return {"result": result.get("result"), "exception": step.get("exception")}


def _outcome(delivery: dict[str, Any]) -> str:
    if delivery.get("exception"):
        return f"with {delivery['exception']}"
    return str(delivery.get("result") or "nothing")


def _judge_operations(judge: Any, api: dict[str, Any], contract: Contract) -> None:
    record = (judge.cases.get("client:operations") or {}).get("value")
    methods = record if isinstance(record, dict) else {}
    if not methods:
        _verdict(judge, "PspClient's public methods were called against the contract", "client:operations", str)
        return
    for name, call in methods.items():
        op = contract.operation(name)
        requests = call.get("requests") or []
        if op is None and not requests:
            continue  # a helper (lastCorrelationId, userAgent): no PSP call
        label = f"PspClient::{name} sends the contract's {op.label}" if op else f"PspClient::{name} calls the PSP API"
        _verdict(judge, label, "client:operations", partial(_method_problems, name, call, op, api, contract))


def _method_problems(
    name: str, call: dict[str, Any], op: Operation | None, api: dict[str, Any], contract: Contract, _value: Any
) -> str:
    if call.get("unresolved"):
        fields = ", ".join(sorted(api["operations"].get(name, api["defaults"])["args"]))
        missing = ", ".join(call["unresolved"])
        where = f"the contract's {op.operation_id} operation" if op else "any operation of the contract"
        return f"parameter(s) {missing} of PspClient::{name} match no path, header or body field of {where} ({fields})"
    requests = call.get("requests") or []
    problems = []
    for request in requests:
        headers = request.get("headers") if isinstance(request.get("headers"), dict) else {}
        found = contract.check_request(
            str(request.get("method")), str(request.get("url")), headers, request.get("body"), api["api_base"]
        )
        if found.problem:
            problems.append(found.problem)
        elif op is not None and found.operation is not None and found.operation.operation_id != op.operation_id:
            problems.append(
                f"sent {found.operation.label}, the contract's {found.operation.operation_id}, not {op.label}"
            )
        elif found.operation is not None and not call.get("exception"):
            problems += _returned_problems(name, call.get("returned"), found.operation, contract)
    if call.get("exception"):
        problems.append(f"threw {call['exception']} on the contract's answer")
    elif op is not None and len(requests) != 1:
        problems.append(f"sent {len(requests)} requests, expected exactly one {op.label}")
    return "; ".join(problems)


def _returned_problems(name: str, returned: Any, op: Operation, contract: Contract) -> list[str]:
    """What the client hands back must come from the contract's answer: its fields, their example values."""
    status, body = op.success()
    if body is None or not isinstance(returned, dict):
        return []
    example = body.example() if isinstance(body.example(), dict) else {}
    fields = contract.fields(body.schema) if body.schema else {}
    problems = []
    for key, value in returned.items():
        if key not in fields:
            problems.append(
                f"PspClient::{name} returns {key!r}, which the contract's {op.label} {status} answer does not have "
                f"(it has: {', '.join(fields)})"
            )
        elif key in example and example[key] != value:
            problems.append(f"PspClient::{name} returns {key}={value!r} for the contract's example {example[key]!r}")
    return problems


def _judge_payment_request(judge: Any, case: dict[str, Any], contract: Contract) -> None:
    """The platforms' createPayment body, built by the core from the contract's example values, must be a
    valid request of the contract, carrying those values in the fields they came from."""
    _verdict(
        judge,
        f"{BUILDER} builds the contract's createPayment body (example {case['name']})",
        f"payment_request:{case['name']}",
        partial(_payment_request_problems, case, contract),
    )


def _payment_request_problems(case: dict[str, Any], contract: Contract, value: Any) -> str:
    op = contract.operation("createPayment")
    if op is None or op.body is None:
        return "the contract has no createPayment operation with a request body"
    record = value if isinstance(value, dict) else {}
    body = record.get("body")
    problems = (
        body_problems(contract, op, body)
        if isinstance(body, dict)
        else [f"{BUILDER} returned {body!r}, expected the request body as an array"]
    )
    for field, want in case["expect"].items():
        if isinstance(body, dict) and field in body and body[field] != want:
            problems.append(
                f"createPayment body field {field} is {body[field]!r}, but {BUILDER} was given the contract's "
                f"example {want!r} for it"
            )
    problems += [
        f"{BUILDER} parameter {name} matches no field of the contract's createPayment request example "
        f"(it has: {', '.join(case['expect'])})"
        for name in record.get("unresolved") or []
    ]
    return "; ".join(problems)


def body_problems(contract: Contract, op: Operation, body: Any) -> list[str]:
    """What is wrong with a request body under `op`'s schema, each problem naming its field."""
    pointer = op.body.schema if op.body else None
    if pointer is None:
        return []
    try:
        errors = sorted(contract.validator(pointer).iter_errors(body), key=lambda e: list(e.absolute_path))
    except (SchemaError, UnknownType, Unresolvable) as exc:
        return [f"the contract's schema at {pointer} cannot be used ({str(exc).splitlines()[0]})"]
    fields = contract.fields(pointer)
    name = op.operation_id
    out = []
    for error in errors:
        at = ".".join(str(p) for p in error.absolute_path)
        prefix = at + "." if at else ""
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = (error.schema or {}).get("properties") or {}
            has = ", ".join(f for f in fields if f.startswith(prefix) and "." not in f[len(prefix) :])
            out += [
                f"{name} body field {prefix}{extra} is not in the contract's request schema (it has: {has})"
                for extra in error.instance
                if extra not in known
            ]
        elif error.validator == "required" and isinstance(error.instance, dict):
            out += [
                f"{name} body: required field {prefix}{missing} missing"
                for missing in error.validator_value
                if missing not in error.instance
            ]
        else:
            out.append(f"{name} body field {at or '(the body)'}: {error.message}")
    return out


@dataclass(frozen=True)
class Shapes:
    """The contract's examples every contract vector is shaped after."""

    event: dict[str, Any]
    payment: dict[str, Any]
    created: dict[str, Any]
    create_request: dict[str, Any]
    error: dict[str, Any]
    idempotency_key: str

    @classmethod
    def of(cls, contract: Contract) -> Shapes:
        return cls(
            event=event_example(contract),
            payment=payment_example(contract),
            created=created_example(contract),
            create_request=create_request_example(contract),
            error=error_example(contract),
            idempotency_key=idempotency_example(contract),
        )

    def event_body(self, event_id: str, payment_id: str, order_ref: str, status: str, created: int) -> str:
        """The example event for another payment, order and status, serialized as the PSP sends it."""
        values = {
            "id": event_id,
            "created": created,
            "data.payment_id": payment_id,
            "data.order_reference": order_ref,
            "data.status": status,
        }
        return json.dumps(replace_present(self.event, values), separators=(",", ":"))

    def payment_for(self, payment_id: str, order_ref: str, status: str, **amounts: Any) -> dict[str, Any]:
        """The example payment as the PSP would answer for another id, order and status.

        `amounts` replaces amount, currency, captured_amount or refunded_amount where the example has
        them; left out, captured and refunded amounts follow the status (nothing captured before
        `paid`, half refunded when `partially_refunded`, all when `refunded`), so the payment is
        consistent."""
        values: dict[str, Any] = {"id": payment_id, "order_reference": order_ref, "status": status}
        amount = amounts.get("amount", self.payment.get("amount"))
        if isinstance(amount, int) and not isinstance(amount, bool):
            captured = amount if status in ("paid", "partially_refunded", "refunded", "chargeback") else 0
            refunded = {"refunded": captured, "partially_refunded": captured // 2}.get(status, 0)
            values.update({"captured_amount": captured, "refunded_amount": refunded})
        values.update(amounts)
        return replace_present(self.payment, values)

    @property
    def amounts(self) -> tuple[int, str] | None:
        """The example payment's (amount, currency), or None when the example lacks either."""
        amount, currency = self.payment.get("amount"), self.payment.get("currency")
        if isinstance(amount, int) and not isinstance(amount, bool) and amount > 0 and isinstance(currency, str):
            return amount, currency
        return None

    def terms_for(self, payment_ids: list[str], **overrides: Any) -> dict[str, Any]:
        """What an order expects of its payment (OrderStoreInterface::getPaymentTerms): the example
        payment's amount and currency, these payment ids."""
        amount, currency = self.amounts or (0, "")
        return {"amount": amount, "currency": currency, "payment_ids": list(payment_ids), **overrides}

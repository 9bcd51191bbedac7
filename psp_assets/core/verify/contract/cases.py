"""Contract tests: run a rendered plugin's platform-neutral PHP core against the shared vectors.

The vectors are built here, from the single sources of truth (`payments/statuses.py` for statuses and
transitions, Python's `hmac` for signatures, the template's `status_map`, and the PSP API contract
psp-api.openapi.yaml, whose examples give every event and payment its shape and whose operations every
PSP call is judged against: verify/contract/api.py). They are written to a
temporary JSON file and executed in ONE PHP process by `php/contract_harness.php`, which reports what
the core returned; every comparison happens here, so a failure names the vector, what Python expected
and what PHP did. Any PHP warning, notice or deprecation raised by a case fails that case.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from psp_assets.core.payments import iban
from psp_assets.core.payments.openapi import Contract, ContractError
from psp_assets.core.payments.statuses import CANONICAL_STATUSES, can_transition
from psp_assets.core.runtimes.php import PhpRuntime
from psp_assets.core.verify.checks import CheckResult
from psp_assets.core.verify.contract.api import Shapes, api_vectors, judge_api, payment_request_vectors, webhook_vectors

HARNESS = Path(__file__).with_name("harness") / "contract_harness.php"
BANK_ID_VECTORS = Path(__file__).parents[3] / "contract" / "bank_id_vectors.json"
CHECK = "contract"
# Contracts vectors were built from, by digest: the judge uses the same one (vectors carry no paths).
_CONTRACTS: dict[str, Contract] = {}

# Fixed inputs: the contract is deterministic, so a failing run can be replayed exactly.
SECRET = "whsec_contract_3f9a1c7e5b2d4086"
OTHER_SECRET = "whsec_contract_rotated_0d1e2f"
NOW = 1_750_000_000
TOLERANCE = 300
API_BASE = "https://psp.contract.invalid/v1"
API_KEY = "contract_key_5e1f0a9c"

CORE_CLASSES = (
    "ClientInfo",
    "PspException",
    "HttpTransportInterface",
    "PspClientInterface",
    "OrderStoreInterface",
    "LockInterface",
    "Signature",
    "StatusMap",
    "PspClient",
    "StreamTransport",
    "WebhookProcessor",
    "Health",
    "BankAccount",
    "PaymentRequest",
    "SecretBox",
)
NOT_STATUSES = ("PAID", "completed", "pending ", "")
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
SEMVER = re.compile(r"\d+\.\d+\.\d+")
BUILD_ID = re.compile(r"[0-9a-f]{12}")
MAJOR_MINOR = re.compile(r"\d+\.\d+")


def sign(secret: str, timestamp: int, body: str) -> str:
    """The PSP's signature header for `body` (what `Signature::sign` must produce)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def _mac(header: str) -> str:
    return header.split("v1=", 1)[1]


def event_body(
    event_id: str, payment_id: str, order_ref: str, status: str, created: int = NOW, *, shapes: Shapes | None = None
) -> str:
    """The contract's example event (its shape) for this payment, order and status."""
    return (shapes or Shapes.of(Contract.load())).event_body(event_id, payment_id, order_ref, status, created)


def _altered_event(order_ref: str, data: dict[str, Any] | None = None, *, shapes: Shapes, **top: Any) -> str:
    """A signed-looking event for `order_ref` with fields replaced; a None value removes the field."""
    event: dict[str, Any] = json.loads(event_body("evt_1", "p", order_ref, "paid", shapes=shapes))
    event.update(top)
    event["data"].update(data or {})
    event["data"] = {k: v for k, v in event["data"].items() if v is not None}
    return json.dumps(event)


def _payment(
    payment_id: str, order_ref: str, status: str, shapes: Shapes | None = None, **amounts: Any
) -> dict[str, Any]:
    return (shapes or Shapes.of(Contract.load())).payment_for(payment_id, order_ref, status, **amounts)


MISMATCH_RESULTS = ("payment_mismatch", "amount_mismatch")


def mismatch_detail(payment: Mapping[str, Any], terms: Mapping[str, Any]) -> dict[str, Any]:
    """What WebhookProcessor reports with a mismatch: the PSP's payment next to the order's terms."""
    ids = list(terms.get("payment_ids") or [])
    amount, currency = payment.get("amount"), payment.get("currency")
    detail = {
        "payment_id": payment["id"],
        "status": payment["status"],
        "amount": amount if isinstance(amount, int) else -1,
        "currency": currency if isinstance(currency, str) else "",
        "expected_payment_id": ids[-1] if ids else "",
        "expected_amount": terms["amount"],
        "expected_currency": terms["currency"],
        "correlation_id": correlation_id(payment["id"]),
    }
    detail.update({k: payment[k] for k in ("captured_amount", "refunded_amount") if isinstance(payment.get(k), int)})
    return detail


def correlation_id(payment_id: str) -> str:
    """What the harnesses' PSP answers to lastCorrelationId() after fetching `payment_id`."""
    return f"corr:{payment_id}"


# --- vectors -------------------------------------------------------------------------------------------


def _signature_vectors(shapes: Shapes) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    body = event_body("evt_sig", "pay_sig", "1001", "paid", shapes=shapes)
    unicode_body = event_body("evt_ünï", "pay_sig", "Zamówienie-7", "paid", shapes=shapes)
    valid = sign(SECRET, NOW, body)

    def verify(name: str, header: str, expect: str, *, secret: str = SECRET, payload: str = body) -> dict[str, Any]:
        return {
            "name": name,
            "secret": secret,
            "header": header,
            "body": payload,
            "now": NOW,
            "tolerance": TOLERANCE,
            "expect": expect,
        }

    signs = [
        {"name": "ascii body", "secret": SECRET, "timestamp": NOW, "body": body, "expect": valid},
        {
            "name": "non-ASCII body",
            "secret": SECRET,
            "timestamp": NOW,
            "body": unicode_body,
            "expect": sign(SECRET, NOW, unicode_body),
        },
        {"name": "empty body", "secret": OTHER_SECRET, "timestamp": 1, "body": "", "expect": sign(OTHER_SECRET, 1, "")},
    ]
    verifies = [
        verify("valid signature accepted", valid, "ok"),
        verify("non-ASCII body accepted", sign(SECRET, NOW, unicode_body), "ok", payload=unicode_body),
        verify("oldest timestamp in the window accepted", sign(SECRET, NOW - TOLERANCE, body), "ok"),
        verify("newest timestamp in the window accepted", sign(SECRET, NOW + TOLERANCE, body), "ok"),
        verify(
            "one matching v1 among several accepted (secret rotation)",
            f"t={NOW},v1={_mac(sign(OTHER_SECRET, NOW, body))},v1={_mac(valid)}",
            "ok",
        ),
        verify("spaces after commas tolerated", valid.replace(",", ", "), "ok"),
        verify("tampered body rejected", valid, "mismatch", payload=body.replace("paid", "paiD")),
        verify("body with a trailing newline rejected", valid, "mismatch", payload=body + "\n"),
        verify("wrong secret rejected", sign(OTHER_SECRET, NOW, body), "mismatch"),
        verify("signature of another timestamp rejected", f"t={NOW - 1},v1={_mac(valid)}", "mismatch"),
        verify("empty secret never verifies", sign("", NOW, body), "mismatch", secret=""),
        verify("stale timestamp in the past rejected", sign(SECRET, NOW - TOLERANCE - 1, body), "stale"),
        verify("timestamp in the future rejected", sign(SECRET, NOW + TOLERANCE + 1, body), "stale"),
        verify("empty header is malformed", "", "malformed"),
        verify("garbage header is malformed", "garbage", "malformed"),
        verify("header without timestamp is malformed", f"v1={_mac(valid)}", "malformed"),
        verify("header without v1 is malformed", f"t={NOW}", "malformed"),
        verify("non-numeric timestamp is malformed", f"t=soon,v1={_mac(valid)}", "malformed"),
        verify("two timestamps are malformed", f"t={NOW},t={NOW},v1={_mac(valid)}", "malformed"),
        verify("short v1 is malformed", f"t={NOW},v1={_mac(valid)[:40]}", "malformed"),
        verify("non-hex v1 is malformed", f"t={NOW},v1={'z' * 64}", "malformed"),
        verify("oversized header is malformed", valid + ",x=" + "a" * 2048, "malformed"),
    ]
    constant_time = [
        {**verify("valid", valid, "ok"), "mac": _mac(valid)},
        {**verify("mismatch", sign(OTHER_SECRET, NOW, body), "mismatch"), "mac": _mac(valid)},
    ]
    return signs, verifies, constant_time


@dataclass(frozen=True)
class Step:
    """One webhook delivery and what must follow from it."""

    body: str
    header: str
    psp: Mapping[str, Any]  # payment id -> payment the PSP returns from now on (None: PSP unreachable)
    result: str | None  # expected handle()['result']; None when an exception is expected
    status: str | None = None  # expected handle()['status']
    order: str | None = None
    exception: str | None = None  # expected exception class (short name)
    fetches: int = 0  # PSP re-fetches this step must make
    locks: tuple[str, ...] = ()  # lock names this step must acquire (and release)
    now: int = NOW
    detail: Mapping[str, Any] | None = None  # expected handle()['detail'] (the mismatch results only)

    def expected(self) -> dict[str, Any]:
        """What handle() must return."""
        want: dict[str, Any] = {"result": self.result, "order": self.order, "status": self.status}
        if self.detail is not None:
            want["detail"] = dict(self.detail)
        return want


@dataclass(frozen=True)
class Scenario:
    name: str
    orders: Mapping[str, str | None]
    steps: tuple[Step, ...]
    applied: tuple[tuple[str, str, str], ...]  # (order, canonical status, event id) in order
    held_locks: tuple[str, ...] = ()
    # order -> OrderStoreInterface::getPaymentTerms(); an order left out expects pay_<order>, the example's amount
    terms: Mapping[str, Mapping[str, Any]] | None = None
    held: tuple[tuple[str, str, str, str], ...] = ()  # hold() calls: (order, result, event id, correlation id)

    def order_terms(self, shapes: Shapes) -> dict[str, dict[str, Any]]:
        explicit = dict(self.terms or {})
        return {ref: dict(explicit.get(ref) or shapes.terms_for([f"pay_{ref}"])) for ref in self.orders}


def _delivery(
    event_id: str,
    payment_id: str,
    order_ref: str,
    hint: str,
    psp_status: str | None,
    *,
    result: str,
    status: str | None = None,
    fetch: bool = True,
    secret: str = SECRET,
    ts: int = NOW,
    psp_order: str | None = None,
    exception: str | None = None,
    amounts: Mapping[str, Any] | None = None,
    terms: Mapping[str, Any] | None = None,
    shapes: Shapes,
) -> Step:
    """A signed event whose payload says `hint` while the PSP says `psp_status` (None: unreachable);
    `amounts` overrides the PSP payment's amount, currency, captured_amount or refunded_amount."""
    body = event_body(event_id, payment_id, order_ref, hint, shapes=shapes)
    payment = (
        None
        if psp_status is None
        else _payment(payment_id, psp_order or order_ref, psp_status, shapes, **dict(amounts or {}))
    )
    rejected = result in ("rejected_signature", "rejected_stale")
    detail = None
    if result in MISMATCH_RESULTS and payment is not None:
        detail = mismatch_detail(payment, terms or shapes.terms_for([f"pay_{order_ref}"]))
    return Step(
        body=body,
        header=sign(secret, ts, body),
        psp={payment_id: payment},
        result=None if exception else result,
        status=status,
        order=None if exception or rejected else order_ref,
        exception=exception,
        fetches=1 if fetch else 0,
        locks=() if rejected else (f"payment:{payment_id}",),
        detail=detail,
    )


def _webhook_scenarios(shapes: Shapes | None = None) -> list[Scenario]:
    shapes = shapes or Shapes.of(Contract.load())
    d = partial(_delivery, shapes=shapes)
    altered = partial(_altered_event, shapes=shapes)
    pay = "pay_1001"
    bad_sig_body = event_body("evt_1", "pay_1006", "1006", "paid", shapes=shapes)
    return [
        Scenario(
            "late pending never downgrades a paid order",
            {"1001": "pending"},
            (
                d("evt_1", pay, "1001", "paid", "paid", result="applied", status="paid"),
                d("evt_2", pay, "1001", "pending", "pending", result="ignored", status="paid"),
            ),
            applied=(("1001", "paid", "evt_1"),),
        ),
        Scenario(
            "the same event twice is applied once",
            {"1002": "pending"},
            (
                d("evt_1", "pay_1002", "1002", "paid", "paid", result="applied", status="paid"),
                d("evt_1", "pay_1002", "1002", "paid", "paid", result="duplicate", status="paid"),
            ),
            applied=(("1002", "paid", "evt_1"),),
        ),
        Scenario(
            "the payload status is a hint: the re-fetched PSP status is applied",
            {"1003": None},
            (
                d("evt_1", "pay_1003", "1003", "paid", "pending", result="applied", status="pending"),
                d("evt_2", "pay_1003", "1003", "paid", "pending", result="unchanged", status="pending"),
                d("evt_3", "pay_1003", "1003", "pending", "paid", result="applied", status="paid"),
            ),
            applied=(("1003", "pending", "evt_1"), ("1003", "paid", "evt_3")),
        ),
        Scenario(
            "a payment locked by another process is not processed",
            {"1004": "pending"},
            (d("evt_1", "pay_1004", "1004", "paid", "paid", result="locked", status=None, fetch=False),),
            applied=(),
            held_locks=("payment:pay_1004",),
        ),
        Scenario(
            "an unknown order is not touched",
            {"1005": "pending"},
            (d("evt_1", "pay_9999", "9999", "paid", "paid", result="unknown_order", status=None),),
            applied=(),
        ),
        Scenario(
            "a bad signature applies nothing and asks the PSP nothing",
            {"1006": "pending"},
            (
                d(
                    "evt_1",
                    "pay_1006",
                    "1006",
                    "paid",
                    "paid",
                    result="rejected_signature",
                    fetch=False,
                    secret=OTHER_SECRET,
                ),
                Step(body=bad_sig_body, header="t=1,v1=nope", psp={}, result="rejected_signature"),
                Step(body=bad_sig_body, header="", psp={}, result="rejected_signature"),
                d("evt_1", "pay_1006", "1006", "paid", "paid", result="rejected_stale", fetch=False, ts=NOW - 3600),
            ),
            applied=(),
        ),
        Scenario(
            "a signed but invalid payload applies nothing",
            {"1007": "pending"},
            tuple(
                Step(body=body, header=sign(SECRET, NOW, body), psp={}, result="invalid_payload")
                for body in (
                    "not json",
                    "[]",
                    altered("1007", data={"payment_id": None}),  # payment id missing
                    altered("1007", id=""),
                    altered("1007", created="now"),
                    altered("1007", data={"payment_id": 7}),
                )
            ),
            applied=(),
        ),
        Scenario(
            "a payment the PSP attributes to another order applies nothing",
            {"1008": "pending", "2000": "pending"},
            (d("evt_1", "pay_1008", "1008", "paid", "paid", result="invalid_payload", status=None, psp_order="2000"),),
            applied=(),
        ),
        Scenario(
            "an unknown status from the PSP applies nothing",
            {"1009": "pending"},
            (d("evt_1", "pay_1009", "1009", "paid", "settled", result="invalid_payload", status=None),),
            applied=(),
        ),
        Scenario(
            "a late success after a failed attempt is applied",
            {"1010": "pending"},
            (
                d("evt_1", "pay_1010", "1010", "failed", "failed", result="applied", status="failed"),
                d("evt_2", "pay_1010", "1010", "paid", "paid", result="applied", status="paid"),
            ),
            applied=(("1010", "failed", "evt_1"), ("1010", "paid", "evt_2")),
        ),
        Scenario(
            "refunds move forward only",
            {"1011": "paid"},
            (
                d(
                    "evt_1",
                    "pay_1011",
                    "1011",
                    "partially_refunded",
                    "partially_refunded",
                    result="applied",
                    status="partially_refunded",
                ),
                d(
                    "evt_2",
                    "pay_1011",
                    "1011",
                    "partially_refunded",
                    "partially_refunded",
                    result="applied",
                    status="partially_refunded",
                ),
                d("evt_3", "pay_1011", "1011", "refunded", "refunded", result="applied", status="refunded"),
                d("evt_4", "pay_1011", "1011", "paid", "paid", result="ignored", status="refunded"),
                d("evt_5", "pay_1011", "1011", "refunded", "refunded", result="unchanged", status="refunded"),
            ),
            applied=(
                ("1011", "partially_refunded", "evt_1"),
                ("1011", "partially_refunded", "evt_2"),
                ("1011", "refunded", "evt_3"),
            ),
        ),
        Scenario(
            "the lock is released when the PSP cannot be reached",
            {"1012": "pending"},
            (
                d("evt_1", "pay_1012", "1012", "paid", None, result="", exception="PspException"),
                d("evt_1", "pay_1012", "1012", "paid", "paid", result="applied", status="paid"),
            ),
            applied=(("1012", "paid", "evt_1"),),
        ),
        *integrity_scenarios(shapes),
    ]


def integrity_scenarios(shapes: Shapes) -> list[Scenario]:
    """A signed event is applied only for the order's current payment, for the order's amount and
    currency; captured and refunded amounts must add up. Everything else holds the order or is refused."""
    if shapes.amounts is None:
        return []  # the contract's payment example has no amount or currency to vary
    amount, currency = shapes.amounts
    other = "PLN" if currency != "PLN" else "EUR"
    d = partial(_delivery, shapes=shapes)
    mismatch = "payment_mismatch"
    scenarios = []

    terms = shapes.terms_for(["pay_100_first", "pay_100_second"], amount=100000)
    t = partial(d, terms=terms)
    scenarios.append(
        Scenario(
            "a signed paid event for a superseded payment of the order, for PLN 1.00, never marks it paid",
            {"100": "pending"},
            (
                t(
                    "evt_1",
                    "pay_100_first",
                    "100",
                    "paid",
                    "paid",
                    amounts={"amount": 100, "currency": "PLN"},
                    result=mismatch,
                    status="pending",
                ),
                t(
                    "evt_1",
                    "pay_100_first",
                    "100",
                    "paid",
                    "paid",
                    amounts={"amount": 100, "currency": "PLN"},
                    result="duplicate",
                    status="pending",
                ),
                t(
                    "evt_2",
                    "pay_100_second",
                    "100",
                    "paid",
                    "paid",
                    amounts={"amount": 100000, "currency": currency},
                    result="applied",
                    status="paid",
                ),
            ),
            applied=(("100", "paid", "evt_2"),),
            terms={"100": terms},
            held=(("100", mismatch, "evt_1", correlation_id("pay_100_first")),),
        )
    )
    scenarios.append(
        Scenario(
            "a signed paid event for a payment never created for the order never marks it paid",
            {"1021": "pending"},
            (d("evt_1", "pay_1021_other", "1021", "paid", "paid", result=mismatch, status="pending"),),
            applied=(),
            held=(("1021", mismatch, "evt_1", correlation_id("pay_1021_other")),),
        )
    )
    scenarios.append(
        Scenario(
            "a signed paid event for the wrong amount never marks the order paid",
            {"1022": "pending"},
            (
                d(
                    "evt_1",
                    "pay_1022",
                    "1022",
                    "paid",
                    "paid",
                    amounts={"amount": 1},
                    result="amount_mismatch",
                    status="pending",
                ),
                d(
                    "evt_2",
                    "pay_1022",
                    "1022",
                    "paid",
                    "paid",
                    amounts={"amount": amount * 100},
                    result="amount_mismatch",
                    status="pending",
                ),
            ),
            applied=(),
            held=(
                ("1022", "amount_mismatch", "evt_1", correlation_id("pay_1022")),
                ("1022", "amount_mismatch", "evt_2", correlation_id("pay_1022")),
            ),
        )
    )
    scenarios.append(
        Scenario(
            "a signed paid event in the wrong currency never marks the order paid",
            {"1023": "pending"},
            (
                d(
                    "evt_1",
                    "pay_1023",
                    "1023",
                    "paid",
                    "paid",
                    amounts={"currency": other},
                    result="amount_mismatch",
                    status="pending",
                ),
            ),
            applied=(),
            held=(("1023", "amount_mismatch", "evt_1", correlation_id("pay_1023")),),
        )
    )
    scenarios.append(
        Scenario(
            "an authorization for another amount is not applied",
            {"1024": "pending"},
            (
                d(
                    "evt_1",
                    "pay_1024",
                    "1024",
                    "authorized",
                    "authorized",
                    amounts={"amount": amount - 1},
                    result="amount_mismatch",
                    status="pending",
                ),
            ),
            applied=(),
            held=(("1024", "amount_mismatch", "evt_1", correlation_id("pay_1024")),),
        )
    )
    scenarios.append(
        Scenario(
            "a superseded payment that expires leaves the order alone",
            {"1028": "pending"},
            (
                d(
                    "evt_1",
                    "pay_1028_a",
                    "1028",
                    "expired",
                    "expired",
                    result=mismatch,
                    status="pending",
                    terms=shapes.terms_for(["pay_1028_a", "pay_1028_b"]),
                ),
                d("evt_2", "pay_1028_b", "1028", "paid", "paid", result="applied", status="paid"),
            ),
            applied=(("1028", "paid", "evt_2"),),
            terms={"1028": shapes.terms_for(["pay_1028_a", "pay_1028_b"])},
        )
    )
    scenarios.append(
        Scenario(
            "an order without a recorded payment is never marked paid",
            {"1029": "pending"},
            (
                d(
                    "evt_1",
                    "pay_1029",
                    "1029",
                    "paid",
                    "paid",
                    result=mismatch,
                    status="pending",
                    terms=shapes.terms_for([]),
                ),
            ),
            applied=(),
            terms={"1029": shapes.terms_for([])},
            held=(("1029", mismatch, "evt_1", correlation_id("pay_1029")),),
        )
    )
    if {"captured_amount", "refunded_amount"} <= set(shapes.payment):
        half = amount // 2
        scenarios.append(
            Scenario(
                "a capture larger than the payment, or a paid payment with nothing captured, is not applied",
                {"1025": "pending", "1027": "pending"},
                (
                    d(
                        "evt_1",
                        "pay_1025",
                        "1025",
                        "paid",
                        "paid",
                        amounts={"captured_amount": amount + 1},
                        result="amount_mismatch",
                        status="pending",
                    ),
                    d(
                        "evt_1",
                        "pay_1027",
                        "1027",
                        "paid",
                        "paid",
                        amounts={"captured_amount": 0},
                        result="amount_mismatch",
                        status="pending",
                    ),
                ),
                applied=(),
                held=(
                    ("1025", "amount_mismatch", "evt_1", correlation_id("pay_1025")),
                    ("1027", "amount_mismatch", "evt_1", correlation_id("pay_1027")),
                ),
            )
        )
        scenarios.append(
            Scenario(
                "a partial capture is applied, and refunds are checked against what was captured",
                {"1026": "authorized"},
                (
                    d(
                        "evt_1",
                        "pay_1026",
                        "1026",
                        "paid",
                        "paid",
                        amounts={"captured_amount": half},
                        result="applied",
                        status="paid",
                    ),
                    d(
                        "evt_2",
                        "pay_1026",
                        "1026",
                        "partially_refunded",
                        "partially_refunded",
                        amounts={"captured_amount": half, "refunded_amount": half + 1},
                        result="amount_mismatch",
                        status="paid",
                    ),
                    d(
                        "evt_3",
                        "pay_1026",
                        "1026",
                        "partially_refunded",
                        "partially_refunded",
                        amounts={"captured_amount": half, "refunded_amount": 1},
                        result="applied",
                        status="partially_refunded",
                    ),
                    d(
                        "evt_4",
                        "pay_1026",
                        "1026",
                        "refunded",
                        "refunded",
                        amounts={"captured_amount": half, "refunded_amount": half - 1},
                        result="amount_mismatch",
                        status="partially_refunded",
                    ),
                    d(
                        "evt_5",
                        "pay_1026",
                        "1026",
                        "refunded",
                        "refunded",
                        amounts={"captured_amount": half, "refunded_amount": half},
                        result="applied",
                        status="refunded",
                    ),
                ),
                applied=(
                    ("1026", "paid", "evt_1"),
                    ("1026", "partially_refunded", "evt_3"),
                    ("1026", "refunded", "evt_5"),
                ),
                held=(
                    ("1026", "amount_mismatch", "evt_2", correlation_id("pay_1026")),
                    ("1026", "amount_mismatch", "evt_4", correlation_id("pay_1026")),
                ),
            )
        )
    return scenarios


def _client_vectors(shapes: Shapes) -> dict[str, Any]:
    payment_id = "pay_ä/1?x"  # must be URL-encoded into the path
    return {
        "api_base": API_BASE + "/",
        "api_key": API_KEY,
        "payment_id": payment_id,
        "payment_json": json.dumps(_payment(payment_id, "1001", "paid", shapes)),
        "created_json": json.dumps(shapes.created),
        "create_payload": shapes.create_request,
        "error_json": json.dumps(shapes.error),
        "idempotency_key": shapes.idempotency_key,
        "refused_bases": [
            "http://psp.contract.invalid/v1",
            "ftp://psp.contract.invalid",
            "https://",
            "psp.contract.invalid",
        ],
    }


# Debtor accounts as a shopper enters them at checkout: (name, IBAN, BIC, IBAN required).
DEBTOR_CASES = (
    ("a valid IBAN typed with spaces and in lower case, no BIC", "de89 3704 0044 0532 0130 00", "", False),
    ("a valid IBAN and BIC", "NL91ABNA0417164300", " abnanl2a ", False),
    ("nothing entered where the IBAN is optional", "", "", False),
    ("nothing entered where the IBAN is required", "", "", True),
    ("a BIC without an IBAN", "", "DEUTDEFF", False),
    ("a mistyped IBAN and a BIC of an unknown country", "DE89370400440532013001", "DEUTXXFF", False),
    ("an IBAN one character short", "NL91ABNA041716430", "", True),
    ("an IBAN from a country that is not accepted", "XX82WEST12345698765432", "", False),
    ("a valid IBAN and a malformed BIC", "BE68539007547034", "GEBA BEBB", True),
)


# Secrets at rest (SecretBox, PHP cores): sealed with the site's secret, opened only with it.
SECRET_BOX = {
    "site_secret": "wp-salts: K3y&s4lt!{auth}" + "x" * 40,
    "other_secret": "another site's salts",
    "plaintexts": ["sk_live_51HxQe2", "whsec_ä/€ 'quoted' \"key\"", "k" * 300],
    "pattern": r"/^pspenc:(o1|s1):[A-Za-z0-9+\/]+={0,2}$/D",
    "legacy": "key_saved_before_encryption",
}
SECRET_BOX_EXPECTED = {
    "roundtrip": True,
    "format": True,
    "fresh_iv": True,
    "other_site": True,
    "tampered": True,
    "legacy": "key_saved_before_encryption",
    "empty": "",
    "garbage": "",
    "no_site_secret": "refused",
}


def bank_id_vectors() -> dict[str, Any]:
    """The shared IBAN/BIC vectors (psp_assets/contract/bank_id_vectors.json) and the debtor cases."""
    data = json.loads(BANK_ID_VECTORS.read_text(encoding="utf-8"))
    return {
        "iban": [*data["iban_valid"], *data["iban_invalid"]],
        "bic": [*data["bic_valid"], *data["bic_invalid"]],
        "debtor": [{"name": n, "iban": i, "bic": b, "required": r} for n, i, b, r in DEBTOR_CASES],
    }


def build_vectors(
    namespace: str, bootstrap: list[str], define: Mapping[str, str], contract: Contract | None = None
) -> dict[str, Any]:
    """Every vector for one harness run; `contract` (default: the one in force) shapes events, payments
    and API answers, and is what the PSP calls are judged against."""
    contract = contract or Contract.load()
    _CONTRACTS[contract.digest] = contract
    shapes = Shapes.of(contract)
    signs, verifies, constant_time = _signature_vectors(shapes)
    return {
        "contract_digest": contract.digest,
        "mode": "contract",
        "namespace": namespace,
        "bootstrap": list(bootstrap),
        "define": dict(define),
        "expect_classes": list(CORE_CLASSES),
        "sign": signs,
        "verify": verifies,
        "constant_time": constant_time,
        "statuses": list(CANONICAL_STATUSES),
        "not_statuses": list(NOT_STATUSES),
        "webhooks": [
            {
                "name": s.name,
                "orders": dict(s.orders),
                "terms": s.order_terms(shapes),
                "held_locks": list(s.held_locks),
                "secret": SECRET,
                "tolerance": TOLERANCE,
                "steps": [{"body": st.body, "header": st.header, "now": st.now, "psp": dict(st.psp)} for st in s.steps],
            }
            for s in _webhook_scenarios(shapes)
        ]
        + webhook_vectors(contract, lambda body: sign(SECRET, NOW, body), SECRET, TOLERANCE, NOW),
        "client": _client_vectors(shapes),
        "api": api_vectors(contract, API_BASE + "/"),
        "bank_ids": bank_id_vectors(),
        "payment_request": payment_request_vectors(contract),
        "secret_box": SECRET_BOX,
    }


# --- running -------------------------------------------------------------------------------------------


def _execute(root: Path, vectors: dict[str, Any], php: PhpRuntime) -> tuple[dict[str, Any] | None, str]:
    """Run the harness once; (document, "") or (None, why it produced no document)."""
    with tempfile.TemporaryDirectory(prefix="psp-contract-") as tmp:
        path = Path(tmp) / "vectors.json"
        path.write_text(json.dumps(vectors), encoding="utf-8")
        try:
            run = php.run(HARNESS, [str(path), str(root)], cwd=root, timeout=120)
        except Exception as exc:  # a timeout or a missing binary is a failed contract, not a crash
            return None, f"the PHP harness could not run: {exc}"
    try:
        document = json.loads(run.stdout)
    except json.JSONDecodeError:
        return (
            None,
            f"the PHP harness printed no JSON (exit {run.returncode}): {(run.stderr or run.stdout).strip()[:1500]}",
        )
    if not isinstance(document, dict):
        return None, "the PHP harness printed something other than a JSON object"
    return document, ""


class _Judge:
    """Turns harness records into CheckResults."""

    def __init__(self, document: dict[str, Any], php: PhpRuntime) -> None:
        self.cases: dict[str, Any] = document.get("cases") or {}
        self.fatal: str | None = document.get("fatal")
        self.version = php.version
        self.results: list[CheckResult] = []
        self.judged: list[tuple[str, str, Callable[[Any], str]]] = []  # (name, case id, judge), in order

    def add(self, name: str, passed: bool, detail: str = "") -> None:
        self.results.append(CheckResult(CHECK, name, passed, "" if passed else detail, self.version))

    def case(self, name: str, case_id: str, judge: Callable[[Any], str]) -> None:
        """Judge one case: `judge(value)` returns "" when the value is right, else what is wrong."""
        self.judged.append((name, case_id, judge))
        record = self.cases.get(case_id)
        if record is None:
            why = f"the harness stopped first: {self.fatal}" if self.fatal else "the harness did not run it"
            self.add(name, False, f"not run ({why})")
            return
        problems = []
        if record.get("exception"):
            problems.append(f"threw {record['exception']}")
        else:
            verdict = judge(record.get("value"))
            if verdict:
                problems.append(verdict)
        if record.get("errors"):
            problems.append("PHP raised: " + " | ".join(list(dict.fromkeys(record["errors"]))[:5]))
        if record.get("output"):
            problems.append(f"printed unexpected output {record['output'][:200]!r}")
        self.add(name, not problems, "; ".join(problems))


@dataclass(frozen=True)
class Equals:
    """A judge that wants exactly `expected` (verify/contract/standalone.py writes it out for the client's CI)."""

    expected: Any

    def __call__(self, actual: Any) -> str:
        return "" if actual == self.expected else f"expected {self.expected!r}, got {actual!r}"


def _equals(expected: Any) -> Callable[[Any], str]:
    return Equals(expected)


def _as_dict(value: Any) -> dict[str, Any]:
    """PHP encodes an empty array as [] whether it was a map or a list."""
    return value if isinstance(value, dict) else {}


def _bootstrap_results(document: dict[str, Any], php: PhpRuntime) -> list[CheckResult]:
    record = document.get("bootstrap")
    name = "core loads under php -n"
    if record is None:
        return [CheckResult(CHECK, name, False, f"the harness stopped first: {document.get('fatal')}", php.version)]
    problems = []
    if record.get("exception"):
        problems.append(f"threw {record['exception']}")
    value = record.get("value") or {}
    if value.get("missing"):
        problems.append("missing classes/interfaces: " + ", ".join(value["missing"]))
    if record.get("errors"):
        problems.append("PHP raised: " + " | ".join(list(dict.fromkeys(record["errors"]))[:5]))
    if record.get("output"):
        problems.append(f"loading printed output {record['output'][:200]!r} (text or whitespace outside the PHP tags?)")
    return [CheckResult(CHECK, name, not problems, "; ".join(problems), php.version)]


def _judge_step(step: Step, got: dict[str, Any], index: int) -> list[str]:
    where = f"delivery {index + 1}"
    problems = []
    if step.exception:
        thrown = got.get("exception") or "nothing"
        if not thrown.endswith("\\" + step.exception) and thrown != step.exception:
            problems.append(f"{where}: expected {step.exception} to propagate, got {thrown}")
    else:
        if got.get("exception"):
            problems.append(f"{where}: threw {got['exception']}")
        expected = step.expected()
        actual = got.get("result")
        if actual != expected:
            problems.append(f"{where}: expected {expected}, got {actual}")
    if len(got.get("psp_calls") or []) != step.fetches:
        problems.append(f"{where}: expected {step.fetches} PSP re-fetch(es), made {len(got.get('psp_calls') or [])}")
    acquired = [entry[len("acquire ") :] for entry in got.get("locks") or [] if entry.startswith("acquire ")]
    if tuple(acquired) != step.locks:
        problems.append(f"{where}: expected lock(s) {list(step.locks)}, acquired {acquired}")
    if got.get("held_after"):
        problems.append(f"{where}: lock(s) still held afterwards: {got['held_after']}")
    return problems


def _scenario_judge(scenario: Scenario, status_map: Mapping[str, str]) -> Callable[[Any], str]:
    def judge(steps: Any) -> str:
        if not isinstance(steps, list) or len(steps) != len(scenario.steps):
            return f"expected {len(scenario.steps)} deliveries recorded, got {steps!r}"
        problems: list[str] = []
        for index, (step, got) in enumerate(zip(scenario.steps, steps, strict=True)):
            problems += _judge_step(step, got, index)
        expected_applied = [
            [ref, status, status_map.get(status, f"<{status} unmapped>"), event]
            for ref, status, event in scenario.applied
        ]
        actual_applied = steps[-1].get("applied") if steps else []
        if actual_applied != expected_applied:
            problems.append(f"orders updated with {actual_applied}, expected {expected_applied}")
        expected_held = [list(h) for h in scenario.held]
        actual_held = steps[-1].get("held") if steps else None
        if (actual_held if actual_held != {} else []) != expected_held:
            problems.append(f"orders put on hold with {actual_held}, expected {expected_held}")
        return "; ".join(problems)

    return judge


def _client_judges(judge: _Judge, vectors: dict[str, Any], shapes: Shapes) -> None:
    client = vectors["client"]
    expected_url = API_BASE + "/payments/pay_%C3%A4%2F1%3Fx"

    def get_payment(value: Any) -> str:
        requests = (value or {}).get("requests") or []
        if len(requests) != 2:
            return f"expected 2 requests, recorded {len(requests)}"
        problems = []
        ids = []
        for n, request in enumerate(requests, 1):
            headers = _as_dict(request.get("headers"))
            if request.get("method") != "GET" or request.get("url") != expected_url:
                problems.append(
                    f"call {n}: expected GET {expected_url}, sent {request.get('method')} {request.get('url')}"
                )
            if headers.get("Authorization") != f"Bearer {API_KEY}":
                problems.append(f"call {n}: Authorization header is {headers.get('Authorization')!r}")
            correlation = headers.get("X-Correlation-ID", "")
            ids.append(correlation)
            if not UUID4.fullmatch(correlation):
                problems.append(f"call {n}: X-Correlation-ID {correlation!r} is not a lowercase UUIDv4")
            agent = headers.get("User-Agent", "")
            wanted = [re.escape(v) for v in _expected_release(vectors)] or [SEMVER.pattern, BUILD_ID.pattern]
            if not all(re.search(rf"(?<![\w.]){part}(?![\w.])", agent) for part in wanted):
                problems.append(f"call {n}: User-Agent {agent!r} does not name the plugin version and build")
        if len(set(ids)) != len(ids):
            problems.append(f"X-Correlation-ID repeated across calls: {ids}")
        expected_payment = _payment(client["payment_id"], "1001", "paid", shapes)
        for returned in (value or {}).get("returned") or []:
            problems += _returned_problems("getPayment", returned, expected_payment, ("id", "status"))
        return "; ".join(problems)

    def create_payment(value: Any) -> str:
        requests = (value or {}).get("requests") or []
        if len(requests) != 1:
            return f"expected 1 request, recorded {len(requests)}"
        request, problems = requests[0], []
        headers = _as_dict(request.get("headers"))
        if request.get("method") != "POST" or request.get("url") != API_BASE + "/payments":
            problems.append(f"sent {request.get('method')} {request.get('url')}, expected POST {API_BASE}/payments")
        try:
            sent = json.loads(request.get("body") or "")
        except json.JSONDecodeError:
            sent = request.get("body")
        if sent != client["create_payload"]:
            problems.append(f"sent body {sent!r}, expected {client['create_payload']!r}")
        for name, want in (
            ("Content-Type", "application/json"),
            ("Idempotency-Key", client["idempotency_key"]),
            ("Authorization", f"Bearer {API_KEY}"),
        ):
            if headers.get(name) != want:
                problems.append(f"{name} header is {headers.get(name)!r}, expected {want!r}")
        if not UUID4.fullmatch(headers.get("X-Correlation-ID", "")):
            problems.append("no UUIDv4 X-Correlation-ID")
        want = ("id", "status", "checkout_url")
        problems += _returned_problems("createPayment", (value or {}).get("returned"), shapes.created, want)
        return "; ".join(problems)

    def http_error(value: Any) -> str:
        value = value or {}
        if not value.get("is_psp_exception"):
            return f"an HTTP 503 answer must throw PspException, got {value.get('thrown')}"
        carried, sent = value.get("correlation_id"), value.get("sent_correlation_id")
        if not carried or carried != sent:
            return f"the exception carries correlation id {carried!r}, the request sent {sent!r}"
        return ""

    refused = {base: "refused" for base in client["refused_bases"]}
    judge.case(
        "PspClient sends Bearer key, a fresh UUIDv4 X-Correlation-ID and a versioned User-Agent",
        "client:get_payment",
        get_payment,
    )
    judge.case(
        "PspClient creates a payment with a JSON body and an Idempotency-Key", "client:create_payment", create_payment
    )
    judge.case(
        "PspClient turns an HTTP error into PspException carrying the correlation id", "client:http_error", http_error
    )
    judge.case(
        "PspClient keeps the correlation id when the transport fails",
        "client:transport_failure",
        lambda value: http_error(value).replace("an HTTP 503 answer", "a transport failure"),
    )
    judge.case("PspClient refuses a non-https API base", "client:https_only", _equals(refused))


def _bank_id_judges(judge: _Judge, vectors: dict[str, Any]) -> None:
    """Every shared IBAN/BIC vector gets the verdict core/payments/iban.py gives it, case by case."""
    for value in vectors["iban"]:
        want = {"problem": iban.iban_reason(value), "normalized": iban.normalize_iban(value)}
        judge.case(
            f"BankAccount::ibanProblem({value!r}) is {want['problem'] or 'valid'!r}, as in core/payments/iban.py",
            f"iban:{value}",
            _equals(want),
        )
    for value in vectors["bic"]:
        want = {"problem": iban.bic_reason(value), "normalized": iban.normalize_bic(value)}
        judge.case(
            f"BankAccount::bicProblem({value!r}) is {want['problem'] or 'valid'!r}, as in core/payments/iban.py",
            f"bic:{value}",
            _equals(want),
        )
    for case in vectors["debtor"]:
        want = iban.check_debtor(case["iban"], case["bic"], case["required"])
        judge.case(f"BankAccount::checkDebtor: {case['name']}", f"debtor:{case['name']}", _equals(want))


def _contract_of(vectors: dict[str, Any]) -> Contract:
    """The PSP API contract `vectors` were built from."""
    digest = vectors.get("contract_digest")
    if digest in _CONTRACTS:
        return _CONTRACTS[digest]
    contract = Contract.load()
    if digest and contract.digest != digest:
        raise ContractError(
            f"the vectors were built from another PSP API contract than {contract.path}; judge them in the process "
            "that built them, or point PSP_CONTRACT_FILE at that contract"
        )
    return contract


def _returned_problems(method: str, returned: Any, answer: dict[str, Any], required: tuple[str, ...]) -> list[str]:
    """A client method hands back fields of the PSP's answer, unchanged, and at least `required` of them."""
    if not isinstance(returned, dict):
        return [f"{method} returned {returned!r}, expected fields of {answer}"]
    wrong = [f"{k}={v!r}" for k, v in returned.items() if k not in answer or answer[k] != v]
    missing = [k for k in required if k not in returned]
    problems = [f"{method} returned {', '.join(wrong)}; the PSP answered {answer}"] if wrong else []
    return problems + ([f"{method} did not return {', '.join(missing)}"] if missing else [])


def _expected_release(vectors: dict[str, Any]) -> list[str]:
    return [v for v in (vectors.get("expect_version"), vectors.get("expect_build")) if v]


def run_contract_tests(
    root: Path,
    namespace: str,
    bootstrap: list[str],
    define: dict[str, str],
    status_map: dict[str, str],
    php: PhpRuntime,
    *,
    version: str | None = None,
    build: str | None = None,
    contract: Contract | None = None,
) -> list[CheckResult]:
    """Execute the rendered core under `root` against the shared vectors, in one PHP process.

    `namespace` is the core's PHP namespace, `bootstrap` the core files to load (relative to `root`, in
    order), `define` constants to define first (e.g. ABSPATH), `status_map` the template's mapping that
    `StatusMap` must reproduce. `version` and `build`, when given, are what `Health::report()` and the
    user agent must name (the rendered tree's plugin version and build id). `contract` is the PSP API
    contract (default: the one in force, openapi.contract_file()).
    """
    vectors = build_vectors(namespace, bootstrap, define, contract)
    vectors["expect_version"], vectors["expect_build"] = version, build
    document, failure = _execute(root, vectors, php)
    if document is None:
        return [CheckResult(CHECK, "PHP harness ran", False, failure, php.version)]
    return judge_contract(document, vectors, status_map, php, version=version, build=build)


def judge_contract(
    document: dict[str, Any],
    vectors: dict[str, Any],
    status_map: dict[str, str],
    php: Any,
    *,
    version: str | None = None,
    build: str | None = None,
    runtime_key: str = "php",
    judged: list[tuple[str, str, Callable[[Any], str]]] | None = None,
) -> list[CheckResult]:
    """Judge a harness document (what the core returned for `vectors`) against Python's expectations.

    Shared by every runtime whose harness writes the same document: PHP's contract_harness.php and the
    Node harness for JavaScript cores (verify/contract/node.py). `php` only lends its `version` to the results.
    `judged`, when given, receives every case as (name, case id, judge), in order (verify/contract/standalone.py).
    """
    results = _bootstrap_results(document, php)
    loaded = (document.get("bootstrap") or {}).get("value")
    if not loaded or loaded.get("missing"):
        return results  # nothing else can run without the core's classes
    judge = _Judge(document, php)
    contract = _contract_of(vectors)
    shapes = Shapes.of(contract)
    judge_api(judge, document, vectors, contract)

    for case in vectors["sign"]:
        judge.case(
            f"Signature::sign matches the PSP's HMAC ({case['name']})", f"sign:{case['name']}", _equals(case["expect"])
        )
    for case in vectors["verify"]:
        judge.case(f"Signature::verify: {case['name']}", f"verify:{case['name']}", _equals(case["expect"]))

    def constant_time(case: dict[str, Any]) -> Callable[[Any], str]:
        def check(value: Any) -> str:
            value = value or {}
            if value.get("verdict") != case["expect"]:
                return f"verify returned {value.get('verdict')!r}, expected {case['expect']!r}"
            calls = value.get("hash_equals_calls") or []
            if not any(isinstance(c, list) and len(c) == 2 and c[0] == case["mac"] for c in calls):
                return (
                    "the MAC was not compared with hash_equals (call it unqualified with the expected MAC "
                    "first; never ==, === or strcmp)"
                )
            return ""

        return check

    for case in vectors["constant_time"]:
        judge.case(
            f"Signature::verify compares MACs with hash_equals ({case['name']})",
            f"constant_time:{case['name']}",
            constant_time(case),
        )

    for status in CANONICAL_STATUSES:
        expected = status_map.get(status)
        judge.case(
            f"StatusMap::toPlatform({status}) is the template's {expected!r}",
            f"to_platform:{status}",
            _equals(expected)
            if expected is not None
            else (lambda _v, s=status: f"template.yaml status_map lacks {s!r}"),
        )
    judge.case(
        "StatusMap::toPlatform rejects non-canonical statuses",
        "to_platform_unknown",
        _equals({s: "rejected" for s in NOT_STATUSES}),
    )
    judge.case(
        "StatusMap::isCanonical knows exactly the canonical statuses",
        "is_canonical",
        _equals({**{s: True for s in CANONICAL_STATUSES}, **{s: False for s in NOT_STATUSES}}),
    )
    targets = [*CANONICAL_STATUSES, *NOT_STATUSES]
    for origin in [None, *CANONICAL_STATUSES, *NOT_STATUSES]:
        if origin in NOT_STATUSES:
            expected_row = {to: False for to in targets}
        else:
            expected_row = {to: to in CANONICAL_STATUSES and can_transition(origin, to) for to in targets}

        def row_judge(actual: Any, want: dict[str, bool] = expected_row) -> str:
            actual = _as_dict(actual)
            wrong = [
                f"{to!r}: {actual.get(to)!r} (expected {ok})" for to, ok in want.items() if actual.get(to) is not ok
            ]
            return "disagrees with payments/statuses.py on " + ", ".join(wrong) if wrong else ""

        label = "no status yet" if origin is None else repr(origin)
        judge.case(
            f"StatusMap::canTransition from {label} matches payments/statuses.py",
            f"transitions:{'null' if origin is None else origin}",
            row_judge,
        )

    for scenario in _webhook_scenarios(shapes):
        judge.case(
            f"WebhookProcessor: {scenario.name}", f"webhook:{scenario.name}", _scenario_judge(scenario, status_map)
        )

    _client_judges(judge, vectors, shapes)
    if "secret_box" in vectors:
        judge.case(
            "SecretBox seals secrets with the site's secret, opens them only with it, and reads older plaintext",
            "secret_box",
            _equals(SECRET_BOX_EXPECTED),
        )
    if "bank_ids" in vectors:
        _bank_id_judges(judge, vectors["bank_ids"])

    def health(value: Any) -> str:
        value = _as_dict(value)
        problems = [
            f"{key} missing"
            for key in ("plugin", "version", "build", runtime_key)
            if not isinstance(value.get(key), str) or not value.get(key)
        ]
        runtime = value.get(runtime_key)
        if isinstance(runtime, str) and runtime and not MAJOR_MINOR.fullmatch(runtime):
            problems.append(f"{runtime_key} is {runtime!r}: a public route shows major.minor, never the patch level")
        if version is not None and value.get("version") != version:
            problems.append(f"version is {value.get('version')!r}, expected {version!r}")
        if build is not None and value.get("build") != build:
            problems.append(f"build is {value.get('build')!r}, expected {build!r}")
        if version is None and not SEMVER.fullmatch(str(value.get("version"))):
            problems.append(f"version {value.get('version')!r} is not x.y.z")
        if build is None and not BUILD_ID.fullmatch(str(value.get("build"))):
            problems.append(f"build {value.get('build')!r} is not a 12-hex build id")
        return "; ".join(problems)

    shown = "PHP" if runtime_key == "php" else runtime_key
    judge.case(f"Health::report names plugin, version, build and {shown}", "health", health)
    if not document.get("complete"):
        judge.add("harness completed", False, f"stopped early: {document.get('fatal')}")
    if judged is not None:
        judged.extend(judge.judged)
    return results + judge.results


def run_value_roundtrip(
    root: Path,
    namespace: str,
    bootstrap: list[str],
    define: dict[str, str],
    expected: dict[str, Any],
    php: PhpRuntime,
) -> list[CheckResult]:
    """Load the rendered core and compare `ClientInfo::values()` with `expected`, key by key, exactly.

    This is how hostile client strings (quotes, backslashes, `?>`, `*/`, newlines, any script) are proven
    to come back from the generated PHP literally.
    """
    vectors = {
        "mode": "values",
        "namespace": namespace,
        "bootstrap": list(bootstrap),
        "define": dict(define),
        "expect_classes": ["ClientInfo"],
    }
    document, failure = _execute(root, vectors, php)
    if document is None:
        return [CheckResult(CHECK, "PHP harness ran", False, failure, php.version)]
    results = _bootstrap_results(document, php)
    if not results[0].passed:
        return results
    judge = _Judge(document, php)
    for key, value in expected.items():
        judge.case(
            f"ClientInfo::values()[{key!r}] comes back literally",
            "values",
            lambda actual, k=key, v=value: (
                "" if _as_dict(actual).get(k) == v else f"expected {v!r}, got {_as_dict(actual).get(k, '<missing>')!r}"
            ),
        )
    return results + judge.results

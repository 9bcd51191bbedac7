"""Payment integrity on every platform and every PHP version a template declares (and in Node for the
Shopify app): test_report executes the shared webhook vectors in which a correctly signed event names
another payment of the order, a payment never created for it, the wrong amount or currency, or captured
and refunded amounts that do not add up, and none of them may mark the order paid."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from psp_assets.core import lineage
from psp_assets.core.config.model import load_client
from psp_assets.core.lineage import render_plugin
from psp_assets.core.payments.openapi import Contract
from psp_assets.core.plan import plan_plugin
from psp_assets.core.runtimes.php import NativePhp, PhpRuntimes
from psp_assets.core.templates.spec import load_template
from psp_assets.core.verify.contract.api import Shapes
from psp_assets.core.verify.contract.cases import integrity_scenarios
from psp_assets.core.workspace import Paths
from tests.conftest import DEMO_CLIENTS, TEMPLATES

pytestmark = pytest.mark.integration

INTEGRITY = {f"WebhookProcessor: {s.name}" for s in integrity_scenarios(Shapes.of(Contract.load()))}


def test_the_integrity_vectors_cover_every_finding() -> None:
    names = " ".join(INTEGRITY)
    for finding in ("superseded payment", "never created for the order", "wrong amount", "wrong currency",
                    "authorization for another amount", "capture larger", "refunds are checked"):  # fmt: skip
        assert finding in names


@pytest.mark.parametrize(
    ("client", "platform"),
    [
        ("nordbank", "woocommerce"),
        ("nordbank", "magento2"),
        ("alpenkasse", "prestashop"),
        ("baltic-credit", "opencart"),
    ],
)
def test_a_signed_event_for_the_wrong_payment_amount_or_currency_never_marks_an_order_paid_on_any_php(
    client: str, platform: str, runtimes: PhpRuntimes, php: NativePhp, tmp_path: Path
) -> None:
    paths = Paths(DEMO_CLIENTS, TEMPLATES, tmp_path / "data", tmp_path / "stores")
    config = load_client(DEMO_CLIENTS / f"{client}.yaml")
    source = render_plugin(plan_plugin(paths, config, platform))
    report = lineage.test_plugin(
        plan_plugin(paths, config, source.tree.platform), source.tree, source.path, php, runtimes
    )
    integrity = [r for r in report.results if r.name in INTEGRITY]
    declared = load_template(TEMPLATES, platform).spec.php.versions()
    assert Counter(r.php_version for r in integrity) == {version: len(INTEGRITY) for version in declared}
    assert [(r.php_version, r.name, r.detail) for r in integrity if not r.passed] == []
    assert [(r.check, r.name, r.detail) for r in report.failures()] == []


def test_the_shopify_apps_js_core_passes_the_same_vectors_in_node(php: NativePhp, tmp_path: Path) -> None:
    paths = Paths(DEMO_CLIENTS, TEMPLATES, tmp_path / "data", tmp_path / "stores")
    config = load_client(DEMO_CLIENTS / "nordbank.yaml")
    source = render_plugin(plan_plugin(paths, config, "shopify"))
    report = lineage.test_plugin(plan_plugin(paths, config, source.tree.platform), source.tree, source.path, php)
    integrity = [r for r in report.results if r.name in INTEGRITY]
    assert {r.name for r in integrity} == INTEGRITY
    assert [(r.name, r.detail) for r in integrity if not r.passed] == []
    assert [(r.check, r.name, r.detail) for r in report.failures()] == []

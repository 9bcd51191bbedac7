"""The IBAN/BIC vectors run through the rendered PHP core on every PHP version a template declares, as
test_report runs them (one contract process per runtime), and agree with core/payments/iban.py on each."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from psp_assets.core import lineage
from psp_assets.core.config.model import load_client
from psp_assets.core.lineage import render_plugin
from psp_assets.core.plan import plan_plugin
from psp_assets.core.runtimes.php import NativePhp, PhpRuntimes
from psp_assets.core.templates.spec import load_template
from psp_assets.core.verify.contract.cases import bank_id_vectors
from psp_assets.core.workspace import Paths
from tests.conftest import DEMO_CLIENTS, TEMPLATES

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("client", "platform"), [("nordbank", "woocommerce"), ("alpenkasse", "prestashop")])
def test_bank_vectors_agree_with_core_iban_on_every_declared_php_version(
    client: str, platform: str, runtimes: PhpRuntimes, php: NativePhp, tmp_path: Path
) -> None:
    paths = Paths(DEMO_CLIENTS, TEMPLATES, tmp_path / "data", tmp_path / "stores")
    config = load_client(DEMO_CLIENTS / f"{client}.yaml")
    source = render_plugin(plan_plugin(paths, config, platform))
    report = lineage.test_plugin(
        plan_plugin(paths, config, source.tree.platform), source.tree, source.path, php, runtimes
    )
    bank = [r for r in report.results if r.name.startswith("BankAccount")]
    vectors = bank_id_vectors()
    per_version = len(vectors["iban"]) + len(vectors["bic"]) + len(vectors["debtor"])
    declared = load_template(TEMPLATES, platform).spec.php.versions()
    assert Counter(r.php_version for r in bank) == {version: per_version for version in declared}
    assert [(r.php_version, r.name, r.detail) for r in bank if not r.passed] == []
    assert [(r.check, r.name, r.detail) for r in report.failures()] == []  # lint and the rest, every version

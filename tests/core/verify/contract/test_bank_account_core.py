"""The plugins' IBAN/BIC rules (the PHP core's BankAccount, the Shopify app's JavaScript twin) give the
verdict psp_assets/core/payments/iban.py gives, vector by vector, inside the contract run test_report makes.

A core edited after rendering (a wrong length table, a lost space character) fails exactly the vectors it
gets wrong, and the failure names the vector.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from psp_assets.core import lineage
from psp_assets.core.config.model import load_client
from psp_assets.core.lineage import render_plugin
from psp_assets.core.plan import plan_plugin
from psp_assets.core.render.engine import render, write_tree
from psp_assets.core.runtimes.php import NativePhp
from psp_assets.core.templates.spec import load_template
from psp_assets.core.verify.contract.cases import bank_id_vectors
from psp_assets.core.verify.contract.node import run_node_contract_tests
from psp_assets.core.workspace import Paths
from tests.conftest import DEMO_CLIENTS, TEMPLATES

VECTORS = bank_id_vectors()
CASES = len(VECTORS["iban"]) + len(VECTORS["bic"]) + len(VECTORS["debtor"])


def bank_results(results):
    return {r.name: r for r in results if r.name.startswith("BankAccount")}


@pytest.fixture
def nordbank_paths(tmp_path: Path) -> Paths:
    return Paths(
        configs_dir=DEMO_CLIENTS, templates_dir=TEMPLATES, data_dir=tmp_path / "data", stores_dir=tmp_path / "stores"
    )


def report_for(paths: Paths, platform: str, php: NativePhp, edit=None):
    config = load_client(DEMO_CLIENTS / "nordbank.yaml")
    source = render_plugin(plan_plugin(paths, config, platform))
    if edit is not None:
        edit(source.path)
    return lineage.test_plugin(plan_plugin(paths, config, source.tree.platform), source.tree, source.path, php)


def test_test_report_runs_every_bank_vector_through_the_php_core(nordbank_paths: Paths, php: NativePhp) -> None:
    report = report_for(nordbank_paths, "woocommerce", php)
    bank = bank_results(report.results)
    assert len(bank) == CASES > 40
    assert [(n, r.detail) for n, r in bank.items() if not r.passed] == []
    assert all(r.check == "contract" and r.php_version == php.version for r in bank.values())
    assert "BankAccount::ibanProblem('DE89370400440532013001') is 'checksum', as in core/payments/iban.py" in bank
    assert "BankAccount::bicProblem('DEUTXXFF') is 'country', as in core/payments/iban.py" in bank
    assert "BankAccount::checkDebtor: a BIC without an IBAN" in bank


def _edit(root: Path, rel: str, old: str, new: str) -> None:
    path = root / rel
    text, count = re.subn(old, new, path.read_text(), flags=re.S)
    assert count == 1, f"{old!r} matched {count} times in {rel}: the test no longer edits anything"
    path.write_text(text)


def test_a_wrong_length_in_the_rendered_table_fails_that_countrys_vectors(
    nordbank_paths: Paths, php: NativePhp
) -> None:
    report = report_for(
        nordbank_paths,
        "woocommerce",
        php,
        lambda root: _edit(root, "includes/core/BankAccount.php", r"'NL' => 18", "'NL' => 19"),
    )
    failed = {r.name: r.detail for r in report.failures()}
    assert not report.passed
    nl = "BankAccount::ibanProblem('NL91ABNA0417164300') is 'valid', as in core/payments/iban.py"
    assert nl in failed and "'problem': 'length'" in failed[nl]
    assert "BankAccount::ibanProblem('nl91 abna 0417 1643 00') is 'valid', as in core/payments/iban.py" in failed
    assert "BankAccount::checkDebtor: a valid IBAN and BIC" in failed
    assert not any("'DE89" in name for name in failed)  # the other countries still agree


def test_a_lost_non_breaking_space_fails_the_pasted_iban_vector(nordbank_paths: Paths, php: NativePhp) -> None:
    report = report_for(
        nordbank_paths,
        "magento2",
        php,
        lambda root: _edit(
            root,
            "Model/Core/BankAccount.php",
            r"SPACES = \[9, 10, 11, 12, 13, 32, 160,",
            "SPACES = [9, 10, 11, 12, 13, 32,",
        ),
    )
    failed = [r.name for r in report.failures()]
    assert failed == [
        "BankAccount::ibanProblem('DE89\\xa03704\\xa00044\\xa00532\\xa00130\\xa000') is 'valid', "
        "as in core/payments/iban.py"
    ]


def test_the_shopify_apps_javascript_core_agrees_vector_by_vector(tmp_path: Path) -> None:
    template = load_template(TEMPLATES, "shopify")
    root = write_tree(render(template, load_client(DEMO_CLIENTS / "nordbank.yaml")), tmp_path / "app")
    bank = bank_results(run_node_contract_tests(root, "src/core.mjs", dict(template.spec.status_map)))
    assert len(bank) == CASES
    assert [(n, r.detail) for n, r in bank.items() if not r.passed] == []

    broken = tmp_path / "broken"
    shutil.copytree(root, broken)
    _edit(broken, "src/core.mjs", r"return remainder === 1 \? '' : 'checksum';", "return '';")
    failed = {
        r.name for r in run_node_contract_tests(broken, "src/core.mjs", dict(template.spec.status_map)) if not r.passed
    }
    assert "BankAccount::ibanProblem('BE68539007547035') is 'checksum', as in core/payments/iban.py" in failed
    assert "BankAccount::checkDebtor: a mistyped IBAN and a BIC of an unknown country" in failed
    assert all("'checksum'" in name or "mistyped" in name or "ES91" in name for name in failed), failed

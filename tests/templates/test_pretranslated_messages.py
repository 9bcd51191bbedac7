"""Every customer-facing error and status message exists in each client locale at build time.

The catalog (templates/_shared/i18n/messages.yaml) holds every message the plugins show (the per-template
tests check that each translation call in the code names a catalog message). A message a client locale
does not translate still renders (empty), but the test report fails naming the locale and the message id,
and `build_plugin` refuses a failed report, so nothing untranslated is built. Shown here the way it
happens: a translation deleted from (a temp copy of) the templates, then the core test step.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from psp_assets.core import lineage
from psp_assets.core.errors import PspError, RenderError
from psp_assets.core.i18n import load_catalog
from psp_assets.core.lineage import build_plugin, render_plugin
from psp_assets.core.plan import plan_plugin
from psp_assets.core.runtimes.php import NativePhp
from psp_assets.core.templates.spec import PLATFORMS, SHARED_DIR
from psp_assets.core.workspace import Paths
from tests.conftest import DEMO_CLIENTS, TEMPLATES
from tests.templates.test_side_by_side import client_for

STARTED = "The payment could not be started. Please try again or choose another payment method."
ORDER = "Order %s"


def templates_without(tmp_path: Path, removed: dict[str, list[str]]) -> Path:
    """A copy of the templates whose `<locale>.yaml` files lack the given message ids."""
    copy = tmp_path / "templates"
    shutil.copytree(TEMPLATES, copy)
    for locale, msgids in removed.items():
        path = copy / SHARED_DIR / "i18n" / f"{locale}.yaml"
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if not any(line.startswith(f'"{m}":') for m in msgids)]
        assert len(lines) - len(kept) == len(msgids), f"{path.name}: expected one line per removed message"
        path.write_text("".join(kept), encoding="utf-8")
    return copy


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_deleted_translation_fails_the_test_report_naming_each_locale_and_message_id(
    platform: str, php: NativePhp, tmp_path: Path
) -> None:
    if platform == "shopify" and shutil.which("node") is None:
        pytest.skip("node is not installed")
    # Alpenkasse ships de_DE and fr_FR: one message gone from both, another from fr_FR only
    templates = templates_without(tmp_path, {"de_DE": [STARTED], "fr_FR": [STARTED, ORDER]})
    paths = Paths(tmp_path / "configs", templates, tmp_path / "data", tmp_path / "stores")
    config = client_for("alpenkasse", platform)
    assert config.locales == ["de_DE", "fr_FR"]
    source = render_plugin(plan_plugin(paths, config, platform))  # renders: the gate is the test report
    report = lineage.test_plugin(plan_plugin(paths, config, source.tree.platform), source.tree, source.path, php)

    assert not report.passed
    catalog = {r.name: r for r in report.results if r.name.endswith(": translation catalog")}
    assert not catalog["de_DE: translation catalog"].passed
    assert catalog["de_DE: translation catalog"].detail == (
        f"de_DE: no translation in templates/_shared/i18n/de_DE.yaml for message id(s) {STARTED!r}"
    )
    # listed in the catalog's order (messages.yaml), where "Order %s" comes first
    assert catalog["fr_FR: translation catalog"].detail == (
        f"fr_FR: no translation in templates/_shared/i18n/fr_FR.yaml for message id(s) {ORDER!r}; {STARTED!r}"
    )
    # nothing else is wrong with the plugin: lint, contract, packaging and the shipped files' other checks pass
    assert {r.check for r in report.failures()} == {"translations"}
    with pytest.raises(PspError, match=rf"alpenkasse\|{platform}: test report failed \(translations:"):
        build_plugin(plan_plugin(paths, config, source.tree.platform), source.tree, report)


def test_the_complete_catalog_passes_for_every_locale_a_client_lists(php: NativePhp, tmp_path: Path) -> None:
    paths = Paths(tmp_path / "configs", TEMPLATES, tmp_path / "data", tmp_path / "stores")
    config = client_for("baltic-credit", "woocommerce")
    source = render_plugin(plan_plugin(paths, config, "woocommerce"))
    report = lineage.test_plugin(plan_plugin(paths, config, source.tree.platform), source.tree, source.path, php)
    catalog = [r for r in report.results if r.name.endswith(": translation catalog")]
    assert [(r.name, r.passed) for r in catalog] == [
        ("lt_LT: translation catalog", True),
        ("pl_PL: translation catalog", True),
        ("en_GB: translation catalog", True),
    ]


def test_the_catalog_records_untranslated_messages_and_still_refuses_a_locale_without_a_catalog(
    tmp_path: Path,
) -> None:
    templates = templates_without(tmp_path, {"nl_NL": [ORDER]})
    catalog = load_catalog(templates / SHARED_DIR / "i18n", ["nl_NL", "en_US"])
    assert catalog.missing == {"nl_NL": (ORDER,)}
    assert catalog.translations["nl_NL"][ORDER] == "" and catalog.translations["en_US"][ORDER] == ORDER
    assert catalog.problems() == [f"nl_NL.yaml: message {ORDER!r} is not translated for nl_NL"]
    with pytest.raises(RenderError, match=r"'is_IS' has no translation catalog is_IS\.yaml"):
        load_catalog(templates / SHARED_DIR / "i18n", ["is_IS"])


def test_psp_validate_names_the_config_the_locale_and_the_untranslated_message(tmp_path: Path) -> None:
    templates = templates_without(tmp_path, {"nl_NL": [ORDER]})
    shutil.copytree(DEMO_CLIENTS, tmp_path / "client_configs")
    env = {
        "PATH": "/usr/bin:/bin",
        "PSP_CLIENT_CONFIGS_DIR": str(tmp_path / "client_configs"),
        "PSP_TEMPLATES_DIR": str(templates),
        "PSP_DATA_DIR": str(tmp_path / "data"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "psp_assets.cli", "validate"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 1
    assert f"nordbank.yaml: locales: nl_NL.yaml: message {ORDER!r} is not translated for nl_NL" in result.stderr

"""The WordPress readme.txt a wordpress.org reviewer reads: Contributors from the client config (default: the
client id), and WordPress/WooCommerce versions taken from the WooCommerce template.yaml alone, checked for
consistency by test_report's packaging rules."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from psp_assets.core.config.model import ConfigError, parse_client
from psp_assets.core.i18n import load_catalog
from psp_assets.core.render.engine import render, render_context, render_string
from psp_assets.core.templates.spec import SHARED_DIR, load_template
from psp_assets.core.verify import checks
from tests.conftest import TEMPLATES, client_dict

HEADER = "nordbank-payments.php"


Files = dict[str, bytes]


def rendered(templates: Path = TEMPLATES, **woocommerce: object) -> tuple[Files, Callable[[Files], list]]:
    """Nord Bank's WooCommerce plugin, and the packaging rules (as test_report runs them) for a tree."""
    data = client_dict()
    data["platforms"] = {"woocommerce": {**data["platforms"]["woocommerce"], **woocommerce}}
    config = parse_client(data, "nordbank.yaml")
    template = load_template(templates, "woocommerce")
    catalog = load_catalog(templates / SHARED_DIR / "i18n", list(config.locales))
    tree = render(template, config, catalog)
    context = render_context(template, config, catalog)
    return tree.files, lambda files: checks.check_packaging(template, files, lambda t: render_string(t, context))


def field(files: dict[str, bytes], name: str, path: str = "readme.txt") -> str:
    found = re.search(rf"^(?:\s*\*\s*)?{re.escape(name)}:\s*(.+?)\s*$", files[path].decode(), re.M)
    assert found, (path, name)
    return found.group(1)


def test_versions_come_from_the_template_data_and_agree_with_the_plugin_header() -> None:
    files, rules = rendered()
    results = rules(files)
    spec = load_template(TEMPLATES, "woocommerce").spec
    assert field(files, "Requires at least") == spec.vars["wp_requires"] == field(files, "Requires at least", HEADER)
    assert field(files, "Tested up to") == spec.vars["wp_tested"] == "7.0"
    wc_min, wc_max = spec.platform_versions[0], spec.platform_versions[-1]
    assert field(files, "WC requires at least") == wc_min == field(files, "WC requires at least", HEADER)
    assert field(files, "WC tested up to") == wc_max == field(files, "WC tested up to", HEADER)
    # WooCommerce 8.9, the oldest supported, itself requires WordPress 6.4
    assert (spec.platform_versions[0], spec.vars["wc_wp_requires"]) == ("8.9", "6.4")
    assert [(r.name, r.detail) for r in results if not r.passed] == []
    assert sum("readme.txt" in r.name for r in results) >= 8


def test_contributors_come_from_the_client_config_with_the_client_id_as_default() -> None:
    files, _ = rendered()
    assert files["readme.txt"].decode().splitlines()[1] == "Contributors: nordbank"
    files, rules = rendered(contributors=["nordbank-psp", "jdoe"])
    assert files["readme.txt"].decode().splitlines()[1] == "Contributors: nordbank-psp, jdoe"
    assert all(r.passed for r in rules(files))
    with pytest.raises(ConfigError, match=r"contributors"):
        rendered(contributors=["Nord Bank"])


def test_a_requires_at_least_older_than_woocommerce_needs_fails_the_test_report(tmp_path: Path) -> None:
    copy = tmp_path / "templates"
    shutil.copytree(TEMPLATES, copy)
    spec = copy / "woocommerce" / "template.yaml"
    spec.write_text(spec.read_text().replace('\n  wp_requires: "6.4"', '\n  wp_requires: "6.1"'))
    files, rules = rendered(copy)
    failed = {r.name.split(":")[0]: r.detail for r in rules(files) if not r.passed}
    assert failed == {"at_least": "readme.txt: 6.1 < 6.4"}


def test_a_readme_that_disagrees_with_the_plugin_header_or_lacks_contributors_fails() -> None:
    files, rules = rendered()
    readme = files["readme.txt"].decode()
    for broken, expected in [
        (readme.replace("WC tested up to: 10.2", "WC tested up to: 9.4"), "'9.4' != nordbank-payments.php: '10.2'"),
        (readme.replace("Contributors: nordbank\n", ""), "readme.txt does not match"),
        (readme.replace("Tested up to: 7.0", "Tested up to: 6.3"), "readme.txt: 6.3 < 6.4"),
    ]:
        details = [r.detail for r in rules({**files, "readme.txt": broken.encode()}) if not r.passed]
        assert any(expected in d for d in details), (expected, details)

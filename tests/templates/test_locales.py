# ruff: noqa: E501  (the Node driver below is JavaScript source in a string)
"""26+ locales ship on every platform: each complete, each keeping its messages' placeholders, each under
the code its platform knows it by, and the right-to-left one (Arabic) rendered right to left.

Placeholders: a translation must use the same %s / %1$s / {name} placeholders as its message, as often
(positional ones may be reordered). The catalog check (`<locale>: translation placeholders`) runs beside the
completeness check wherever that runs (`psp validate`, the test report); a translation that fails it renders
empty, so no platform ever formats it. Each shipped file is checked again (`<locale>: placeholders in ...`).
"""

from __future__ import annotations

import gettext
import io
import json
import re
import shutil
import subprocess
import unicodedata
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from psp_assets.core import lineage
from psp_assets.core.config.model import ClientConfig, parse_client
from psp_assets.core.errors import PspError
from psp_assets.core.i18n import (
    load_catalog,
    parse_po,
    placeholders,
    placeholders_match,
    read_locales,
    shipped_locales,
)
from psp_assets.core.lineage import build_plugin, render_plugin
from psp_assets.core.plan import plan_plugin
from psp_assets.core.render.engine import render, render_context, render_string
from psp_assets.core.runtimes.php import NativePhp
from psp_assets.core.templates.spec import PLATFORMS, SHARED_DIR, load_template
from psp_assets.core.verify import checks
from psp_assets.core.workspace import Paths
from tests.conftest import TEMPLATES
from tests.templates.test_side_by_side import client_for

I18N = TEMPLATES / SHARED_DIR / "i18n"
# issue 17: every EU/EEA bank's language, and Arabic as the right-to-left proof
REQUIRED = [
    *("de_DE", "en_GB", "es_ES", "fr_FR", "it_IT", "lt_LT", "nl_NL", "pl_PL", "pt_PT", "pt_BR", "sv_SE", "da_DK"),
    *("fi_FI", "nb_NO", "cs_CZ", "sk_SK", "hu_HU", "ro_RO", "lv_LV", "et_EE", "el_GR", "bg_BG", "hr_HR", "sl_SI"),
    *("tr_TR", "ar"),
]
# en_US and en_GB are one language folder on OpenCart (en-gb): a client ships one of them
EVERY = [loc for loc in shipped_locales(I18N) if loc != "en_US"]
IBAN_LENGTH = "An IBAN from %1$s has %2$s characters. Please check the IBAN you entered."
PAY = "Pay securely with %s"

# The code each platform knows a locale by, as the platforms publish them (WordPress: translate.wordpress.org
# locales; Magento: Framework\Locale\Config; PrestaShop: app/Resources/all_languages.json; OpenCart: its
# lowercase language folders; Shopify app catalogs: IETF tags). Only the ones that differ from the usual rule.
EXPECTED_CODES = {
    "woocommerce": {"fi_FI": "fi", "et_EE": "et", "lv_LV": "lv", "el_GR": "el", "hr_HR": "hr", "ar": "ar"},
    "magento2": {"ar": "ar_SA", "nb_NO": "nb_NO", "pt_BR": "pt_BR"},
    "prestashop": {"ar": "ar-SA", "nb_NO": "no-NO", "el_GR": "el-GR", "pt_BR": "pt-BR"},
    "opencart": {"ar": "ar", "nb_NO": "nb-no", "en_GB": "en-gb", "pt_PT": "pt-pt"},
    "shopify": {"ar": "ar", "nb_NO": "nb-NO", "pt_BR": "pt-BR"},
}
# one shipped file per locale and platform, by its code (the others are checked by check_translations)
LOCALE_FILE = {
    "woocommerce": "languages/nordbank-payments-{code}.po",
    "magento2": "i18n/{code}.csv",
    "prestashop": "translations/{code}/Modules{module}Shop.{code}.xlf",
    "opencart": "catalog/language/{code}/payment/{prefix}.php",
    "shopify": "locales/{code}.json",
}
SCRIPTS = {"ar": "ARABIC", "el_GR": "GREEK", "bg_BG": "CYRILLIC"}


def every_locale_client(platform: str, locales: list[str] | None = None) -> ClientConfig:
    data = client_for("nordbank", platform).model_dump(mode="json", exclude_none=True)
    return parse_client({**data, "locales": locales or EVERY}, "every-locale.yaml")


# --- the catalogs ----------------------------------------------------------------------------------------


def test_locales_yaml_lists_exactly_the_shipped_catalogs_and_26_or_more_ship() -> None:
    known = read_locales(I18N)
    assert sorted(known) == shipped_locales(I18N)
    assert len(EVERY) >= 26 and set(REQUIRED) <= set(EVERY)
    assert {loc for loc, info in known.items() if info["direction"] == "rtl"} == {"ar"}


def test_every_catalog_translates_every_message_with_its_placeholders() -> None:
    catalog = load_catalog(I18N, shipped_locales(I18N))
    assert catalog.missing == {} and catalog.mismatched == {} and catalog.problems() == []
    results = checks.check_catalog(catalog, EVERY) + checks.check_placeholders(catalog, EVERY)
    assert len(results) == 2 * len(EVERY) and all(r.passed for r in results)
    for locale in EVERY:
        table = catalog.translations[locale]
        # translated, not copied: only a few terms stay as they are (BIC (optional) in German, ...)
        if locale != "en_GB":
            same = [m for m in catalog.messages if table[m] == m]
            assert len(same) <= 2, (locale, same)
        # no stray whitespace or line breaks that would show in a checkout
        assert all(t == t.strip() and "\n" not in t for t in table.values()), locale
    for locale, script in SCRIPTS.items():
        text = catalog.translations[locale][PAY]
        assert any(script in unicodedata.name(ch, "") for ch in text), (locale, text)


@pytest.mark.parametrize(
    ("message", "translation", "same"),
    [
        ("%1$s does not accept %2$s.", "%2$s wird von %1$s nicht akzeptiert.", True),  # positional may reorder
        ("Order %s", "Bestellung", False),  # dropped
        ("Order %s", "Bestellung %s %s", False),  # repeated
        ("Order %s", "Bestellung %d", False),  # other type
        ("Order %s", "Bestellung %1$s", False),  # positional is another placeholder
        ("Hello {name}", "Hallo {name}", True),
        ("Hello {name}", "Hallo {nom}", False),
        ("100%% of %s", "100 %% von %s", True),  # a literal percent is no placeholder
    ],
)
def test_placeholders_are_compared_as_a_multiset(message: str, translation: str, same: bool) -> None:
    assert placeholders_match(message, translation) is same


def test_a_translation_with_other_placeholders_renders_empty_and_fails_the_test_report(
    php: NativePhp, tmp_path: Path
) -> None:
    copy = tmp_path / "templates"
    shutil.copytree(TEMPLATES, copy)
    fi = copy / SHARED_DIR / "i18n" / "fi_FI.yaml"
    line = next(x for x in fi.read_text(encoding="utf-8").splitlines() if x.startswith(json.dumps(IBAN_LENGTH)))
    fi.write_text(fi.read_text(encoding="utf-8").replace(line, line.replace("%2$s merkkiä", "monta merkkiä")))
    paths = Paths(tmp_path / "configs", copy, tmp_path / "data", tmp_path / "stores")
    config = every_locale_client("woocommerce", ["fi_FI", "sv_SE"])

    catalog = load_catalog(copy / SHARED_DIR / "i18n", ["fi_FI", "sv_SE"])
    assert catalog.mismatched == {"fi_FI": (IBAN_LENGTH,)} and catalog.translations["fi_FI"][IBAN_LENGTH] == ""
    assert catalog.problems() == [
        f"fi_FI.yaml: message {IBAN_LENGTH!r}: placeholders differ in the fi_FI translation (the message has %1$s %2$s)"
    ]
    source = render_plugin(plan_plugin(paths, config, "woocommerce"))
    assert parse_po(source.tree.files["languages/nordbank-payments-fi.po"].decode())[IBAN_LENGTH] == ""
    report = lineage.test_plugin(plan_plugin(paths, config, source.tree.platform), source.tree, source.path, php)
    failed = {r.name: r.detail for r in report.failures()}
    assert failed == {
        "fi_FI: translation placeholders": (
            "fi_FI: placeholders differ from the message in templates/_shared/i18n/fi_FI.yaml for message id(s) "
            f"{IBAN_LENGTH!r} (needs %1$s %2$s)"
        ),
        # rendered empty, so the shipped .po lacks it too: nothing formats the wrong placeholders
        "fi_FI: languages/nordbank-payments-fi.po": f"fi_FI: untranslated message ids: {IBAN_LENGTH!r}",
    }
    with pytest.raises(PspError, match=r"test report failed \(translations:"):
        build_plugin(plan_plugin(paths, config, source.tree.platform), source.tree, report)


def test_a_shipped_file_whose_translation_lost_a_placeholder_fails_its_own_check() -> None:
    config = every_locale_client("prestashop", ["pt_PT", "ar"])
    template = load_template(TEMPLATES, "prestashop")
    catalog = load_catalog(I18N, config.locales)
    tree = render(template, config, catalog)
    context = render_context(template, config, catalog)
    path = next(p for p in tree.files if p.startswith("translations/ar-SA/") and p.endswith("Shop.ar-SA.xlf"))
    arabic = catalog.translations["ar"][PAY]
    broken = {**tree.files, path: tree.files[path].replace(arabic.encode(), arabic.replace("%s", "").encode())}
    results = checks.check_translations(
        broken,
        catalog,
        config.locales,
        template.spec.translations,
        lambda text, loc: render_string(text, {**context, "locale": loc}),
        context["locale_codes"],
    )
    assert [(r.name, r.detail) for r in results if not r.passed] == [
        (f"ar: placeholders in {path}", f"{path}: placeholders differ from the message in {PAY!r}")
    ]


# --- every platform, every locale, the platform's own codes -------------------------------------------


def _translations_in(platform: str, text: str) -> dict[str, str]:
    if platform == "woocommerce":
        return parse_po(text)
    if platform == "magento2":
        return dict(checks._parse_csv(text))
    if platform == "prestashop":
        return checks._parse_translation_file(text, "xliff")
    if platform == "shopify":
        return json.loads(text)
    return checks._parse_translation_file(text, "php_array")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_locale_ships_complete_under_the_platforms_own_code(platform: str) -> None:
    config = every_locale_client(platform)
    template = load_template(TEMPLATES, platform)
    catalog = load_catalog(I18N, config.locales)
    tree = render(template, config, catalog)
    context = render_context(template, config, catalog)
    codes = context["locale_codes"]
    assert {loc: codes[loc] for loc in EXPECTED_CODES[platform]} == EXPECTED_CODES[platform]
    assert len(set(codes.values())) == len(EVERY)  # one file set per locale, none shared

    results = checks.check_translations(
        tree.files,
        catalog,
        config.locales,
        template.spec.translations,
        lambda text, loc: render_string(text, {**context, "locale": loc}),
        codes,
    )
    assert [(r.name, r.detail) for r in results if not r.passed] == []
    assert sum(r.name.endswith(": translation placeholders") for r in results) == len(EVERY)
    assert sum(": placeholders in " in r.name for r in results) >= len(EVERY)

    ids = context["ids"]
    module, prefix = str(ids["module"]).capitalize(), str(ids["prefix"])
    for locale in EVERY:
        path = LOCALE_FILE[platform].format(code=codes[locale], module=module, prefix=prefix)
        table = _translations_in(platform, tree.files[path].decode())
        if platform == "opencart":  # keyed by OpenCart's own keys
            assert table["error_iban_length"] == catalog.translations[locale][IBAN_LENGTH], locale
        else:
            assert table[PAY] == catalog.translations[locale][PAY] and table[IBAN_LENGTH], locale
    if platform == "woocommerce":  # WordPress loads <domain>-<its locale>.mo: fi, not fi_FI
        po = tree.files["languages/nordbank-payments-fi.po"].decode()
        assert '"Language: fi\\n"' in po and "languages/nordbank-payments-fi_FI.po" not in tree.files
        mo = gettext.GNUTranslations(io.BytesIO(tree.files["languages/nordbank-payments-ar.mo"]))
        assert mo.gettext(PAY) == catalog.translations["ar"][PAY]
        assert all(r.passed for r in checks.check_packaging(template, tree.files, lambda t: render_string(t, context)))
    if platform == "prestashop":
        root = ET.fromstring(tree.files[f"translations/no-NO/Modules{module}Shop.no-NO.xlf"])
        assert root.find("{urn:oasis:names:tc:xliff:document:1.2}file").get("target-language") == "no-NO"


# --- right to left -------------------------------------------------------------------------------------


@pytest.mark.parametrize("platform", ["woocommerce", "magento2", "prestashop", "opencart"])
def test_iban_and_bic_inputs_stay_left_to_right_in_a_right_to_left_checkout(platform: str) -> None:
    """The PHP platforms switch their own pages to right to left for Arabic (WordPress is_rtl(), PrestaShop's
    is_rtl language, the theme's dir); the plugin ships no stylesheet of its own. The values a buyer types,
    IBAN and BIC, are left-to-right text on every platform, so their inputs say so."""
    config = every_locale_client(platform, ["ar", "de_DE"])
    tree = render(load_template(TEMPLATES, platform), config, load_catalog(I18N, config.locales))
    inputs = [
        m.group(0)
        for path, data in tree.files.items()
        if path.endswith((".php", ".html", ".twig", ".js"))
        for m in re.finditer(
            r"<input[^>]*maxlength=\"(?:50|20)\"[^>]*>|el\( 'input', \{[^}]*maxLength: 50", data.decode()
        )
    ]
    assert inputs and all(re.search(r"dir=\"ltr\"|dir: 'ltr'", i) for i in inputs), inputs


SHOPIFY_DRIVER = r"""
import http from 'node:http';
import { pathToFileURL } from 'node:url';
const [root, dataDir] = process.argv.slice(2);
const { App } = await import(pathToFileURL(root + '/src/app.mjs').href);
const { Translator } = await import(pathToFileURL(root + '/src/i18n.mjs').href);
const shop = 'rtl-shop.myshopify.com';
const app = new App({ apiKey: 'app_client_id', apiSecret: 'shpss_rtl_secret_0123456789', appUrl: 'https://apps.example.invalid/apps/shopify/nordbank-payments', dataDir, transport: null, log: () => {} });
await app.store.write('shops', shop, { shop, access_token: app.box.seal('shpat_token'), api_key: app.box.seal('key_1'), webhook_secret: app.box.seal('whsec_1') });
const server = http.createServer(app.handler());
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const base = `http://127.0.0.1:${server.address().port}/apps/shopify/nordbank-payments`;
const get = (path, headers) => new Promise((resolve, reject) => {
  http.get(base + path, { headers }, (res) => { let body = ''; res.on('data', (c) => (body += c)); res.on('end', () => resolve({ status: res.statusCode, body })); }).on('error', reject);
});
const cookie = app.sessionCookie(shop).split(';')[0];
const out = {};
for (const [name, language] of [['arabic', 'ar-EG,ar;q=0.9'], ['german', 'de-DE']]) {
  const page = await get('/app', { Cookie: cookie, 'Accept-Language': language });
  const html = /<html lang="([^"]+)" dir="([^"]+)">/.exec(page.body);
  out[name] = { status: page.status, lang: html[1], dir: html[2], isolated_url: /\u2066https:[^\u2069<]+\/webhook\/rtl-shop\.myshopify\.com\u2069/.test(page.body), ltr_inputs: (page.body.match(/type="password"[^>]*dir="ltr"/g) || []).length, body: page.body };
  const anonymous = await get('/app', { 'Accept-Language': language });
  out[name].anonymous = { status: anonymous.status, dir: /<html lang="[^"]+" dir="([^"]+)">/.exec(anonymous.body)[1] };
}
const t = new Translator();
out.directions = Object.fromEntries(['ar', 'ar-SA', 'ar_EG', 'de', 'de-AT', 'xx'].map((l) => [l, t.direction(l)]));
server.close();
console.log(JSON.stringify(out));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_shopify_settings_page_renders_right_to_left_for_arabic(tmp_path: Path) -> None:
    """The Shopify app renders its own pages: Arabic gets dir="rtl", the webhook URL in its sentence stays
    one left-to-right run, and the secrets are typed left to right; German stays left to right."""
    config = every_locale_client("shopify", ["de_DE", "ar"])
    template = load_template(TEMPLATES, "shopify")
    catalog = load_catalog(I18N, config.locales)
    tree = render(template, config, catalog)
    root = tmp_path / "app"
    for rel, data in tree.files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    (tmp_path / "driver.mjs").write_text(SHOPIFY_DRIVER)
    done = subprocess.run(
        ["node", str(tmp_path / "driver.mjs"), str(root), str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    arabic, german = out["arabic"], out["german"]
    assert (arabic["status"], arabic["lang"], arabic["dir"]) == (200, "ar", "rtl")
    assert arabic["isolated_url"] and arabic["ltr_inputs"] == 2
    assert catalog.translations["ar"]["Settings"] in arabic["body"]
    assert (german["status"], german["lang"], german["dir"]) == (200, "de-de", "ltr")
    assert not german["isolated_url"] and "\u2066" not in german["body"]
    assert arabic["anonymous"] == {"status": 401, "dir": "rtl"} and german["anonymous"] == {"status": 401, "dir": "ltr"}
    assert out["directions"] == {"ar": "rtl", "ar-SA": "rtl", "ar_EG": "rtl", "de": "ltr", "de-AT": "ltr", "xx": "ltr"}
    register = "Register %s as the webhook URL in the merchant portal and paste its signing secret here."
    assert placeholders(catalog.translations["ar"][register]) == ["%s"]

"""The render engine's safety rules, on a small template made for the test."""

import shutil
import textwrap
from pathlib import Path

import pytest

from psp_assets.core.errors import RenderError
from psp_assets.core.i18n import compile_mo, parse_po
from psp_assets.core.render import escape
from psp_assets.core.render.engine import render, write_tree
from psp_assets.core.templates.spec import load_template
from tests.conftest import TEMPLATES, make_client

HOSTILE = [
    'It\'s "quoted"',
    "back\\slash\\",
    "?> <?php system('id'); ?>",
    "*/ evil(); /*",
    "<script>alert(1)</script>",
    "]]> <![CDATA[",
    "line\nbreak",
    "Ελληνικά • 日本語 • עברית",
    "x" * 5000,
]


@pytest.fixture
def mini(tmp_path: Path):
    """templates/woocommerce-like mini template with a PHP file, a per-locale .po and a templated path."""
    root = tmp_path / "templates"
    (root / "woocommerce" / "languages").mkdir(parents=True)
    shutil.copytree(TEMPLATES / "_shared" / "i18n", root / "_shared" / "i18n")
    (root / "woocommerce" / "template.yaml").write_text(
        textwrap.dedent(
            """\
            platform: woocommerce
            title: mini
            version: 2.3.4
            platform_versions: ["9.4"]
            php: {min: "7.4", max: "8.5"}
            status_map: {pending: pending, authorized: on-hold, paid: processing, failed: failed,
              cancelled: cancelled, expired: cancelled, refunded: refunded, partially_refunded: processing,
              chargeback: on-hold}
            vars: {ns: "{{ ids.php_namespace }}\\\\Mini"}
            compile_mo: true
            packaging: {root: "{{ ids.slug }}", artifact: "{{ ids.slug }}-{{ plugin.version }}.zip"}
            contract: {namespace: x, bootstrap: []}
            """
        )
    )
    (root / "woocommerce" / "{{ ids.slug }}.php.j2").write_text(
        "<?php\n/* Plugin Name: {{ client.name|header }} */\nnamespace {{ vars.ns|ident }};\n"
        "const TITLE = {{ client.checkout.title|php }};\nconst DESCRIPTION = {{ client.checkout.description|php }};\n"
        'echo TITLE, "\\n--\\n", DESCRIPTION;\n'
    )
    (root / "woocommerce" / "languages" / "{{ ids.text_domain }}-{{ locale }}.po.j2").write_text(
        'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
        "{% for m in messages %}msgid {{ m|po }}\nmsgstr {{ translations[locale][m]|po }}\n\n{% endfor %}"
    )
    return root


def test_hostile_checkout_text_lints_and_comes_back_literally_when_php_runs(mini, tmp_path, php):
    template = load_template(mini, "woocommerce")
    for value in HOSTILE:
        title = value.replace("\n", " ")[:200]
        client = make_client(checkout={"title": title, "description": value[:1000]})
        out = write_tree(render(template, client), tmp_path / "out")
        main = "nordbank-payments.php"
        assert php.lint(out, [main])[0].ok
        result = php.run(out / main, [], cwd=out)
        assert result.returncode == 0, result.stderr
        assert result.stdout == f"{title}\n--\n{value[:1000]}"


@pytest.mark.parametrize("value", ["a*/b", "a?>b", "line\nbreak", "<script>", "x" * 121])
def test_values_in_comments_and_headers_are_allow_listed(value):
    with pytest.raises(RenderError, match="cannot go into a comment or plugin header"):
        escape.header(escape.Tagged(value, "name"))


def test_raw_interpolation_is_refused_naming_the_file(mini):
    (mini / "woocommerce" / "raw.js.j2").write_text("var t = {{ client.checkout.title }};")
    with pytest.raises(RenderError, match=r"raw\.js\.j2: unescaped value"):
        render(load_template(mini, "woocommerce"), make_client())


def test_unknown_variable_is_an_error_not_a_blank(mini):
    (mini / "woocommerce" / "typo.php.j2").write_text("<?php echo {{ client.nmae|php }};")
    with pytest.raises(RenderError, match=r"typo\.php\.j2.*UndefinedError"):
        render(load_template(mini, "woocommerce"), make_client())


def test_sandbox_blocks_python_internals(mini):
    (mini / "woocommerce" / "evil.txt.j2").write_text("{{ client.__class__.__mro__|json }}")
    with pytest.raises(RenderError):
        render(load_template(mini, "woocommerce"), make_client())


def test_a_failed_render_leaves_the_previous_tree_untouched(mini, tmp_path):
    template = load_template(mini, "woocommerce")
    out = write_tree(render(template, make_client()), tmp_path / "out")
    before = sorted(p.name for p in out.rglob("*"))
    (mini / "woocommerce" / "broken.php.j2").write_text("{{ nope|php }}")
    with pytest.raises(RenderError):
        write_tree(render(template, make_client()), out)
    assert sorted(p.name for p in out.rglob("*")) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_per_locale_files_and_compiled_mo_translate(mini, tmp_path):
    import gettext

    tree = render(load_template(mini, "woocommerce"), make_client(locales=["nl_NL", "en_US"]))
    assert {"languages/nordbank-payments-nl_NL.po", "languages/nordbank-payments-en_US.mo"} <= set(tree.files)
    out = write_tree(tree, tmp_path / "o")
    with (out / "languages/nordbank-payments-nl_NL.mo").open("rb") as fh:
        catalog = gettext.GNUTranslations(fh)
    msgid = "Pay securely with %s"
    assert catalog.gettext(msgid) == parse_po(tree.files["languages/nordbank-payments-nl_NL.po"].decode())[msgid]
    assert catalog.gettext(msgid) != msgid


def test_missing_translation_catalog_names_the_locale(mini):
    with pytest.raises(RenderError, match="'is_IS' has no translation catalog"):
        render(load_template(mini, "woocommerce"), make_client(locales=["is_IS"]))


def test_rendering_is_deterministic_and_build_changes_with_config(mini):
    template = load_template(mini, "woocommerce")
    a, b = render(template, make_client()), render(template, make_client())
    assert a.digest() == b.digest() and a.build == b.build
    c = render(template, make_client(currencies=["EUR", "USD"]))
    assert c.build != a.build


def test_templated_path_cannot_escape(mini):
    (mini / "woocommerce" / "{{ client.checkout.title }}.txt").write_text("x")
    with pytest.raises(RenderError, match="not a safe file name"):
        render(load_template(mini, "woocommerce"), make_client(checkout={"title": "../../etc/passwd"}))


def test_mo_roundtrip_matches_gettext():
    import gettext
    import io

    mo = compile_mo({"": "Content-Type: text/plain; charset=UTF-8\n", "Hello": "Hallo", "Ünïcode": "Юникод"})
    catalog = gettext.GNUTranslations(io.BytesIO(mo))
    assert catalog.gettext("Hello") == "Hallo" and catalog.gettext("Ünïcode") == "Юникод"


@pytest.mark.parametrize(
    ("fn", "value", "expected"),
    [
        (escape.php, "a'b\\c", "'a\\'b\\\\c'"),
        (escape.json_value, "</script><b>&", '"\\u003c/script\\u003e\\u003cb\\u003e\\u0026"'),
        (escape.xml, "]]><a href='x'>&", "]]&gt;&lt;a href=&apos;x&apos;&gt;&amp;"),
        (escape.po, 'say "hi"\n\\', '"say \\"hi\\"\\n\\\\"'),
        (escape.csv, 'He said "ja"', '"He said ""ja"""'),
    ],
)
def test_escapers(fn, value, expected):
    assert fn(value) == expected

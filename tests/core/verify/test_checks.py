from psp_assets.core.i18n import Catalog
from psp_assets.core.verify.checks import check_secrets, check_translations, match_glob


def test_secret_values_key_blocks_and_build_paths_fail_the_scan_without_echoing_the_secret():
    files = {
        "a.php": b"<?php $k = 'hunter2hunter2';",
        "b.txt": b"-----BEGIN OPENSSH PRIVATE KEY-----",
        "c.php": b"<?php require '/home/builder/psp/var/data/x.php';",
        "d.txt": b"clean",
    }
    [result] = check_secrets(files, ["hunter2hunter2"], ["/home/builder/psp"])
    assert not result.passed
    assert "a.php: a configured secret value" in result.detail and "hunter2" not in result.detail
    assert "b.txt: private key block" in result.detail
    assert "c.php: absolute build path /home/builder/psp" in result.detail
    assert "d.txt" not in result.detail


def test_a_clean_tree_passes_the_scan():
    [result] = check_secrets({"a.php": b"<?php echo 'hi';"}, ["hunter2hunter2"], ["/home/builder/psp"])
    assert result.passed


def test_untranslated_and_unknown_strings_name_locale_file_and_message():
    catalog = Catalog("en_US", ("Pay now", "Payment failed"), {})
    files = {
        "x.php": b"<?php echo __('Pay now', 'd'); echo esc_html__('Not in catalog', 'd');",
        "languages/d-nl_NL.po": b'msgid "Pay now"\nmsgstr "Nu betalen"\n\nmsgid "Payment failed"\nmsgstr ""\n',
    }
    results = {r.name: r for r in check_translations(files, catalog, ["nl_NL"])}
    assert not results["strings in x.php"].passed and "'Not in catalog'" in results["strings in x.php"].detail
    po = results["nl_NL: languages/d-nl_NL.po"]
    assert not po.passed and "'Payment failed'" in po.detail and po.detail.startswith("nl_NL:")


def test_double_star_glob_matches_top_level_files_too():
    assert match_glob("plugin.php", "**/*.php") and match_glob("a/b/c.php", "**/*.php")
    assert not match_glob("a/b/c.js", "**/*.php")


def test_a_client_locale_with_no_translation_file_fails():
    catalog = Catalog("en_US", ("Pay now",), {})
    files = {"languages/d-nl_NL.po": b'msgid "Pay now"\nmsgstr "Nu betalen"\n'}
    results = check_translations(files, catalog, ["nl_NL", "de_DE"])
    failed = [r for r in results if not r.passed]
    assert [r.name for r in failed] == ["de_DE: translation file"]

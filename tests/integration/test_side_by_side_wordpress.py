# ruff: noqa: E501  (PHP sources in strings)
"""Two banks' WooCommerce plugins active in one real WordPress (Debian's package, MariaDB, PHP's built-in
server): both load without a PHP error, both health routes answer with their own build, and what each
registers in WordPress's shared registries (REST namespaces, options, database locks, script handles,
text domains, cron events) is its own. Uninstalling one leaves the other's settings alone.

WooCommerce cannot be installed here (tests/integration/conftest.py), so the plugins run as on a store
without it: REST routes, settings, locks and text domains are WordPress's own. Only the block checkout's
base class (WooCommerce's AbstractPaymentMethodType) is an empty stand-in, to let each plugin register its
checkout script with WordPress's real script registry.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from psp_assets.core.config.model import load_client
from psp_assets.core.i18n import load_catalog
from psp_assets.core.render.engine import RenderedTree, render, render_context, write_tree
from psp_assets.core.templates.spec import SHARED_DIR, load_template
from tests.conftest import DEMO_CLIENTS, TEMPLATES
from tests.integration.conftest import WordPressStore, chown_tree

pytestmark = pytest.mark.integration

CLIENTS = ("nordbank", "baltic-credit")

# Runs before wp-load.php: records, per plugin (by the plugin file that asked), the options it reads, the
# database locks it takes and the text domains it loads, and every PHP error raised in a plugin's files.
RECORDER = r"""
$plugins = json_decode(getenv('PSP_PLUGINS'), true);
$seen = ['errors' => [], 'options' => [], 'locks' => [], 'text domains' => []];
$owner = static function () use ($plugins) {
    foreach (debug_backtrace(DEBUG_BACKTRACE_IGNORE_ARGS) as $frame) {
        foreach ($plugins as $slug => $p) {
            if (isset($frame['file']) && strpos($frame['file'], $p['dir'] . '/') === 0) { return $slug; }
        }
    }
    return null;
};
set_error_handler(static function ($no, $message, $file, $line) use (&$seen, $plugins) {
    foreach ($plugins as $p) { if (strpos($file, $p['dir'] . '/') === 0) { $seen['errors'][] = "$message at $file:$line"; } }
    return false;
});
register_shutdown_function(static function () use (&$seen) {
    $last = error_get_last();
    if ($last && in_array($last['type'], [E_ERROR, E_COMPILE_ERROR, E_CORE_ERROR, E_PARSE], true)) {
        echo json_encode(['fatal' => $last['message'] . ' at ' . $last['file'] . ':' . $last['line']]);
    }
});
// WordPress turns a pre-filled $wp_filter into its hooks when it loads (WP_Hook::build_preinitialized_hooks)
$wp_filter = [
    'pre_option' => [10 => [['accepted_args' => 2, 'function' => static function ($pre, $option) use (&$seen, $owner) {
        if (($slug = $owner()) !== null) { $seen['options'][$slug][$option] = true; }
        return $pre;
    }]]],
    'query' => [10 => [['accepted_args' => 1, 'function' => static function ($sql) use (&$seen, $owner) {
        if (($slug = $owner()) !== null && preg_match("/GET_LOCK\\('([^']+)'/", $sql, $m)) { $seen['locks'][$slug][$m[1]] = true; }
        return $sql;
    }]]],
    'load_textdomain' => [10 => [['accepted_args' => 2, 'function' => static function ($domain, $mofile) use (&$seen, $owner) {
        if (($slug = $owner()) !== null) { $seen['text domains'][$slug][$domain] = $mofile; }
    }]]],
];
"""

# Runs after wp-load.php (both plugins active, init done): exercises what each plugin registers.
PROBE = r"""
eval('namespace Automattic\WooCommerce\Blocks\Payments\Integrations; abstract class AbstractPaymentMethodType {'
    . ' protected $name = ""; protected $settings = []; public function get_name() { return $this->name; } }');
$out = $seen;
$routes = array_keys(rest_get_server()->get_routes());
foreach ($plugins as $slug => $p) {
    $ns = $p['namespace'];
    $out['routes'][$slug] = array_values(array_filter($routes, static function ($r) use ($p) { return strpos($r, '/' . $p['rest'] . '/') === 0; }));
    call_user_func([$ns . '\Plugin', 'settings']);
    $lock = new ReflectionClass($ns . '\Lock');
    $lock = $lock->newInstance();
    $out['lock taken'][$slug] = $lock->acquire('payment:pay_side_by_side', 0);
    $blocks = new ReflectionClass($ns . '\Blocks_Support');
    $blocks = $blocks->newInstance();
    $blocks->initialize();
    foreach ($blocks->get_payment_method_script_handles() as $handle) {
        $out['scripts'][$slug][$handle] = wp_scripts()->registered[$handle]->src;
    }
    $out['classes'][$slug] = array_values(array_filter(get_declared_classes(), static function ($c) use ($ns) { return stripos($c, $ns . '\\') === 0; }));
}
foreach ($plugins as $slug => $p) { $out['active'][$slug] = is_plugin_active($slug . '/' . $slug . '.php'); }
$out['cron'] = [];
foreach (_get_cron_array() ?: [] as $events) { foreach (array_keys($events) as $hook) { $out['cron'][] = $hook; } }
$out['options'] = $seen['options'];
$out['locks'] = $seen['locks'];
$out['text domains'] = $seen['text domains'];
$out['errors'] = $seen['errors'];
echo json_encode($out);
"""


def run_in_wordpress(store: WordPressStore, before: str, after: str, env: dict[str, str]) -> dict[str, Any]:
    """Run PHP inside `store`: `before` ahead of wp-load.php, `after` once WordPress (and its active plugins)
    has loaded. Prints must be one JSON document."""
    script = store.docroot / f".psp-probe-{secrets.token_hex(4)}.php"
    script.write_text(
        f"<?php\n$_SERVER['HTTP_HOST'] = '127.0.0.1:{store.port}';\n$_SERVER['REQUEST_URI'] = '/';\n{before}\n"
        "require __DIR__ . '/wp-load.php';\nrequire_once ABSPATH . 'wp-admin/includes/plugin.php';\n"
        f"{after}\n"
    )
    try:
        run = subprocess.run(
            ["php", str(script)], capture_output=True, text=True, timeout=120, cwd=store.docroot, env=env
        )
    finally:
        script.unlink()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(run.stdout)


def install(store: WordPressStore, client: str, deploy_user) -> tuple[RenderedTree, dict[str, Any], Path]:
    config = load_client(DEMO_CLIENTS / f"{client}.yaml")
    template = load_template(TEMPLATES, "woocommerce")
    catalog = load_catalog(TEMPLATES / SHARED_DIR / "i18n", list(config.locales))
    tree = render(template, config, catalog)
    context = render_context(template, config, catalog)
    folder = store.docroot / "wp-content" / "plugins" / context["ids"]["slug"]
    write_tree(tree, folder)
    chown_tree(folder, deploy_user)
    return tree, context, folder


def health(store: WordPressStore, namespace: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{store.url}wp-json/{namespace}/health", timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())


def test_two_banks_plugins_run_side_by_side_in_one_wordpress(wordpress: WordPressStore, deploy_user) -> None:
    plugins = {}
    for client in CLIENTS:
        tree, context, folder = install(wordpress, client, deploy_user)
        slug = context["ids"]["slug"]
        plugins[slug] = {
            "dir": str(folder),
            "namespace": f"{context['ids']['php_namespace']}\\WooCommerce",
            "rest": context["ids"]["rest_namespace"],
            "build": tree.build,
            "gateway": context["ids"]["gateway_id"],
        }
    cron_before = set(
        json.loads(
            wordpress.php(
                "echo json_encode(array_merge([], ...array_map('array_keys', array_values(_get_cron_array() ?: []))));"
            )
        )
    )
    activated = wordpress.activate(*(f"{s}/{s}.php" for s in plugins))
    assert activated == [None, None]  # activate_plugin() returns null on success

    # both health routes answer over HTTP, each with its own plugin and build
    for slug, p in plugins.items():
        report = health(wordpress, p["rest"])
        assert (report["plugin"], report["version"], report["build"]) == (slug, "1.0.0", p["build"])
        assert report["woocommerce"] is False
    with urllib.request.urlopen(f"{wordpress.url}wp-json/", timeout=10) as response:
        namespaces = json.loads(response.read())["namespaces"]
    assert {p["rest"] for p in plugins.values()} <= set(namespaces)

    env = {**os.environ, "PSP_PLUGINS": json.dumps(plugins)}
    seen = run_in_wordpress(wordpress, RECORDER, PROBE, env)
    assert "fatal" not in seen, seen
    assert seen["errors"] == []
    assert seen["active"] == {slug: True for slug in plugins}
    (a, pa), (b, _) = plugins.items()

    def disjoint(kind: str, values: dict[str, Any]) -> None:
        mine, theirs = set(values.get(a, [])), set(values.get(b, []))
        assert mine and theirs, f"{kind}: {a} found {sorted(mine)}, {b} found {sorted(theirs)}"
        assert not {x.lower() for x in mine} & {x.lower() for x in theirs}, f"{a} and {b} share {kind}"

    disjoint("REST routes", seen["routes"])
    assert sorted(seen["routes"][a]) == [f"/{pa['rest']}/health", f"/{pa['rest']}/webhook"]
    disjoint("options", seen["options"])
    assert f"woocommerce_{pa['gateway']}_settings" in seen["options"][a]
    disjoint("database locks", seen["locks"])
    assert seen["lock taken"] == {a: True, b: True}
    disjoint("script handles", seen["scripts"])
    for slug in plugins:
        assert all(f"/wp-content/plugins/{slug}/" in src for src in seen["scripts"][slug].values())
    disjoint("text domains", seen["text domains"])
    for slug, p in plugins.items():
        assert list(seen["text domains"][slug]) == [slug]
        assert Path(seen["text domains"][slug][slug]).parent == Path(p["dir"]) / "languages"
    disjoint("PHP classes", seen["classes"])
    new_cron = set(seen["cron"]) - cron_before
    assert all(any(p["gateway"] in hook for p in plugins.values()) for hook in new_cron), new_cron


def test_uninstalling_one_banks_plugin_keeps_the_others_settings_and_locks(
    wordpress: WordPressStore, deploy_user
) -> None:
    plugins = {}
    for client in CLIENTS:
        _, context, folder = install(wordpress, client, deploy_user)
        plugins[context["ids"]["slug"]] = {
            "dir": str(folder),
            "namespace": f"{context['ids']['php_namespace']}\\WooCommerce",
            "gateway": context["ids"]["gateway_id"],
        }
    wordpress.activate(*(f"{s}/{s}.php" for s in plugins))
    (keep, kept), (remove, removed) = plugins.items()
    # each plugin's settings, and a lock row as its Lock writes one where MySQL's GET_LOCK is unavailable
    setup = "".join(
        f"update_option('woocommerce_{p['gateway']}_settings', ['enabled' => 'yes', 'api_key' => 'key_{p['gateway']}']);"
        f"$key = new ReflectionMethod('{p['namespace']}\\\\Lock', 'key'); $key->setAccessible(true);"
        f"$GLOBALS['wpdb']->insert($GLOBALS['wpdb']->options, ['option_name' => $key->invoke(new {p['namespace']}\\Lock(), 'payment:pay_1'), 'option_value' => '9999999999', 'autoload' => 'no']);"
        for p in plugins.values()
    )
    uninstall = (
        f"define('WP_UNINSTALL_PLUGIN', '{remove}/{remove}.php'); include WP_PLUGIN_DIR . '/{remove}/uninstall.php';"
    )
    gateways = json.dumps({slug: p["gateway"] for slug, p in plugins.items()})
    report = (
        f"$settings = array_map(static function ($g) {{ return get_option('woocommerce_' . $g . '_settings', null); }}, json_decode('{gateways}', true));"
        "global $wpdb; $like = $wpdb->esc_like('psp_') . '%';"
        "echo json_encode(['settings' => $settings, 'locks' => $wpdb->get_col($wpdb->prepare("
        '"SELECT option_name FROM {$wpdb->options} WHERE option_name LIKE %s ORDER BY option_name", $like))]);'
    )
    env = {**os.environ, "PSP_PLUGINS": json.dumps(plugins)}
    before = run_in_wordpress(wordpress, "", setup + report, env)
    assert all(before["settings"].values()) and len(before["locks"]) == 2
    after = run_in_wordpress(wordpress, "", uninstall + report, env)
    assert after["settings"][remove] is None
    assert after["settings"][keep] == {"enabled": "yes", "api_key": f"key_{kept['gateway']}"}
    assert after["locks"] == [lock for lock in before["locks"] if lock.startswith(kept["gateway"] + "_lock_")]
    assert removed["gateway"] not in " ".join(after["locks"])

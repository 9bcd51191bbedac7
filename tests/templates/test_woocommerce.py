# ruff: noqa: E501  (the stand-in WordPress below is PHP source in a string)
"""The WooCommerce template: a plugin a WordPress installer accepts, that lints on PHP, passes the shared
contract, ships complete translations, and handles checkout, webhooks and refunds when it runs.

The runtime tests load the rendered plugin into a stand-in WordPress/WooCommerce (`WP_STANDIN` below):
WooCommerce is in no package registry this machine reaches, so only the API the plugin calls is
imitated, recording what the plugin asks of it. Everything else is real: the rendered files, PHP, the
plugin's own core.
"""

from __future__ import annotations

import gettext
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from psp_assets.core.config.model import ClientConfig, load_client
from psp_assets.core.i18n import load_catalog
from psp_assets.core.render.engine import RenderedTree, render, render_context, render_string, write_tree
from psp_assets.core.runtimes.php import NativePhp
from psp_assets.core.templates.spec import load_template
from psp_assets.core.verify import checks
from psp_assets.core.verify.contract.bridge import contract_results
from psp_assets.core.verify.contract.cases import run_value_roundtrip
from tests.conftest import DEMO_CLIENTS, TEMPLATES, make_client

WP_STANDIN = r"""<?php
// A stand-in WordPress (and, with "woo", WooCommerce): only the API the plugin calls, recording what it
// is asked to do. Usage: php -n runner.php <bare|woo> <gateway id> <main plugin file> [<more main files>]
error_reporting(-1);
$GLOBALS['errors'] = [];
set_error_handler(static function ($no, $msg, $file, $line) {
    $GLOBALS['errors'][] = $msg . ' at ' . basename($file) . ':' . $line;
    return true;
});
define('ABSPATH', __DIR__ . '/');
define('AUTH_KEY', 'wp-auth-key: 4]Zq{8X;n~0J'); define('AUTH_SALT', 'wp-auth-salt: p9L!c2@Vb#5e');

$GLOBALS['hooks'] = [];
$GLOBALS['options'] = [];
$GLOBALS['routes'] = [];
$GLOBALS['http'] = [];
$GLOBALS['http_responses'] = [];
$GLOBALS['notices'] = [];
$GLOBALS['logs'] = [];
$GLOBALS['orders'] = [];
$GLOBALS['textdomains'] = [];
$GLOBALS['scripts'] = [];

function add_action($hook, $cb, $prio = 10, $args = 1) { $GLOBALS['hooks'][$hook][] = [$cb, $args]; return true; }
function add_filter($hook, $cb, $prio = 10, $args = 1) { return add_action($hook, $cb, $prio, $args); }
function remove_filter($hook, $cb, $prio = 10) {
    foreach ($GLOBALS['hooks'][$hook] ?? [] as $i => $h) { if ($h[0] === $cb) { unset($GLOBALS['hooks'][$hook][$i]); } }
    return true;
}
function do_action($hook, ...$args) {
    foreach ($GLOBALS['hooks'][$hook] ?? [] as $h) { call_user_func_array($h[0], array_slice($args, 0, $h[1])); }
}
function apply_filters($hook, $value, ...$args) {
    foreach ($GLOBALS['hooks'][$hook] ?? [] as $h) {
        $value = call_user_func_array($h[0], array_slice(array_merge([$value], $args), 0, $h[1]));
    }
    return $value;
}
function plugin_basename($file) { return basename(dirname($file)) . '/' . basename($file); }
function plugins_url($path, $file) { return 'https://shop.example/wp-content/plugins/' . basename(dirname($file)) . '/' . $path; }
function load_plugin_textdomain($domain, $deprecated, $path) { $GLOBALS['textdomains'][] = [$domain, $path]; return true; }
function register_rest_route($ns, $route, $args) { $GLOBALS['routes'][$ns . $route] = $args; return true; }
function rest_url($path) { return 'https://shop.example/wp-json/' . ltrim($path, '/'); }
function admin_url($path) { return 'https://shop.example/wp-admin/' . $path; }
function get_option($key, $default = false) { $GLOBALS['option_reads'][] = $key; return array_key_exists($key, $GLOBALS['options']) ? $GLOBALS['options'][$key] : $default; }
function update_option($key, $value) { $GLOBALS['options'][$key] = $value; return true; }
function delete_option($key) { unset($GLOBALS['options'][$key]); return true; }
function __($text, $domain) { $GLOBALS['domains'][$domain] = true; return $text; }
function esc_html__($text, $domain) { return esc_html(__($text, $domain)); }
function esc_html($text) { return htmlspecialchars((string) $text, ENT_QUOTES, 'UTF-8', false); }
function esc_attr($text) { return esc_html($text); }
function esc_url($url) { return esc_html($url); }
function wp_kses($text, $allowed) { return strip_tags($text, '<' . implode('><', array_keys($allowed)) . '>'); }
function wpautop($text) { return '<p>' . str_replace("\n", "<br />\n", $text) . "</p>\n"; }
function current_user_can($cap) { return true; }
function is_wp_error($thing) { return $thing instanceof WP_Error; }
function wp_parse_url($url, $component = -1) { return parse_url($url, $component); }
function get_bloginfo($what) { return '6.8'; }
function determine_locale() { return 'nl_NL'; }
function absint($value) { return abs((int) $value); }
function __return_true() { return true; }
function wp_register_script($handle, $src, $deps, $ver, $footer) { $GLOBALS['scripts'][$handle] = $src; return true; }
function wp_remote_request($url, $args) {
    $GLOBALS['http'][] = ['url' => $url, 'method' => $args['method'], 'headers' => $args['headers'], 'body' => $args['body'] ?? null];
    $next = array_shift($GLOBALS['http_responses']);
    return $next === null ? new WP_Error('http_request_failed', 'no route to host') : ['response' => ['code' => $next[0]], 'body' => $next[1]];
}
function wp_remote_retrieve_response_code($response) { return $response['response']['code']; }
function wp_remote_retrieve_body($response) { return $response['body']; }

class WP_Error {
    public $code; public $message;
    public function __construct($code = '', $message = '') { $this->code = $code; $this->message = $message; }
    public function get_error_message() { return $this->message; }
}
class WP_REST_Request {
    private $body; private $headers;
    public function __construct($body, array $headers) { $this->body = $body; $this->headers = $headers; }
    public function get_body() { return $this->body; }
    public function get_header($key) { $key = strtolower(str_replace('-', '_', $key)); return $this->headers[$key] ?? null; }
}
class WP_REST_Response {
    public $data; public $status; public $headers = [];
    public function __construct($data, $status) { $this->data = $data; $this->status = $status; }
    public function header($key, $value) { $this->headers[$key] = $value; }
}
class wpdb {
    public $options = 'wp_options';
    public $held = [];
    public function prepare($query, ...$args) { return vsprintf(str_replace(['%s', '%d'], ["'%s'", '%d'], $query), $args); }
    public function suppress_errors($suppress = true) { return false; }
    public function get_var($query) {
        if (preg_match("/GET_LOCK\\('([^']+)'/", $query, $m)) { if (isset($this->held[$m[1]])) { return '0'; } $this->held[$m[1]] = true; return '1'; }
        if (preg_match("/RELEASE_LOCK\\('([^']+)'/", $query, $m)) { unset($this->held[$m[1]]); return '1'; }
        return null;
    }
    public function query($query) { return 1; }
    public function delete($table, $where) { return 1; }
    public function esc_like($text) { return addcslashes($text, '_%\\'); }
}
$GLOBALS['wpdb'] = new wpdb();

if ($argv[1] === 'woo') {
    define('WC_VERSION', '9.4.0');
    function get_woocommerce_currency() { return 'EUR'; }
    function wc_add_notice($message, $type) { $GLOBALS['notices'][] = [$type, $message]; }
    function wc_get_logger() {
        return new class {
            public function log($level, $message, $context) { $GLOBALS['logs'][] = $level . ': ' . $message . ' [' . $context['source'] . ']'; }
        };
    }
    function wc_get_order($id) { return $GLOBALS['orders'][(int) $id] ?? false; }
    function wp_unslash($value) { return is_string($value) ? stripslashes($value) : $value; }
    function wc_clean($value) { return is_scalar($value) ? trim(preg_replace('/[\r\n\t ]+/', ' ', strip_tags((string) $value))) : $value; }

    class WC_Settings_API {
        public $plugin_id = 'woocommerce_'; public $id = ''; public $settings = []; public $form_fields = [];
        public function init_settings() {
            $saved = get_option($this->plugin_id . $this->id . '_settings', null);
            $defaults = array_map(static function ($f) { return $f['default'] ?? ''; }, $this->form_fields);
            $this->settings = is_array($saved) ? array_merge($defaults, $saved) : $defaults;
            $this->enabled = 'yes' === $this->settings['enabled'] ? 'yes' : 'no';
        }
        public function get_option($key, $empty = null) { return $this->settings[$key] ?? ($this->form_fields[$key]['default'] ?? ''); }
        public function process_admin_options() { return true; }
        public function validate_password_field($key, $value) { return trim(stripslashes((string) $value)); }
        public function admin_options() { echo '<table class="form-table"></table>'; }
    }
    class WC_Payment_Gateway extends WC_Settings_API {
        public $enabled = 'no'; public $title; public $description; public $method_title; public $method_description;
        public $has_fields; public $supports = ['products']; public $icon;
        public function is_available() { return 'yes' === $this->enabled; }
        public function get_title() { return apply_filters('woocommerce_gateway_title', $this->title, $this->id); }
        public function get_description() { return apply_filters('woocommerce_gateway_description', $this->description, $this->id); }
        public function get_return_url($order = null) { return 'https://shop.example/checkout/order-received/' . ($order ? $order->get_id() : ''); }
        public function supports($feature) { return in_array($feature, $this->supports, true); }
        public function validate_fields() { return true; }
    }
    class WC_Order {
        public $notes = []; public $saves = 0; public $status = 'pending'; public $meta = []; public $transaction_id = '';
        private $id; private $method; private $total;
        public function __construct($id, $method, $total) { $this->id = $id; $this->method = $method; $this->total = $total; }
        public function get_id() { return $this->id; }
        public function get_payment_method() { return $this->method; }
        public function get_total() { return $this->total; }
        public function get_currency() { return 'EUR'; }
        public function get_order_key() { return 'wc_order_k' . $this->id; }
        public function get_order_number() { return (string) $this->id; }
        public function get_billing_email() { return 'shopper@example.org'; }
        public function get_billing_country() { return 'NL'; }
        public function get_cancel_order_url_raw() { return 'https://shop.example/cart/?cancel_order=true'; }
        public function get_meta($key, $single = true) { return $this->meta[$key] ?? ''; }
        public function update_meta_data($key, $value) { $this->meta[$key] = $value; }
        public function set_transaction_id($id) { $this->transaction_id = $id; }
        public function add_order_note($note) { $this->notes[] = $note; return count($this->notes); }
        public function save() { $this->saves++; return $this->id; }
        public function has_status($status) { return in_array($this->status, (array) $status, true); }
        public function get_refunds() { return [1]; }
        public function update_status($status, $note = '') {
            if ($status !== $this->status) { $this->status = $status; if ($note !== '') { $this->notes[] = $note; } }
            $this->save();
            return true;
        }
        public function payment_complete($transaction_id = '') {
            if (!$this->has_status(['on-hold', 'pending', 'failed', 'cancelled'])) { return false; }
            $this->transaction_id = $transaction_id;
            $this->status = apply_filters('woocommerce_payment_complete_order_status', 'processing', $this->id, $this);
            $this->save();
            return true;
        }
    }
}

// --- the scenario ------------------------------------------------------------------------------------
$mode = $argv[1];
$gatewayId = $argv[2];
$out = [];
foreach (array_slice($argv, 3) as $main) {
    require $main;
}
if ($mode === 'woo') {
    eval('namespace Automattic\WooCommerce\Blocks\Payments\Integrations; abstract class AbstractPaymentMethodType {'
        . ' protected $name = ""; protected $settings = [];'
        . ' public function get_setting($name, $default = "") { return $this->settings[$name] ?? $default; } }');
}
do_action('plugins_loaded');
do_action('init');
do_action('rest_api_init');
$out['routes'] = array_keys($GLOBALS['routes']);
$out['textdomains'] = $GLOBALS['textdomains'];
$out['gateways'] = apply_filters('woocommerce_payment_gateways', []);
ob_start();
do_action('admin_notices');
$out['admin_notices'] = ob_get_clean();

$route = static function (string $suffix) {
    foreach ($GLOBALS['routes'] as $path => $args) {
        if (substr($path, -strlen($suffix)) === $suffix) {
            return $args;
        }
    }
    throw new RuntimeException('no route ' . $suffix);
};
$health = call_user_func($route('/health')['callback']);
$out['health'] = ['status' => $health->status, 'data' => $health->data, 'methods' => $route('/health')['methods']];
$webhook = $route('/webhook');
$out['webhook_route'] = ['methods' => $webhook['methods'], 'permission' => $webhook['permission_callback']];
$send = static function (string $body, array $headers) use ($webhook): array {
    $response = call_user_func($webhook['callback'], new WP_REST_Request($body, $headers));
    return ['status' => $response->status, 'result' => $response->data['result']];
};
$out['unconfigured_webhook'] = $send('{}', []);

if ($mode === 'woo') {
    update_option('woocommerce_' . $gatewayId . '_settings', [
        'enabled' => 'yes', 'api_key' => 'key_abc_123', 'webhook_secret' => 'whsec_stub_secret', 'testmode' => 'no', 'debug' => 'yes',
    ]);
    $gatewayClass = $out['gateways'][0];
    $gateway = new $gatewayClass();
    // the settings form stores the secrets sealed; everything reads them opened (older plaintext too)
    $sealed = ['api_key' => $gateway->validate_password_field('api_key', 'key_abc_123'), 'webhook_secret' => $gateway->validate_password_field('webhook_secret', 'whsec_stub_secret')];
    $out['sealed'] = $sealed + ['title' => $gateway->validate_password_field('title', 'plain')];
    update_option('woocommerce_' . $gatewayId . '_settings', array_merge(get_option('woocommerce_' . $gatewayId . '_settings'), $sealed));
    $gateway = new $gatewayClass();
    $out['opened'] = [$gateway->get_option('api_key'), $gateway->get_option('webhook_secret')];
    $out['available'] = $gateway->is_available();
    $out['title'] = $gateway->get_title();
    $out['supports'] = $gateway->supports;
    ob_start();
    $gateway->payment_fields();
    $out['payment_fields'] = ob_get_clean();
    ob_start();
    $gateway->admin_options();
    $out['admin_options'] = ob_get_clean();

    $order = new WC_Order(1001, $gatewayId, '12.50');
    $GLOBALS['orders'][1001] = $order;
    $GLOBALS['http_responses'][] = [201, json_encode(['id' => 'pay_1', 'status' => 'pending', 'checkout_url' => 'https://pay.example/c/1'])];
    $out['process_payment'] = $gateway->process_payment(1001);
    $out['create_request'] = $GLOBALS['http'][0];
    $out['after_checkout'] = ['status' => $order->status, 'meta' => $order->meta, 'transaction_id' => $order->transaction_id, 'notes' => $order->notes];

    $sign = static function (string $body, ?int $ts = null): string {
        $ts = $ts === null ? time() : $ts;
        return 't=' . $ts . ',v1=' . hash_hmac('sha256', $ts . '.' . $body, 'whsec_stub_secret');
    };
    $event = static function (string $id, string $status, string $ref = '1001', string $payment = 'pay_1'): string {
        $data = ['payment_id' => $payment, 'order_reference' => $ref, 'status' => $status];
        return json_encode(['id' => $id, 'type' => 'payment.updated', 'created' => time(), 'data' => $data]);
    };
    $psp = static function (string $status, string $ref = '1001', string $payment = 'pay_1', int $amount = 1250, string $currency = 'EUR'): void {
        $GLOBALS['http_responses'][] = [200, json_encode(['id' => $payment, 'status' => $status, 'amount' => $amount, 'currency' => $currency, 'order_reference' => $ref])];
    };
    $steps = [];
    $paid = $event('evt_1', 'paid');
    $psp('paid');
    $steps['paid'] = $send($paid, ['x_psp_signature' => $sign($paid)]);
    $psp('paid');
    $steps['same event again'] = $send($paid, ['x_psp_signature' => $sign($paid)]);
    $late = $event('evt_2', 'pending');
    $psp('pending');
    $steps['late pending'] = $send($late, ['x_psp_signature' => $sign($late)]);
    $refunded = $event('evt_3', 'refunded');
    $steps['wrong signature'] = $send($refunded, ['x_psp_signature' => 't=' . time() . ',v1=' . str_repeat('0', 64)]);
    $steps['no signature'] = $send($refunded, []);
    $steps['stale'] = $send($refunded, ['x_psp_signature' => $sign($refunded, time() - 3600)]);
    $steps['psp unreachable'] = $send($refunded, ['x_psp_signature' => $sign($refunded)]);
    $GLOBALS['orders'][1002] = new WC_Order(1002, 'cod', '5.00');
    $other = $event('evt_4', 'paid', '1002', 'pay_2');
    $psp('paid', '1002', 'pay_2');
    $steps['order of another gateway'] = $send($other, ['x_psp_signature' => $sign($other)]);
    $partial = $event('evt_5', 'partially_refunded');
    $psp('partially_refunded');
    $steps['partial refund'] = $send($partial, ['x_psp_signature' => $sign($partial)]);
    $steps['oversized'] = $send(str_repeat('x', 70000), []);
    $out['steps'] = $steps;
    $out['after_webhooks'] = ['status' => $order->status, 'meta' => $order->meta, 'transaction_id' => $order->transaction_id, 'notes' => $order->notes];
    $out['other_order_status'] = $GLOBALS['orders'][1002]->status;

    $GLOBALS['http_responses'][] = [201, '{"id":"ref_1","status":"pending"}'];
    $refundBefore = count($GLOBALS['http']);
    $refund = $gateway->process_refund(1001, '5.00', 'Damaged');
    $out['refund'] = $refund instanceof WP_Error ? $refund->get_error_message() : $refund;
    $out['refund_request'] = $GLOBALS['http'][$refundBefore] ?? null;
    $GLOBALS['http_responses'][] = [500, '{}'];
    $failedRefund = $gateway->process_refund(1001, '1.00', '');
    $out['failed_refund'] = $failedRefund instanceof WP_Error ? $failedRefund->get_error_message() : $failedRefund;

    // authorization, then capture when the merchant completes the order (only with manual capture)
    $GLOBALS['http_responses'] = [];
    $authOrder = new WC_Order(1003, $gatewayId, '20.00');
    $GLOBALS['orders'][1003] = $authOrder;
    $GLOBALS['http_responses'][] = [201, json_encode(['id' => 'pay_3', 'status' => 'pending', 'checkout_url' => 'https://pay.example/c/3'])];
    $gateway->process_payment(1003);
    $authorized = $event('evt_6', 'authorized', '1003', 'pay_3');
    $psp('authorized', '1003', 'pay_3', 2000);
    $steps['authorized'] = $send($authorized, ['x_psp_signature' => $sign($authorized)]);
    $out['authorized_status'] = $authOrder->status;

    // a correctly signed event never marks an order paid for another amount, currency or payment
    $GLOBALS['http_responses'] = [];
    foreach ([1004 => 'pay_4', 1005 => 'pay_5a'] as $id => $paymentId) {
        $GLOBALS['orders'][$id] = new WC_Order($id, $gatewayId, '1000.00');
        $GLOBALS['http_responses'][] = [201, json_encode(['id' => $paymentId, 'status' => 'pending', 'checkout_url' => 'https://pay.example/c/' . $id])];
        $gateway->process_payment($id);
    }
    $GLOBALS['http_responses'][] = [201, json_encode(['id' => 'pay_5b', 'status' => 'pending', 'checkout_url' => 'https://pay.example/c/5b'])];
    $gateway->process_payment(1005); // a second attempt: pay_5b supersedes pay_5a
    $cheap = $event('evt_7', 'paid', '1004', 'pay_4');
    $psp('paid', '1004', 'pay_4', 100, 'PLN');
    $steps['paid for PLN 1.00'] = $send($cheap, ['x_psp_signature' => $sign($cheap)]);
    $superseded = $event('evt_8', 'paid', '1005', 'pay_5a');
    $psp('paid', '1005', 'pay_5a', 100000);
    $steps['superseded payment paid'] = $send($superseded, ['x_psp_signature' => $sign($superseded)]);
    $current = $event('evt_9', 'paid', '1005', 'pay_5b');
    $psp('paid', '1005', 'pay_5b', 100000);
    $steps['current payment paid'] = $send($current, ['x_psp_signature' => $sign($current)]);
    foreach ([1004, 1005] as $id) {
        $held = $GLOBALS['orders'][$id];
        $out['mismatch'][$id] = ['status' => $held->status, 'notes' => $held->notes, 'meta' => $held->meta];
    }
    $authOrder->status = 'completed';
    $GLOBALS['http_responses'][] = [201, '{"id":"cap_1","status":"pending"}'];
    $captureBefore = count($GLOBALS['http']);
    do_action('woocommerce_order_status_completed', 1003, $authOrder);
    $out['capture_requests'] = array_slice($GLOBALS['http'], $captureBefore);
    $out['steps'] = $steps;

    $registry = new class {
        public $registered = [];
        public function register($method) { $this->registered[] = $method; }
    };
    do_action('woocommerce_blocks_payment_method_type_registration', $registry);
    $blocks = $registry->registered[0];
    $blocks->initialize();
    $out['blocks'] = [
        'active' => $blocks->is_active(),
        'handles' => $blocks->get_payment_method_script_handles(),
        'scripts' => $GLOBALS['scripts'],
        'data' => $blocks->get_payment_method_data(),
    ];
    $out['notices'] = $GLOBALS['notices'];
    $out['logs'] = $GLOBALS['logs'];
    $out['http_count'] = count($GLOBALS['http']);
}
$out['domains'] = array_keys($GLOBALS['domains'] ?? []);
$out['errors'] = $GLOBALS['errors'];
echo json_encode($out, JSON_PRETTY_PRINT | JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE), "\n";
"""


@dataclass(frozen=True)
class Plugin:
    root: Path
    tree: RenderedTree
    config: ClientConfig
    context: dict[str, Any]

    @property
    def main(self) -> Path:
        return self.root / f"{self.context['ids']['slug']}.php"

    def text(self, rel: str) -> str:
        return self.tree.files[rel].decode()


def render_plugin(config: ClientConfig, out: Path) -> Plugin:
    template = load_template(TEMPLATES, "woocommerce")
    catalog = load_catalog(TEMPLATES / "_shared" / "i18n", list(config.locales))
    tree = render(template, config, catalog)
    write_tree(tree, out)
    return Plugin(out, tree, config, render_context(template, config, catalog))


def demo(client_id: str, out: Path) -> Plugin:
    return render_plugin(load_client(DEMO_CLIENTS / f"{client_id}.yaml"), out / client_id)


@pytest.fixture(scope="module")
def nordbank(tmp_path_factory: pytest.TempPathFactory) -> Plugin:
    return demo("nordbank", tmp_path_factory.mktemp("woo"))


@pytest.fixture(scope="module")
def baltic(tmp_path_factory: pytest.TempPathFactory) -> Plugin:
    return demo("baltic-credit", tmp_path_factory.mktemp("woo"))


def run_standin(php: NativePhp, workdir: Path, mode: str, gateway_id: str, *mains: Path) -> dict[str, Any]:
    script = workdir / "wp-standin.php"
    script.write_text(WP_STANDIN)
    run = php.run(script, [mode, gateway_id, *map(str, mains)], cwd=workdir)
    assert run.returncode == 0, run.stderr
    try:
        return json.loads(run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"the stand-in printed no JSON: {run.stdout[:2000]} {run.stderr[:2000]}")


# --- packaging: what WordPress's installer and the checks expect -----------------------------------------


@pytest.mark.parametrize("client_id", ["nordbank", "baltic-credit"])
def test_demo_client_plugin_lints_and_passes_packaging_and_translation_checks(
    client_id: str, php: NativePhp, tmp_path: Path
) -> None:
    plugin = demo(client_id, tmp_path)
    template = load_template(TEMPLATES, "woocommerce")
    catalog = load_catalog(TEMPLATES / "_shared" / "i18n", list(plugin.config.locales))
    lint = checks.check_lint(plugin.root, plugin.tree.files, template, php)
    packaging = checks.check_packaging(template, plugin.tree.files, lambda t: render_string(t, plugin.context))
    translations = checks.check_translations(plugin.tree.files, catalog, plugin.config.locales)
    assert len(lint) >= 25
    assert [r for r in lint + packaging + translations if not r.passed] == []
    assert len(packaging) == len(template.spec.rules)


def test_plugin_is_one_folder_named_after_the_slug_with_a_full_header(baltic: Plugin) -> None:
    spec = load_template(TEMPLATES, "woocommerce").spec
    assert render_string(spec.packaging.root, baltic.context) == "baltic-credit-pay"
    assert render_string(spec.packaging.artifact, baltic.context) == "baltic-credit-pay-1.0.0.zip"
    header = dict(re.findall(r"^ \* ([A-Za-z ]+):\s+(.+)$", baltic.text("baltic-credit-pay.php"), re.M))
    assert header["Plugin Name"] == "Baltic Credit Union Payments for WooCommerce"
    assert header["Version"] == "1.0.0"
    assert header["Requires PHP"] == "7.4"
    assert header["Text Domain"] == "baltic-credit-pay"
    assert header["Domain Path"] == "/languages"
    assert header["License"] == "GPLv2 or later"
    assert header["WC requires at least"] == spec.platform_versions[0]
    assert header["WC tested up to"] == spec.platform_versions[-1]
    readme = baltic.text("readme.txt")
    assert re.search(r"^Stable tag: 1\.0\.0$", readme, re.M)
    assert "blik" in readme and "PLN" in readme


def test_every_folder_has_a_silent_index_and_every_php_file_an_abspath_guard(nordbank: Plugin) -> None:
    folders = {str(Path(p).parent) for p in nordbank.tree.files}
    assert {f for f in folders if f"{f}/index.php".removeprefix("./") not in nordbank.tree.files} == set()
    for path, data in nordbank.tree.files.items():
        if path.endswith(".php"):
            assert re.search(r"^defined\( ?'ABSPATH' ?\) \|\| exit;$", data.decode(), re.M), path


def test_packaging_rules_catch_a_stable_tag_drift_and_a_missing_guard(nordbank: Plugin) -> None:
    template = load_template(TEMPLATES, "woocommerce")
    files = dict(nordbank.tree.files)
    files["readme.txt"] = files["readme.txt"].replace(b"Stable tag: 1.0.0", b"Stable tag: 0.9.0")
    files["includes/class-lock.php"] = files["includes/class-lock.php"].replace(b"defined( 'ABSPATH' ) || exit;", b"")
    failures = {
        r.name: r.detail
        for r in checks.check_packaging(template, files, lambda t: render_string(t, nordbank.context))
        if not r.passed
    }
    assert any("'0.9.0' != nordbank-payments.php: '1.0.0'" in d for d in failures.values()), failures
    assert any(d == "not in: includes/class-lock.php" for d in failures.values()), failures


def test_compiled_translations_load_with_gettext(baltic: Plugin) -> None:
    languages = baltic.root / "languages"
    for locale, expected in (("lt_LT", "Nustatymai"), ("pl_PL", "Ustawienia"), ("en_GB", "Settings")):
        with (languages / f"baltic-credit-pay-{locale}.mo").open("rb") as handle:
            catalog = gettext.GNUTranslations(handle)
        assert catalog.gettext("Settings") == expected
        assert catalog.gettext("authorized") != "" and catalog.info()["language"] == locale
    pot = (languages / "baltic-credit-pay.pot").read_text()
    assert 'msgid "Enable %s payments"' in pot and "#, php-format" in pot


def test_every_gettext_call_uses_the_plugins_text_domain_and_a_catalog_message(nordbank: Plugin) -> None:
    messages = set(nordbank.context["messages"])
    call = re.compile(
        r"\b(?:__|_e|esc_html__|esc_html_e|esc_attr__|esc_attr_e)\(\s*'((?:[^'\\]|\\.)*)'\s*(,\s*'([^']*)')?"
    )
    found = 0
    for path, data in nordbank.tree.files.items():
        if path.endswith(".php"):
            for msgid, _, domain in call.findall(data.decode()):
                found += 1
                assert domain == "nordbank-payments", f"{path}: {msgid!r} has text domain {domain!r}"
                assert msgid.replace("\\'", "'") in messages, f"{path}: {msgid!r} is not in messages.yaml"
    assert found > 40


def test_checkout_script_is_valid_javascript_and_names_only_the_gateway(nordbank: Plugin, tmp_path: Path) -> None:
    script = nordbank.text("assets/js/checkout.js")
    assert 'var gatewayId = "psp_nordbank";' in script
    assert "Nord Bank" not in script  # shopper-facing text comes from the server at run time
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    path = tmp_path / "checkout.js"
    path.write_text(script)
    subprocess.run([node, "--check", str(path)], check=True, capture_output=True)


def test_contract_passes_for_the_rendered_plugin(nordbank: Plugin, php: NativePhp) -> None:
    template = load_template(TEMPLATES, "woocommerce")
    results = contract_results(nordbank.root, template, nordbank.context, php)
    assert [r for r in results if not r.passed] == []
    assert len(results) > 60


# --- client values are data --------------------------------------------------------------------------

HOSTILE_TITLE = (
    'It\'s "quoted" \\ back\\slash ?> <?php exit; ?> */ /* <script>alert(1)</script> ]]> {{ ids.slug }} '
    "{% raw %} ${x} %s %1$s 東京 Ελληνικά עברית Платите "
)
HOSTILE_DESCRIPTION = (
    "First line: 'single' \"double\" ?> */ <script>alert('x')</script> ]]> <![CDATA[\n"
    "Second line: \\\\server\\share {{ client.name }} {# no comment #}\n\n"
    "日本語 • Ελληνικά • עברית — ends with a backslash \\"
)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Plugin:
    title = (HOSTILE_TITLE * 3)[:200]
    config = make_client(checkout={"title": title, "description": HOSTILE_DESCRIPTION})
    return render_plugin(config, tmp_path_factory.mktemp("hostile") / "plugin")


def test_hostile_checkout_text_renders_lints_and_comes_back_literally(hostile: Plugin, php: NativePhp) -> None:
    assert len(hostile.config.checkout.title) == 200
    lint = php.lint(hostile.root, [p for p in hostile.tree.files if p.endswith(".php")])
    assert [r for r in lint if not r.ok] == []
    template = load_template(TEMPLATES, "woocommerce")
    spec = template.spec.contract
    expected = {
        "checkout_title": hostile.config.checkout.title,
        "checkout_description": HOSTILE_DESCRIPTION,
        "name": "Nord Bank",
        "api_base": "https://api.nordbank.psp.example/v1",
        "locales": ["nl_NL", "en_US"],
        "currencies": ["EUR"],
        "payment_methods": ["card", "ideal", "sepa_direct_debit"],
        "version": "1.0.0",
        "build": hostile.tree.build,
    }
    results = run_value_roundtrip(
        hostile.root,
        render_string(spec.namespace, hostile.context),
        spec.bootstrap,
        dict(spec.define),
        expected,
        php,
    )
    assert [(r.name, r.detail) for r in results if not r.passed] == []
    assert len(results) == 1 + len(expected)
    # the free text lives in one place only: never in headers, readme, catalogs or scripts
    for path, data in hostile.tree.files.items():
        if path != "includes/core/ClientInfo.php":
            assert b"<script>alert(1)</script>" not in data, path


def test_hostile_checkout_text_is_shown_as_text_at_checkout(hostile: Plugin, php: NativePhp, tmp_path: Path) -> None:
    seen = run_standin(php, tmp_path, "woo", "psp_nordbank", hostile.main)
    assert seen["errors"] == []
    title = hostile.config.checkout.title
    escaped = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    assert seen["title"] == escaped.replace("'", "&#039;")
    assert "<script>" not in seen["payment_fields"]
    assert "&lt;script&gt;alert(&#039;x&#039;)&lt;/script&gt;" in seen["payment_fields"]
    assert seen["blocks"]["data"]["title"] == title  # raw data; React renders it as text
    assert seen["blocks"]["data"]["description"] == HOSTILE_DESCRIPTION


# --- running in WordPress ----------------------------------------------------------------------------


def test_plugin_loads_without_woocommerce_and_still_serves_its_rest_routes(
    nordbank: Plugin, php: NativePhp, tmp_path: Path
) -> None:
    seen = run_standin(php, tmp_path, "bare", "psp_nordbank", nordbank.main)
    assert seen["errors"] == []
    assert seen["routes"] == ["nordbank-payments/v1/webhook", "nordbank-payments/v1/health"]
    assert seen["gateways"] == []
    assert seen["health"] == {
        "status": 200,
        "methods": "GET",
        "data": {
            "plugin": "nordbank-payments",
            "version": "1.0.0",
            "build": nordbank.tree.build,
            "php": seen["health"]["data"]["php"],
            "woocommerce": False,
        },
    }
    assert re.fullmatch(r"\d+\.\d+", seen["health"]["data"]["php"])  # no patch level on a public route
    assert seen["unconfigured_webhook"] == {"status": 503, "result": "woocommerce_inactive"}
    assert "need WooCommerce" in seen["admin_notices"]
    assert seen["textdomains"][0][0] == "nordbank-payments"


def test_checkout_webhooks_and_refunds_in_woocommerce(nordbank: Plugin, php: NativePhp, tmp_path: Path) -> None:
    seen = run_standin(php, tmp_path, "woo", "psp_nordbank", nordbank.main)
    assert seen["errors"] == []
    assert seen["gateways"] == ["PspNordbank\\WooCommerce\\Gateway"]
    assert seen["available"] is True and seen["supports"] == ["products", "refunds"]

    # checkout: a hosted payment for the order's amount in minor units, then a redirect to it
    assert seen["process_payment"] == {"result": "success", "redirect": "https://pay.example/c/1"}
    create = seen["create_request"]
    assert (create["method"], create["url"]) == ("POST", "https://api.nordbank.psp.example/v1/payments")
    assert create["headers"]["Authorization"] == "Bearer key_abc_123"
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", create["headers"]["X-Correlation-ID"]
    )
    body = json.loads(create["body"])
    assert (body["amount"], body["currency"], body["order_reference"]) == (1250, "EUR", "1001")
    assert body["webhook_url"] == "https://shop.example/wp-json/nordbank-payments/v1/webhook"
    assert seen["after_checkout"]["meta"]["_psp_nordbank_payment_id"] == "pay_1"
    assert seen["after_checkout"]["meta"]["_psp_nordbank_status"] == "pending"

    # webhooks: HTTP codes tell the PSP whether to retry
    assert seen["steps"] == {
        "paid": {"status": 200, "result": "applied"},
        "same event again": {"status": 200, "result": "duplicate"},
        "late pending": {"status": 200, "result": "ignored"},
        "wrong signature": {"status": 401, "result": "rejected_signature"},
        "no signature": {"status": 401, "result": "rejected_signature"},
        "stale": {"status": 401, "result": "rejected_stale"},
        "psp unreachable": {"status": 503, "result": "psp_unavailable"},
        "order of another gateway": {"status": 404, "result": "unknown_order"},
        "partial refund": {"status": 200, "result": "applied"},
        "oversized": {"status": 413, "result": "payload_too_large"},
        "authorized": {"status": 200, "result": "applied"},
        "paid for PLN 1.00": {"status": 200, "result": "amount_mismatch"},
        "superseded payment paid": {"status": 200, "result": "payment_mismatch"},
        "current payment paid": {"status": 200, "result": "applied"},
    }
    cheap, twice = seen["mismatch"]["1004"], seen["mismatch"]["1005"]
    assert cheap["status"] == "on-hold" and cheap["meta"]["_psp_nordbank_status"] == "pending"
    assert "pay_4" in cheap["notes"][-1] and "1.00 PLN" in cheap["notes"][-1] and "1000.00 EUR" in cheap["notes"][-1]
    assert cheap["notes"][-1].startswith("On hold: Nord Bank reports payment pay_4 as paid for 1.00 PLN")
    assert twice["meta"]["_psp_nordbank_payment_ids"] == ["pay_5a", "pay_5b"]
    assert "pay_5a" in twice["notes"][-2] and "expects payment pay_5b" in twice["notes"][-2]
    assert twice["status"] == "processing" and twice["meta"]["_psp_nordbank_status"] == "paid"
    after = seen["after_webhooks"]
    assert after["status"] == "processing"  # paid -> processing; the late pending changed nothing
    assert after["meta"]["_psp_nordbank_events"] == ["evt_1", "evt_5"]
    assert after["meta"]["_psp_nordbank_status"] == "partially_refunded"
    assert seen["other_order_status"] == "pending"
    assert seen["authorized_status"] == "on-hold"
    assert seen["capture_requests"] == []  # Nord Bank captures automatically

    # refunds go to the PSP with an idempotency key; a refusal is reported with its correlation id
    assert seen["refund"] is True
    refund = seen["refund_request"]
    assert refund["url"] == "https://api.nordbank.psp.example/v1/payments/pay_1/refunds"
    assert json.loads(refund["body"]) == {"amount": 500, "currency": "EUR", "reason": "Damaged"}
    assert refund["headers"]["Idempotency-Key"]
    assert re.fullmatch(
        r"Nord Bank did not accept the refund \(correlation id [0-9a-f-]{36}\)\. .*", seen["failed_refund"]
    )

    # block checkout integration
    assert seen["blocks"]["active"] is True
    assert seen["blocks"]["handles"] == ["nordbank-payments-checkout"]
    assert seen["blocks"]["scripts"]["nordbank-payments-checkout"].endswith("/assets/js/checkout.js")

    # the API key and webhook secret are stored sealed with the site's salts; the plugin runs on them
    assert seen["sealed"]["api_key"].startswith("pspenc:o1:") and "key_abc_123" not in seen["sealed"]["api_key"]
    assert seen["sealed"]["webhook_secret"].startswith("pspenc:o1:") and seen["sealed"]["title"] == "plain"
    assert seen["opened"] == ["key_abc_123", "whsec_stub_secret"]
    # logs help support (correlation ids) and never contain the key or the secret
    logs = "\n".join(seen["logs"])
    assert "correlation id" in logs
    assert "key_abc_123" not in logs and "whsec_stub_secret" not in logs
    # three refused deliveries (wrong, missing and stale signature) within a minute: one log line
    refused = [line for line in seen["logs"] if "refused deliveries" in line]
    assert refused == ["warning: Webhook rejected_signature (1 refused deliveries since the last line) [psp_nordbank]"]
    assert "Webhook amount_mismatch for order 1004" in logs and "put on hold" in logs
    assert seen["domains"] == ["nordbank-payments"]


def test_manual_capture_client_captures_when_the_order_is_completed(php: NativePhp, tmp_path: Path) -> None:
    config = make_client(features={"refunds": True, "partial_refunds": False, "manual_capture": True})
    plugin = render_plugin(config, tmp_path / "plugin")
    seen = run_standin(php, tmp_path, "woo", "psp_nordbank", plugin.main)
    assert seen["errors"] == []
    assert json.loads(seen["create_request"]["body"])["capture"] == "manual"
    assert seen["authorized_status"] == "on-hold"
    [capture] = seen["capture_requests"]
    assert capture["url"] == "https://api.nordbank.psp.example/v1/payments/pay_3/captures"
    assert json.loads(capture["body"]) == {"amount": 2000, "currency": "EUR"}
    # partial refunds are off for this client: the 5.00 refund of a 12.50 order is refused before any call
    assert seen["refund"] == "Nord Bank only refunds the full order amount."
    assert seen["refund_request"] is None


def test_the_same_plugin_loaded_twice_defers_to_the_first_copy(
    nordbank: Plugin, php: NativePhp, tmp_path: Path
) -> None:
    copy = tmp_path / "release-copy"
    shutil.copytree(nordbank.root, copy)
    seen = run_standin(php, tmp_path, "bare", "psp_nordbank", nordbank.main, copy / nordbank.main.name)
    assert seen["errors"] == []
    assert seen["routes"] == ["nordbank-payments/v1/webhook", "nordbank-payments/v1/health"]

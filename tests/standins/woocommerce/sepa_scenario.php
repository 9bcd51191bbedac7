<?php
// --- the scenario: every case through validate_fields() and process_payment(), as WooCommerce calls them
$gatewayId = $argv[2];
require $argv[3];
eval('namespace Automattic\WooCommerce\Blocks\Payments\Integrations; abstract class AbstractPaymentMethodType {'
    . ' protected $name = ""; protected $settings = [];'
    . ' public function get_setting($name, $default = "") { return $this->settings[$name] ?? $default; } }');
do_action('plugins_loaded');
update_option('woocommerce_' . $gatewayId . '_settings', ['enabled' => 'yes', 'api_key' => 'key_abc_123', 'webhook_secret' => 'whsec_x', 'testmode' => 'no']);
$gatewayClass = apply_filters('woocommerce_payment_gateways', [])[0];
$gateway = new $gatewayClass();
$out = ['has_fields' => $gateway->has_fields, 'cases' => []];
$orderId = 2000;
foreach (json_decode(file_get_contents($argv[4]), true) as $name => $post) {
    $_POST = $post;
    $GLOBALS['notices'] = [];
    $validated = $gateway->validate_fields();
    $validateNotices = array_column($GLOBALS['notices'], 1);
    $GLOBALS['notices'] = [];
    $order = new WC_Order(++$orderId, $gatewayId, '12.50');
    $GLOBALS['orders'][$orderId] = $order;
    $GLOBALS['http'] = [];
    $GLOBALS['http_responses'] = [[201, json_encode(['id' => 'pay_' . $orderId, 'status' => 'pending', 'checkout_url' => 'https://pay.example/c/' . $orderId])]];
    $result = $gateway->process_payment($orderId);
    $out['cases'][$name] = [
        'validated' => $validated,
        'validate_notices' => $validateNotices,
        'result' => $result['result'],
        'payment_notices' => array_column($GLOBALS['notices'], 1),
        'sent' => array_map(static function ($r) { return json_decode($r['body'], true); }, $GLOBALS['http']),
        'attempts' => $order->get_meta('_' . $gatewayId . '_attempts'),
    ];
}
$_POST = [$gatewayId . '_iban' => "DE89 \"><script>x</script>", $gatewayId . '_bic' => 'deutdeff'];
ob_start();
$gateway->payment_fields();
$out['payment_fields'] = ob_get_clean();
$registry = new class { public $registered = []; public function register($m) { $this->registered[] = $m; } };
do_action('woocommerce_blocks_payment_method_type_registration', $registry);
$registry->registered[0]->initialize();
$out['blocks'] = $registry->registered[0]->get_payment_method_data();
$out['errors'] = $GLOBALS['errors'];
echo json_encode($out, JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE);

<?php
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

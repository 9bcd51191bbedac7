<?php
// Both plugins in one stand-in WordPress with WooCommerce; what each registers, attributed to its namespace.
$spec = json_decode(file_get_contents($argv[2]), true);
$out = [];
$owner = static function ($thing) use ($spec) {
    $class = is_array($thing) ? (is_object($thing[0]) ? get_class($thing[0]) : $thing[0]) : (is_object($thing) ? get_class($thing) : (string) $thing);
    foreach ($spec as $p) { if (stripos(ltrim($class, '\\'), $p['namespace'] . '\\') === 0) { return $p['namespace']; } }
    throw new RuntimeException('nobody owns ' . $class);
};
$byFolder = static function ($text) use ($spec) {
    foreach ($spec as $p) { if (strpos($text, '/' . $p['folder'] . '/') !== false || strpos($text, $p['folder'] . '/') === 0) { return $p['namespace']; } }
    throw new RuntimeException('no plugin folder in ' . $text);
};
foreach ($spec as $p) {
    $before = get_defined_constants(true)['user'] ?? [];
    require $p['main'];
    $out[$p['namespace']] = ['constants' => array_keys(array_diff_key(get_defined_constants(true)['user'], $before))];
}
eval('namespace Automattic\WooCommerce\Blocks\Payments\Integrations; abstract class AbstractPaymentMethodType {'
    . ' protected $name = ""; protected $settings = [];'
    . ' public function get_name() { return $this->name; }'
    . ' public function get_setting($name, $default = "") { return $this->settings[$name] ?? $default; } }');
do_action('plugins_loaded');
do_action('init');
do_action('rest_api_init');
foreach ($GLOBALS['routes'] as $path => $args) { $out[$owner($args['callback'])]['routes'][] = $path; }
foreach ($GLOBALS['textdomains'] as [$domain, $path]) { $out[$byFolder($path)]['text domains'][] = $domain; }
foreach (apply_filters('woocommerce_payment_gateways', []) as $class) {
    $reads = count($GLOBALS['option_reads'] ?? []);
    $gateway = new $class();
    $gateway->init_settings();
    $ns = $owner($class);
    call_user_func([$ns . '\Plugin', 'settings']);
    $out[$ns]['gateway ids'][] = $gateway->id;
    $out[$ns]['options read'] = array_values(array_unique(array_slice($GLOBALS['option_reads'], $reads)));
    ob_start();
    $gateway->payment_fields();
    $out[$ns]['payment fields html'] = ob_get_clean();
}
$registry = new class { public $registered = []; public function register($method) { $this->registered[] = $method; } };
do_action('woocommerce_blocks_payment_method_type_registration', $registry);
foreach ($registry->registered as $method) {
    $method->initialize();
    $out[$owner($method)]['block payment methods'][] = $method->get_name();
    $out[$owner($method)]['script handles'] = $method->get_payment_method_script_handles();
}
foreach ($GLOBALS['scripts'] as $handle => $src) { $out[$byFolder($src)]['scripts'][] = $handle; }
$out['errors'] = $GLOBALS['errors'];
echo json_encode($out);

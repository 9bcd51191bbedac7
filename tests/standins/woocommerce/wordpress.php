<?php
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


<?php
// A stand-in PrestaShop: only the API the module calls, recording what it is asked to do. State lives in
// a JSON file so a scenario can span several requests (front controllers end with exit, as in PrestaShop).
// Usage: php -n -d openssl.cafile=<ca> runner.php <module dir> <state.json> <scenario> [<json argument>]
error_reporting(-1);
$GLOBALS['errors'] = [];
set_error_handler(static function ($no, $msg, $file, $line) { $GLOBALS['errors'][] = $msg . ' at ' . basename($file) . ':' . $line; return true; });
define('_PS_VERSION_', '8.2.0');
define('_COOKIE_KEY_', 'ps-cookie-key-9c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1');
define('_DB_PREFIX_', 'ps_');
define('_MYSQL_ENGINE_', 'InnoDB');
[$moduleDir, $stateFile, $scenario] = array_slice($argv, 1, 3);
$argument = isset($argv[4]) ? json_decode($argv[4], true) : [];
$S = is_file($stateFile) ? json_decode(file_get_contents($stateFile), true) : [];
$S += ['config' => ['PS_OS_PAYMENT' => 2, 'PS_OS_ERROR' => 8, 'PS_OS_CANCELED' => 6, 'PS_OS_REFUND' => 7, 'PS_LANG_DEFAULT' => 1],
    'rows' => [], 'orders' => [], 'states' => [], 'histories' => [], 'messages' => [], 'logs' => [], 'queries' => [], 'hooks' => [], 'carts' => []];
$OUT = ['scenario' => $scenario];
register_shutdown_function(static function () use ($stateFile) {
    global $S, $OUT;
    $OUT['errors'] = $GLOBALS['errors'];
    $OUT['http_status'] = http_response_code();
    $OUT['body'] = ob_get_level() > 0 ? ob_get_clean() : '';
    file_put_contents($stateFile, json_encode($S));
    fwrite(STDERR, '');
    echo "\n@@OUT@@" . json_encode($OUT);
});
ob_start();

class StandInRedirect extends Exception {}
class Configuration {
    public static function get($key) { global $S; return $S['config'][$key] ?? false; }
    public static function updateValue($key, $value) { global $S; $S['config'][$key] = (string) $value; return true; }
    public static function deleteByName($key) { global $S; unset($S['config'][$key]); return true; }
}
function pSQL($value) { return addslashes((string) $value); }
class Db {
    const REPLACE = 3;
    public static function getInstance() { static $db; return $db ?: ($db = new Db()); }
    private function orderId($sql) { return preg_match('/`id_order` = (\d+)/', $sql, $m) ? $m[1] : null; }
    public function execute($sql) { global $S; $S['queries'][] = $sql; return true; }
    public function getRow($sql) { global $S; $id = $this->orderId($sql); return $id !== null && isset($S['rows'][$id]) ? $S['rows'][$id] : false; }
    public function getValue($sql, $cache = true) {
        global $S; $S['queries'][] = $sql;
        if (preg_match("/GET_LOCK\\('([^']+)'/", $sql, $m)) { return '1'; }
        return '1';
    }
    public function insert($table, $data, $null = false, $cache = true, $type = 1) {
        global $S; $S['queries'][] = 'INSERT ' . $table;
        $row = array_map(static function ($v) { return stripslashes((string) $v); }, $data);
        $S['rows'][(string) $data['id_order']] = $row; return true;
    }
    public function update($table, $data, $where) {
        global $S; $id = $this->orderId($where);
        foreach ($data as $k => $v) { $S['rows'][$id][$k] = stripslashes((string) $v); } return true;
    }
}
class Validate { public static function isLoadedObject($o) { return is_object($o) && !empty($o->id); } }
class Language { public static function getLanguages($active = true) { return [['id_lang' => 1, 'locale' => 'de-DE'], ['id_lang' => 2, 'locale' => 'fr-FR']]; } }
class OrderState {
    public $id; public $name; public $module_name; public $color; public $logable; public $paid; public $invoice; public $send_email; public $hidden; public $delivery; public $shipped; public $unremovable;
    public function __construct($id = null) { global $S; if ($id && isset($S['states'][$id])) { foreach ($S['states'][$id] as $k => $v) { $this->$k = $v; } } }
    public function add() { global $S; $this->id = 100 + count($S['states']); $S['states'][$this->id] = get_object_vars($this); return true; }
}
class Currency {
    const CODES = [1 => 'EUR', 2 => 'USD', 3 => 'CHF'];
    public $id; public $iso_code;
    public function __construct($id = null) { if (isset(self::CODES[$id])) { $this->id = $id; $this->iso_code = self::CODES[$id]; } }
    public static function getDefaultCurrency() { return new Currency(1); }
}
class Country { public static function getIsoById($id) { return 'DE'; } }
class Address { public $id_country = 1; public function __construct($id) {} }
class Customer { public $id; public $email = 'kunde@example.org'; public $secure_key = 'securekey0123456789abcdef0123456'; public function __construct($id) { $this->id = $id; } }
class Cart {
    const BOTH = 3;
    public $id; public $id_customer = 5; public $id_address_invoice = 9; public $id_currency = 1;
    public function __construct($id = null) { $this->id = $id; }
    public function getOrderTotal($tax = true, $type = 3) { return 12.5; }
    public function duplicate() { global $S; $S['carts'][] = 'duplicate of ' . $this->id; $copy = new Cart(500 + count($S['carts'])); return ['success' => true, 'cart' => $copy]; }
}
class Order {
    public $id; public $module; public $id_cart; public $id_customer; public $id_currency = 1; public $reference; public $secure_key; public $total_paid_tax_incl;
    public function __construct($id = null) { global $S; if ($id && isset($S['orders'][$id])) { foreach ($S['orders'][$id] as $k => $v) { if ($k !== 'state') { $this->$k = $v; } } } }
    public function getCurrentState() { global $S; return (int) $S['orders'][$this->id]['state']; }
    public function getOrderPaymentCollection() { return []; }
    public function getOrderSlipsCollection() { return new SlipCollection(); }
}
class SlipCollection {
    public function orderBy($field, $way) { return $this; }
    public function getFirst() { global $argument; $slip = new stdClass(); $slip->id = 31; $slip->total_products_tax_incl = $argument['slip'] ?? 5.0; $slip->total_shipping_tax_incl = 0.0; return $slip; }
}
class OrderHistory {
    public $id_order;
    public function changeIdOrderState($state, $order, $useExisting = false) { global $S; $id = is_object($order) ? $order->id : $order; $S['histories'][] = [(int) $id, (int) $state]; $S['orders'][$id]['state'] = (int) $state; }
    public function addWithemail($autodate = true) { return true; }
    public function add() { return true; }
}
class Message {
    public $id_order; public $id_cart; public $id_customer; public $message; public $private;
    public function add() { global $S; $S['messages'][] = ['order' => $this->id_order, 'private' => $this->private, 'message' => $this->message]; return true; }
}
class PrestaShopLogger { public static function addLog($message, $severity = 1, $code = null, $type = null, $id = null, $dup = false) { global $S; $S['logs'][] = $message; } }
class Tools {
    public static function getValue($key, $default = false) { global $argument; return $argument['request'][$key] ?? $default; }
    public static function isSubmit($key) { global $argument; return isset($argument['request'][$key]); }
    public static function substr($s, $start, $length) { return substr($s, $start, $length); }
    public static function redirect($url) { global $OUT; $OUT['redirect'] = $url; throw new StandInRedirect($url); }
    public static function getAdminTokenLite($tab) { return 'token'; }
    public static function getToken($page = true) { return 'front_token_42'; }
}
class Link {
    public function getModuleLink($module, $controller, $params = [], $ssl = null) { return 'https://shop.standin.invalid/module/' . $module . '/' . $controller . ($params ? '?' . http_build_query($params) : ''); }
    public function getPageLink($page, $ssl = null, $lang = null, $params = []) { return 'https://shop.standin.invalid/' . $page . ($params ? '?' . http_build_query($params) : ''); }
}
class StandInLocale { public function formatPrice($amount, $iso) { return number_format((float) $amount, 2, ',', '.') . ' ' . $iso; } }
class Context {
    public $link; public $language; public $cart; public $cookie; public $smarty;
    public static function getContext() { static $c; if (!$c) { $c = new Context(); $c->link = new Link(); $c->language = (object) ['locale' => 'de-DE']; $c->cart = new Cart(77); $c->cookie = new class { public $id_cart; public function write() {} }; $c->smarty = new class { public $vars = []; public function assign($v) { $this->vars = array_merge($this->vars, $v); } }; } return $c; }
    public function getCurrentLocale() { return new StandInLocale(); }
}
abstract class Module {
    public $name; public $tab; public $version; public $author; public $need_instance; public $ps_versions_compliancy; public $bootstrap; public $controllers; public $currencies; public $currencies_mode;
    public $displayName; public $description; public $active = true; public $id = 42; public $context; public $table = 'module';
    public function __construct() { $this->context = Context::getContext(); }
    public function install() { return true; }
    public function uninstall() { return true; }
    public function registerHook($hooks) { global $S; $S['hooks'] = array_merge($S['hooks'], (array) $hooks); return true; }
    public function display($file, $template) { return 'rendered ' . $template . ' ' . json_encode($this->context->smarty->vars); }
    public function fetch($template) { return 'rendered ' . $template . ' ' . json_encode($this->context->smarty->vars); }
    public function displayConfirmation($text) { return '<confirm>' . $text . '</confirm>'; }
    public function displayWarning($text) { return '<warning>' . $text . '</warning>'; }
    /** The translator reads the module's own XLIFF catalogue for the domain and locale, as PrestaShop's does. */
    public function trans($id, array $parameters = [], $domain = null, $locale = null) {
        $locale = $locale ?: $this->context->language->locale;
        $file = __DIR__ . '/../../' . 'x';
        $path = $GLOBALS['moduleDir'] . '/translations/' . $locale . '/' . str_replace('.', '', (string) $domain) . '.' . $locale . '.xlf';
        $text = $id;
        if (is_file($path) && preg_match_all('#<source>(.*?)</source>\s*<target>(.*?)</target>#s', file_get_contents($path), $m, PREG_SET_ORDER)) {
            foreach ($m as $unit) { if (htmlspecialchars_decode($unit[1], ENT_QUOTES | ENT_XML1) === $id) { $text = htmlspecialchars_decode($unit[2], ENT_QUOTES | ENT_XML1); } }
        }
        return $parameters ? vsprintf($text, $parameters) : $text;
    }
}
abstract class PaymentModule extends Module {
    public $currentOrder;
    public function validateOrder($cartId, $stateId, $amount, $method, $message = null, $extra = [], $currencyId = null, $dontTouch = false, $secureKey = false) {
        global $S; $id = 1000 + count($S['orders']);
        $S['orders'][$id] = ['id' => $id, 'module' => $this->name, 'id_cart' => $cartId, 'id_customer' => 5, 'reference' => 'REF' . $id, 'secure_key' => $secureKey, 'total_paid_tax_incl' => $amount, 'state' => $stateId];
        $this->currentOrder = $id; return true;
    }
}
abstract class ModuleFrontController {
    public $module; public $context; public $errors = [];
    public function __construct($module) { $this->module = $module; $this->context = Context::getContext(); }
    protected function trans($id, array $parameters = [], $domain = null, $locale = null) { return $this->module->trans($id, $parameters, $domain, $locale); }
    public function redirectWithNotifications($url) { global $OUT; $OUT['notifications'] = $this->errors; Tools::redirect($url); }
}
eval('namespace PrestaShop\PrestaShop\Core\Payment; class PaymentOption { public $data = []; public function __call($name, $args) { if (strpos($name, "set") === 0) { $this->data[lcfirst(substr($name, 3))] = $args[0]; return $this; } } }');

$GLOBALS['moduleDir'] = realpath($moduleDir);
$name = basename($GLOBALS['moduleDir']);
require $GLOBALS['moduleDir'] . '/' . $name . '.php';
$class = ucfirst($name);
$module = new $class();
foreach (($argument['config'] ?? []) as $key => $value) { $S['config'][$key] = $value; }
foreach (($argument['orders'] ?? []) as $id => $order) { $S['orders'][$id] = $order; }
foreach (($argument['rows'] ?? []) as $id => $row) { $S['rows'][$id] = $row; }

try {
    switch ($scenario) {
        case 'install':
            $OUT['installed'] = $module->install();
            $OUT['display_name'] = $module->displayName;
            $OUT['description'] = $module->description;
            break;
        case 'options':
            $cart = new Cart(77);
            $cart->id_currency = $argument['currency'];
            $OUT['options'] = array_map(static function ($o) { return $o->data; }, $module->hookPaymentOptions(['cart' => $cart]));
            break;
        case 'controller':
            $_SERVER['REQUEST_METHOD'] = $argument['method'] ?? 'GET';
            $_SERVER['HTTP_X_PSP_SIGNATURE'] = $argument['signature'] ?? '';
            if (isset($argument['body'])) { $GLOBALS['standin_body'] = $argument['body']; stream_wrapper_unregister('php'); stream_wrapper_register('php', 'StandInInput'); }
            require $GLOBALS['moduleDir'] . '/controllers/front/' . $argument['controller'] . '.php';
            $controllerClass = $class . ucfirst($argument['controller']) . 'ModuleFrontController';
            (new $controllerClass($module))->postProcess();
            break;
        case 'slip':
            $module->hookActionOrderSlipAdd(['order' => new Order($argument['order'])]);
            break;
        case 'shipped':
            $state = new stdClass(); $state->shipped = 1;
            $module->hookActionOrderStatusPostUpdate(['newOrderStatus' => $state, 'id_order' => $argument['order']]);
            break;
        case 'save_settings':
            $settingsClass = $argument['settings_class'];
            $settingsClass::save($argument['api_key'], $argument['webhook_secret'], false, '', '');
            $OUT['read_back'] = [$settingsClass::get('API_KEY'), $settingsClass::get('WEBHOOK_SECRET')];
            break;
        case 'admin_order':
            $OUT['panel'] = $module->hookDisplayAdminOrderMainBottom(['id_order' => $argument['order']]);
            break;
    }
} catch (StandInRedirect $e) {
    // Tools::redirect() ends the request, as in PrestaShop
}

/** php://input with the request body (the stand-in web server). */
class StandInInput {
    public $context; private $done = false;
    public function stream_open($path, $mode, $options, &$opened) { return $path === 'php://input'; }
    public function stream_read($count) { if ($this->done) { return ''; } $this->done = true; return $GLOBALS['standin_body']; }
    public function stream_eof() { return $this->done; }
    public function stream_stat() { return []; }
}

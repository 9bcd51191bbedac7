<?php
namespace Opencart\System\Engine {
    class Registry {
        private $data = [];
        public function get($key) { return $this->data[$key] ?? null; }
        public function set($key, $value) { $this->data[$key] = $value; }
        public function has($key) { return isset($this->data[$key]); }
    }
    abstract class Controller {
        protected $registry;
        public function __construct(Registry $registry) { $this->registry = $registry; }
        public function __get($key) { return $this->registry->get($key); }
        public function __set($key, $value) { $this->registry->set($key, $value); }
    }
    abstract class Model {
        protected $registry;
        public function __construct(Registry $registry) { $this->registry = $registry; }
        public function __get($key) { return $this->registry->get($key); }
    }
}
namespace {
// A stand-in OpenCart 4: the registry objects the extension's controllers use, recording what they are
// asked. Usage: php -n -d openssl.cafile=<ca> runner.php <extension dir> <state.json> <version> <json request>
error_reporting(-1);
$GLOBALS['errors'] = [];
set_error_handler(static function ($no, $msg, $file, $line) { $GLOBALS['errors'][] = $msg . ' at ' . basename($file) . ':' . $line; return true; });
[$root, $stateFile, $version] = array_slice($argv, 1, 3);
$R = json_decode($argv[4], true);
define('VERSION', $version);
define('DB_PREFIX', 'oc_');
define('DB_HOSTNAME', 'localhost'); define('DB_USERNAME', 'shop'); define('DB_PASSWORD', 'db-pass-7f3a'); define('DB_DATABASE', 'opencart');
define('HTTP_CATALOG', 'https://shop.standin.invalid/');
$S = is_file($stateFile) ? json_decode(file_get_contents($stateFile), true) : [];
$S += ['config' => [], 'rows' => [], 'histories' => [], 'settings' => [], 'logs' => [], 'queries' => [], 'orders' => [], 'cache' => []];
foreach ($R['config'] ?? [] as $k => $v) { $S['config'][$k] = $v; }
foreach ($R['orders'] ?? [] as $k => $v) { $S['orders'][$k] = $v; }
$S['config'] += ['config_language' => 'lt-lt', 'config_currency' => 'EUR'];

if (isset($R['body'])) {
    $GLOBALS['standin_body'] = $R['body'];
    stream_wrapper_unregister('php');
    stream_wrapper_register('php', 'StandInInput');
}
/** php://input with the request body. */
class StandInInput {
    public $context; private $done = false;
    public function stream_open($path, $mode, $options, &$opened) { return $path === 'php://input'; }
    public function stream_read($count) { if ($this->done) { return ''; } $this->done = true; return $GLOBALS['standin_body']; }
    public function stream_eof() { return $this->done; }
    public function stream_stat() { return []; }
}

    class StandInConfig { public function get($key) { global $S; return $S['config'][$key] ?? null; } }
    class StandInLanguage {
        public $data = ['text_home' => 'Home', 'button_confirm' => 'Confirm Order', 'button_save' => 'Save', 'button_back' => 'Back', 'entry_status' => 'Status', 'entry_sort_order' => 'Sort Order'];
        public function get($key) { return $this->data[$key] ?? $key; }
        public function load($file) { $_ = []; require $file; $this->data = array_merge($this->data, $_); return $_; }
    }
    class StandInLoader {
        private $registry; private $side; private $root;
        public function __construct($registry, $side, $root) { $this->registry = $registry; $this->side = $side; $this->root = $root; }
        public function language($route) {
            global $S;
            if (preg_match('#^extension/(\w+)/payment/(\w+)$#', $route, $m)) {
                return $this->registry->get('language')->load($this->root . '/' . $this->side . '/language/' . $S['config']['config_language'] . '/payment/' . $m[2] . '.php');
            }
            return [];
        }
        public function model($route) {
            $key = 'model_' . str_replace('/', '_', $route);
            if ($this->registry->has($key)) { return; }
            if (preg_match('#^extension/(\w+)/payment/(\w+)$#', $route, $m)) {
                require_once $this->root . '/' . $this->side . '/model/payment/' . $m[2] . '.php';
                $class = 'Opencart\\' . ucfirst($this->side) . '\\Model\\' . str_replace(['_', '/'], ['', '\\'], ucwords($route, '_/'));
                $this->registry->set($key, new $class($this->registry));
                return;
            }
            $this->registry->set($key, new StandInCoreModel($route));
        }
        public function view($route, $data = []) { return 'VIEW ' . $route . ' ' . json_encode($data); }
        public function controller($route) { return ''; }
    }
    /** checkout/order (catalog), sale/order, setting/setting and localisation/order_status (admin). */
    class StandInCoreModel {
        private $route;
        public function __construct($route) { $this->route = $route; }
        public function getOrder($id) { global $S; return $S['orders'][$id] ?? []; }
        public function addHistory($orderId, $statusId, $comment = '', $notify = false) { global $S; $S['histories'][] = [(int) $orderId, (int) $statusId, $comment]; }
        public function editSetting($code, $data) { global $S; $S['settings'][$code] = $data; foreach ($data as $k => $v) { $S['config'][$k] = $v; } }
        public function getOrderStatuses() { return [['order_status_id' => 1, 'name' => 'Pending'], ['order_status_id' => 2, 'name' => 'Processing'], ['order_status_id' => 10, 'name' => 'Failed']]; }
    }
    class StandInDb {
        public function escape($value) { return addslashes((string) $value); }
        public function query($sql) {
            global $S; $S['queries'][] = $sql;
            if (preg_match('/GET_LOCK/', $sql)) { return (object) ['row' => ['locked' => '1'], 'rows' => [], 'num_rows' => 1]; }
            $id = preg_match("/`order_id` = '(\d+)'/", $sql, $m) ? $m[1] : null;
            if (strpos($sql, 'SELECT * FROM') === 0) { $row = $S['rows'][$id] ?? []; return (object) ['row' => $row, 'rows' => $row ? [$row] : [], 'num_rows' => $row ? 1 : 0]; }
            if (strpos($sql, 'SELECT `total`, `currency_code`, `currency_value` FROM `oc_order`') === 0) {
                $order = $S['orders'][$id] ?? [];
                $row = $order ? ['total' => (string) $order['total'], 'currency_code' => $order['currency_code'], 'currency_value' => (string) $order['currency_value']] : [];
                return (object) ['row' => $row, 'rows' => $row ? [$row] : [], 'num_rows' => $row ? 1 : 0];
            }
            if (preg_match('/^(REPLACE INTO|INSERT INTO|UPDATE)/', $sql)) {
                [$set, $onDuplicate] = array_pad(explode(' ON DUPLICATE KEY UPDATE ', $sql, 2), 2, null);
                preg_match_all("/`(\w+)` = '((?:[^'\\\\]|\\\\.)*)'/", $set, $pairs, PREG_SET_ORDER);
                $insert = strpos($sql, 'UPDATE') !== 0;
                $row = strpos($sql, 'REPLACE') === 0 ? [] : ($S['rows'][$id] ?? []);
                $keep = null; // INSERT over an existing row: only the ON DUPLICATE KEY UPDATE columns change
                if (strpos($sql, 'INSERT') === 0 && isset($S['rows'][$id])) {
                    preg_match_all('/`(\w+)` = VALUES/', (string) $onDuplicate, $cols);
                    $keep = $cols[1];
                }
                foreach ($pairs as $pair) {
                    if (($pair[1] !== 'order_id' || $insert) && ($keep === null || in_array($pair[1], $keep, true))) { $row[$pair[1]] = stripslashes($pair[2]); }
                }
                $S['rows'][$id] = $row;
            }
            return (object) ['row' => [], 'rows' => [], 'num_rows' => 0];
        }
    }
    class StandInUrl {
        // OpenCart 4 escapes & as &amp; in links made for HTML
        public function link($route, $args = '', $js = false) { $url = 'https://shop.standin.invalid/index.php?route=' . $route . ($args !== '' ? '&' . $args : ''); return $js ? $url : str_replace('&', '&amp;', $url); }
    }
    class StandInResponse {
        public $headers = []; public $output = ''; public $redirect = null;
        public function addHeader($h) { $this->headers[] = $h; }
        public function setOutput($o) { $this->output = $o; }
        public function redirect($url) { $this->redirect = $url; }
    }
    class StandInCurrency { public function format($n, $c, $v = '', $f = true) { $n = (float) $n * ($v ? (float) $v : 1.0); return $f ? number_format($n, 2, ',', ' ') . ' ' . $c : round($n, 2); } }
    class StandInLog { public function write($m) { global $S; $S['logs'][] = $m; } }
    /** OpenCart's file cache (system/library/cache), kept in the state between requests. */
    class StandInCache {
        public function get($key) { global $S; return $S['cache'][$key] ?? null; }
        public function set($key, $value, $expire = 0) { global $S; $S['cache'][$key] = $value; }
    }
    class StandInUser { public function hasPermission($what, $route) { global $R; return $R['permission'] ?? true; } }
    class StandInCart { public function hasSubscription() { return false; } }
    class StandInSession { public $data = []; }

    $registry = new \Opencart\System\Engine\Registry();
    $session = new StandInSession();
    $session->data = $R['session'] ?? [];
    $response = new StandInResponse();
    foreach (['config' => new StandInConfig(), 'language' => new StandInLanguage(), 'db' => new StandInDb(), 'url' => new StandInUrl(), 'response' => $response,
        'currency' => new StandInCurrency(), 'log' => new StandInLog(), 'cache' => new StandInCache(), 'user' => new StandInUser(), 'cart' => new StandInCart(), 'session' => $session,
        'document' => new class { public function setTitle($t) {} },
        'request' => (object) ['get' => $R['get'] ?? [], 'post' => $R['post'] ?? [], 'server' => $R['server'] ?? ['REQUEST_METHOD' => 'GET']]] as $key => $object) {
        $registry->set($key, $object);
    }
    $registry->set('load', new StandInLoader($registry, $R['side'], $root));
    require $root . '/' . $R['side'] . '/controller/payment/' . $R['controller'] . '.php';
    $class = 'Opencart\\' . ucfirst($R['side']) . '\\Controller\\Extension\\' . str_replace(' ', '', ucwords(str_replace('_', ' ', basename($root)))) . '\\Payment\\' . str_replace(' ', '', ucwords(str_replace('_', ' ', $R['controller'])));
    $result = (new $class($registry))->{$R['method']}();
    file_put_contents($stateFile, json_encode($S));
    echo json_encode(['errors' => $GLOBALS['errors'], 'status' => http_response_code(), 'headers' => $response->headers, 'output' => $response->output, 'redirect' => $response->redirect, 'returned' => $result, 'state' => $S]);
}

<?php

/**
 * Platform-API check (template.yaml api_checks): the OpenCart checkout's payment-method call, per version.
 *
 *     php payment_model.php <extension root> <OpenCart version>
 *
 * OpenCart is in no package registry this machine can reach, so the platform classes below are
 * STAND-INS, reduced to what the checkout's call path touches, with OpenCart 4's signatures:
 *   - \Opencart\System\Engine\Registry and \Opencart\System\Engine\Model (registry access via __get);
 *   - the Loader's model proxy: OpenCart 4 wraps every model method in a callback that takes the
 *     arguments by reference (Loader::model() / Loader::callback());
 *   - the loop of catalog/model/checkout/payment_method.php, which differs by version:
 *       4.0.0.0-4.0.1.x  $method = $model->getMethod($payment_address);
 *                        expects ['code' => <code>, 'title' => ..., 'sort_order' => ...]
 *       4.0.2.0 and on   if (is_callable([$model, 'getMethods'])) $methods = $model->getMethods($payment_address);
 *                        expects ['code' => <code>, 'name' => ..., 'option' => [<code> => ['code' => '<code>.<code>',
 *                        'name' => ...]], 'sort_order' => ...]
 * Everything else is real: the rendered extension's model, its library and the shared core, on real PHP.
 * Prints one JSON verdict {"ok": bool, "detail": "...", "version": "...", "api": "getMethod|getMethods"}.
 */

declare(strict_types=1);

namespace Opencart\System\Engine {
    /** Stand-in: OpenCart 4's registry. */
    final class Registry
    {
        /** @var array<string, mixed> */
        private $data = [];

        /** @return mixed */
        public function get(string $key)
        {
            return $this->data[$key] ?? null;
        }

        /** @param mixed $value */
        public function set(string $key, $value): void
        {
            $this->data[$key] = $value;
        }

        public function has(string $key): bool
        {
            return isset($this->data[$key]);
        }
    }

    /** Stand-in: OpenCart 4's base model (registry objects are properties). */
    abstract class Model
    {
        /** @var Registry */
        protected $registry;

        public function __construct(Registry $registry)
        {
            $this->registry = $registry;
        }

        /** @return mixed */
        public function __get(string $key)
        {
            return $this->registry->get($key);
        }
    }

    /** Stand-in: OpenCart 4's model proxy (methods are callbacks; an unknown method is an error). */
    final class Proxy
    {
        /** @var array<string, callable> */
        private $methods = [];

        public function __set(string $key, callable $value): void
        {
            $this->methods[$key] = $value;
        }

        /** @param array<int, mixed> $args */
        public function __call(string $key, array $args)
        {
            if (!isset($this->methods[$key])) {
                throw new \RuntimeException('Error: Could not call model method ' . $key . '!');
            }
            foreach ($args as $index => &$value) {
                // OpenCart's own hack: make each argument a reference for the by-reference callback
            }
            unset($value);
            return ($this->methods[$key])(...$args);
        }
    }

    /** Stand-in: Loader::model() as OpenCart 4 does it: class from the route, every method proxied. */
    final class Loader
    {
        /** @var Registry */
        private $registry;

        public function __construct(Registry $registry)
        {
            $this->registry = $registry;
        }

        public function model(string $route): void
        {
            $class = 'Opencart\\Catalog\\Model\\' . str_replace(['_', '/'], ['', '\\'], ucwords($route, '_/'));
            if (!class_exists($class)) {
                throw new \RuntimeException('Error: Could not load model ' . $class . '!');
            }
            $model = new $class($this->registry);
            $proxy = new Proxy();
            foreach (get_class_methods($class) as $method) {
                if (substr($method, 0, 2) !== '__' && is_callable([$model, $method])) {
                    $proxy->{$method} = static function (&...$args) use ($model, $method) {
                        return $model->{$method}(...$args);
                    };
                }
            }
            $this->registry->set('model_' . str_replace('/', '_', $route), $proxy);
        }

        /** @return array<string, string> */
        public function language(string $route): array
        {
            return [];
        }
    }
}

namespace {
    /** Stand-in: \Opencart\System\Engine\Config. */
    final class StandInConfig
    {
        /** @var array<string, mixed> */
        public $values = [];

        /** @return mixed */
        public function get(string $key)
        {
            return $this->values[$key] ?? null;
        }
    }

    /** Stand-in: \Opencart\System\Library\Cart\Cart (only what payment models ask). */
    final class StandInCart
    {
        public function hasSubscription(): bool
        {
            return false;
        }

        public function hasShipping(): bool
        {
            return true;
        }
    }

    /** Stand-in: \Opencart\System\Library\Session. */
    final class StandInSession
    {
        /** @var array<string, mixed> */
        public $data = [];
    }

    $verdict = static function (bool $ok, string $detail, string $version, string $api): void {
        echo json_encode(['ok' => $ok, 'detail' => $detail, 'version' => $version, 'api' => $api], JSON_UNESCAPED_SLASHES), "\n";
        exit(0);
    };

    $root = isset($argv[1]) ? realpath($argv[1]) : false;
    $version = isset($argv[2]) ? (string) $argv[2] : '';
    if ($root === false || preg_match('/^4\.\d+\.\d+\.\d+$/D', $version) !== 1) {
        $verdict(false, 'usage: php payment_model.php <extension root> <OpenCart 4 version>', $version, '');
    }
    $api = version_compare($version, '4.0.2.0', '>=') ? 'getMethods' : 'getMethod';
    $models = glob($root . '/catalog/model/payment/*.php') ?: [];
    if (count($models) !== 1) {
        $verdict(false, 'expected exactly one catalog/model/payment/<code>.php, found ' . count($models), $version, $api);
    }
    $code = basename($models[0], '.php');
    $studly = str_replace(['_', '/'], ['', '\\'], ucwords($code, '_/'));
    define('VERSION', $version);
    define('DB_PREFIX', 'oc_');

    set_error_handler(static function (int $severity, string $message, string $file, int $line) use ($verdict, $version, $api): bool {
        $verdict(false, 'PHP raised: ' . $message . ' in ' . basename($file) . ':' . $line, $version, $api);
        return true;
    });

    try {
        $registry = new \Opencart\System\Engine\Registry();
        $config = new StandInConfig();
        $session = new StandInSession();
        $registry->set('config', $config);
        $registry->set('session', $session);
        $registry->set('cart', new StandInCart());
        $loader = new \Opencart\System\Engine\Loader($registry);
        $registry->set('load', $loader);
        require_once $models[0];
        $clientInfo = $studly . '\\OpenCart\\Core\\ClientInfo';
        $currencies = $clientInfo::get('currencies');
        $route = 'extension/' . $code . '/payment/' . $code;
        $loader->model($route);
        $model = $registry->get('model_' . str_replace('/', '_', $route));

        // The checkout's call, as the version makes it.
        $call = static function (array $address) use ($model, $api) {
            if ($api === 'getMethods') {
                return is_callable([$model, 'getMethods']) ? $model->getMethods($address) : [];
            }
            return $model->getMethod($address);
        };
        $address = ['country_id' => 150, 'zone_id' => 0, 'iso_code_2' => 'NL'];
        $setting = 'payment_' . $code;

        $config->values = [$setting . '_status' => '1', $setting . '_api_key' => 'key_standin', $setting . '_sort_order' => '3', 'config_currency' => $currencies[0]];
        $session->data = ['currency' => $currencies[0]];
        $method = $call($address);
        $problems = [];
        if ($api === 'getMethod') {
            if (($method['code'] ?? null) !== $code || !is_string($method['title'] ?? null) || $method['title'] === '' || !array_key_exists('sort_order', $method)) {
                $problems[] = 'getMethod() returned ' . json_encode($method) . ', expected code "' . $code . '", a title and sort_order';
            }
        } else {
            $option = $method['option'][$code] ?? null;
            if (($method['code'] ?? null) !== $code || !is_string($method['name'] ?? null) || $method['name'] === '' || !array_key_exists('sort_order', $method)
                || !is_array($option) || ($option['code'] ?? null) !== $code . '.' . $code || !is_string($option['name'] ?? null)) {
                $problems[] = 'getMethods() returned ' . json_encode($method) . ', expected code "' . $code . '", name, option["' . $code . '"] with code "' . $code . '.' . $code . '", sort_order';
            }
        }
        if ((int) ($method['sort_order'] ?? -1) !== 3) {
            $problems[] = 'sort_order is not the configured 3';
        }

        $config->values[$setting . '_status'] = '0';
        if ($call($address) !== []) {
            $problems[] = 'a disabled extension still offers its method';
        }
        $config->values[$setting . '_status'] = '1';
        $session->data['currency'] = 'XXX';
        if ($call($address) !== []) {
            $problems[] = 'the method is offered in a currency the PSP does not accept (XXX)';
        }
        $session->data['currency'] = $currencies[0];
        $config->values[$setting . '_api_key'] = '';
        if ($call($address) !== []) {
            $problems[] = 'the method is offered without an API key';
        }
        $verdict($problems === [], implode('; ', $problems), $version, $api);
    } catch (\Throwable $e) {
        $verdict(false, get_class($e) . ': ' . $e->getMessage(), $version, $api);
    }
}

<?php
/**
 * Contract harness: executes a rendered plugin's platform-neutral core against vectors from verify/contract/cases.py.
 *
 *     php -n -d error_reporting=-1 contract_harness.php <vectors.json> <plugin root>
 *
 * It loads the plugin's core files (the template's contract.bootstrap, after defining contract.define),
 * runs every case in the vectors and prints exactly one JSON document on stdout:
 *
 *     {"php": "8.2.1", "mode": "contract", "bootstrap": {...case...}, "cases": {"<id>": {...case...}},
 *      "fatal": null, "complete": true}
 *
 * where a case is {"value": <what the core returned>, "exception": null|"Class: message",
 * "errors": [PHP warnings, notices and deprecations raised while it ran], "output": "<stray output>"}.
 * The harness judges nothing: verify/contract/cases.py compares the values with what Python expects.
 *
 * Written for PHP 7.4 through 8.5, like the core it tests.
 */

declare(strict_types=1);

final class ContractHarness
{
    /** @var list<string> */
    public static $errors = [];

    /** @var list<array{0: string, 1: string}> */
    public static $hashEqualsCalls = [];

    /** @var array<string, mixed> */
    public static $document = ['php' => PHP_VERSION, 'mode' => null, 'bootstrap' => null, 'cases' => [], 'fatal' => null, 'complete' => false];

    /** @var bool */
    private static $printed = false;

    /** @var string */
    public static $namespace = '';

    public static function onError(int $severity, string $message, string $file = '', int $line = 0): bool
    {
        $labels = [
            E_WARNING => 'Warning', E_NOTICE => 'Notice', E_DEPRECATED => 'Deprecated',
            E_USER_WARNING => 'Warning', E_USER_NOTICE => 'Notice', E_USER_DEPRECATED => 'Deprecated',
            E_RECOVERABLE_ERROR => 'Recoverable error',
        ];
        $label = isset($labels[$severity]) ? $labels[$severity] : 'Error ' . $severity;
        self::$errors[] = $label . ': ' . $message . ' in ' . self::shortPath($file) . ':' . $line;
        return true;
    }

    public static function shortPath(string $file): string
    {
        $root = isset($GLOBALS['contractRoot']) && is_string($GLOBALS['contractRoot']) ? $GLOBALS['contractRoot'] : '';
        if ($root !== '' && strpos($file, $root . '/') === 0) {
            return substr($file, strlen($root) + 1);
        }
        return basename($file);
    }

    /**
     * Run one case: its value, exception, PHP errors and stray output are recorded under $id.
     *
     * @return mixed the case's value (null when it threw)
     */
    public static function run(string $id, callable $case)
    {
        self::$errors = [];
        $value = null;
        $exception = null;
        ob_start();
        try {
            $value = $case();
        } catch (\Throwable $e) {
            $exception = get_class($e) . ': ' . $e->getMessage();
        }
        $output = (string) ob_get_clean();
        $record = ['value' => $value, 'exception' => $exception, 'errors' => self::$errors, 'output' => $output];
        if ($id === 'bootstrap') {
            self::$document['bootstrap'] = $record;
        } else {
            self::$document['cases'][$id] = $record;
        }
        self::$errors = [];
        return $value;
    }

    public static function cls(string $name): string
    {
        return self::$namespace . '\\' . $name;
    }

    public static function emit(): void
    {
        if (self::$printed) {
            return;
        }
        self::$printed = true;
        while (ob_get_level() > 0) {
            ob_end_clean();
        }
        $flags = JSON_UNESCAPED_SLASHES | JSON_PARTIAL_OUTPUT_ON_ERROR | JSON_INVALID_UTF8_SUBSTITUTE;
        echo json_encode(self::$document, $flags), "\n";
    }

    public static function onShutdown(): void
    {
        if (self::$printed) {
            return;
        }
        $last = error_get_last();
        if ($last !== null && in_array($last['type'], [E_ERROR, E_PARSE, E_CORE_ERROR, E_COMPILE_ERROR, E_USER_ERROR], true)) {
            self::$document['fatal'] = $last['message'] . ' in ' . self::shortPath((string) $last['file']) . ':' . $last['line'];
        } else {
            self::$document['fatal'] = 'the harness stopped early (exit called by the code under test?)';
        }
        self::emit();
    }
}

set_error_handler([ContractHarness::class, 'onError']);
register_shutdown_function([ContractHarness::class, 'onShutdown']);
ob_start();

if ($argc < 3) {
    fwrite(STDERR, "usage: php contract_harness.php <vectors.json> <plugin root>\n");
    exit(2);
}
$vectors = json_decode((string) file_get_contents($argv[1]), true);
$contractRoot = realpath($argv[2]);
if (!is_array($vectors) || $contractRoot === false) {
    fwrite(STDERR, "unreadable vectors or plugin root\n");
    exit(2);
}
ContractHarness::$document['mode'] = $vectors['mode'];
ContractHarness::$namespace = (string) $vectors['namespace'];

// --- bootstrap: constants, spies, the core files ---------------------------------------------------

$loaded = ContractHarness::run('bootstrap', static function () use ($vectors, $contractRoot): array {
    $ns = ContractHarness::$namespace;
    if (preg_match('/^[A-Za-z_][A-Za-z0-9_]*(\\\\[A-Za-z_][A-Za-z0-9_]*)*$/D', $ns) !== 1) {
        throw new \InvalidArgumentException('not a PHP namespace: ' . $ns);
    }
    foreach ($vectors['define'] as $name => $value) {
        if (!defined($name)) {
            define($name, $value);
        }
    }
    // A spy for hash_equals in the core's namespace: unqualified calls from the core resolve to it
    // first, which lets the contract see that signatures are compared in constant time.
    eval('namespace ' . $ns . '; function hash_equals($known, $user) { '
        . '\ContractHarness::$hashEqualsCalls[] = [$known, $user]; return \hash_equals($known, $user); }');
    $files = [];
    foreach ($vectors['bootstrap'] as $rel) {
        $path = realpath($contractRoot . '/' . $rel);
        if ($path === false || strpos($path, $contractRoot . '/') !== 0) {
            throw new \RuntimeException('bootstrap file missing or outside the plugin: ' . $rel);
        }
        require_once $path;
        $files[] = $rel;
    }
    $missing = [];
    foreach ($vectors['expect_classes'] as $name) {
        $fq = ContractHarness::cls($name);
        if (!class_exists($fq, false) && !interface_exists($fq, false)) {
            $missing[] = $name;
        }
    }
    return ['files' => $files, 'missing' => $missing];
});

if (!is_array($loaded) || $loaded['missing'] !== []) {
    ContractHarness::$document['complete'] = true;
    ContractHarness::emit();
    exit(0);
}

if ($vectors['mode'] === 'values') {
    ContractHarness::run('values', static function (): array {
        $class = ContractHarness::cls('ClientInfo');
        return $class::values();
    });
    ContractHarness::$document['complete'] = true;
    ContractHarness::emit();
    exit(0);
}

// --- fakes behind the core's own interfaces --------------------------------------------------------

class_alias(ContractHarness::cls('PspClientInterface'), 'ContractPspClientInterface');
class_alias(ContractHarness::cls('OrderStoreInterface'), 'ContractOrderStoreInterface');
class_alias(ContractHarness::cls('LockInterface'), 'ContractLockInterface');
class_alias(ContractHarness::cls('HttpTransportInterface'), 'ContractHttpTransportInterface');
class_alias(ContractHarness::cls('PspException'), 'ContractPspException');

if (true) { // declared at run time, once the aliases above exist
    /** The PSP as the processor sees it: payments by id, with a call log. */
    final class ContractFakePsp implements ContractPspClientInterface
    {
        /** @var array<string, array<string, mixed>|null> */
        public $payments = [];

        /** @var list<string> */
        public $calls = [];

        public function getPayment(string $paymentId): array
        {
            $this->calls[] = $paymentId;
            if (!array_key_exists($paymentId, $this->payments)) {
                throw new ContractPspException('payment not found: ' . $paymentId, 404, 'contract');
            }
            $payment = $this->payments[$paymentId];
            if ($payment === null) {
                throw new ContractPspException('PSP unreachable', 0, 'contract');
            }
            return $payment;
        }

        public function lastCorrelationId(): string
        {
            return $this->calls === [] ? '' : 'corr:' . $this->calls[count($this->calls) - 1];
        }
    }

    /** Orders in memory: canonical status, processed events and every apply() call. */
    final class ContractMemoryStore implements ContractOrderStoreInterface
    {
        /** @var array<string, array{status: string|null, events: list<string>}> */
        public $orders = [];

        /** @var list<array{0: string, 1: string, 2: string, 3: string}> */
        public $applied = [];

        /** @var array<string, array{amount: int, currency: string, payment_ids: list<string>}> */
        public $terms = [];

        /** @var list<array{0: string, 1: string, 2: string, 3: string}> hold() calls: order, result, event, correlation id */
        public $held = [];

        public function getPaymentTerms(string $orderRef): array
        {
            return isset($this->terms[$orderRef]) ? $this->terms[$orderRef] : ['amount' => 0, 'currency' => '', 'payment_ids' => []];
        }

        public function hold(string $orderRef, string $result, string $eventId, array $detail): void
        {
            $this->held[] = [$orderRef, $result, $eventId, isset($detail['correlation_id']) ? (string) $detail['correlation_id'] : ''];
            $this->orders[$orderRef]['events'][] = $eventId;
        }

        public function exists(string $orderRef): bool
        {
            return isset($this->orders[$orderRef]);
        }

        public function getStatus(string $orderRef): ?string
        {
            return isset($this->orders[$orderRef]) ? $this->orders[$orderRef]['status'] : null;
        }

        public function hasProcessedEvent(string $orderRef, string $eventId): bool
        {
            return isset($this->orders[$orderRef]) && in_array($eventId, $this->orders[$orderRef]['events'], true);
        }

        public function apply(string $orderRef, string $status, string $platformState, string $eventId, array $payment = []): void
        {
            $this->applied[] = [$orderRef, $status, $platformState, $eventId];
            $this->orders[$orderRef]['status'] = $status;
            $this->orders[$orderRef]['events'][] = $eventId;
        }

        /** @return array<string, string|null> */
        public function statuses(): array
        {
            $out = [];
            foreach ($this->orders as $ref => $order) {
                $out[(string) $ref] = $order['status'];
            }
            return $out;
        }
    }

    /** Locks in memory; names in $heldElsewhere belong to "another process". */
    final class ContractMemoryLock implements ContractLockInterface
    {
        /** @var list<string> */
        public $heldElsewhere = [];

        /** @var array<string, true> */
        public $held = [];

        /** @var list<string> */
        public $log = [];

        public function acquire(string $name, int $timeoutSeconds): bool
        {
            $this->log[] = 'acquire ' . $name;
            if (in_array($name, $this->heldElsewhere, true) || isset($this->held[$name])) {
                return false;
            }
            $this->held[$name] = true;
            return true;
        }

        public function release(string $name): void
        {
            $this->log[] = 'release ' . $name;
            unset($this->held[$name]);
        }
    }

    /** Records requests instead of sending them; answers from a queue. */
    final class ContractRecordingTransport implements ContractHttpTransportInterface
    {
        /** @var list<array{method: string, url: string, headers: array<string, string>, body: string|null}> */
        public $requests = [];

        /** @var list<array{status: int, body: string}> */
        public $responses = [];

        public function request(string $method, string $url, array $headers, ?string $body): array
        {
            $this->requests[] = ['method' => $method, 'url' => $url, 'headers' => $headers, 'body' => $body];
            $response = array_shift($this->responses);
            if ($response === null) {
                throw new ContractPspException('no canned response left', 0, 'contract');
            }
            return $response;
        }
    }
}

// --- signatures ------------------------------------------------------------------------------------

$signature = ContractHarness::cls('Signature');
foreach ($vectors['sign'] as $case) {
    ContractHarness::run('sign:' . $case['name'], static function () use ($signature, $case): string {
        return $signature::sign($case['secret'], $case['timestamp'], $case['body']);
    });
}
foreach ($vectors['verify'] as $case) {
    ContractHarness::run('verify:' . $case['name'], static function () use ($signature, $case): string {
        return $signature::verify($case['secret'], $case['header'], $case['body'], $case['now'], $case['tolerance']);
    });
}
foreach ($vectors['constant_time'] as $case) {
    ContractHarness::run('constant_time:' . $case['name'], static function () use ($signature, $case): array {
        ContractHarness::$hashEqualsCalls = [];
        $verdict = $signature::verify($case['secret'], $case['header'], $case['body'], $case['now'], $case['tolerance']);
        return ['verdict' => $verdict, 'hash_equals_calls' => ContractHarness::$hashEqualsCalls];
    });
}

// --- status map and state machine ------------------------------------------------------------------

$statusMap = ContractHarness::cls('StatusMap');
foreach ($vectors['statuses'] as $status) {
    ContractHarness::run('to_platform:' . $status, static function () use ($statusMap, $status): string {
        return $statusMap::toPlatform($status);
    });
}
ContractHarness::run('to_platform_unknown', static function () use ($statusMap, $vectors): array {
    $out = [];
    foreach ($vectors['not_statuses'] as $status) {
        try {
            $out[$status] = 'returned ' . var_export($statusMap::toPlatform($status), true);
        } catch (\InvalidArgumentException $e) {
            $out[$status] = 'rejected';
        }
    }
    return $out;
});
ContractHarness::run('is_canonical', static function () use ($statusMap, $vectors): array {
    $out = [];
    foreach (array_merge($vectors['statuses'], $vectors['not_statuses']) as $status) {
        $out[$status] = $statusMap::isCanonical($status);
    }
    return $out;
});
foreach (array_merge([null], $vectors['statuses'], $vectors['not_statuses']) as $from) {
    $key = $from === null ? 'null' : $from;
    ContractHarness::run('transitions:' . $key, static function () use ($statusMap, $vectors, $from): array {
        $out = [];
        foreach (array_merge($vectors['statuses'], $vectors['not_statuses']) as $to) {
            $out[$to] = $statusMap::canTransition($from, $to);
        }
        return $out;
    });
}

// --- webhook scenarios -----------------------------------------------------------------------------

$processorClass = ContractHarness::cls('WebhookProcessor');
foreach ($vectors['webhooks'] as $scenario) {
    ContractHarness::run('webhook:' . $scenario['name'], static function () use ($processorClass, $scenario): array {
        $psp = new ContractFakePsp();
        $store = new ContractMemoryStore();
        $lock = new ContractMemoryLock();
        foreach ($scenario['orders'] as $ref => $status) {
            $store->orders[(string) $ref] = ['status' => $status, 'events' => []];
        }
        foreach (isset($scenario['terms']) ? $scenario['terms'] : [] as $ref => $terms) {
            $store->terms[(string) $ref] = $terms;
        }
        $lock->heldElsewhere = $scenario['held_locks'];
        $processor = new $processorClass($psp, $store, $lock, $scenario['secret'], $scenario['tolerance']);
        $steps = [];
        foreach ($scenario['steps'] as $step) {
            foreach ($step['psp'] as $paymentId => $payment) {
                $psp->payments[(string) $paymentId] = $payment;
            }
            $pspCallsBefore = count($psp->calls);
            $lockLogBefore = count($lock->log);
            $result = null;
            $exception = null;
            try {
                $result = $processor->handle($step['body'], $step['header'], $step['now']);
            } catch (\Throwable $e) {
                $exception = get_class($e);
            }
            $steps[] = [
                'result' => $result,
                'exception' => $exception,
                'psp_calls' => array_slice($psp->calls, $pspCallsBefore),
                'locks' => array_slice($lock->log, $lockLogBefore),
                'held_after' => array_keys($lock->held),
                'statuses' => $store->statuses(),
                'applied' => $store->applied,
                'held' => $store->held,
            ];
        }
        return $steps;
    });
}

// --- secrets at rest -------------------------------------------------------------------------------

if (isset($vectors['secret_box'])) {
    $box = ContractHarness::cls('SecretBox');
    $sb = $vectors['secret_box'];
    ContractHarness::run('secret_box', static function () use ($box, $sb): array {
        $sealed = [];
        foreach ($sb['plaintexts'] as $plain) {
            $sealed[] = [$plain, $box::seal($plain, $sb['site_secret'])];
        }
        $out = ['roundtrip' => true, 'format' => true, 'fresh_iv' => true, 'other_site' => true, 'tampered' => true];
        foreach ($sealed as $pair) {
            list($plain, $stored) = $pair;
            $out['roundtrip'] = $out['roundtrip'] && $box::open($stored, $sb['site_secret']) === $plain;
            $out['format'] = $out['format'] && preg_match($sb['pattern'], $stored) === 1 && strpos($stored, $plain) === false && $box::isSealed($stored);
            $out['fresh_iv'] = $out['fresh_iv'] && $box::seal($plain, $sb['site_secret']) !== $stored;
            $out['other_site'] = $out['other_site'] && $box::open($stored, $sb['other_secret']) === '';
            $flipped = substr($stored, 0, 30) . ($stored[30] === 'A' ? 'B' : 'A') . substr($stored, 31);
            $out['tampered'] = $out['tampered'] && $box::open($flipped, $sb['site_secret']) === '';
        }
        $out['legacy'] = $box::open($sb['legacy'], $sb['site_secret']);
        $out['empty'] = $box::seal('', $sb['site_secret']);
        $out['garbage'] = $box::open('pspenc:o1:%%%', $sb['site_secret']);
        try {
            $box::seal('x', '');
            $out['no_site_secret'] = 'sealed';
        } catch (\RuntimeException $e) {
            $out['no_site_secret'] = 'refused';
        }
        return $out;
    });
}

// --- PSP client ------------------------------------------------------------------------------------

$clientVectors = $vectors['client'];
$clientClass = ContractHarness::cls('PspClient');
ContractHarness::run('client:get_payment', static function () use ($clientClass, $clientVectors): array {
    $transport = new ContractRecordingTransport();
    $transport->responses = [
        ['status' => 200, 'body' => $clientVectors['payment_json']],
        ['status' => 200, 'body' => $clientVectors['payment_json']],
    ];
    $client = new $clientClass($clientVectors['api_base'], $clientVectors['api_key'], $transport, 'ContractHarness/1.0');
    $first = $client->getPayment($clientVectors['payment_id']);
    $second = $client->getPayment($clientVectors['payment_id']);
    return ['returned' => [$first, $second], 'requests' => $transport->requests];
});
ContractHarness::run('client:create_payment', static function () use ($clientClass, $clientVectors): array {
    $transport = new ContractRecordingTransport();
    $transport->responses = [['status' => 201, 'body' => $clientVectors['created_json']]];
    $client = new $clientClass($clientVectors['api_base'], $clientVectors['api_key'], $transport, '');
    $created = $client->createPayment($clientVectors['create_payload'], $clientVectors['idempotency_key']);
    return ['returned' => $created, 'requests' => $transport->requests];
});
ContractHarness::run('client:http_error', static function () use ($clientClass, $clientVectors): array {
    $transport = new ContractRecordingTransport();
    $transport->responses = [['status' => 503, 'body' => '{"error":"maintenance"}']];
    $client = new $clientClass($clientVectors['api_base'], $clientVectors['api_key'], $transport, '');
    try {
        $client->getPayment($clientVectors['payment_id']);
        return ['thrown' => null];
    } catch (\Throwable $e) {
        $correlation = method_exists($e, 'getCorrelationId') ? $e->getCorrelationId() : null;
        return [
            'thrown' => get_class($e),
            'is_psp_exception' => $e instanceof ContractPspException,
            'correlation_id' => $correlation,
            'sent_correlation_id' => $transport->requests[0]['headers']['X-Correlation-ID'] ?? null,
        ];
    }
});
ContractHarness::run('client:transport_failure', static function () use ($clientClass, $clientVectors): array {
    $transport = new ContractRecordingTransport(); // no canned response: the transport throws
    $client = new $clientClass($clientVectors['api_base'], $clientVectors['api_key'], $transport, '');
    try {
        $client->getPayment($clientVectors['payment_id']);
        return ['thrown' => null];
    } catch (\Throwable $e) {
        return [
            'thrown' => get_class($e),
            'is_psp_exception' => $e instanceof ContractPspException,
            'correlation_id' => method_exists($e, 'getCorrelationId') ? $e->getCorrelationId() : null,
            'sent_correlation_id' => $transport->requests[0]['headers']['X-Correlation-ID'] ?? null,
        ];
    }
});
ContractHarness::run('client:https_only', static function () use ($clientClass, $clientVectors): array {
    $out = [];
    foreach ($clientVectors['refused_bases'] as $base) {
        try {
            new $clientClass($base, $clientVectors['api_key'], new ContractRecordingTransport(), '');
            $out[$base] = 'accepted';
        } catch (\InvalidArgumentException $e) {
            $out[$base] = 'refused';
        }
    }
    return $out;
});

// --- the PSP API contract: every client method, the webhook declaration -------------------------------

if (isset($vectors['api'])) {
    /** Answers like the PSP would: the contract's example answer of the operation a request matches. */
    final class ContractRoutingTransport implements ContractHttpTransportInterface
    {
        /** @var list<array{method: string, url: string, headers: array<string, string>, body: string|null}> */
        public $requests = [];

        /** @var array<string, mixed> */
        private $api;

        /** @param array<string, mixed> $api */
        public function __construct(array $api)
        {
            $this->api = $api;
        }

        public function request(string $method, string $url, array $headers, ?string $body): array
        {
            $this->requests[] = ['method' => $method, 'url' => $url, 'headers' => $headers, 'body' => $body];
            $base = rtrim((string) $this->api['api_base'], '/') . '/';
            if (strpos($url, $base) === 0) {
                $path = explode('?', substr($url, strlen($base)), 2)[0];
                $segments = explode('/', trim($path, '/'));
                foreach ($this->api['routes'] as $route) {
                    if ($route['method'] !== $method || count($route['segments']) !== count($segments)) {
                        continue;
                    }
                    $matches = true;
                    foreach ($route['segments'] as $i => $want) {
                        if ($want !== null && $want !== $segments[$i]) {
                            $matches = false;
                            break;
                        }
                    }
                    if ($matches) {
                        return ['status' => $route['status'], 'body' => $route['body']];
                    }
                }
            }
            return $this->api['not_found'];
        }
    }

    // Every public method of the client, called with the contract's values for its parameters (by name;
    // the one left over gets the request body). verify/contract/api.py judges each request it sent.
    $api = $vectors['api'];
    ContractHarness::run('client:operations', static function () use ($clientClass, $clientVectors, $api): array {
        $out = [];
        $class = new \ReflectionClass($clientClass);
        foreach ($class->getMethods(\ReflectionMethod::IS_PUBLIC) as $method) {
            if ($method->isStatic() || $method->isConstructor()) {
                continue;
            }
            $name = $method->getName();
            $values = isset($api['operations'][$name]) ? $api['operations'][$name] : $api['defaults'];
            $args = [];
            $params = [];
            $unresolved = [];
            $bodyUsed = false;
            foreach ($method->getParameters() as $parameter) {
                $params[] = $parameter->getName();
                if (array_key_exists($parameter->getName(), $values['args'])) {
                    $args[] = $values['args'][$parameter->getName()];
                } elseif (!$bodyUsed && is_array($values['body'])) {
                    $args[] = $values['body'];
                    $bodyUsed = true;
                } elseif (!$parameter->isOptional()) {
                    $unresolved[] = $parameter->getName();
                } else {
                    break;
                }
            }
            $record = ['params' => $params, 'unresolved' => $unresolved, 'requests' => [], 'returned' => null, 'exception' => null];
            if ($unresolved === []) {
                $transport = new ContractRoutingTransport($api);
                $client = new $clientClass($clientVectors['api_base'], $clientVectors['api_key'], $transport, '');
                try {
                    $record['returned'] = $method->invokeArgs($client, $args);
                } catch (\Throwable $e) {
                    $record['exception'] = get_class($e) . ': ' . $e->getMessage();
                }
                $record['requests'] = $transport->requests;
            }
            $out[$name] = $record;
        }
        return $out;
    });
}

ContractHarness::run('webhook:declaration', static function () use ($processorClass): array {
    $fields = defined($processorClass . '::PAYLOAD_FIELDS') ? constant($processorClass . '::PAYLOAD_FIELDS') : null;
    return ['payload_fields' => $fields, 'signature_header' => constant($processorClass . '::SIGNATURE_HEADER')];
});

// --- IBAN and BIC ---------------------------------------------------------------------------------

if (isset($vectors['bank_ids'])) {
    $bankAccount = ContractHarness::cls('BankAccount');
    foreach ($vectors['bank_ids']['iban'] as $value) {
        ContractHarness::run('iban:' . $value, static function () use ($bankAccount, $value): array {
            return ['problem' => $bankAccount::ibanProblem($value), 'normalized' => $bankAccount::normalizeIban($value)];
        });
    }
    foreach ($vectors['bank_ids']['bic'] as $value) {
        ContractHarness::run('bic:' . $value, static function () use ($bankAccount, $value): array {
            return ['problem' => $bankAccount::bicProblem($value), 'normalized' => $bankAccount::normalizeBic($value)];
        });
    }
    foreach ($vectors['bank_ids']['debtor'] as $case) {
        ContractHarness::run('debtor:' . $case['name'], static function () use ($bankAccount, $case): array {
            return $bankAccount::checkDebtor($case['iban'], $case['bic'], $case['required']);
        });
    }
}

// --- the createPayment body: PaymentRequest::create with the contract's example values ---------------

if (isset($vectors['payment_request'])) {
    $requestClass = ContractHarness::cls('PaymentRequest');
    foreach ($vectors['payment_request'] as $case) {
        // Parameters by name (the request's fields in camelCase); a required one the example lacks gets
        // an empty value of its type, so the body is still built and judged, and is reported unresolved.
        ContractHarness::run('payment_request:' . $case['name'], static function () use ($requestClass, $case): array {
            $method = new \ReflectionMethod($requestClass, 'create');
            $empty = ['int' => 0, 'float' => 0.0, 'string' => '', 'bool' => false, 'array' => []];
            $args = [];
            $unresolved = [];
            foreach ($method->getParameters() as $parameter) {
                $name = $parameter->getName();
                if (array_key_exists($name, $case['args'])) {
                    $args[] = $case['args'][$name];
                } elseif ($parameter->isDefaultValueAvailable()) {
                    $args[] = $parameter->getDefaultValue();
                } else {
                    $unresolved[] = $name;
                    $type = $parameter->getType();
                    $typeName = $type instanceof \ReflectionNamedType ? $type->getName() : '';
                    $args[] = ($type === null || $type->allowsNull()) ? null : ($empty[$typeName] ?? null);
                }
            }
            return ['unresolved' => $unresolved, 'body' => $method->invokeArgs(null, $args)];
        });
    }
}

// --- health ----------------------------------------------------------------------------------------

ContractHarness::run('health', static function (): array {
    $class = ContractHarness::cls('Health');
    return $class::report();
});

ContractHarness::$document['complete'] = true;
ContractHarness::emit();

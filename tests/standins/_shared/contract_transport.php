<?php
define('ABSPATH', '/');
$classes = ['ClientInfo', 'PspException', 'HttpTransportInterface', 'PspClientInterface', 'StreamTransport'];
foreach (array_merge($classes, ['PspClient']) as $c) {
    require $argv[1] . '/includes/core/' . $c . '.php';
}
$ns = $argv[2]; $base = $argv[3]; $ca = $argv[4];
$errors = [];
set_error_handler(static function ($no, $msg) use (&$errors) { $errors[] = $msg; return true; });
$transport = $ns . '\StreamTransport';
$client = $ns . '\PspClient';
$out = [];
$try = static function (callable $call) {
    try { return $call(); } catch (\Throwable $e) { return 'threw ' . get_class($e) . ': ' . $e->getMessage(); }
};
$trusted = new $transport(5.0, $ca);
$out['post'] = $try(static function () use ($trusted, $base) {
    $headers = ['Content-Type' => 'application/json', 'X-Correlation-ID' => 'c-1'];
    return $trusted->request('POST', $base . '/echo', $headers, '{"a":1}');
});
$out['redirect'] = $try(static function () use ($trusted, $base) {
    return $trusted->request('GET', $base . '/redirect', [], null);
});
$out['untrusted'] = $try(static function () use ($transport, $base) {
    return (new $transport(5.0))->request('GET', $base . '/echo', [], null);
});
$out['plain_http'] = $try(static function () use ($trusted, $base) {
    return $trusted->request('GET', str_replace('https://', 'http://', $base) . '/echo', [], null);
});
$out['header_injection'] = $try(static function () use ($trusted, $base) {
    return $trusted->request('GET', $base . '/echo', ['X-Evil' => "a\r\nHost: elsewhere"], null);
});
$out['get_payment'] = $try(static function () use ($client, $trusted, $base) {
    return (new $client($base . '/v1', 'key_123', $trusted, ''))->getPayment('pay_9');
});
$out['errors'] = $errors;
echo json_encode($out);

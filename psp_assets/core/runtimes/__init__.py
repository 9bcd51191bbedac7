"""The runtimes that execute generated plugins: PHP (native php-cli and the php-wasm versions, php), the
long-lived local runtime service (php_service), and Node.js (node). wasm_driver.mjs is the Node side of the
WebAssembly PHP runtimes."""

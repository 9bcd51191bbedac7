"""The runtimes that execute generated plugins: PHP (native php-cli and the php-wasm versions, php), the
long-lived local runtime service (php_service), Node.js (node), and the results of lint and script runs
remembered by content (check_cache). wasm_driver.mjs is the Node side of the WebAssembly PHP runtimes."""

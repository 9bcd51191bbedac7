"""The PHP 7.4 to 8.5 matrix (PHP as WebAssembly, the runtime service)."""

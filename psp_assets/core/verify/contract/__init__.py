"""The contract tests: cases built from the single sources of truth and judged (cases), the PSP API
contract part (api), the per-template runner (bridge), the Node.js runner for JavaScript cores (node), the
standalone suite for a client's own CI (standalone), and the PHP/JS harnesses and judges (harness/)."""

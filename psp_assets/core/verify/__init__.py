"""Verifying a rendered plugin: the test report and its packaging-convention and lint checks (checks), the
platform-API checks per platform version (platform_api), the content-keyed result cache (check_cache), and the
contract tests (contract/)."""

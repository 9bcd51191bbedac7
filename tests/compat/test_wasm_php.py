"""PHP compiled to WebAssembly: the real interpreters 7.4 ... 8.5, booted once, linting and running many files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from psp_assets.core.lineage import render_plugin
from psp_assets.core.plan import plan_plugin
from psp_assets.core.runtimes.php import NativePhp, PhpRuntimes, PhpUnavailable, WasmPhp
from psp_assets.core.templates.spec import PHP_VERSIONS
from psp_assets.core.workspace import Paths
from tests.conftest import DEMO_CLIENTS, TEMPLATES

pytestmark = pytest.mark.integration


def write(root: Path, files: dict[str, str]) -> list[str]:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return list(files)


@pytest.mark.parametrize("version", PHP_VERSIONS)
def test_each_runtime_is_the_php_version_it_was_asked_for(version: str, runtimes: PhpRuntimes, tmp_path: Path):
    php = runtimes.get(version)
    write(tmp_path, {"v.php": "<?php echo PHP_VERSION, ' ', PHP_MAJOR_VERSION . '.' . PHP_MINOR_VERSION;"})
    out = php.run(tmp_path / "v.php", [], tmp_path)
    full, short = out.stdout.split()
    assert out.returncode == 0 and short == version == php.version
    assert full == php.full_version and full.startswith(version + ".")


def test_lint_fails_a_parse_error_naming_the_file_and_line(runtimes: PhpRuntimes, tmp_path: Path):
    files = write(tmp_path, {"src/ok.php": "<?php\necho 1;\n", "src/bad.php": "<?php\n\nfunction f( {\n}\n"})
    for version in ("7.4", "8.5"):
        results = {r.path: r for r in runtimes.get(version).lint(tmp_path, files)}
        assert results["src/ok.php"].ok and results["src/ok.php"].message == ""
        bad = results["src/bad.php"]
        assert not bad.ok
        assert "Parse error" in bad.message and "src/bad.php on line 3" in bad.message
        assert str(tmp_path) not in bad.message  # no absolute build paths in reports


def test_lint_fails_compile_errors_that_a_parser_alone_would_miss(runtimes: PhpRuntimes, tmp_path: Path):
    files = write(tmp_path, {"dup.php": "<?php\nfunction f($a, $a) { return $a; }\n"})
    [result] = runtimes.get("8.2").lint(tmp_path, files)
    assert not result.ok and "Redefinition of parameter $a" in result.message


def test_a_deprecation_fails_lint_on_the_versions_that_deprecate_it(runtimes: PhpRuntimes, tmp_path: Path):
    # implicitly nullable parameters are deprecated from PHP 8.4 on
    files = write(tmp_path, {"nullable.php": "<?php\nfunction f(int $x = null) { return $x; }\n"})
    assert runtimes.get("8.3").lint(tmp_path, files)[0].ok
    on_84 = runtimes.get("8.4").lint(tmp_path, files)[0]
    assert not on_84.ok and "Deprecated" in on_84.message and "nullable" in on_84.message


def test_lint_compiles_without_executing(runtimes: PhpRuntimes, tmp_path: Path):
    marker = tmp_path / "executed"
    files = write(tmp_path, {"side_effect.php": f"<?php\nfile_put_contents({str(marker)!r}, 'ran');\n"})
    assert runtimes.get("8.1").lint(tmp_path, files)[0].ok
    assert not marker.exists()


def test_files_declaring_the_same_class_each_lint_clean(runtimes: PhpRuntimes, tmp_path: Path):
    # one PHP request lints many files; a clash between neighbours must not fail either of them
    body = "<?php\nnamespace Acme;\nfinal class Gateway { public function id(): string { return 'a'; } }\n"
    files = write(tmp_path, {"a/Gateway.php": body, "b/Gateway.php": body, "c/helpers.php": "<?php\nfunction h() {}\n"})
    results = runtimes.get("7.4").lint(tmp_path, files + files)
    assert [r.ok for r in results] == [True] * 6


def test_one_boot_serves_many_lints_and_script_runs(tmp_path: Path):
    files = write(tmp_path, {f"f{i}.php": f"<?php\nfunction f{i}(): int {{ return {i}; }}\n" for i in range(40)})
    write(tmp_path, {"echo.php": "<?php echo $argv[1];"})
    with WasmPhp("8.0") as php:
        for _ in range(3):
            assert all(r.ok for r in php.lint(tmp_path, files))
        outputs = [php.run(tmp_path / "echo.php", [str(i)], tmp_path).stdout for i in range(5)]
        assert outputs == ["0", "1", "2", "3", "4"]
        assert php.boots == 1


def test_the_pool_boots_each_version_once_however_many_callers_ask():
    from concurrent.futures import ThreadPoolExecutor

    pool = PhpRuntimes()
    with ThreadPoolExecutor(max_workers=8) as threads:
        got = list(threads.map(pool.get, ["8.0", "8.5"] * 8))
    assert len({id(rt) for rt in got}) == 2
    assert pool.boots() == {"8.0": 1, "8.5": 1}
    pool.close()
    assert all(rt._proc is None for rt in got)  # the Node processes are stopped
    assert pool.get("8.0") is not got[0] and pool.boots() == {"8.0": 2, "8.5": 1}
    pool.close()


def test_scripts_run_like_the_php_cli(runtimes: PhpRuntimes, tmp_path: Path):
    (tmp_path / "work").mkdir()
    write(
        tmp_path,
        {
            "data.txt": "payload",
            "cli.php": "<?php\n"
            "echo json_encode([$argc, $argv, getcwd(), file_get_contents($argv[1])]);\n"
            "fwrite(STDERR, 'to stderr');\n"
            "echo $undefined;\n"
            "exit(3);\n",
        },
    )
    out = runtimes.get("8.3").run(tmp_path / "cli.php", [str(tmp_path / "data.txt")], tmp_path / "work")
    assert out.returncode == 3
    assert json.loads(out.stdout) == [
        2,
        [str(tmp_path / "cli.php"), str(tmp_path / "data.txt")],
        str(tmp_path / "work"),
        "payload",
    ]
    assert "to stderr" in out.stderr and "Undefined variable $undefined" in out.stderr


def test_a_hung_script_times_out_and_the_next_call_boots_a_fresh_runtime(tmp_path: Path):
    files = write(tmp_path, {"loop.php": "<?php\nwhile (true) {}\n", "ok.php": "<?php echo 'ok';"})
    with WasmPhp("8.2") as php:
        with pytest.raises(subprocess.TimeoutExpired):
            php.run(tmp_path / "loop.php", [], tmp_path, timeout=3)
        assert php.run(tmp_path / "ok.php", [], tmp_path).stdout == "ok"
        assert php.lint(tmp_path, files)[0].ok
        assert php.boots == 2


def test_a_missing_npm_package_is_named_with_the_command_that_installs_it(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("PSP_NODE_MODULES", str(tmp_path))
    with pytest.raises(PhpUnavailable, match=r"node-7-4.*scripts/setup.sh \(npm ci"):
        WasmPhp("7.4")


def test_webassembly_and_native_php_agree_on_every_generated_file(runtimes: PhpRuntimes, php: NativePhp, tmp_path):
    paths = Paths(DEMO_CLIENTS, TEMPLATES, tmp_path / "data", tmp_path / "stores")
    config = paths.fleet().client("nordbank")
    for platform in ("woocommerce", "magento2"):
        source = render_plugin(plan_plugin(paths, config, platform), tmp_path / platform)
        files = [f for f in source.tree.files if f.endswith(".php")]
        wasm = runtimes.get(php.version) if php.version in PHP_VERSIONS else runtimes.get("8.2")
        assert [(r.path, r.ok) for r in wasm.lint(source.path, files)] == [
            (r.path, r.ok) for r in php.lint(source.path, files)
        ]

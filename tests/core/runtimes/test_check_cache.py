"""Check results remembered by content (core/runtimes/check_cache.py): a hit answers without PHP, any changed byte
misses, a garbled entry is ignored. Real PHP (the machine's) and the real contract harness throughout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from psp_assets.core import lineage
from psp_assets.core.lineage import RenderedSource, render_plugin
from psp_assets.core.plan import plan_plugin
from psp_assets.core.render.engine import RenderedTree, read_tree
from psp_assets.core.runtimes import check_cache
from psp_assets.core.runtimes.php import CachedPhp, LintResult, NativePhp, RunResult
from psp_assets.core.verify.contract.cases import HARNESS
from psp_assets.core.workspace import Paths

PLATFORM = "woocommerce"
SIGNATURE = "includes/core/Signature.php"


class CountingPhp(NativePhp):
    """The machine's PHP, counting what actually reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0
        self.linted: list[str] = []

    def run(self, script: Path, args: list[str], cwd: Path, timeout: float = 60) -> RunResult:
        self.runs += 1
        return super().run(script, args, cwd, timeout)

    def lint_uncached(self, root: Path, files) -> list[LintResult]:
        files = sorted(files)
        self.linted += files
        return super().lint_uncached(root, files)


@pytest.fixture(autouse=True)
def fresh_memory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Each test starts with an empty memory layer, a data dir of its own and the cache on."""
    monkeypatch.setenv("PSP_DATA_DIR", str(tmp_path / "env-data"))
    monkeypatch.delenv(check_cache.CACHE_ENV, raising=False)
    monkeypatch.delenv(check_cache.LINT_CACHE_ENV, raising=False)
    check_cache.clear_memory()
    yield
    check_cache.clear_memory()


def verdicts(report) -> list[tuple[str, str, bool, str]]:
    return [(r.check, r.name, r.passed, r.detail) for r in report.results]


def render(paths: Paths):
    config = paths.fleet().client("nordbank")
    return config, render_plugin(plan_plugin(paths, config, PLATFORM))


def test_the_same_bytes_are_answered_from_the_cache_without_php(paths: Paths):
    php = CountingPhp()
    config, source = render(paths)
    first = lineage.test_plugin(plan_plugin(paths, config, source.tree.platform), source.tree, source.path, php)
    assert first.passed and php.runs >= 1 and php.linted
    ran, linted = php.runs, len(php.linted)

    check_cache.clear_memory()  # from disk, as a later run's process would find it
    again = lineage.test_plugin(plan_plugin(paths, config, source.tree.platform), source.tree, source.path, php)
    assert verdicts(again) == verdicts(first)
    assert (php.runs, len(php.linted)) == (ran, linted), "nothing reached PHP the second time"
    assert list((paths.data_dir / "cache" / "checks").rglob("*.json")), "entries are in the data dir"


def test_one_changed_byte_in_a_rendered_file_is_tested_again_and_fails(paths: Paths):
    php = CountingPhp()
    config, source = render(paths)
    assert lineage.test_plugin(plan_plugin(paths, config, source.tree.platform), source.tree, source.path, php).passed
    ran = php.runs

    # one byte: hash_equals -> hash_equalz still lints, and the contract's signature checks must fail
    path = source.path / SIGNATURE
    path.write_bytes(path.read_bytes().replace(b"hash_equals(", b"hash_equalz(", 1))
    tree = reread(source)
    report = lineage.test_plugin(plan_plugin(paths, config, tree.platform), tree, source.path, php)
    assert php.runs > ran, "the contract ran again"
    assert php.linted.count(SIGNATURE) == 2, "the changed file was linted again, and only it"
    failed = {r.check for r in report.failures()}
    assert not report.passed and "contract" in failed


def reread(source: RenderedSource) -> RenderedTree:
    tree = source.tree
    return read_tree(source.path, tree.client_id, tree.platform, tree.plugin_version, tree.build)


@pytest.fixture
def harness_run(tmp_path: Path, php: NativePhp):
    """A contract-like run: a harness script (with a sibling file), a vectors file, a rendered tree."""
    scripts = tmp_path / "harness"
    scripts.mkdir()
    shutil.copy(HARNESS, scripts / HARNESS.name)
    (scripts / "helper.php").write_text("<?php // included by the harness\n")
    vectors = tmp_path / "vectors.json"
    vectors.write_text(json.dumps({"namespace": "Nordbank\\Psp", "expect_version": "1.2.3"}))
    tree = tmp_path / "tree"
    (tree / "includes").mkdir(parents=True)
    (tree / "includes" / "core.php").write_text("<?php echo 'paid';\n")

    def key(identity: str = php.identity, salt: str = "template contract") -> str:
        return check_cache.run_key(identity, salt, scripts / HARNESS.name, [str(vectors), str(tree)], tree)

    return key, {
        "script": scripts / HARNESS.name,
        "sibling": scripts / "helper.php",
        "vectors": vectors,
        "rendered": tree / "includes" / "core.php",
    }


def flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("what", ["rendered", "vectors", "script", "sibling"])
def test_one_changed_byte_in_any_input_file_is_another_key(harness_run, what: str):
    key, files = harness_run
    before = key()
    flip_last_byte(files[what])
    assert key() != before


def test_another_php_or_another_contract_is_another_key(harness_run, php: NativePhp):
    key, _ = harness_run
    before = key()
    other_patch = php.identity.replace(php.full_version, php.full_version + "1", 1)
    assert key(identity=other_patch) != before
    assert key(salt="template contract2") != before  # pipeline's salt: template hash + contract file bytes


def test_one_changed_byte_in_the_contract_file_changes_what_test_plugin_keys_on(paths: Paths, tmp_path):
    php = CountingPhp()
    contract = tmp_path / "contract.yaml"
    contract.write_bytes(paths.contract_file.read_bytes() + b"\n# one more line\n")
    config, source = render(paths)
    assert lineage.test_plugin(plan_plugin(paths, config, source.tree.platform), source.tree, source.path, php).passed
    ran = php.runs
    edited = Paths(**{**paths.__dict__, "contract_file": contract})
    assert lineage.test_plugin(plan_plugin(edited, config, source.tree.platform), source.tree, source.path, php).passed
    assert php.runs > ran, "a comment in the contract is a new contract to the cache"


def test_one_changed_byte_in_the_project_code_is_another_key(harness_run, tmp_path, monkeypatch):
    key, _ = harness_run
    package = tmp_path / "psp_assets"
    shutil.copytree(check_cache.PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(check_cache, "PACKAGE_DIR", package)
    check_cache.code_digest.cache_clear()
    try:
        before = key()
        # a vector file someone adds, or one byte of the Python that builds the vectors
        (package / "contract" / "new_vectors.json").write_text("[]")
        check_cache.code_digest.cache_clear()
        added = key()
        flip_last_byte(package / "core" / "verify/contract/cases.py")
        check_cache.code_digest.cache_clear()
        assert len({before, added, key()}) == 3
    finally:
        check_cache.code_digest.cache_clear()


def test_lint_entries_are_per_file_bytes_path_and_php(tmp_path: Path, php: NativePhp):
    counting = CountingPhp()
    (tmp_path / "a.php").write_text("<?php echo 1;\n")
    (tmp_path / "b.php").write_text("<?php echo 2;\n")
    assert all(r.ok for r in counting.lint(tmp_path, ["a.php", "b.php"]))
    (tmp_path / "b.php").write_text("<?php echo 2\n")  # one byte less: a parse error
    results = {r.path: r for r in counting.lint(tmp_path, ["a.php", "b.php"])}
    assert counting.linted == ["a.php", "b.php", "b.php"]
    assert results["a.php"].ok and not results["b.php"].ok and "syntax error" in results["b.php"].message


@pytest.mark.parametrize(
    "garble",
    [
        lambda text: text[: len(text) // 2],  # cut short
        lambda text: "{not json",
        lambda text: text.replace('"returncode": 0', '"returncode": 1'),  # valid JSON, checksum no longer holds
        lambda text: json.dumps({**json.loads(text), "key": "0" * 64}),  # another entry's file
    ],
    ids=["truncated", "not-json", "value-edited", "wrong-key"],
)
def test_a_garbled_entry_is_ignored_and_the_check_runs_again(tmp_path: Path, harness_run, garble):
    counting = CountingPhp()
    cache = check_cache.CheckCache(tmp_path / "cache")
    work = tmp_path / "work"  # the script's folder and the tree it runs in, apart from the cache
    work.mkdir()
    script = work / "v.php"
    script.write_text("<?php echo 'fresh';\n")
    cached = CachedPhp.wrap(counting, cache, "salt")
    assert cached.run(script, [], work).stdout == "fresh" and counting.runs == 1
    check_cache.clear_memory()
    assert cached.run(script, [], work).stdout == "fresh" and counting.runs == 1, "an intact entry is a hit"
    (entry,) = (tmp_path / "cache").rglob("*.json")
    entry.write_text(garble(entry.read_text()))
    check_cache.clear_memory()
    assert cached.run(script, [], work).stdout == "fresh" and counting.runs == 2


def test_a_failing_run_is_never_stored(tmp_path: Path):
    counting = CountingPhp()
    cached = CachedPhp.wrap(counting, check_cache.CheckCache(tmp_path / "cache"), "salt")
    script = tmp_path / "fail.php"
    script.write_text("<?php fwrite(STDERR, 'no'); exit(3);\n")
    assert cached.run(script, [], tmp_path).returncode == 3
    assert cached.run(script, [], tmp_path).returncode == 3
    assert counting.runs == 2 and not list((tmp_path / "cache").rglob("*.json"))


def test_the_cache_switch_turns_every_entry_off(paths: Paths, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(check_cache.CACHE_ENV, "0")
    php = CountingPhp()
    config, source = render(paths)
    lineage.test_plugin(plan_plugin(paths, config, source.tree.platform), source.tree, source.path, php)
    ran, linted = php.runs, len(php.linted)
    lineage.test_plugin(plan_plugin(paths, config, source.tree.platform), source.tree, source.path, php)
    assert (php.runs, len(php.linted)) == (2 * ran, 2 * linted)


def test_node_syntax_checks_are_remembered_by_content_too(tmp_path: Path):
    from psp_assets.core.runtimes.node import NodeRuntime

    class CountingNode(NodeRuntime):
        checked: list[str] = []

        def check_syntax_uncached(self, root: Path, files) -> list[LintResult]:
            files = sorted(files)
            self.checked += files
            return super().check_syntax_uncached(root, files)

    node = CountingNode()
    (tmp_path / "app.mjs").write_text("export const ok = 1;\n")
    assert node.check_syntax(tmp_path, ["app.mjs"])[0].ok
    assert node.check_syntax(tmp_path, ["app.mjs"])[0].ok and node.checked == ["app.mjs"]
    (tmp_path / "app.mjs").write_text("export const ok = ;\n")
    assert not node.check_syntax(tmp_path, ["app.mjs"])[0].ok and node.checked == ["app.mjs", "app.mjs"]

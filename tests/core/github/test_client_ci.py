"""The CI handed to a client works: the generated workflow's steps, run here on the files published to
the (local) GitHub, pass on the machine's PHP, on PHP 7.4 as WebAssembly and on the machine's Node, and
fail on a broken plugin; the standalone contract judges agree with the platform's judge case by case."""

from __future__ import annotations

import copy
import json
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from github import Auth, Github

from psp_assets.core.github.client_repo import CHECKOUT, SETUP_PHP, SourcePlan, publish_source, suite_dir, workflow_path
from psp_assets.core.github.session import ReleaseTarget, RetryPolicy, TokenCredentials
from psp_assets.core.runtimes.node import default_node
from psp_assets.core.runtimes.php import NativePhp, WasmPhp
from psp_assets.core.templates.spec import PHP_VERSIONS, load_template
from psp_assets.core.verify.contract.cases import judge_contract
from psp_assets.core.verify.contract.node import in_js_terms, rename_load_check
from tests.conftest import TEMPLATES
from tests.core.github.test_client_repo import ORG, README, REPO, TOKEN, make_plan
from tests.support.fake_github import FakeGitHub
from tests.support.workflow_runner import PhpCommand, checkout_branch, run_job, tools_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def woo() -> SourcePlan:
    return make_plan(platform="woocommerce")


@pytest.fixture(scope="module")
def shopify() -> SourcePlan:
    return make_plan(platform="shopify")


def published_checkout(fake: FakeGitHub, plan: SourcePlan, into: Path) -> dict[str, bytes]:
    """Publish `plan` to the stand-in, then check its branch out through the REST API."""
    fake.add_repo(ORG, REPO, TOKEN)
    fake.commit_files(ORG, REPO, {"README.md": README}, "Initial commit")
    result = publish_source(
        plan,
        ReleaseTarget(ORG, REPO, fake.base_url),
        TokenCredentials("T_TOKEN"),
        secrets={"T_TOKEN": TOKEN}.get,
        policy=RetryPolicy(backoff_seconds=0.01),
        seconds_between_requests=0,
        seconds_between_writes=0,
    )
    assert result.branch_state == "created"
    gh = Github(base_url=fake.base_url, auth=Auth.Token(TOKEN), retry=None, seconds_between_requests=0)
    try:
        files = checkout_branch(gh.get_repo(f"{ORG}/{REPO}"), plan.branch, into)
    finally:
        gh.close()
    assert {p: files[p] for p in plan.files} == dict(plan.files)
    return files


def passed(runs) -> bool:
    return all(r.returncode in (None, 0) for r in runs)


def step(runs, prefix: str):
    return next(r for r in runs if r.name.startswith(prefix))


@pytest.fixture
def php_tools(tmp_path: Path) -> Path:
    return tools_dir(tmp_path / "tools", php=str(NativePhp().binary))


@pytest.fixture
def wasm74() -> Iterator[PhpCommand]:
    with WasmPhp("7.4") as runtime:
        command = PhpCommand(runtime)
        try:
            yield command
        finally:
            command.close()


def test_the_published_workflow_passes_on_the_machines_php(fake_github, woo, tmp_path, php_tools):
    files = published_checkout(fake_github, woo, tmp_path / "checkout")
    version = NativePhp().version

    runs = run_job(files[workflow_path("woocommerce")].decode(), tmp_path / "checkout", {"php": version}, php_tools)

    assert passed(runs), "\n\n".join(f"{r.name}:\n{r.output}" for r in runs)
    assert [r.name for r in runs if r.returncode is None] == [CHECKOUT, SETUP_PHP]
    php_files = sum(1 for p in woo.files if p.startswith("woocommerce/") and p.endswith(".php"))
    assert f"php -l: {php_files} file(s), 0 failed" in step(runs, "Lint").output
    contract = step(runs, "Contract tests").output
    assert f"PSP contract tests on PHP {version}." in contract
    assert f"{woo.contract_cases + 1} passed, 0 failed" in contract  # the cases and the bootstrap check


def test_the_published_workflow_passes_on_php_7_4_as_webassembly(fake_github, woo, tmp_path, wasm74):
    files = published_checkout(fake_github, woo, tmp_path / "checkout")

    runs = run_job(
        files[workflow_path("woocommerce")].decode(), tmp_path / "checkout", {"php": "7.4"}, wasm74.directory
    )

    assert passed(runs), "\n\n".join(f"{r.name}:\n{r.output}" for r in runs)
    assert step(runs, "PHP version").output.startswith("PHP 7.4.")
    assert "PSP contract tests on PHP 7.4." in step(runs, "Contract tests").output
    lints = [argv for argv in wasm74.calls if "-l" in argv]
    assert len(lints) == sum(1 for p in woo.files if p.startswith("woocommerce/") and p.endswith(".php"))


def test_a_syntax_error_in_a_plugin_file_fails_the_lint_step_naming_the_file(fake_github, woo, tmp_path, php_tools):
    files = published_checkout(fake_github, woo, tmp_path / "checkout")
    broken = tmp_path / "checkout/woocommerce/includes/core/Signature.php"
    broken.write_text(broken.read_text().replace("public static function", "public static functoin", 1))

    runs = run_job(files[workflow_path("woocommerce")].decode(), tmp_path / "checkout", {"php": "8.2"}, php_tools)

    lint = step(runs, "Lint")
    assert lint.returncode != 0 and "woocommerce/includes/core/Signature.php" in lint.output
    assert "1 failed" in lint.output
    assert not any(r.name.startswith("Contract") for r in runs), "the job stops at the first failing step"


@pytest.mark.parametrize("runtime", ["native", "wasm 7.4"])
def test_a_status_mapping_changed_by_hand_lints_but_fails_the_contract_step(
    fake_github, woo, tmp_path, request, runtime
):
    files = published_checkout(fake_github, woo, tmp_path / "checkout")
    status_map = tmp_path / "checkout/woocommerce/includes/core/StatusMap.php"
    text = status_map.read_text()
    assert "'paid' => 'processing'," in text
    status_map.write_text(text.replace("'paid' => 'processing',", "'paid' => 'completed',"))
    if runtime == "native":
        tools, version = request.getfixturevalue("php_tools"), NativePhp().version
    else:
        tools, version = request.getfixturevalue("wasm74").directory, "7.4"

    runs = run_job(files[workflow_path("woocommerce")].decode(), tmp_path / "checkout", {"php": version}, tools)

    assert step(runs, "Lint").returncode == 0
    contract = step(runs, "Contract tests")
    assert contract.returncode == 1
    assert "FAIL StatusMap::toPlatform(paid) is the template's 'processing'" in contract.output
    assert 'expected "processing", got "completed"' in contract.output


def test_the_node_workflow_passes_on_the_machines_node_and_fails_on_a_broken_core(fake_github, shopify, tmp_path):
    files = published_checkout(fake_github, shopify, tmp_path / "checkout")
    node = default_node()
    tools = tools_dir(tmp_path / "tools", node=node.binary)
    workflow = files[workflow_path("shopify")].decode()
    major = node.full_version.split(".")[0]

    runs = run_job(workflow, tmp_path / "checkout", {"node": major}, tools)

    assert passed(runs), "\n\n".join(f"{r.name}:\n{r.output}" for r in runs)
    assert "node --check: " in step(runs, "Syntax-check").output
    assert f"{shopify.contract_cases + 1} passed, 0 failed" in step(runs, "Contract tests").output

    core = tmp_path / "checkout/shopify/src/core.mjs"
    good = core.read_text()
    assert '["paid", "resolved"],' in good
    core.write_text(good.replace('["paid", "resolved"],', '["paid", "pending"],'))
    runs = run_job(workflow, tmp_path / "checkout", {"node": major}, tools)
    contract = step(runs, "Contract tests")
    assert step(runs, "Syntax-check").returncode == 0 and contract.returncode == 1
    assert "FAIL StatusMap::toPlatform(paid)" in contract.output

    core.write_text(good + "\nexport const = ;\n")
    runs = run_job(workflow, tmp_path / "checkout", {"node": major}, tools)
    check = step(runs, "Syntax-check")
    assert check.returncode != 0 and "shopify/src/core.mjs" in check.output


# --- the standalone judges agree with the platform's ----------------------------------------------


def _mutations(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str, Any]]:
    """Type-preserving changes of one leaf, removals of one key, drops of a list's last item."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key), "delete", None
            yield from _mutations(item, (*path, key))
    elif isinstance(value, list):
        if value:
            yield path, "drop_last", None
        for i, item in enumerate(value):
            yield from _mutations(item, (*path, i))
    elif isinstance(value, bool):
        yield path, "set", not value
    elif isinstance(value, int | float):
        yield path, "set", value + 1
    elif isinstance(value, str):
        yield path, "set", value[:-1] if len(value) > 1 else value + "x"
    elif value is None:
        yield path, "set", "x"


def _apply(value: Any, mutation: tuple[tuple, str, Any]) -> Any:
    path, kind, new = mutation
    if not path and kind == "set":
        return new
    value = copy.deepcopy(value)
    parent = value
    for key in path[:-1] if kind != "drop_last" else path:
        parent = parent[key]
    if kind == "drop_last":
        parent.pop()
    elif kind == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = new
    return value


def _record_mutations(record: dict[str, Any]) -> list[dict[str, Any] | None]:
    out: list[dict[str, Any] | None] = [None]  # the case not run at all
    out += [{**record, "exception": "RuntimeException: boom"}, {**record, "errors": ["Warning: x in a.php:1"]}]
    out.append({**record, "output": "stray"})
    out += [{**record, "value": _apply(record.get("value"), m)} for m in _mutations(record.get("value"))]
    return out


def _documents(document: dict[str, Any], rounds: int) -> Iterator[dict[str, Any]]:
    """The real document, `rounds` documents with one change in every case, and whole-document failures."""
    yield document
    rng = random.Random(7)
    variants = {cid: _record_mutations(rec) for cid, rec in document["cases"].items()}
    for k in range(rounds):
        doc = copy.deepcopy(document)
        for cid, options in variants.items():
            choice = options[k] if k < len(options) else rng.choice(options)
            if choice is None:
                del doc["cases"][cid]
            else:
                doc["cases"][cid] = choice
        yield doc
    yield {**document, "complete": False, "fatal": "PHP Fatal error: boom in x.php:3"}
    yield {**document, "bootstrap": None, "cases": {}, "fatal": "syntax error"}
    yield {**document, "bootstrap": {**document["bootstrap"], "value": {"files": [], "missing": ["Signature"]}}}
    yield {**document, "bootstrap": {**document["bootstrap"], "errors": ["Deprecated: x"]}}


def _agreement(plan: SourcePlan, runtime_key: str, run_dir: Path, rounds: int = 40) -> int:
    """Run the suite's harness for real, then judge it and its mutations with both judges; returns the
    number of (document, case) verdicts compared."""
    platform = plan.platform
    for path, data in plan.files.items():
        (run_dir / path).parent.mkdir(parents=True, exist_ok=True)
        (run_dir / path).write_bytes(data)
    suite = json.loads(plan.files[f"{suite_dir(platform)}/vectors.json"])
    expected_path = run_dir / suite_dir(platform) / "expected.json"
    if runtime_key == "php":
        harness = ["php", "-n", "-d", "error_reporting=-1", f"{suite_dir(platform)}/contract_harness.php"]
        judge = ["php", "-n", "-d", "error_reporting=-1", str(run_dir / suite_dir(platform) / "contract_judge.php")]
    else:
        harness = ["node", f"{suite_dir(platform)}/contract_harness.mjs"]
        judge = ["node", str(run_dir / suite_dir(platform) / "contract_judge.mjs")]
    real = subprocess.run(
        [*harness, f"{suite_dir(platform)}/vectors.json", platform], cwd=run_dir, capture_output=True, text=True
    )
    document = json.loads(real.stdout)
    status_map = dict(load_template(TEMPLATES, platform).spec.status_map)
    label = NativePhp() if runtime_key == "php" else default_node()
    compared = 0
    for n, doc in enumerate(_documents(document, rounds)):
        path = run_dir / f"doc-{n}.json"
        path.write_text(json.dumps(doc))
        out = subprocess.run([*judge, str(expected_path), str(path), "0", "--json"], capture_output=True, text=True)
        standalone = {r["name"]: r["passed"] for r in json.loads(out.stdout)}
        judged: list = []
        results = judge_contract(
            doc,
            suite,
            status_map,
            label,
            version=suite["expect_version"],
            build=suite["expect_build"],
            runtime_key=runtime_key,
            judged=judged,
        )
        if runtime_key == "node":
            results = rename_load_check(results, label)
            judged = [(in_js_terms(name), *rest) for name, *rest in judged]
        # the suite covers the per-case judges; checks recorded with add() (the PSP API contract) stay on the platform
        covered = {results[0].name, "harness completed", *(name for name, *_ in judged)}
        platform_verdicts = {r.name: r.passed for r in results if r.name in covered}
        assert standalone.keys() == platform_verdicts.keys(), f"document {n}: the judges name different cases"
        disagree = [name for name in standalone if standalone[name] != platform_verdicts[name]]
        assert not disagree, f"document {n}: the judges disagree on {disagree[:5]}"
        if n == 0:
            assert all(platform_verdicts.values()), "the real plugin passes both judges"
        compared += len(standalone)
    return compared


def test_the_standalone_php_judge_agrees_with_the_platforms_judge_case_by_case(woo, tmp_path):
    compared = _agreement(woo, "php", tmp_path)
    assert compared > 40 * woo.contract_cases


def test_the_standalone_node_judge_agrees_with_the_platforms_judge_case_by_case(shopify, tmp_path):
    compared = _agreement(shopify, "node", tmp_path)
    assert compared > 40 * shopify.contract_cases


@pytest.mark.parametrize("version", PHP_VERSIONS)
def test_the_php_judge_runs_without_a_notice_on_every_php_version(woo, tmp_path, version):
    platform = woo.platform
    for path, data in woo.files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(data)
    harness = subprocess.run(
        ["php", "-n", f"{suite_dir(platform)}/contract_harness.php", f"{suite_dir(platform)}/vectors.json", platform],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    (tmp_path / "doc.json").write_text(harness.stdout)
    judge = tmp_path / suite_dir(platform) / "contract_judge.php"
    expected = tmp_path / suite_dir(platform) / "expected.json"

    with WasmPhp(version) as php:
        result = php.run(judge, [str(expected), str(tmp_path / "doc.json"), "0", "--json"], tmp_path)

    assert (result.returncode, result.stderr) == (0, ""), result.stderr[:2000]
    verdicts = json.loads(result.stdout)
    assert len(verdicts) == woo.contract_cases + 1 and all(v["passed"] for v in verdicts)


def test_a_judge_the_suite_cannot_express_is_refused_rather_than_skipped():
    from psp_assets.core.verify.contract import standalone as contract_suite

    vectors = json.loads(make_plan().files[f"{suite_dir('woocommerce')}/vectors.json"])
    with pytest.raises(contract_suite.SuiteError, match=r"'newkind:x' .* no standalone form.*contract/standalone\.py"):
        contract_suite._translate("newkind:x", lambda value: "", vectors, {}, "php", None)

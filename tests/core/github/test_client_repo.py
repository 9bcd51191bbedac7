"""Publishing a tested plugin's source to a client repository (core/github/client_repo.py) with real PyGithub
against the local GitHub stand-in: branch, commit and pull request, idempotence, conflicts, retries."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from psp_assets.core.config.model import parse_client
from psp_assets.core.errors import PublishError
from psp_assets.core.github.client_repo import CHECKOUT, SETUP_PHP, SourcePlan, plan_for, publish_source, source_branch
from psp_assets.core.github.session import ReleaseTarget, RetryPolicy, TokenCredentials
from psp_assets.core.plan import plan_for as plugin_plan
from psp_assets.core.render.engine import render
from psp_assets.core.templates.spec import load_template
from psp_assets.core.workspace import REPO_ROOT, Paths
from tests.conftest import DEMO_CLIENTS, TEMPLATES
from tests.support.fake_github import FakeGitHub

ORG, REPO, TOKEN = "nordbank-psp", "payment-plugins-source", "ghp_nordbankSourceSecret_7c1e93"
WORKSPACE = Paths(DEMO_CLIENTS, TEMPLATES, REPO_ROOT / "var" / "data", REPO_ROOT / "var" / "data" / "stores")
README = b"# Nord Bank payment plugins\n"


def make_plan(client: str = "nordbank", platform: str = "woocommerce", **changes) -> SourcePlan:
    """The real plan for a demo client's plugin, with `github.source` pointing at the test repository."""
    doc = yaml.safe_load((DEMO_CLIENTS / f"{client}.yaml").read_text())
    doc["github"] = {"organization": ORG, "repository": "releases", "token_env": "NORDBANK_GITHUB_TOKEN"}
    doc["github"]["source"] = {"repository": REPO}
    doc.update(changes)
    config = parse_client(doc, f"{client}.yaml")
    plugin = plugin_plan(WORKSPACE, config, load_template(TEMPLATES, platform))
    tree = render(plugin.template, config, plugin.catalog, plugin.context)
    lineage = {"template_version": plugin.plugin_version, "config_hash": config.config_hash()}
    return plan_for(plugin, tree, lineage, {"lint": {"passed": 28, "failed": 0}})


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def publish(fake: FakeGitHub, plan: SourcePlan, *, token: str = TOKEN, log: list[str] | None = None, sleep=None):
    return publish_source(
        plan,
        ReleaseTarget(ORG, REPO, fake.base_url),
        TokenCredentials("NORDBANK_GITHUB_TOKEN"),
        secrets={"NORDBANK_GITHUB_TOKEN": token}.get,
        policy=RetryPolicy(backoff_seconds=0.01),
        seconds_between_requests=0,
        seconds_between_writes=0,
        log=log.append if log is not None else None,
        sleep=sleep if sleep is not None else Sleeps(),
        timeout_seconds=10,
    )


def writes(fake: FakeGitHub) -> list[str]:
    return [f"{s.method} {s.path}" for s in fake.seen if s.method in ("POST", "PATCH", "DELETE")]


@pytest.fixture
def repo(fake_github: FakeGitHub):
    fake_github.add_repo(ORG, REPO, TOKEN)
    fake_github.commit_files(ORG, REPO, {"README.md": README}, "Initial commit")
    return fake_github.repos[(ORG, REPO)]


@pytest.fixture(scope="module")
def woo() -> SourcePlan:
    return make_plan()


def test_the_plan_is_the_rendered_tree_the_contract_suite_and_a_workflow_for_the_declared_php_versions(woo):
    template = load_template(TEMPLATES, "woocommerce")
    tree_files = {p[len("woocommerce/") :]: d for p, d in woo.files.items() if p.startswith("woocommerce/")}
    config = make_plan().client
    assert config == "nordbank"
    assert (
        woo.branch
        == source_branch("woocommerce", woo.plugin_version, woo.build)
        == f"psp/woocommerce/1.0.0-{woo.build}"
    )
    suite = {p.rsplit("/", 1)[1] for p in woo.files if p.startswith("tests/psp-contract/woocommerce/")}
    assert suite == {"contract_harness.php", "contract_judge.php", "vectors.json", "expected.json"}
    assert set(woo.files) == {
        *(f"woocommerce/{p}" for p in tree_files),
        *(f"tests/psp-contract/woocommerce/{n}" for n in suite),
        ".github/workflows/psp-woocommerce-ci.yml",
    }
    assert any(p.endswith(".mo") for p in tree_files), "binary files are part of the plan too"
    assert not [p for p, d in woo.files.items() if str(REPO_ROOT).encode() in d], "no path of the building machine"
    workflow = yaml.safe_load(woo.files[".github/workflows/psp-woocommerce-ci.yml"])
    job = workflow["jobs"]["checks"]
    assert (
        job["strategy"]["matrix"]["php"]
        == template.spec.php.versions()
        == ["7.4", "8.0", "8.1", "8.2", "8.3", "8.4", "8.5"]
    )
    assert workflow["on"]["pull_request"]["paths"] == [
        "woocommerce/**",
        "tests/psp-contract/woocommerce/**",
        ".github/workflows/psp-woocommerce-ci.yml",
    ]
    assert workflow["permissions"] == {"contents": "read"}
    uses = [s["uses"] for s in job["steps"] if "uses" in s]
    assert uses == [CHECKOUT, SETUP_PHP]
    assert woo.owns("woocommerce/x.php") and woo.owns(".github/workflows/psp-woocommerce-ci.yml")
    assert not woo.owns("magento2/x.php") and not woo.owns("woocommerce-old/x.php") and not woo.owns("README.md")


def test_a_node_plugin_gets_node_check_and_the_node_contract_suite_on_its_node_majors():
    plan = make_plan(platform="shopify")
    workflow = yaml.safe_load(plan.files[".github/workflows/psp-shopify-ci.yml"])
    job = workflow["jobs"]["checks"]
    assert job["strategy"]["matrix"] == {"node": ["18", "20", "22"]}
    runs = "\n".join(s.get("run", "") for s in job["steps"])
    assert "node --check" in runs and "php" not in runs
    assert "contract_harness.mjs" in runs and "contract_judge.mjs" in runs
    assert {p.rsplit("/", 1)[1] for p in plan.files if p.startswith("tests/psp-contract/shopify/")} == {
        "contract_harness.mjs",
        "contract_judge.mjs",
        "vectors.json",
        "expected.json",
    }


def test_publish_makes_a_branch_with_one_commit_on_main_and_a_pull_request_with_exactly_the_plan(
    fake_github: FakeGitHub, repo, woo
):
    main_before = repo.branches["main"]
    log: list[str] = []

    result = publish(fake_github, woo, log=log)

    assert (result.branch_state, result.pull_state, result.pull_number) == ("created", "created", 1)
    assert result.repository == f"{ORG}/{REPO}" and result.branch == woo.branch
    assert repo.branches["main"] == main_before, "the base branch is never written"
    head = repo.commits[repo.branches[woo.branch]]
    assert head.sha == result.commit_sha and head.parents == [main_before]
    assert head.message.startswith(woo.title)
    assert fake_github.files_at(ORG, REPO, woo.branch) == {"README.md": README, **woo.files}
    assert set(result.changed_files) == set(woo.files) and set(result.files) == set(woo.files)
    [pull] = fake_github.pulls_of(ORG, REPO)
    assert (pull.head, pull.base, pull.state, pull.title) == (woo.branch, "main", "open", woo.title)
    assert woo.build in pull.body and "tests/psp-contract/woocommerce/" in pull.body
    assert result.pull_url.endswith(f"/{ORG}/{REPO}/pull/1")
    # text went inline into one tree; only binary files (.mo) were uploaded as blobs
    blob_posts = [w for w in writes(fake_github) if w.endswith("/git/blobs")]
    assert len(blob_posts) == sum(1 for p in woo.files if p.endswith(".mo")) > 0
    assert not [w for w in writes(fake_github) if w.startswith(("PATCH", "DELETE"))], "refs are never moved"
    assert any("pull request #1: created" in line for line in log)


def test_publishing_the_same_build_again_finds_branch_and_pull_request_and_writes_nothing(
    fake_github: FakeGitHub, repo, woo
):
    first = publish(fake_github, woo)
    before = len(writes(fake_github))

    again = publish(fake_github, woo)

    assert (again.branch_state, again.pull_state, again.pull_number) == ("reused", "open", first.pull_number)
    assert again.commit_sha == first.commit_sha and not again.changed and again.changed_files == ()
    assert len(writes(fake_github)) == before
    assert len(fake_github.pulls_of(ORG, REPO)) == 1


def test_a_new_build_gets_a_new_branch_and_pull_request_that_supersedes_the_open_one(
    fake_github: FakeGitHub, repo, woo
):
    first = publish(fake_github, woo)
    newer = make_plan(checkout={"title": "Betalen met Nord Bank", "description": "Nieuwe omschrijving."})
    assert newer.build != woo.build

    second = publish(fake_github, newer)

    assert second.branch == f"psp/woocommerce/1.0.0-{newer.build}" and second.pull_number == 2
    assert repo.branches[woo.branch] == first.commit_sha, "the earlier build's branch is left as it was"
    assert repo.commits[second.commit_sha].parents == [repo.branches["main"]]
    assert set(second.changed_files) == set(newer.files), "main has neither build yet"
    pulls = {p.number: p for p in fake_github.pulls_of(ORG, REPO)}
    assert pulls[1].state == "open" and "Supersedes #1." in pulls[2].body


def test_after_a_merge_the_next_build_commits_only_what_changed(fake_github: FakeGitHub, repo, woo):
    fake_github.merge_pull(ORG, REPO, publish(fake_github, woo).pull_number)
    newer = make_plan(checkout={"title": "Betalen met Nord Bank", "description": "Nieuwe omschrijving."})

    second = publish(fake_github, newer)

    changed = set(second.changed_files)
    assert 0 < len(changed) < len(newer.files)
    assert changed == {p for p in newer.files if newer.files[p] != woo.files.get(p)}
    assert "Supersedes" not in fake_github.pulls_of(ORG, REPO)[-1].body


def test_files_the_build_no_longer_has_are_removed_and_other_platforms_files_kept(fake_github: FakeGitHub, repo, woo):
    fake_github.commit_files(
        ORG,
        REPO,
        {
            "woocommerce/includes/old-gateway.php": b"<?php // an earlier build's file\n",
            "tests/psp-contract/woocommerce/old.json": b"{}\n",
            "magento2/registration.php": b"<?php // the magento2 plugin, another pull request's business\n",
            "woocommerce-legacy/keep.txt": b"not ours\n",
        },
        "earlier state",
    )

    result = publish(fake_github, woo)

    files = fake_github.files_at(ORG, REPO, woo.branch)
    assert (
        "woocommerce/includes/old-gateway.php" not in files and "tests/psp-contract/woocommerce/old.json" not in files
    )
    assert {"magento2/registration.php", "woocommerce-legacy/keep.txt", "README.md"} <= set(files)
    assert {p: files[p] for p in woo.files} == dict(woo.files)
    assert {"woocommerce/includes/old-gateway.php", "tests/psp-contract/woocommerce/old.json"} <= set(
        result.changed_files
    )


def test_a_branch_holding_other_content_is_an_error_naming_it_and_nothing_is_changed(
    fake_github: FakeGitHub, repo, woo
):
    tampered = dict(woo.files)
    tampered["woocommerce/readme.txt"] = b"edited by hand\n"
    fake_github.commit_files(ORG, REPO, tampered, "someone's edit", branch=woo.branch)
    head = repo.branches[woo.branch]
    before = len(writes(fake_github))

    with pytest.raises(PublishError) as err:
        publish(fake_github, woo)

    message = str(err.value)
    assert f"branch {woo.branch} already exists with different content" in message
    assert "woocommerce/readme.txt (different content)" in message and "never overwritten" in message
    assert f"{ORG}/{REPO}" in message
    assert len(writes(fake_github)) == before and repo.branches[woo.branch] == head
    assert fake_github.pulls_of(ORG, REPO) == []


def test_a_merged_pull_request_is_reported_and_a_deleted_merged_branch_is_not_proposed_again(
    fake_github: FakeGitHub, repo, woo
):
    first = publish(fake_github, woo)
    fake_github.merge_pull(ORG, REPO, first.pull_number)
    before = len(writes(fake_github))

    merged = publish(fake_github, woo)
    assert (merged.branch_state, merged.pull_state) == ("reused", "merged")

    del repo.branches[woo.branch]  # GitHub's "delete branch" after the merge
    again = publish(fake_github, woo)

    assert (again.branch_state, again.pull_state, again.pull_url) == ("in_base", "none", None)
    assert again.commit_sha == repo.branches["main"] and woo.branch not in repo.branches
    assert len(writes(fake_github)) == before


def test_a_run_cut_off_before_the_pull_request_opens_it_on_the_next_run(fake_github: FakeGitHub, repo, woo):
    fake_github.inject("POST", r"/pulls$", status=403, body={"message": "Resource not accessible by integration"})
    with pytest.raises(PublishError) as err:
        publish(fake_github, woo)
    assert "pull requests: write" in str(err.value) and woo.branch in str(err.value)
    assert woo.branch in repo.branches and fake_github.pulls_of(ORG, REPO) == []

    result = publish(fake_github, woo)

    assert (result.branch_state, result.pull_state) == ("reused", "created")
    assert len(fake_github.pulls_of(ORG, REPO)) == 1


def test_5xx_answers_and_rate_limits_are_retried_without_duplicating_anything(fake_github: FakeGitHub, repo, woo):
    fake_github.inject("POST", r"/git/trees$", status=502)
    fake_github.inject("POST", r"/git/refs$", status=500, after=True)  # the branch is made, the answer lost
    fake_github.inject("POST", r"/pulls$", status=503, after=True)  # the pull request is made, the answer lost
    fake_github.inject("GET", r"/git/commits/", status=429, headers={"Retry-After": "0"}, body={"message": "slow"})
    sleeps = Sleeps()

    result = publish(fake_github, woo, sleep=sleeps)

    assert (result.branch_state, result.pull_state) == ("created", "created")
    assert result.retries == 4
    assert len(fake_github.pulls_of(ORG, REPO)) == 1
    assert fake_github.files_at(ORG, REPO, woo.branch) == {"README.md": README, **woo.files}
    refs = [w for w in writes(fake_github) if "/git/refs" in w]
    assert refs == [f"POST /api/v3/repos/{ORG}/{REPO}/git/refs"] * 2, "a lost answer is re-read, never forced"


def test_a_concurrent_publisher_that_made_the_branch_first_with_the_same_files_is_accepted(
    fake_github: FakeGitHub, repo, woo
):
    def other_publisher(fake: FakeGitHub) -> None:
        r = fake.repos[(ORG, REPO)]
        ours = max(r.commits.values(), key=lambda c: (c.date, c.sha != r.branches["main"]))
        twin = fake._new_commit(r, ours.tree, list(ours.parents), "the same build, published elsewhere")
        r.branches[woo.branch] = twin.sha

    fake_github.inject("POST", r"/git/refs$", action=other_publisher)

    result = publish(fake_github, woo)

    assert result.branch_state == "reused" and result.commit_sha == repo.branches[woo.branch]
    assert repo.commits[result.commit_sha].message == "the same build, published elsewhere"
    assert result.pull_state == "created"


def test_a_repository_without_the_base_branch_is_an_error_naming_the_setting(fake_github: FakeGitHub, woo):
    fake_github.add_repo(ORG, REPO, TOKEN)  # empty: no commit, no branch

    with pytest.raises(PublishError) as err:
        publish(fake_github, woo)

    assert "base branch 'main' does not exist" in str(err.value) and "github.source.base_branch" in str(err.value)
    assert writes(fake_github) == []


def test_a_token_of_another_organization_is_told_what_to_check_and_the_token_never_appears(
    fake_github: FakeGitHub, repo, woo, caplog: pytest.LogCaptureFixture
):
    fake_github.add_repo("someone-else", "x", "ghp_otherOrgToken_41f0")
    with pytest.raises(PublishError) as err:
        publish(fake_github, woo, token="ghp_otherOrgToken_41f0")
    assert "github.source.repository" in str(err.value) and "ghp_otherOrgToken" not in str(err.value)


def test_the_token_is_sent_only_as_authorization_and_is_in_no_commit_file_pull_request_or_log(
    fake_github: FakeGitHub, repo, woo, caplog: pytest.LogCaptureFixture
):
    log: list[str] = []
    with caplog.at_level(logging.DEBUG, logger="github"):
        result = publish(fake_github, woo, log=log)
    assert any("POST" in r.getMessage() for r in caplog.records), "PyGithub's debug log was captured"

    assert {s.authorization for s in fake_github.seen} == {f"token {TOKEN}"}
    stored = [*repo.blobs.values(), *(c.message.encode() for c in repo.commits.values())]
    stored += [(p.title + p.body).encode() for p in fake_github.pulls_of(ORG, REPO)]
    logged = "\n".join([*log, *(r.getMessage() for r in caplog.records), repr(result)])
    assert TOKEN.encode() not in b"".join(stored) and TOKEN not in logged


def test_the_plan_refuses_a_tree_whose_build_is_not_what_the_template_and_config_give(tmp_path: Path):
    doc = yaml.safe_load((DEMO_CLIENTS / "nordbank.yaml").read_text())
    doc["github"]["source"] = {"repository": REPO}
    config = parse_client(doc, "nordbank.yaml")
    plugin = plugin_plan(WORKSPACE, config, load_template(TEMPLATES, "woocommerce"))
    tree = render(plugin.template, config, plugin.catalog, plugin.context)
    stale = type(tree)(tree.client_id, tree.platform, tree.plugin_version, "0123456789ab", tree.files)

    with pytest.raises(PublishError, match="re-materialize rendered_source"):
        plan_for(plugin, stale)

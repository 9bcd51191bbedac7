"""Publishing a tested plugin's source to the client's own GitHub repository, as a pull request.

For a client whose config has `github.source`, every tested build's rendered source goes to that
repository together with a CI workflow, so the client's engineers review each build as a pull request
and their CI runs the checks the platform ran before publishing: `php -l` on every PHP file (or `node
--check` on every JavaScript file) and the contract tests, on every runtime version the template
declares. The contract tests travel as a standalone suite (verify/contract/standalone.py): the harness, the
vectors and the expectations of the platform's own judge, with a judge in the plugin's language. No
composer, no npm install, no third-party code.

One repository may hold several platforms; each platform owns three paths in it, so the pull requests
of different platforms never touch each other's files:

    <platform>/                                  the rendered plugin, exactly as built and tested
    tests/psp-contract/<platform>/               the contract suite
    .github/workflows/psp-<platform>-ci.yml      the workflow running both

Publishing uses the Git Data API (PyGithub): read the base branch's head, create the blobs that are
not text, one tree on top of the base tree (changed files, and files of the platform's paths that the
build no longer has removed), one commit, then the branch `psp/<platform>/<version>-<build>` and a
pull request into the base branch. The new commit is read back and compared with the plan before the
branch is created, so a branch never points at something else than this build. Refs are only ever
created, never moved or force-updated:

- the branch exists with this build's files -> reused, nothing written (the pull request is found, or
  opened if an earlier run stopped before it);
- the branch exists with other files -> PublishError naming the branch; nothing is changed;
- the base branch already has exactly these files (an earlier pull request was merged and its branch
  deleted) -> nothing to propose, nothing written.

Every request goes through github_release.GitHubSteps: 5xx answers, dropped connections and rate
limits are retried per idempotent step, and credentials are handled (and kept out of logs) as for
releases.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import github
import yaml
from github import Github, GithubException, InputGitTreeElement

from psp_assets.core.config.model import ClientConfig, GitHubSettings
from psp_assets.core.errors import PublishError
from psp_assets.core.github.session import (
    Credentials,
    GitHubSteps,
    ReleaseTarget,
    RetryNow,
    RetryPolicy,
    SecretLookup,
    credentials_for,
    error_message,
    github_session,
)
from psp_assets.core.plan import PluginPlan
from psp_assets.core.render.engine import RenderedTree
from psp_assets.core.templates.spec import Template
from psp_assets.core.verify.contract.standalone import ContractSuite, contract_suite

SOURCE_PERMISSIONS = "contents: write, pull requests: write, workflows: write"
FILE_MODE = "100644"
BRANCH_PREFIX = "psp"
# The actions the generated workflows use, each pinned to the commit of a release tag (a tag can be moved, a
# commit cannot), with the release in a comment next to it. All run on Node 24: GitHub removed Node 20 from its
# runners on 2026-09-23, so v4 of checkout and setup-node no longer run. How each commit was verified:
# docs/github-releases.md ("Client CI workflows"). To update: the tag's commit (`git ls-remote <repo> refs/tags/<tag>`).
PINNED_ACTIONS: dict[str, tuple[str, str]] = {  # action -> (commit, release)
    "actions/checkout": ("3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"),
    "actions/setup-node": ("949feb2413d6458794dcd2491c4babbbce0c15c1", "v7.1.0"),
    "shivammathur/setup-php": ("f3e473d116dcccaddc5834248c87452386958240", "2.37.2"),
}


def _pinned(action: str) -> str:
    return f"{action}@{PINNED_ACTIONS[action][0]}"


CHECKOUT = _pinned("actions/checkout")
SETUP_PHP = _pinned("shivammathur/setup-php")
SETUP_NODE = _pinned("actions/setup-node")


def git_blob_sha(data: bytes) -> str:
    """The object id git (and GitHub) gives a file with this content."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def suite_dir(platform: str) -> str:
    return f"tests/psp-contract/{platform}"


def workflow_path(platform: str) -> str:
    return f".github/workflows/psp-{platform}-ci.yml"


def source_branch(platform: str, plugin_version: str, build: str) -> str:
    return f"{BRANCH_PREFIX}/{platform}/{plugin_version}-{build}"


# --- the workflow --------------------------------------------------------------------------------


class _Literal(str):
    """A multi-line string dumped as a YAML literal block (readable shell scripts)."""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # no &anchors: the workflow reads as written


_Dumper.add_representer(_Literal, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|"))


def _find(root: str, globs: list[str]) -> str:
    """`find` arguments selecting the files `globs` (template lint_globs / js_check_globs) match."""
    tests = []
    for glob in globs:
        if glob.startswith("**/") and "/" not in glob[3:]:
            tests.append(f"-name {shlex.quote(glob[3:])}")
        else:
            tests.append(f"-path {shlex.quote(root + '/' + glob.replace('**/', '*'))}")
    return f"find {shlex.quote(root)} -type f \\( {' -o '.join(tests)} \\) -print0 | sort -z"


def _each_file(root: str, globs: list[str], command: str, what: str, deprecations: bool = False) -> _Literal:
    """A script running `command "$file"` on every matching file; fails when any fails or none matched
    (with `deprecations`, also when the output reports one: `php -l` exits 0 on those)."""
    deprecated = ' || grep -q "Deprecated:" <<<"$out"' if deprecations else ""
    return _Literal(
        "failed=0\n"
        "count=0\n"
        "while IFS= read -r -d '' file; do\n"
        "  count=$((count + 1))\n"
        f'  if ! out=$({command} "$file" 2>&1){deprecated}; then\n'
        "    printf '%s\\n' \"$out\"\n"
        "    failed=$((failed + 1))\n"
        "  fi\n"
        f"done < <({_find(root, globs)})\n"
        f'echo "{what}: $count file(s), $failed failed"\n'
        'test "$count" -gt 0 && test "$failed" -eq 0\n'
    )


def _contract_script(suite: ContractSuite, platform: str) -> _Literal:
    result = f'"$RUNNER_TEMP/psp-contract-{platform}.json"'
    harness, judge = suite.commands(suite_dir(platform), platform, "RESULT")
    judge = [result if part == "RESULT" else shlex.quote(part) for part in judge]
    return _Literal(f'status=0\n{shlex.join(harness)} > {result} || status=$?\n{" ".join(judge)} "$status"\n')


def node_versions(template: Template) -> list[str]:
    """The Node majors a Node template's CI runs on: every LTS (even) major in its range, and both ends."""
    node = template.spec.node
    assert node is not None
    low, high = int(node.min), int(node.max)
    return [str(v) for v in range(low, high + 1) if v % 2 == 0 or v in (low, high)]


def ci_workflow(template: Template, suite: ContractSuite, client_id: str, base_branch: str, build: str) -> str:
    """The GitHub Actions workflow for one platform's plugin in a client repository (YAML text)."""
    spec = template.spec
    platform = spec.platform
    php = spec.php is not None and suite.runtime == "php"
    key, versions = ("php", spec.php.versions()) if php and spec.php else ("node", node_versions(template))
    label = "PHP" if php else "Node"
    setup = (
        {"uses": SETUP_PHP, "with": {"php-version": "${{ matrix.php }}", "coverage": "none", "tools": "none"}}
        if php
        else {"uses": SETUP_NODE, "with": {"node-version": "${{ matrix.node }}"}}
    )
    steps: list[dict[str, Any]] = [
        {"uses": CHECKOUT, "with": {"persist-credentials": False}},
        setup,
        {"name": f"{label} version", "run": "php -n -v" if php else "node --version"},
    ]
    if spec.lint_globs:
        lint = "php -n -d display_errors=1 -d error_reporting=-1 -l"
        script = _each_file(platform, spec.lint_globs, lint, "php -l", deprecations=True)
        steps.append({"name": "Lint every PHP file (php -l)", "run": script})
    if spec.js_check_globs:
        steps.append(
            {
                "name": "Syntax-check every JavaScript file (node --check)",
                "run": _each_file(platform, spec.js_check_globs, "node --check", "node --check"),
            }
        )
    steps.append({"name": f"Contract tests ({suite.case_count} cases)", "run": _contract_script(suite, platform)})
    paths = [f"{platform}/**", f"{suite_dir(platform)}/**", workflow_path(platform)]
    workflow = {
        "name": f"PSP {platform} plugin",
        "on": {
            "push": {"branches": [base_branch], "paths": paths},
            "pull_request": {"paths": paths},
            "workflow_dispatch": {},
        },
        "permissions": {"contents": "read"},
        "defaults": {"run": {"shell": "bash"}},
        "jobs": {
            "checks": {
                "name": f"{label} ${{{{ matrix.{key} }}}}",
                "runs-on": "ubuntu-latest",
                "timeout-minutes": 15,
                "strategy": {"fail-fast": False, "matrix": {key: versions}},
                "steps": steps,
            }
        },
    }
    header = (
        f"# Generated by the PSP plugin platform for {client_id}'s {platform} plugin (build {build}).\n"
        f"# Runs the checks the platform ran before publishing the build: "
        f"{'php -l on every PHP file' if spec.lint_globs else 'node --check on every JavaScript file'}\n"
        f"# and the contract tests in {suite_dir(platform)}/, on every {label} version the plugin supports.\n"
        "# Each build replaces this file; change the platform's template rather than this file.\n"
    )
    text = yaml.dump(workflow, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)
    # the release next to each pinned commit (YAML has no comments to dump: added on the dumped `uses:` lines)
    text = re.sub(
        r"^(\s*(?:- )?uses: ([\w.-]+/[\w.-]+)@[0-9a-f]{40})$",
        lambda m: f"{m.group(1)} # {PINNED_ACTIONS[m.group(2)][1]}",
        text,
        flags=re.M,
    )
    return header + text


# --- what to publish -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SourcePlan:
    """Everything one platform's build puts into the client repository, and the pull request text."""

    client: str
    platform: str
    plugin_version: str
    build: str
    base_branch: str
    files: Mapping[str, bytes] = field(repr=False)
    title: str
    body: str
    message: str
    contract_cases: int

    @property
    def branch(self) -> str:
        return source_branch(self.platform, self.plugin_version, self.build)

    @property
    def owned(self) -> tuple[str, ...]:
        """The paths this platform's pull requests own in the repository (folders and one file)."""
        return (self.platform, suite_dir(self.platform), workflow_path(self.platform))

    def owns(self, path: str) -> bool:
        return any(path == o or path.startswith(o + "/") for o in self.owned)

    def wanted(self) -> dict[str, tuple[str, str]]:
        """path -> (mode, blob sha) of every file, as GitHub lists a tree."""
        return {path: (FILE_MODE, git_blob_sha(data)) for path, data in self.files.items()}


def _lineage_rows(lineage: Mapping[str, Any]) -> list[tuple[str, str]]:
    keys = ("template_version", "template_hash", "config_hash", "plugin_version", "build")
    return [(k.replace("_", " "), str(lineage[k])) for k in keys if lineage.get(k)]


def plan_source(
    template: Template,
    config: ClientConfig,
    tree: RenderedTree,
    context: dict[str, Any],
    base_branch: str,
    lineage: Mapping[str, Any] | None = None,
    checks: Mapping[str, Mapping[str, int]] | None = None,
) -> SourcePlan:
    """The files and pull request for one tested build (`context`: the tree's render context).

    `checks` (a test report's counts per check) goes into the pull request text."""
    platform = template.spec.platform
    if context["plugin"]["build"] != tree.build or tree.platform != platform or tree.client_id != config.id:
        raise PublishError(
            f"{tree.client_id}|{tree.platform}: the rendered tree is build {tree.build}, but the template and config "
            f"now give build {context['plugin']['build']}; re-materialize rendered_source before publishing its source"
        )
    suite = contract_suite(template, context)
    files = {f"{platform}/{rel}": data for rel, data in sorted(tree.files.items())}
    files.update({f"{suite_dir(platform)}/{name}": data for name, data in suite.files().items()})
    workflow = ci_workflow(template, suite, config.id, base_branch, tree.build)
    files[workflow_path(platform)] = workflow.encode()
    runtime = (
        f"PHP {', '.join(template.spec.php.versions())}"
        if template.spec.php and suite.runtime == "php"
        else f"Node {', '.join(node_versions(template))}"
    )
    rows = [("client", config.id), ("platform", platform), *_lineage_rows({**(lineage or {}), "build": tree.build})]
    report = [f"- {n}: {c.get('passed', 0)} passed, {c.get('failed', 0)} failed" for n, c in (checks or {}).items()]
    body = "\n".join(
        [
            f"The {platform} plugin for **{config.id}**, version {tree.plugin_version} (build `{tree.build}`), "
            "as the PSP plugin platform built, tested and released it.",
            "",
            "| | |",
            "|---|---|",
            *(f"| {k} | `{v}` |" for k, v in rows),
            "",
            f"- `{platform}/`: the plugin source ({len(tree.files)} files), exactly what was packaged",
            f"- `{suite_dir(platform)}/`: the contract tests ({suite.case_count} cases: webhook signatures and "
            "replays, every payment status, the PSP client), standalone, no dependencies",
            f"- `{workflow_path(platform)}`: CI running the syntax checks and the contract tests on {runtime}",
            "",
            *(["The platform's own checks on this build:", *report, ""] if report else []),
            "Files under these paths are generated: each build replaces them through a new pull request, so "
            "changes belong in the platform's template or the client config.",
            "",
        ]
    )
    title = f"PSP {platform} plugin {tree.plugin_version} (build {tree.build})"
    message = f"{title}\n\nGenerated by the PSP plugin platform.\n\n" + "\n".join(f"{k}: {v}" for k, v in rows) + "\n"
    return SourcePlan(
        client=config.id,
        platform=platform,
        plugin_version=tree.plugin_version,
        build=tree.build,
        base_branch=base_branch,
        files=files,
        title=title,
        body=body,
        message=message,
        contract_cases=suite.case_count,
    )


def plan_for(
    plan: PluginPlan,
    tree: RenderedTree,
    lineage: Mapping[str, Any] | None = None,
    checks: Mapping[str, Mapping[str, int]] | None = None,
) -> SourcePlan:
    """plan_source for the planned plugin of a client whose config names a source repository."""
    config = plan.config
    if config.github is None or config.github.source is None:
        raise PublishError(f"{config.id}: github.source is not configured; nothing to publish the source to")
    return plan_source(
        plan.template, config, tree, dict(plan.context), config.github.source.base_branch, lineage, checks
    )


def source_target_for(settings: GitHubSettings) -> tuple[ReleaseTarget, Credentials]:
    """The source repository and credentials a client's `github:` section names."""
    if settings.source is None:
        raise PublishError("github.source is not configured")
    target = ReleaseTarget(settings.organization, settings.source.repository, settings.api_base)
    return target, credentials_for(settings)


# --- what happened -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceResult:
    repository: str
    branch: str
    base_branch: str
    branch_state: str  # created | reused | in_base (the base branch already has exactly these files)
    commit_sha: str
    pull_state: str  # created | open | closed | merged | none
    pull_number: int | None
    pull_url: str | None
    files: tuple[str, ...]
    changed_files: tuple[str, ...]  # what the commit changes against its base (empty when reused)
    retries: int
    waited_seconds: float

    @property
    def changed(self) -> bool:
        return self.branch_state == "created" or self.pull_state == "created"


# --- the publish ---------------------------------------------------------------------------------


def _text(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _differences(have: Mapping[str, tuple[str, str]], want: Mapping[str, tuple[str, str]]) -> list[str]:
    changed = [f"{p} (different content)" for p in sorted(set(have) & set(want)) if have[p] != want[p]]
    missing = [f"{p} (missing)" for p in sorted(set(want) - set(have))]
    extra = [f"{p} (not in this build)" for p in sorted(set(have) - set(want))]
    return changed + missing + extra


class _SourcePublisher(GitHubSteps):
    permissions = SOURCE_PERMISSIONS
    repository_field = "github.source.repository"

    def __init__(
        self,
        plan: SourcePlan,
        target: ReleaseTarget,
        credentials: Credentials,
        gh: Github,
        policy: RetryPolicy,
        log: Callable[[str], None],
        sleep: Callable[[float], None],
        clock: Callable[[], float],
    ) -> None:
        super().__init__(target, credentials, policy, log, sleep, clock)
        self.plan, self.gh = plan, gh
        self.want = plan.wanted()
        self.changed_files: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"{self.target.full_name} at {self.target.host}, branch {self.plan.branch}"

    # --- reads ---

    def _head(self, repo: Any, branch: str) -> str | None:
        try:
            return repo.get_git_ref(f"heads/{branch}").object.sha
        except github.UnknownObjectException:
            return None

    def _listing(self, repo: Any, commit_sha: str) -> tuple[Any, Any, dict[str, tuple[str, str]]]:
        """(commit, its tree, path -> (mode, sha) of every entry under the plan's paths)."""
        commit = repo.get_git_commit(commit_sha)
        tree = repo.get_git_tree(commit.tree.sha, recursive=True)
        if tree.raw_data.get("truncated"):
            raise PublishError(
                f"{self.where}: GitHub truncated the file list of commit {commit_sha[:12]} (a very large "
                "repository); give the client's source its own repository (github.source.repository)"
            )
        owned = {e.path: (e.mode, e.sha) for e in tree.tree if e.type != "tree" and self.plan.owns(e.path)}
        return commit, tree, owned

    # --- writes ---

    def _commit(self, repo: Any, base_commit: Any, base_tree: Any, base_files: dict[str, tuple[str, str]]) -> str:
        plan = self.plan
        changed = [p for p in sorted(plan.files) if base_files.get(p) != self.want[p]]
        removed = sorted(set(base_files) - set(plan.files))
        entries = []
        for path in changed:
            data, text = plan.files[path], _text(plan.files[path])
            if text is not None:  # text goes inline in the tree; binary files (images, .mo) as blobs
                entries.append(InputGitTreeElement(path, FILE_MODE, "blob", content=text))
                continue
            blob = self.step(
                f"upload {path}", lambda d=data: repo.create_git_blob(base64.b64encode(d).decode(), "base64")
            )
            if blob.sha != self.want[path][1]:
                raise PublishError(f"{self.where}: GitHub stored {path} as {blob.sha}, expected {self.want[path][1]}")
            entries.append(InputGitTreeElement(path, FILE_MODE, "blob", sha=blob.sha))
        entries += [InputGitTreeElement(path, FILE_MODE, "blob", sha=None) for path in removed]
        tree = self.step("create the tree", lambda: repo.create_git_tree(entries, base_tree))
        commit = self.step("create the commit", lambda: repo.create_git_commit(plan.message, tree, [base_commit]))
        _, _, got = self.step("read the new commit back", lambda: self._listing(repo, commit.sha))
        problems = _differences(got, self.want)
        if problems:
            raise PublishError(
                f"{self.where}: the commit GitHub made ({commit.sha[:12]}) does not hold this build: "
                + "; ".join(problems[:5])
                + "; no branch was created, run again"
            )
        self.changed_files = tuple(changed + removed)
        self.log(f"commit {commit.sha[:12]} on {plan.base_branch}: {len(changed)} changed, {len(removed)} removed")
        return commit.sha

    def _create_branch(self, repo: Any, commit_sha: str) -> tuple[str, str]:
        def attempt() -> tuple[str, str]:
            try:
                repo.create_git_ref(f"refs/heads/{self.plan.branch}", commit_sha)
                return commit_sha, "created"
            except GithubException as exc:
                if exc.status != 422 or "already exists" not in error_message(exc).lower():
                    raise
            # made meanwhile: by another publisher, or by our own earlier attempt answered with a 5xx
            head = self._head(repo, self.plan.branch)
            if head is None:
                raise RetryNow(f"branch {self.plan.branch} was reported to exist but cannot be read")
            return head, "created" if head == commit_sha else "reused"

        return self.step(f"create branch {self.plan.branch}", attempt)

    def _verify(self, repo: Any, head: str) -> None:
        _, _, have = self.step(f"read branch {self.plan.branch}", lambda: self._listing(repo, head))
        problems = _differences(have, self.want)
        if problems:
            raise PublishError(
                f"{self.where}: branch {self.plan.branch} already exists with different content ("
                + "; ".join(problems[:5])
                + (f"; {len(problems) - 5} more" if len(problems) > 5 else "")
                + "); it is never overwritten. If it should carry this build, delete the branch (closing its pull "
                "request) and publish again"
            )

    def _superseded(self, repo: Any) -> list[int]:
        prefix = f"{BRANCH_PREFIX}/{self.plan.platform}/"

        def read() -> list[int]:
            pulls = repo.get_pulls(state="open", base=self.plan.base_branch)
            return [p.number for p in pulls if p.head.ref.startswith(prefix) and p.head.ref != self.plan.branch]

        return self.step("list open pull requests of earlier builds", read)

    def _pull(self, repo: Any) -> tuple[Any, str]:
        plan = self.plan
        tried = False

        def attempt() -> tuple[Any, str]:
            nonlocal tried
            head = f"{self.target.organization}:{plan.branch}"
            found = list(repo.get_pulls(state="all", head=head, base=plan.base_branch))
            if found:
                pull = found[0]
                state = "merged" if pull.merged_at is not None else pull.state
                return pull, "created" if tried and state == "open" else state
            older = self._superseded(repo)
            body = plan.body + "".join(f"\nSupersedes #{n}." for n in older)
            tried = True
            try:
                return repo.create_pull(base=plan.base_branch, head=plan.branch, title=plan.title, body=body), "created"
            except GithubException as exc:
                if exc.status == 422 and "already exists" in error_message(exc).lower():
                    raise RetryNow("the pull request appeared while opening it (422 already exists)") from None
                raise

        return self.step(f"find or open the pull request {plan.branch} -> {plan.base_branch}", attempt)

    def run(self) -> SourceResult:
        plan = self.plan
        repo = self.step(f"open {self.target.full_name}", lambda: self.gh.get_repo(self.target.full_name))
        head = self.step(f"read branch {plan.branch}", lambda: self._head(repo, plan.branch))
        if head is None:
            base_head = self.step(f"read base branch {plan.base_branch}", lambda: self._head(repo, plan.base_branch))
            if base_head is None:
                raise PublishError(
                    f"{self.where}: the base branch {plan.base_branch!r} does not exist; create it (a repository "
                    "needs a first commit) or set github.source.base_branch to the branch pull requests should target"
                )
            base_commit, base_tree, base_files = self.step(
                f"read {plan.base_branch}", lambda: self._listing(repo, base_head)
            )
            if not _differences(base_files, self.want):
                self.log(f"{plan.base_branch} already holds exactly this build; nothing to propose")
                return self._result(base_head, "in_base", None, "none")
            commit_sha = self._commit(repo, base_commit, base_tree, base_files)
            head, branch_state = self._create_branch(repo, commit_sha)
            if branch_state == "reused":
                self._verify(repo, head)
        else:
            branch_state = "reused"
            self._verify(repo, head)
        self.log(f"branch {plan.branch}: {branch_state} ({head[:12]})")
        pull, pull_state = self._pull(repo)
        self.log(f"pull request #{pull.number}: {pull_state} ({pull.html_url})")
        return self._result(head, branch_state, pull, pull_state)

    def _result(self, commit_sha: str, branch_state: str, pull: Any, pull_state: str) -> SourceResult:
        return SourceResult(
            repository=self.target.full_name,
            branch=self.plan.branch,
            base_branch=self.plan.base_branch,
            branch_state=branch_state,
            commit_sha=commit_sha,
            pull_state=pull_state,
            pull_number=pull.number if pull is not None else None,
            pull_url=pull.html_url if pull is not None else None,
            files=tuple(sorted(self.plan.files)),
            changed_files=self.changed_files,
            retries=self.retries,
            waited_seconds=round(self.waited, 3),
        )


def publish_source(
    plan: SourcePlan,
    target: ReleaseTarget,
    credentials: Credentials,
    *,
    secrets: SecretLookup = os.environ.get,
    policy: RetryPolicy | None = None,
    timeout_seconds: int = 30,
    seconds_between_requests: float = 0.25,
    seconds_between_writes: float = 1.0,
    log: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> SourceResult:
    """Put `plan` on its branch in `target` and make sure a pull request proposes it (see the module doc).

    Raises PublishError naming the repository, the branch and what to do; never includes a credential."""
    with github_session(
        target,
        credentials,
        secrets,
        permissions=SOURCE_PERMISSIONS,
        timeout_seconds=timeout_seconds,
        seconds_between_requests=seconds_between_requests,
        seconds_between_writes=seconds_between_writes,
    ) as gh:
        publisher = _SourcePublisher(
            plan, target, credentials, gh, policy or RetryPolicy(), log or (lambda _m: None), sleep, clock
        )
        return publisher.run()

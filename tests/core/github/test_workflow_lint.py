"""The CI workflows handed to clients pass actionlint, and every action they use is pinned to a release
commit with the release next to it, on a current (Node 24) major: GitHub removed Node 20 from its runners
on 2026-09-23, so actions/checkout@v4 and actions/setup-node@v4 no longer run there."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from psp_assets.core.github.client_repo import PINNED_ACTIONS, workflow_path
from psp_assets.core.templates.spec import PLATFORMS
from tests.core.github.test_client_repo import make_plan

# the first major of each action that runs on Node 24
NODE24_MAJOR = {"actions/checkout": 5, "actions/setup-node": 5, "shivammathur/setup-php": 2}
USES = re.compile(r"^\s*(?:- )?uses: (\S+)(.*)$", re.M)


def actionlint() -> str:
    """The actionlint of the project's dev dependencies (beside this Python), else one on PATH."""
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    assert found, "actionlint is a dev dependency (pyproject.toml): pip install -e '.[dev]'"
    return found


def lint(workflow: str, tmp_path: Path) -> subprocess.CompletedProcess:
    # actionlint finds workflows under .github/workflows of the folder it runs in
    folder = tmp_path / ".github" / "workflows"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ci.yml").write_text(workflow)
    return subprocess.run(
        [actionlint(), "-no-color", "-oneline", ".github/workflows/ci.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("platform", PLATFORMS)
def test_every_platforms_client_workflow_passes_actionlint(platform: str, tmp_path: Path) -> None:
    plan = make_plan(platform=platform, platforms={platform: {}})
    workflow = plan.files[workflow_path(platform)].decode()
    done = lint(workflow, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert yaml.safe_load(workflow)["jobs"]["checks"]["steps"]


@pytest.mark.parametrize("platform", ["woocommerce", "shopify"])
def test_actions_are_pinned_to_release_commits_on_a_node24_major(platform: str) -> None:
    workflow = make_plan(platform=platform).files[workflow_path(platform)].decode()
    uses = USES.findall(workflow)
    assert uses, "the workflow uses the checkout and setup actions"
    for ref, comment in uses:
        action, _, commit = ref.partition("@")
        pinned_commit, release = PINNED_ACTIONS[action]
        assert re.fullmatch(r"[0-9a-f]{40}", commit) and commit == pinned_commit, ref
        assert comment == f" # {release}", (ref, comment)
        major = int(release.lstrip("v").split(".")[0])
        assert major >= NODE24_MAJOR[action], f"{action} {release} runs on Node 20"
    assert {ref.partition("@")[0] for ref, _ in uses} == (
        {"actions/checkout", "shivammathur/setup-php"}
        if platform == "woocommerce"
        else {"actions/checkout", "actions/setup-node"}
    )


def test_actionlint_reports_a_broken_workflow(tmp_path: Path) -> None:
    """The check can fail: an unknown matrix key and an expression typo are reported."""
    workflow = make_plan().files[workflow_path("woocommerce")].decode()
    broken = workflow.replace("${{ matrix.php }}", "${{ matrix.phpp }}", 1).replace(
        "runs-on: ubuntu-latest", "runs-on: ubuntu-latst"
    )
    done = lint(broken, tmp_path)
    assert done.returncode != 0
    assert "phpp" in done.stdout and "ubuntu-latst" in done.stdout, done.stdout

"""Templates from a GitHub repository: a commit that changes one platform's template starts exactly one
run, for that platform, from a checkout of that commit; the lineage then renders from the checkout. The
repository is served by the local GitHub stand-in (tests/support/fake_github.py), as GitHub cannot be
reached from here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from psp_assets.core.errors import TemplateError
from psp_assets.core.templates.spec import available_platforms, load_template
from psp_assets.core.workspace import Paths
from psp_assets.definitions import defs
from psp_assets.defs.plugins.resources import TemplateRepository
from psp_assets.defs.plugins.sensors import github_template_sensor, template_change_sensor
from psp_assets.defs.resources import PspWorkspace
from psp_assets.fleet import latest_metadata
from tests.support.fake_github import FakeGitHub

OWNER, NAME, TOKEN = "psp", "plugin-templates", "ghp_template_reader_0123456789"
CRONTAB = "templates/magento2/etc/crontab.xml.j2"


@pytest.fixture
def github(env: Paths) -> Iterator[FakeGitHub]:
    """The template repository: every file of templates/ in one first commit, beside a README."""
    server = FakeGitHub().start()
    server.add_repo(OWNER, NAME, token=TOKEN)
    files: dict[str, bytes | None] = {"README.md": b"# PSP plugin templates\n"}
    for path in sorted(env.templates_dir.rglob("*")):
        if path.is_file():
            files[f"templates/{path.relative_to(env.templates_dir).as_posix()}"] = path.read_bytes()
    server.commit_files(OWNER, NAME, files, "Import the templates")
    try:
        yield server
    finally:
        server.stop()


def source(github: FakeGitHub, tmp_path: Path, token: str = TOKEN) -> TemplateRepository:
    return TemplateRepository(
        repository=f"{OWNER}/{NAME}", base_url=github.base_url, token=token, checkouts_dir=str(tmp_path / "checkouts")
    )


def tick(instance, repo: TemplateRepository, cursor: str | None = None, sensor=github_template_sensor):
    resources = {"workspace": PspWorkspace(), "template_repo": repo}
    return sensor(dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources))


def edit(github: FakeGitHub, path: str, text: str, message: str) -> str:
    repo = github.repos[(OWNER, NAME)]
    current = repo.blobs[repo.commits[repo.branches["main"]].files[path]]
    return github.commit_files(OWNER, NAME, {path: current + text.encode()}, message).sha


def test_a_commit_to_one_platform_starts_exactly_one_run_for_it_and_nothing_twice(env, instance, github, tmp_path):
    repo = source(github, tmp_path)
    first = tick(instance, repo)
    assert {r.partition_key for r in first.run_requests} == set(available_platforms(env.templates_dir))
    assert not tick(instance, repo, first.cursor).run_requests

    sha = edit(github, CRONTAB, "<!-- reconcile every 5 minutes -->\n", "magento2: note the cron cadence")
    changed = tick(instance, repo, first.cursor)
    [request] = changed.run_requests
    assert request.partition_key == "magento2" and request.tags["psp/template_commit"] == sha
    assert request.tags["psp/template_commit_url"].endswith(f"/{OWNER}/{NAME}/commit/{sha}")
    checkout = Path(request.run_config["resources"]["workspace"]["config"]["templates_dir"])
    assert (checkout / "magento2/etc/crontab.xml.j2").read_text().endswith("<!-- reconcile every 5 minutes -->\n")
    assert (checkout / "_shared").is_dir() and not (checkout / "woocommerce").exists()

    assert not tick(instance, repo, changed.cursor).run_requests  # the same commit never starts twice
    github.commit_files(OWNER, NAME, {"README.md": b"# Templates\n\nNow with a changelog.\n"}, "docs only")
    readme = tick(instance, repo, changed.cursor)
    assert not readme.run_requests

    edit(github, "templates/woocommerce/readme.txt.j2", "\n== Changelog ==\n* Clearer refund notes.\n", "woo")
    assert [r.partition_key for r in tick(instance, repo, readme.cursor).run_requests] == ["woocommerce"]


def test_a_change_to_the_shared_files_re_records_every_platform(env, instance, github, tmp_path):
    repo = source(github, tmp_path)
    first = tick(instance, repo)
    repository = github.repos[(OWNER, NAME)]
    files = repository.commits[repository.branches["main"]].files
    shared = next(p for p in sorted(files) if p.startswith("templates/_shared/php-core/"))
    edit(github, shared, "\n", "php-core: trailing newline")
    after = tick(instance, repo, first.cursor)
    assert {r.partition_key for r in after.run_requests} == set(available_platforms(env.templates_dir))


def test_the_recorded_template_names_its_commit_and_the_lineage_renders_from_that_checkout(
    env, instance, github, tmp_path
):
    repo = source(github, tmp_path)
    first = tick(instance, repo)
    sha = edit(github, CRONTAB, "<!-- reconcile every 5 minutes -->\n", "magento2: note the cron cadence")
    [request] = tick(instance, repo, first.cursor).run_requests
    result = defs.resolve_job_def("plugin_template_job").execute_in_process(
        partition_key="magento2", instance=instance, run_config=request.run_config, tags=request.tags
    )
    assert result.success
    recorded = latest_metadata(instance, "plugin_template", "magento2")
    checkout = Path(request.run_config["resources"]["workspace"]["config"]["templates_dir"])
    assert recorded["template_commit"] == sha and recorded["template_commit_url"].endswith(sha)
    assert recorded["template_hash"] == load_template(checkout, "magento2").content_hash
    assert recorded["template_hash"] != load_template(env.templates_dir, "magento2").content_hash
    # a daemon's first tick (no cursor) does not re-record what the instance already has from that commit
    assert "magento2" not in [r.partition_key for r in tick(instance, repo).run_requests]

    # rendered from the checkout: the local templates differ, and the strict lineage check would refuse them
    instance.add_dynamic_partitions("client", ["nordbank"])
    assert defs.resolve_job_def("client_config_job").execute_in_process(partition_key="nordbank", instance=instance)
    render = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key="nordbank|magento2", instance=instance, asset_selection=[dg.AssetKey("rendered_source")]
    )
    assert render.success
    rendered = Path(latest_metadata(instance, "rendered_source", "nordbank|magento2")["path"])
    assert "<!-- reconcile every 5 minutes -->" in (rendered / "etc/crontab.xml").read_text()


def test_the_local_directory_is_not_watched_while_github_is_the_source(env, instance, github, tmp_path):
    skipped = tick(instance, source(github, tmp_path), sensor=template_change_sensor)
    assert not skipped.run_requests and f"{OWNER}/{NAME}" in skipped.skip_reason.skip_message
    assert tick(instance, TemplateRepository(), sensor=template_change_sensor).run_requests  # local source again


def test_a_rejected_token_fails_the_tick_naming_the_repository_never_the_token(env, instance, github, tmp_path):
    with pytest.raises(TemplateError, match=f"{OWNER}/{NAME}.*HTTP 401") as failure:
        tick(instance, source(github, tmp_path, token="ghp_wrong_token_0000000000"))
    assert "ghp_wrong_token" not in str(failure.value)

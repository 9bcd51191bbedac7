"""The github_release and client_repository assets through Dagster itself: the real plugin lineage job
on a temporary instance, publishing to the local GitHub stand-in, and a scan of everything the runs left
behind for secrets."""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from psp_assets.core.workspace import Paths
from psp_assets.definitions import defs
from psp_assets.fleet import latest_metadata
from tests.conftest import DEMO_CLIENTS, TEMPLATES
from tests.support.fake_github import FakeGitHub

NORDBANK_TOKEN = "ghp_nordbankDagsterSecret_5f9c2d"
SOURCE_REPO = "payment-plugins-source"
BALTIC_TOKEN = "ghp_balticDagsterSecret_8e1a7b"
LINEAGE = ("template_version", "template_hash", "config_hash", "plugin_version", "build")
FAST = {"seconds_between_requests": 0.0, "seconds_between_writes": 0.0, "backoff_seconds": 0.01}

pytestmark = pytest.mark.slow


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_github: FakeGitHub) -> Paths:
    """The demo configs, pointed at the local GitHub stand-in; outputs and stores in tmp."""
    configs = tmp_path / "client_configs"
    shutil.copytree(DEMO_CLIENTS, configs)
    for name in ("nordbank", "alpenkasse"):
        path = configs / f"{name}.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["github"]["base_url"] = fake_github.base_url
        if name == "nordbank":  # nordbank's engineers also get the source, as pull requests
            doc["github"]["source"] = {"repository": SOURCE_REPO}
        path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    baltic = configs / "baltic-credit.yaml"
    doc = yaml.safe_load(baltic.read_text())
    doc["github"] = {
        "base_url": fake_github.base_url,
        "organization": "baltic-credit",
        "repository": "plugins",
        "token_env": "BALTIC_GITHUB_TOKEN",
    }
    baltic.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    for key, value in {
        "PSP_CLIENT_CONFIGS_DIR": configs,
        "PSP_TEMPLATES_DIR": TEMPLATES,
        "PSP_DATA_DIR": tmp_path / "data",
        "PSP_STORES_DIR": tmp_path / "stores",
    }.items():
        monkeypatch.setenv(key, str(value))
    monkeypatch.delenv("PSP_GITHUB_PUBLISH", raising=False)
    fake_github.add_repo("nordbank-psp", "payment-plugins", NORDBANK_TOKEN)
    fake_github.add_repo("nordbank-psp", SOURCE_REPO, NORDBANK_TOKEN)
    fake_github.commit_files("nordbank-psp", SOURCE_REPO, {"README.md": b"# Nord Bank plugins\n"}, "Initial commit")
    fake_github.seen.clear()
    fake_github.add_repo("baltic-credit", "plugins", BALTIC_TOKEN)
    fake_github.add_repo("ecommerce", "psp-magento-module")
    return Paths.from_env()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    # PyGithub's own logger is captured into the event log at DEBUG, so the scan covers what it logs too
    overrides = {"python_logs": {"managed_python_loggers": ["github"], "python_log_level": "DEBUG"}}
    with dg.instance_for_test(overrides=overrides) as inst:
        yield inst


def run_lineage(instance: dg.DagsterInstance, partition: str, **github_config) -> dg.ExecuteInProcessResult:
    client, platform = partition.split("|")
    if client not in instance.get_dynamic_partitions("client"):
        instance.add_dynamic_partitions("client", [client])
    for job, key in (("plugin_template_job", platform), ("client_config_job", client)):
        assert defs.resolve_job_def(job).execute_in_process(partition_key=key, instance=instance).success
    return defs.resolve_job_def("plugin_lineage_job").execute_in_process(
        partition_key=partition,
        instance=instance,
        raise_on_error=False,
        run_config={"resources": {"github": {"config": {**FAST, **github_config}}}},
    )


def observations(instance: dg.DagsterInstance, partition: str, asset: str = "github_release") -> list[dict]:
    records = instance.fetch_observations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]), limit=10
    ).records
    return [{k: v.value for k, v in r.asset_observation.metadata.items()} for r in records if r.asset_observation]


def test_without_PSP_GITHUB_PUBLISH_nothing_is_published_and_the_run_succeeds(env, instance, fake_github):
    result = run_lineage(instance, "nordbank|woocommerce")

    assert result.success
    assert latest_metadata(instance, "deployed_store", "nordbank|woocommerce")
    assert latest_metadata(instance, "github_release", "nordbank|woocommerce") == {}
    [skipped] = observations(instance, "nordbank|woocommerce")
    assert skipped["status"] == "skipped" and "PSP_GITHUB_PUBLISH=1" in skipped["reason"]
    assert skipped["repository"] == "nordbank-psp/payment-plugins"
    assert all(skipped.get(k) for k in LINEAGE)
    assert latest_metadata(instance, "client_repository", "nordbank|woocommerce") == {}
    [source] = observations(instance, "nordbank|woocommerce", "client_repository")
    assert source["status"] == "skipped" and "PSP_GITHUB_PUBLISH=1" in source["reason"]
    assert source["repository"] == f"nordbank-psp/{SOURCE_REPO}" and all(source.get(k) for k in LINEAGE)
    assert fake_github.seen == [], "nothing may reach GitHub while publishing is off"


def test_a_client_without_a_github_section_is_skipped_cleanly_even_with_publishing_on(
    env, instance, fake_github, monkeypatch
):
    config = env.configs_dir / "baltic-credit.yaml"
    doc = yaml.safe_load(config.read_text())
    del doc["github"]
    config.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    monkeypatch.setenv("PSP_GITHUB_PUBLISH", "1")

    result = run_lineage(instance, "baltic-credit|woocommerce")

    assert result.success
    assert latest_metadata(instance, "github_release", "baltic-credit|woocommerce") == {}
    assert latest_metadata(instance, "client_repository", "baltic-credit|woocommerce") == {}
    assert observations(instance, "baltic-credit|woocommerce") == []
    assert observations(instance, "baltic-credit|woocommerce", "client_repository") == []
    assert fake_github.seen == []


def test_a_publish_that_cannot_authenticate_fails_only_the_publishing_steps_and_names_the_variable(
    env, instance, fake_github, monkeypatch
):
    monkeypatch.setenv("PSP_GITHUB_PUBLISH", "1")
    monkeypatch.delenv("NORDBANK_GITHUB_TOKEN", raising=False)

    result = run_lineage(instance, "nordbank|woocommerce")

    assert not result.success
    failures = {e.step_key: e.step_failure_data.error.message for e in result.all_events if e.is_step_failure}
    assert sorted(failures) == ["client_repository", "github_release"]
    for step, repository in (("github_release", "payment-plugins"), ("client_repository", SOURCE_REPO)):
        assert "NORDBANK_GITHUB_TOKEN" in failures[step] and f"nordbank-psp/{repository}" in failures[step]
    assert latest_metadata(instance, "deployed_store", "nordbank|woocommerce"), "the deploy is independent"


def _files_bytes(root: Path) -> Iterator[tuple[Path, bytes]]:
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            yield path, data
            if path.suffix == ".zip":
                with zipfile.ZipFile(path) as zf:
                    for name in zf.namelist():
                        yield path / name, zf.read(name)


def test_releases_are_published_per_organization_with_lineage_and_no_secret_anywhere(
    env, instance, fake_github, monkeypatch, app_key_pair, tmp_path
):
    private, public = app_key_pair
    fake_github.add_app(31337, public, installation_id=4711, owner="ecommerce")
    monkeypatch.setenv("PSP_GITHUB_PUBLISH", "1")
    monkeypatch.setenv("NORDBANK_GITHUB_TOKEN", NORDBANK_TOKEN)
    monkeypatch.setenv("BALTIC_GITHUB_TOKEN", BALTIC_TOKEN)
    monkeypatch.setenv("ALPENKASSE_GITHUB_APP_PRIVATE_KEY", private)
    partitions = ["nordbank|woocommerce", "baltic-credit|woocommerce", "alpenkasse|magento2"]

    runs = [run_lineage(instance, p) for p in partitions]

    assert all(r.success for r in runs)
    for partition, repo in zip(
        partitions,
        ["nordbank-psp/payment-plugins", "baltic-credit/plugins", "ecommerce/psp-magento-module"],
        strict=True,
    ):
        meta = latest_metadata(instance, "github_release", partition)
        artifact = latest_metadata(instance, "built_artifact", partition)
        client, platform = partition.split("|")
        assert meta["repository"] == repo and meta["release"] == "created"
        assert meta["tag"] == f"{client}-{platform}-v{artifact['plugin_version']}-{artifact['build']}"
        assert meta["release_url"].endswith(f"/{repo}/releases/tag/{meta['tag']}")
        assert meta["sha256"] == artifact["sha256"]
        assert all(meta.get(k) == artifact.get(k) for k in LINEAGE)
        assert {a["state"] for a in meta["assets"]} == {"uploaded"} and len(meta["assets"]) == 3
        owner, name = repo.split("/")
        release = fake_github.release(owner, name, meta["tag"])
        zip_name = Path(artifact["artifact_path"]).name
        [zip_asset] = [a for a in release.assets.values() if a.name == zip_name]
        assert zip_asset.data == Path(artifact["artifact_path"]).read_bytes()

    # nordbank's source: one branch and pull request holding exactly the tested tree, the suite and the workflow
    source = latest_metadata(instance, "client_repository", "nordbank|woocommerce")
    artifact = latest_metadata(instance, "built_artifact", "nordbank|woocommerce")
    rendered = latest_metadata(instance, "rendered_source", "nordbank|woocommerce")
    assert all(source.get(k) == artifact.get(k) for k in LINEAGE)
    assert source["branch"] == f"psp/woocommerce/{artifact['plugin_version']}-{artifact['build']}"
    assert (source["branch_state"], source["pull_request_state"]) == ("created", "created")
    assert source["pull_request_url"].endswith(f"/nordbank-psp/{SOURCE_REPO}/pull/1")
    assert source["repository"] == f"nordbank-psp/{SOURCE_REPO}"
    on_branch = fake_github.files_at("nordbank-psp", SOURCE_REPO, source["branch"])
    assert fake_github.repos[("nordbank-psp", SOURCE_REPO)].branches[source["branch"]] == source["commit_sha"]
    assert sorted(source["files"]) == sorted(set(on_branch) - {"README.md"}) and source["file_count"] == len(
        source["files"]
    )
    tree_root = Path(rendered["path"])
    plugin = {p.relative_to(tree_root).as_posix(): p.read_bytes() for p in tree_root.rglob("*") if p.is_file()}
    assert {p[len("woocommerce/") :]: d for p, d in on_branch.items() if p.startswith("woocommerce/")} == plugin
    assert ".github/workflows/psp-woocommerce-ci.yml" in on_branch and source["contract_cases"] > 100
    for other in ("baltic-credit|woocommerce", "alpenkasse|magento2"):
        assert latest_metadata(instance, "client_repository", other) == {}, "no github.source: nothing published"

    # each organization saw only its own credential
    [installation_token] = fake_github.issued_tokens
    by_owner: dict[str, set[str]] = {}
    for seen in fake_github.seen:
        if seen.owner:
            by_owner.setdefault(seen.owner, set()).add(seen.authorization)
    assert by_owner == {
        "nordbank-psp": {f"token {NORDBANK_TOKEN}"},
        "baltic-credit": {f"token {BALTIC_TOKEN}"},
        "ecommerce": {f"token {installation_token}"},
    }

    # publishing the same builds again is a recorded no-op
    again = run_lineage(instance, "nordbank|woocommerce")
    assert again.success
    meta = latest_metadata(instance, "github_release", "nordbank|woocommerce")
    assert meta["release"] == "reused" and {a["state"] for a in meta["assets"]} == {"unchanged"}
    source_again = latest_metadata(instance, "client_repository", "nordbank|woocommerce")
    assert (source_again["branch_state"], source_again["pull_request_state"], source_again["changed"]) == (
        "reused",
        "open",
        False,
    )
    assert source_again["commit_sha"] == source["commit_sha"]
    assert len(fake_github.pulls_of("nordbank-psp", SOURCE_REPO)) == 1
    runs.append(again)

    secrets = [NORDBANK_TOKEN, BALTIC_TOKEN, installation_token, *private.strip().splitlines()[1:-1]]
    # 1. every event of every run: log lines (PyGithub's DEBUG log included), metadata, failures
    events = "\n".join(dg.serialize_value(record) for r in runs for record in instance.all_logs(r.run_id))
    assert "nordbank-woocommerce-v" in events and "release_url" in events  # the scan sees what was recorded
    assert "access_tokens" in events, "PyGithub's debug log was captured, so it was scanned too"
    # 2. every file the instance (event and run storage, captured stdout/stderr) and the pipeline wrote
    files = [*_files_bytes(Path(instance.root_directory)), *_files_bytes(env.data_dir), *_files_bytes(env.stores_dir)]
    assert any(p.suffix == ".zip" for p, _ in files) and any("compute_logs" in str(p) for p, _ in files)
    # 3. what reached GitHub: release bodies and assets
    published = [
        (rel.body.encode(), *(a.data for a in rel.assets.values()))
        for repo in fake_github.repos.values()
        for rel in repo.releases.values()
    ]
    # ... and the source repository: every blob, commit message and pull request
    source_repo = fake_github.repos[("nordbank-psp", SOURCE_REPO)]
    published.append((*source_repo.blobs.values(), *(c.message.encode() for c in source_repo.commits.values())))
    published.append(tuple((p.title + p.body).encode() for p in fake_github.pulls_of("nordbank-psp", SOURCE_REPO)))
    for secret in secrets:
        assert secret not in events, "a secret reached the event log"
        leaked = [str(p) for p, data in files if secret.encode() in data]
        assert not leaked, f"a secret reached {leaked}"
        assert not any(secret.encode() in blob for release in published for blob in release)


def test_a_source_branch_holding_other_files_fails_client_repository_naming_it_and_nothing_else(
    env, instance, fake_github, monkeypatch
):
    monkeypatch.setenv("PSP_GITHUB_PUBLISH", "1")
    monkeypatch.setenv("NORDBANK_GITHUB_TOKEN", NORDBANK_TOKEN)
    run_lineage(instance, "nordbank|woocommerce", publish=False)  # learn this build's branch name
    build = latest_metadata(instance, "built_artifact", "nordbank|woocommerce")["build"]
    branch = f"psp/woocommerce/1.0.0-{build}"
    fake_github.commit_files("nordbank-psp", SOURCE_REPO, {"woocommerce/readme.txt": b"by hand\n"}, "x", branch=branch)
    head = fake_github.repos[("nordbank-psp", SOURCE_REPO)].branches[branch]

    result = run_lineage(instance, "nordbank|woocommerce")

    failures = {e.step_key: e.step_failure_data.error.message for e in result.all_events if e.is_step_failure}
    assert list(failures) == ["client_repository"]
    assert f"branch {branch} already exists with different content" in failures["client_repository"]
    assert fake_github.repos[("nordbank-psp", SOURCE_REPO)].branches[branch] == head
    assert fake_github.pulls_of("nordbank-psp", SOURCE_REPO) == []
    assert latest_metadata(instance, "github_release", "nordbank|woocommerce")["release"] == "created"

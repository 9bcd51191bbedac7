"""Publishing releases with PyGithub against the local GitHub stand-in (real HTTP, real PyGithub)."""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import pytest

from psp_assets.core.errors import PublishError
from psp_assets.core.github.releases import SUMS_NAME, PublishResult, plan_release, publish_release
from psp_assets.core.github.session import AppCredentials, ReleaseTarget, RetryPolicy, TokenCredentials
from psp_assets.core.package import Artifact
from tests.core.github.conftest import build_artifact
from tests.support.fake_github import FakeGitHub

ORG, REPO, TOKEN = "nordbank-psp", "payment-plugins", "ghp_nordbankSecretValue0123456789"
LINEAGE = {"template_version": "1.4.0", "template_hash": "t" * 64, "config_hash": "c" * 64}


class Sleeps(list):
    """Records requested pauses; really sleeps only when asked to (rate-limit tests wait for real)."""

    def __init__(self, real: bool = False) -> None:
        super().__init__()
        self.real = real

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        if self.real:
            import time

            time.sleep(seconds)


def publish(
    fake: FakeGitHub,
    artifact: Artifact,
    *,
    org: str = ORG,
    repo: str = REPO,
    credentials=None,
    env: dict[str, str] | None = None,
    policy: RetryPolicy | None = None,
    sleep: Sleeps | None = None,
    log: list[str] | None = None,
) -> PublishResult:
    env = {"NORDBANK_GITHUB_TOKEN": TOKEN} if env is None else env
    return publish_release(
        plan_release(artifact, LINEAGE),
        ReleaseTarget(org, repo, fake.base_url),
        credentials or TokenCredentials("NORDBANK_GITHUB_TOKEN"),
        secrets=env.get,
        policy=policy or RetryPolicy(backoff_seconds=0.01, reset_margin_seconds=0.2),
        seconds_between_requests=0,
        seconds_between_writes=0,
        sleep=sleep if sleep is not None else Sleeps(),
        log=(log.append if log is not None else None),
        timeout_seconds=10,
    )


def states(result: PublishResult) -> dict[str, str]:
    return {a.name: a.state for a in result.assets}


def writes(fake: FakeGitHub) -> list[str]:
    return [f"{s.method} {s.path}" for s in fake.seen if s.method in ("POST", "DELETE", "PATCH")]


@pytest.fixture
def repo(fake_github: FakeGitHub):
    return fake_github.add_repo(ORG, REPO, TOKEN)


def test_publishes_release_with_archive_manifest_and_checksums_that_verify(
    fake_github: FakeGitHub, repo, artifact: Artifact, tmp_path: Path
):
    result = publish(fake_github, artifact)

    assert result.tag == "nordbank-woocommerce-v1.4.0-0a1b2c3d4e5f"
    assert result.release_state == "created"
    zip_name, manifest_name = artifact.path.name, artifact.manifest_path.name
    assert states(result) == {zip_name: "uploaded", manifest_name: "uploaded", SUMS_NAME: "uploaded"}
    release = fake_github.release(ORG, REPO, result.tag)
    assert release is not None and result.release_url.endswith(f"/{ORG}/{REPO}/releases/tag/{result.tag}")
    for word in (artifact.sha256, "0a1b2c3d4e5f", "1.4.0", "t" * 64, "c" * 64):
        assert word in release.body
    published = {a.name: a for a in release.assets.values()}
    assert published[zip_name].data == artifact.path.read_bytes()
    assert published[manifest_name].data == artifact.manifest_path.read_bytes()
    assert json.loads(published[manifest_name].data)["sha256"] == artifact.sha256
    # SHA256SUMS is what `sha256sum -c` expects, and it verifies the downloaded files
    for asset in published.values():
        (tmp_path / asset.name).write_bytes(asset.data)
    check = subprocess.run(["sha256sum", "-c", SUMS_NAME], cwd=tmp_path, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{zip_name}: OK" in check.stdout and f"{manifest_name}: OK" in check.stdout


def test_checksums_file_is_uploaded_after_the_archive_and_manifest(fake_github: FakeGitHub, repo, artifact):
    publish(fake_github, artifact)
    uploads = [s for s in fake_github.seen if s.method == "POST" and "/api/uploads/" in s.path]
    release = fake_github.release(ORG, REPO, "nordbank-woocommerce-v1.4.0-0a1b2c3d4e5f")
    in_upload_order = [a.name for a in sorted(release.assets.values(), key=lambda a: a.id)]
    assert len(uploads) == 3 and in_upload_order == [artifact.path.name, artifact.manifest_path.name, SUMS_NAME]


def test_publishing_the_same_build_again_changes_nothing(fake_github: FakeGitHub, repo, artifact):
    first = publish(fake_github, artifact)
    before = len(writes(fake_github))

    second = publish(fake_github, artifact)

    assert second.release_state == "reused" and second.release_id == first.release_id
    assert set(states(second).values()) == {"unchanged"}
    assert not second.changed
    assert len(writes(fake_github)) == before, "a repeat publish must not write anything"
    assert len(fake_github.repos[(ORG, REPO)].releases) == 1


def test_a_partial_asset_left_by_an_earlier_failed_upload_is_deleted_and_uploaded_again(
    fake_github: FakeGitHub, repo, artifact
):
    plan = plan_release(artifact, LINEAGE)
    release = fake_github.create_release(ORG, REPO, plan.tag)
    data = artifact.path.read_bytes()
    stale = fake_github.add_asset(release, artifact.path.name, data[: len(data) // 3], state="starter", size=len(data))

    result = publish(fake_github, artifact)

    assert result.release_state == "reused"
    assert states(result)[artifact.path.name] == "replaced"
    assert fake_github.requests_to("DELETE", rf"/releases/assets/{stale.id}$")
    zips = [a for a in release.assets.values() if a.name == artifact.path.name]
    assert len(zips) == 1 and zips[0].state == "uploaded" and zips[0].data == data


def test_an_upload_cut_off_halfway_is_retried_and_its_partial_asset_replaced(fake_github: FakeGitHub, repo, artifact):
    fake_github.inject("POST", r"/assets$", cut_upload=True)
    log: list[str] = []

    result = publish(fake_github, artifact, log=log)

    assert states(result)[artifact.path.name] == "replaced"
    assert result.retries >= 1
    assert any("partial upload" in line for line in log)
    release = fake_github.release(ORG, REPO, result.tag)
    zips = [a for a in release.assets.values() if a.name == artifact.path.name]
    assert len(zips) == 1 and zips[0].state == "uploaded" and zips[0].data == artifact.path.read_bytes()


def test_a_different_file_under_the_same_name_is_replaced_by_the_build(fake_github: FakeGitHub, repo, artifact):
    plan = plan_release(artifact, LINEAGE)
    release = fake_github.create_release(ORG, REPO, plan.tag)
    size = artifact.size
    fake_github.add_asset(release, artifact.path.name, b"x" * size)  # same size, other bytes

    result = publish(fake_github, artifact)

    assert states(result)[artifact.path.name] == "replaced"
    [zip_asset] = [a for a in release.assets.values() if a.name == artifact.path.name]
    assert zip_asset.data == artifact.path.read_bytes()


def test_server_without_asset_digests_is_checked_by_download(tmp_path: Path, artifact):
    fake = FakeGitHub(digests=False).start()
    try:
        fake.add_repo(ORG, REPO, TOKEN)
        publish(fake, artifact)
        assert set(states(publish(fake, artifact)).values()) == {"unchanged"}
        # a same-size file with other bytes is caught by hashing the download
        release = fake.release(ORG, REPO, "nordbank-woocommerce-v1.4.0-0a1b2c3d4e5f")
        [zip_asset] = [a for a in release.assets.values() if a.name == artifact.path.name]
        zip_asset.data = b"y" * len(zip_asset.data)
        assert states(publish(fake, artifact))[artifact.path.name] == "replaced"
        assert fake.requests_to("GET", r"/releases/assets/\d+$")
    finally:
        fake.stop()


def test_server_errors_are_retried_without_duplicating_anything(fake_github: FakeGitHub, repo, artifact):
    fake_github.inject("POST", r"/releases$", status=502)  # refused before taking effect
    fake_github.inject("GET", r"/releases/\d+/assets$", status=500)
    fake_github.inject("POST", r"/api/uploads/.*/assets$", status=503, after=True)  # stored, then 503
    sleeps = Sleeps()

    result = publish(fake_github, artifact, sleep=sleeps)

    assert result.retries == 3
    assert result.release_state == "created"
    assert set(states(result).values()) == {"uploaded"}
    assert len(fake_github.repos[(ORG, REPO)].releases) == 1
    release = fake_github.release(ORG, REPO, result.tag)
    assert sorted(a.name for a in release.assets.values()) == sorted(a.name for a in result.assets)
    assert len(sleeps) == 3 and all(s <= 1 for s in sleeps)


def test_a_release_created_first_by_someone_else_is_fetched_and_reused(fake_github: FakeGitHub, repo, artifact):
    tag = plan_release(artifact, LINEAGE).tag
    race = fake_github.inject(
        "POST", r"/releases$", action=lambda fake: fake.create_release(ORG, REPO, tag, "by the other publisher")
    )
    log: list[str] = []

    result = publish(fake_github, artifact, log=log)

    assert race.hits == 1
    assert [s.status for s in fake_github.requests_to("POST", r"/repos/.*/releases$")] == [422]
    assert result.release_state == "reused"
    assert len(fake_github.repos[(ORG, REPO)].releases) == 1
    assert any("already_exists" in line for line in log)
    assert set(states(result).values()) == {"uploaded"}


def test_an_asset_uploaded_first_by_someone_else_is_verified_and_kept(fake_github: FakeGitHub, repo, artifact):
    tag = plan_release(artifact, LINEAGE).tag
    data = artifact.path.read_bytes()

    def other_publisher(fake: FakeGitHub) -> None:
        fake.add_asset(fake.release(ORG, REPO, tag), artifact.path.name, data)

    fake_github.inject("POST", r"/api/uploads/", action=other_publisher)

    result = publish(fake_github, artifact)

    release = fake_github.release(ORG, REPO, tag)
    assert [a.name for a in release.assets.values()].count(artifact.path.name) == 1
    assert not fake_github.requests_to("DELETE", r".")
    assert result.assets[0].name == artifact.path.name


@pytest.mark.slow
def test_primary_rate_limit_is_waited_out_until_its_reset(fake_github: FakeGitHub, repo, artifact):
    limit = fake_github.rate_limit(1.0, status=403)
    sleeps = Sleeps(real=True)

    result = publish(fake_github, artifact, sleep=sleeps)

    assert limit.rejected == 1, "the client must wait for X-RateLimit-Reset, not retry into the limit"
    assert len(sleeps) == 1 and result.waited_seconds > 0
    assert result.release_state == "created"


@pytest.mark.slow
def test_secondary_rate_limit_honours_retry_after(fake_github: FakeGitHub, repo, artifact):
    limit = fake_github.rate_limit(1.0, status=429)
    sleeps = Sleeps(real=True)

    publish(fake_github, artifact, sleep=sleeps)

    assert limit.rejected == 1
    assert sleeps[0] >= 1


def test_rate_limit_resetting_beyond_the_allowed_wait_fails_at_once_with_the_reset_time(
    fake_github: FakeGitHub, repo, artifact
):
    fake_github.rate_limit(3600, status=403)
    sleeps = Sleeps()

    with pytest.raises(PublishError) as err:
        publish(fake_github, artifact, sleep=sleeps, policy=RetryPolicy(max_wait_seconds=30))

    message = str(err.value)
    assert f"{ORG}/{REPO}" in message and "nordbank-woocommerce-v1.4.0-0a1b2c3d4e5f" in message
    assert "rate limited" in message and "resets at" in message and "run again" in message
    assert sleeps == []


def test_each_organization_is_published_with_its_own_token(fake_github: FakeGitHub, tmp_path: Path):
    fake_github.add_repo("nordbank-psp", "payment-plugins", "ghp_nordbankToken")
    fake_github.add_repo("baltic-credit", "plugins", "ghp_balticToken")
    env = {"NORDBANK_GITHUB_TOKEN": "ghp_nordbankToken", "BALTIC_GITHUB_TOKEN": "ghp_balticToken"}
    nord = build_artifact(tmp_path, "nordbank", "woocommerce", "111111111111")
    baltic = build_artifact(tmp_path, "baltic-credit", "woocommerce", "222222222222")

    publish(fake_github, nord, env=env, credentials=TokenCredentials("NORDBANK_GITHUB_TOKEN"))
    publish(
        fake_github,
        baltic,
        org="baltic-credit",
        repo="plugins",
        env=env,
        credentials=TokenCredentials("BALTIC_GITHUB_TOKEN"),
    )

    by_owner: dict[str, set[str]] = {}
    for seen in fake_github.seen:
        by_owner.setdefault(seen.owner, set()).add(seen.authorization)
    assert by_owner == {"nordbank-psp": {"token ghp_nordbankToken"}, "baltic-credit": {"token ghp_balticToken"}}
    assert not [s for s in fake_github.seen if s.status in (401, 403)]


def test_a_token_of_another_organization_fails_naming_repo_tag_and_env_var(fake_github: FakeGitHub, artifact):
    fake_github.add_repo("nordbank-psp", "payment-plugins", "ghp_nordbankToken")
    fake_github.add_repo("baltic-credit", "plugins", "ghp_balticToken")

    with pytest.raises(PublishError) as err:
        publish(fake_github, artifact, env={"NORDBANK_GITHUB_TOKEN": "ghp_balticToken"})

    message = str(err.value)
    assert "nordbank-psp/payment-plugins" in message and "NORDBANK_GITHUB_TOKEN" in message
    assert "not found" in message and "ghp_balticToken" not in message


def test_rejected_token_fails_with_bad_credentials_and_never_shows_the_token(fake_github: FakeGitHub, repo, artifact):
    with pytest.raises(PublishError) as err:
        publish(fake_github, artifact, env={"NORDBANK_GITHUB_TOKEN": "ghp_revokedToken"})
    message = str(err.value)
    assert "rejected the token in $NORDBANK_GITHUB_TOKEN" in message and "Bad credentials" in message
    assert "ghp_revokedToken" not in message


def test_missing_token_variable_fails_before_any_request(fake_github: FakeGitHub, repo, artifact):
    with pytest.raises(PublishError, match=r"environment variable NORDBANK_GITHUB_TOKEN .* is not set"):
        publish(fake_github, artifact, env={})
    assert fake_github.seen == []


def test_github_app_installation_auth_publishes_with_a_fresh_installation_token(
    fake_github: FakeGitHub, artifact, app_key_pair
):
    private, public = app_key_pair
    fake_github.add_repo("alpenkasse", "plugins")
    fake_github.add_app(4242, public, installation_id=77, owner="alpenkasse")
    creds = AppCredentials(app_id=4242, installation_id=77, private_key_env="ALPENKASSE_GITHUB_APP_PRIVATE_KEY")

    result = publish(
        fake_github,
        artifact,
        org="alpenkasse",
        repo="plugins",
        credentials=creds,
        env={"ALPENKASSE_GITHUB_APP_PRIVATE_KEY": private},
    )

    assert set(states(result).values()) == {"uploaded"}
    assert len(fake_github.requests_to("POST", r"/app/installations/77/access_tokens$")) == 1
    [issued] = fake_github.issued_tokens
    repo_calls = [s for s in fake_github.seen if s.owner == "alpenkasse"]
    assert repo_calls and {s.authorization for s in repo_calls} == {f"token {issued}"}


def test_app_key_that_is_not_a_pem_key_fails_naming_the_variable(fake_github: FakeGitHub, artifact):
    creds = AppCredentials(app_id=4242, installation_id=77, private_key_env="ALPENKASSE_GITHUB_APP_PRIVATE_KEY")
    junk = "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n"
    with pytest.raises(PublishError) as err:
        publish(fake_github, artifact, credentials=creds, env={"ALPENKASSE_GITHUB_APP_PRIVATE_KEY": junk})
    assert "ALPENKASSE_GITHUB_APP_PRIVATE_KEY" in str(err.value) and "not a key" not in str(err.value)


def test_an_artifact_changed_after_its_build_is_never_published(fake_github: FakeGitHub, repo, artifact):
    artifact.path.write_bytes(artifact.path.read_bytes()[:-10])
    with pytest.raises(PublishError, match="refusing to publish"):
        plan_release(artifact, LINEAGE)


def test_no_credential_reaches_log_records_even_at_debug_level(
    fake_github: FakeGitHub, artifact, app_key_pair, caplog: pytest.LogCaptureFixture
):
    private, public = app_key_pair
    fake_github.add_repo(ORG, REPO, TOKEN)
    fake_github.add_repo("alpenkasse", "plugins")
    fake_github.add_app(4242, public, installation_id=77, owner="alpenkasse")
    creds = AppCredentials(app_id=4242, installation_id=77, private_key_env="ALPENKASSE_GITHUB_APP_PRIVATE_KEY")
    fake_github.inject("POST", r"/api/uploads/", status=500)
    lines: list[str] = []

    # PyGithub's "github" logger defaults to INFO with its own stderr handler: open it up fully
    with caplog.at_level(logging.DEBUG), caplog.at_level(logging.DEBUG, logger="github"):
        publish(fake_github, artifact, log=lines)
        publish(
            fake_github,
            artifact,
            org="alpenkasse",
            repo="plugins",
            credentials=creds,
            log=lines,
            env={"ALPENKASSE_GITHUB_APP_PRIVATE_KEY": private},
        )

    text = caplog.text + "\n".join(lines)
    # the capture really holds PyGithub's request log, including the token exchange
    assert "access_tokens" in text and "/releases" in text
    [issued] = fake_github.issued_tokens
    for secret in (TOKEN, issued, private.splitlines()[1]):
        assert secret not in text
    assert "(redacted)" in text  # PyGithub logged the token exchange's body, with the token taken out


def test_an_empty_repository_fails_once_with_what_to_do(fake_github: FakeGitHub, repo, artifact):
    fake_github.inject("POST", r"/releases$", status=422, body={"message": "Repository is empty."})
    sleeps = Sleeps()
    with pytest.raises(PublishError, match=r"Repository is empty.*needs a first commit") as err:
        publish(fake_github, artifact, sleep=sleeps)
    assert f"{ORG}/{REPO}" in str(err.value) and sleeps == []


def test_a_server_that_keeps_failing_is_given_up_on_after_the_allowed_attempts(fake_github: FakeGitHub, repo, artifact):
    fake_github.inject("GET", r"/releases/tags/", status=503, times=100)
    sleeps = Sleeps()
    with pytest.raises(PublishError, match=r"gave up .* after 3 attempts, last: HTTP 503") as err:
        publish(fake_github, artifact, sleep=sleeps, policy=RetryPolicy(attempts=3, backoff_seconds=0.5))
    assert "tag nordbank-woocommerce-v1.4.0-0a1b2c3d4e5f" in str(err.value)
    assert sleeps == [0.5, 1.0]
    assert len(fake_github.requests_to("GET", r"/releases/tags/")) == 3

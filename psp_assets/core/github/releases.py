"""Publishing a built plugin as a GitHub release (PyGithub), safe to repeat and to retry.

One release per plugin build: the tag is `<client>-<platform>-v<plugin_version>-<build>`, so it names
exactly one reproducible artifact and never moves. The release carries three assets, uploaded in this
order: the archive, its manifest (sha256 of every file inside) and `SHA256SUMS` (`sha256sum -c`
format). `SHA256SUMS` goes last, so a consumer that waits for it never sees a half-published release.

Every step first reads what GitHub already has and only then writes, which makes each step safe to
run again: a release that exists is reused (also when a concurrent publisher wins the race and GitHub
answers 422 already_exists), an asset with the same size and sha256 is left alone, and an asset that
is partial (an upload cut off: state `starter`) or different is deleted and uploaded again. Because
the steps are idempotent, retrying them on 5xx answers, dropped connections and rate limits (waiting
for Retry-After or X-RateLimit-Reset, never longer than the policy allows) cannot duplicate anything.

Credentials never travel in configs: a client config names the environment variable holding a token
(`token_env`) or a GitHub App's private key (`app.private_key_env`), and the caller passes a lookup
that reads it. Values are used for the Authorization header only: they are not logged, not put in
errors or results, and PyGithub's own debug log is redacted while a publish runs.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, TypeVar

import github
from github import Github, GithubException

from psp_assets.core.config.model import GitHubSettings
from psp_assets.core.errors import PublishError
from psp_assets.core.github.session import (
    Credentials,
    GitHubSteps,
    ReleaseTarget,
    RetryNow,
    RetryPolicy,
    already_exists,
    github_session,
    target_for,
)
from psp_assets.core.package import Artifact

DEFAULT_BASE_URL = "https://api.github.com"
SUMS_NAME = "SHA256SUMS"
_PYGITHUB_LOGGERS = ("github", "github.Requester", "github.GithubRetry")

SecretLookup = Callable[[str], str | None]
T = TypeVar("T")


# --- what to publish ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AssetFile:
    """One file of the release, held in memory (plugin archives are small)."""

    name: str
    data: bytes = field(repr=False)
    content_type: str

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class ReleasePlan:
    tag: str
    name: str
    body: str
    assets: tuple[AssetFile, ...]


def release_tag(client: str, platform: str, plugin_version: str, build: str) -> str:
    tag = f"{client}-{platform}-v{plugin_version}-{build}"
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}", tag):
        raise PublishError(f"{client}|{platform}: no valid git tag from version {plugin_version!r}, build {build!r}")
    return tag


def plan_release(artifact: Artifact, lineage: Mapping[str, Any] | None = None) -> ReleasePlan:
    """The release for one built artifact: tag, name, body and the three assets.

    The artifact's sha256 is checked against its file and manifest first: a changed or truncated
    archive is never published. `lineage` adds template_version/template_hash/config_hash to the body.
    """
    lineage = dict(lineage or {})
    try:
        doc = json.loads(artifact.manifest_path.read_text())
        data = artifact.path.read_bytes()
        manifest_bytes = artifact.manifest_path.read_bytes()
    except (OSError, ValueError) as exc:
        raise PublishError(f"{artifact.path}: artifact or manifest unreadable ({exc}); rebuild it") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != artifact.sha256 or doc.get("sha256") != artifact.sha256:
        raise PublishError(
            f"{artifact.path}: sha256 {digest} does not match the build ({artifact.sha256}) or its manifest "
            f"({doc.get('sha256')}); refusing to publish it, re-materialize built_artifact"
        )
    client, platform = doc["client"], doc["platform"]
    version, build = doc["plugin_version"], doc["build"]
    zip_asset = AssetFile(artifact.path.name, data, "application/zip")
    manifest_asset = AssetFile(artifact.manifest_path.name, manifest_bytes, "application/json")
    sums = "".join(f"{a.sha256}  {a.name}\n" for a in sorted((zip_asset, manifest_asset), key=lambda a: a.name))
    sums_asset = AssetFile(SUMS_NAME, sums.encode(), "text/plain")
    rows = [
        ("client", client),
        ("platform", platform),
        ("plugin version", version),
        ("build", build),
        ("release id", artifact.release_id),
        ("archive", f"{zip_asset.name} ({zip_asset.size} bytes)"),
        ("sha256", artifact.sha256),
        ("files in archive", str(len(artifact.manifest))),
    ]
    keys = ("template_version", "template_hash", "config_hash")
    rows += [(k.replace("_", " "), str(lineage[k])) for k in keys if k in lineage]
    body = "\n".join(
        [
            f"PSP payment plugin for **{client}** on **{platform}**, built by the PSP plugin platform.",
            "",
            "| | |",
            "|---|---|",
            *(f"| {k} | `{v}` |" for k, v in rows),
            "",
            f"Assets: the archive, `{manifest_asset.name}` (sha256 of every file inside) and `{SUMS_NAME}`,",
            f"uploaded last. Verify a download with `sha256sum -c {SUMS_NAME}`.",
            "",
        ]
    )
    return ReleasePlan(
        tag=release_tag(client, platform, version, build),
        name=f"{client} {platform} {version} (build {build})",
        body=body,
        assets=(zip_asset, manifest_asset, sums_asset),
    )


# --- what happened ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedAsset:
    name: str
    state: str  # uploaded | unchanged | replaced
    size: int
    sha256: str
    download_url: str


@dataclass(frozen=True)
class PublishResult:
    repository: str
    tag: str
    release_id: int
    release_url: str
    release_state: str  # created | reused
    assets: tuple[PublishedAsset, ...]
    retries: int
    waited_seconds: float

    @property
    def changed(self) -> bool:
        return self.release_state == "created" or any(a.state != "unchanged" for a in self.assets)

    def asset_rows(self) -> list[dict[str, Any]]:
        return [
            {"name": a.name, "state": a.state, "size": a.size, "sha256": a.sha256, "url": a.download_url}
            for a in self.assets
        ]


class _Publisher(GitHubSteps):
    def __init__(
        self,
        plan: ReleasePlan,
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

    @property
    def where(self) -> str:
        """Every message starts with org/repo, server and tag, so an operator knows what to look at."""
        return f"{self.target.full_name} at {self.target.host}, tag {self.plan.tag}"

    # --- the idempotent steps ---

    def open_repository(self) -> Any:
        return self.step(f"open {self.target.full_name}", lambda: self.gh.get_repo(self.target.full_name))

    def ensure_release(self, repo: Any) -> tuple[Any, str]:
        tried_create = False  # a create answered with 5xx may still have taken effect: then it is ours

        def attempt() -> tuple[Any, str]:
            nonlocal tried_create
            try:
                return repo.get_release(self.plan.tag), "created" if tried_create else "reused"
            except github.UnknownObjectException:
                pass
            tried_create = True
            try:
                release = repo.create_git_release(
                    self.plan.tag, name=self.plan.name, message=self.plan.body, make_latest="legacy"
                )
                return release, "created"
            except GithubException as exc:
                if not already_exists(exc):
                    raise
            # someone else created it between our look and our create: fetch theirs and reuse it
            self.log(f"release {self.plan.tag} was created concurrently (422 already_exists); reusing it")
            tried_create = False
            return repo.get_release(self.plan.tag), "reused"

        return self.step(f"create or find release {self.plan.tag}", attempt)

    def _remote_sha256(self, remote: Any) -> str | None:
        digest = remote.digest  # GitHub reports "sha256:<hex>"; older Enterprise servers report nothing
        if digest:
            algo, _, value = str(digest).partition(":")
            return value.lower() if algo.lower() == "sha256" else None
        status, _headers, chunks = remote.download_asset(chunk_size=1 << 16)
        if status >= 400:
            raise GithubException(status, {"message": f"downloading {remote.name} failed"}, _headers)
        h = hashlib.sha256()
        for chunk in chunks:
            h.update(chunk)
        return h.hexdigest()

    def _mismatch(self, remote: Any, asset: AssetFile) -> str | None:
        if remote.state != "uploaded":
            return f"a partial upload (state {remote.state}, {remote.size} of {asset.size} bytes)"
        if remote.size != asset.size:
            return f"a different file ({remote.size} bytes, expected {asset.size})"
        remote_sha = self._remote_sha256(remote)
        if remote_sha != asset.sha256:
            return f"a different file (sha256 {remote_sha}, expected {asset.sha256})"
        return None

    def ensure_asset(self, release: Any, asset: AssetFile) -> PublishedAsset:
        replaced = tried_upload = False

        def state() -> str:
            return "replaced" if replaced else "uploaded" if tried_upload else "unchanged"

        def attempt() -> PublishedAsset:
            nonlocal replaced, tried_upload
            for remote in release.get_assets():
                if remote.name != asset.name:
                    continue
                problem = self._mismatch(remote, asset)
                if problem is None:
                    return PublishedAsset(asset.name, state(), asset.size, asset.sha256, remote.browser_download_url)
                self.log(f"{asset.name}: GitHub has {problem}; deleting it and uploading again")
                with suppress(github.UnknownObjectException):  # already gone is fine
                    remote.delete_asset()
                replaced = True
            tried_upload = True
            try:
                uploaded = release.upload_asset_from_memory(
                    io.BytesIO(asset.data), asset.size, asset.name, content_type=asset.content_type
                )
            except GithubException as exc:
                if already_exists(exc):
                    raise RetryNow(f"{asset.name} appeared while uploading (422 already_exists)") from None
                raise
            if uploaded.state != "uploaded" or uploaded.size != asset.size:
                replaced = True  # whatever is left there gets deleted on the next attempt
                raise RetryNow(f"{asset.name} ended as state {uploaded.state}, {uploaded.size} of {asset.size} bytes")
            self.log(f"{asset.name}: {state()} ({asset.size} bytes, sha256 {asset.sha256[:12]})")
            return PublishedAsset(asset.name, state(), asset.size, asset.sha256, uploaded.browser_download_url)

        return self.step(f"upload {asset.name}", attempt)

    def run(self) -> PublishResult:
        repo = self.open_repository()
        release, release_state = self.ensure_release(repo)
        self.log(f"release {self.plan.tag}: {release_state} ({release.html_url})")
        assets = tuple(self.ensure_asset(release, a) for a in self.plan.assets)
        return PublishResult(
            repository=self.target.full_name,
            tag=self.plan.tag,
            release_id=release.id,
            release_url=release.html_url,
            release_state=release_state,
            assets=assets,
            retries=self.retries,
            waited_seconds=round(self.waited, 3),
        )


def publish_release(
    plan: ReleasePlan,
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
) -> PublishResult:
    """Create or reuse the release `plan.tag` in `target` and make its assets match `plan`.

    `secrets` reads an environment variable by name (the Dagster resource passes dg.EnvVar's reader).
    Raises PublishError naming org/repo, tag and what to do; never includes a credential value.
    """
    policy = policy or RetryPolicy()
    with github_session(
        target,
        credentials,
        secrets,
        timeout_seconds=timeout_seconds,
        seconds_between_requests=seconds_between_requests,
        seconds_between_writes=seconds_between_writes,
    ) as gh:
        return _Publisher(plan, target, credentials, gh, policy, log or (lambda _m: None), sleep, clock).run()


def publish_artifact(
    artifact: Artifact,
    settings: GitHubSettings,
    platform: str,
    lineage: Mapping[str, Any] | None = None,
    **options: Any,
) -> PublishResult:
    """Plan and publish one artifact where the client's `github:` section says (see publish_release)."""
    target, credentials = target_for(settings, platform)
    return publish_release(plan_release(artifact, lineage), target, credentials, **options)

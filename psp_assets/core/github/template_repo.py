"""Templates kept in a GitHub repository: which commit last changed a platform's template, and a local
checkout of the template at that commit (PyGithub; github.com or Enterprise through `base_url`).

A platform's template is `<path>/<platform>/` in the repository plus the shared files every platform
pulls in (`<path>/_shared/`), so a revision names the last commit that changed each of the two. Both
are looked up from one pinned branch head, and the checkout is taken at that head: there the platform
and the shared files are exactly as those two commits left them, even if the branch moves on meanwhile.

A checkout is `<checkouts>/<head sha>/` laid out like a local templates directory (`<platform>/`,
`_shared/`), written to a temporary folder and renamed into place, every blob checked against its git
object id. It never changes once written, so lineage that names it stays true.

The token is passed in by the caller (read through dg.EnvVar); it is used for the Authorization header
only, never logged or put in errors.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from github import Auth, Github, GithubException
from urllib3.util.retry import Retry

from psp_assets.core.errors import TemplateError
from psp_assets.core.github.session import DEFAULT_BASE_URL
from psp_assets.core.templates.spec import SHARED_DIR


@dataclass(frozen=True)
class TemplateRepo:
    """Where the templates live: `repository` (owner/name), the branch to follow and the folder holding
    one subfolder per platform."""

    repository: str
    branch: str = "main"
    path: str = "templates"
    base_url: str = DEFAULT_BASE_URL

    def folder(self, name: str) -> str:
        return str(PurePosixPath(self.path.strip("/")) / name) if self.path.strip("/") else name

    def describe(self) -> str:
        return f"{self.repository}@{self.branch} ({self.base_url})"


@dataclass(frozen=True)
class CommitRef:
    sha: str
    url: str
    date: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"sha": self.sha, "url": self.url, "date": self.date, "message": self.message}


@dataclass(frozen=True)
class TemplateRevision:
    """The state of one platform's template on the followed branch."""

    platform: str
    commit: CommitRef  # the last commit that changed <path>/<platform>
    shared: CommitRef | None  # the last commit that changed <path>/_shared (None: the repo has none)
    head: str  # the branch head both were looked up from; the checkout is taken there

    @property
    def key(self) -> str:
        """Changes exactly when the platform's template or the shared files change."""
        return f"{self.commit.sha}:{self.shared.sha if self.shared else '-'}"


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


class TemplateRepoClient:
    """Reads template revisions and checkouts from one repository. GETs only, retried on 5xx and dropped
    connections; anything else fails with a message naming the repository, branch and path."""

    def __init__(
        self,
        repo: TemplateRepo,
        token: str | None,
        timeout: int = 30,
        seconds_between_requests: float = 0.0,
        gh: Github | None = None,
    ) -> None:
        self.repo = repo
        retry = Retry(total=3, backoff_factor=0.5, status_forcelist=(500, 502, 503, 504), allowed_methods=["GET"])
        self.gh = gh or Github(
            base_url=repo.base_url.rstrip("/"),
            auth=Auth.Token(token) if token else None,
            timeout=timeout,
            retry=retry,
            per_page=1,  # only the newest commit touching a path is ever needed
            # reads made one after the other need no pause (GitHub asks for pauses between concurrent or
            # write requests); a deployment that shares its rate limit can set one
            seconds_between_requests=seconds_between_requests or None,
            user_agent="psp-plugin-platform",
        )
        self._repo: Any = None

    def _fail(self, what: str, exc: GithubException) -> TemplateError:
        data = exc.data if isinstance(exc.data, dict) else {}
        message = str(data.get("message") or exc.message or f"HTTP {exc.status}")
        hint = {
            401: "the token in the template source's token variable was rejected; replace it",
            403: "the token may not read this repository (it needs contents: read), or the rate limit is spent",
            404: "not found: check the repository, branch and path, and that the token can see the repository",
        }.get(exc.status, "GitHub answered with an error; the next sensor tick tries again")
        return TemplateError(f"template repository {self.repo.describe()}: {what}: HTTP {exc.status} {message}; {hint}")

    def _get(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except GithubException as exc:
            raise self._fail(what, exc) from None

    @property
    def gh_repo(self) -> Any:
        if self._repo is None:
            self._repo = self._get("open repository", lambda: self.gh.get_repo(self.repo.repository))
        return self._repo

    def latest_commit(self, path: str, ref: str) -> CommitRef | None:
        """The newest commit reachable from `ref` that changed `path` (None when none ever did)."""

        def first() -> Any:
            commits = self.gh_repo.get_commits(sha=ref, path=path) if path else self.gh_repo.get_commits(sha=ref)
            return next(iter(commits), None)

        commit = self._get(f"list commits touching {path or 'the branch'}", first)
        if commit is None:
            return None
        when = commit.commit.committer.date if commit.commit.committer else None
        return CommitRef(
            sha=commit.sha,
            url=commit.html_url,
            date=when.isoformat() if when else "",
            message=(commit.commit.message or "").splitlines()[0][:200] if commit.commit.message else "",
        )

    def revisions(self, platforms: Iterable[str]) -> dict[str, TemplateRevision]:
        """For each platform with a template history on the branch: the commits that last changed it
        and the shared files, looked up from one pinned head."""
        head = self.latest_commit("", self.repo.branch)
        if head is None:
            raise TemplateError(f"template repository {self.repo.describe()}: branch {self.repo.branch} has no commits")
        shared = self.latest_commit(self.repo.folder(SHARED_DIR), head.sha)
        found = {}
        for platform in platforms:
            commit = self.latest_commit(self.repo.folder(platform), head.sha)
            if commit is not None:
                found[platform] = TemplateRevision(platform, commit, shared, head.sha)
        return found

    def checkout(self, revision: TemplateRevision, checkouts_dir: Path) -> Path:
        """The templates directory for `revision`: `<checkouts_dir>/<head>/` holding the platform's folder
        and `_shared/`, fetched once (git trees + blobs) and reused after. Returns that directory; a
        platform whose folder is gone at the head gets no folder there."""
        root = checkouts_dir / revision.head
        listing = self._get(
            f"list {self.repo.folder('')} at {revision.head[:12]}",
            lambda: self.gh_repo.get_contents(self.repo.path.strip("/") or "", ref=revision.head),
        )
        folders = {item.name: item.sha for item in (listing if isinstance(listing, list) else []) if item.type == "dir"}
        for name in (revision.platform, SHARED_DIR):
            if name in folders and not (root / name).is_dir():
                self._fetch_folder(name, folders[name], root)
        return root

    def _fetch_folder(self, name: str, tree_sha: str, root: Path) -> None:
        where = f"{self.repo.folder(name)} (tree {tree_sha[:12]})"
        tree = self._get(f"read {where}", lambda: self.gh_repo.get_git_tree(tree_sha, recursive=True))
        if tree.raw_data.get("truncated"):
            raise TemplateError(
                f"template repository {self.repo.describe()}: {where} has more entries than GitHub returns in one "
                "tree; split the folder"
            )
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        try:
            for entry in tree.tree:
                if entry.type != "blob":
                    continue
                rel = PurePosixPath(entry.path)
                if rel.is_absolute() or ".." in rel.parts:
                    raise TemplateError(f"template repository {self.repo.describe()}: {where}: unsafe path {rel}")
                blob = self._get(
                    f"read {self.repo.folder(name)}/{rel}", lambda e=entry: self.gh_repo.get_git_blob(e.sha)
                )
                data = _decode(blob.content, blob.encoding)
                if git_blob_id(data) != entry.sha:
                    raise TemplateError(
                        f"template repository {self.repo.describe()}: {self.repo.folder(name)}/{rel}: content does "
                        f"not match its git object id {entry.sha[:12]}; nothing was checked out, the next tick retries"
                    )
                target = tmp / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                if entry.mode == "100755":
                    target.chmod(0o755)
            try:
                os.replace(tmp, root / name)  # atomic: a folder is either complete or absent
            except OSError:
                if not (root / name).is_dir():  # else another tick wrote the same content first
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _decode(content: str, encoding: str) -> bytes:
    if encoding == "base64":
        return base64.b64decode(content)
    return content.encode()

"""A local stand-in for GitHub's REST API, because GitHub cannot be reached from this machine or CI.

It implements the documented subset PyGithub uses to publish a release, with GitHub Enterprise's URL
layout (API under /api/v3, uploads under /api/uploads), so the code under test points its `base_url`
at it exactly as it would at an Enterprise server:

- GET    /repos/{owner}/{repo}                                 (docs: repos#get-a-repository)
- GET    /repos/{owner}/{repo}/releases/tags/{tag}              (releases#get-a-release-by-tag-name)
- POST   /repos/{owner}/{repo}/releases                         (releases#create-a-release; 422 already_exists)
- GET    /repos/{owner}/{repo}/releases/{id}                    (releases#get-a-release)
- GET    /repos/{owner}/{repo}/releases/{id}/assets             (assets#list-release-assets)
- POST   {upload_url}?name=&label=                              (assets#upload-a-release-asset; 422 already_exists)
- GET    /repos/{owner}/{repo}/releases/assets/{id}             (assets#get-a-release-asset; octet-stream download)
- DELETE /repos/{owner}/{repo}/releases/assets/{id}             (assets#delete-a-release-asset)
- POST   /app/installations/{id}/access_tokens                  (apps#create-an-installation-access-token; RS256 JWT)

Repository contents, read the way a template source reads them (tests seed history with `commit_files`):

- GET    /repos/{owner}/{repo}/commits?sha=&path=&per_page=&page=  (commits#list-commits; newest first, only
                                                                 commits that changed `path`, Link header paging)
- GET    /repos/{owner}/{repo}/contents/{path}?ref=              (repos/contents#get-repository-content; a
                                                                 directory lists its entries, a file is base64)
- GET    /repos/{owner}/{repo}/git/trees/{sha}?recursive=1       (git/trees#get-a-tree)
- GET    /repos/{owner}/{repo}/git/blobs/{sha}                   (git/blobs#get-a-blob; base64)

Objects are stored as git stores them: blob, tree and commit ids are real git object ids (sha1 of the
object with its header), so a client can verify every blob it downloads.

Writing git data (blobs, trees, commits, branch refs) and pull requests, the way a client repository
receives a plugin's source, lives in fake_github_git.py (its docstring lists the documented endpoints).

Authorization is checked per organization (`token X` or `Bearer X`): an unknown token gets 401 "Bad
credentials", a valid token of another organization gets 404, as GitHub hides private repositories.
Faults are injected per request (method + path regex): any status once or N times (before or after the
request takes effect), rate limits with X-RateLimit-Reset or Retry-After that stay in force for a short
real time, a concurrent creator winning the race (422 already_exists), and an upload cut off halfway
that leaves a partial asset in state "starter", as GitHub does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import socket
import textwrap
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jwt

from tests.support.fake_github_git import GitWriteRoutes


@dataclass
class Asset:
    id: int
    name: str
    label: str
    content_type: str
    data: bytes
    state: str  # "uploaded" or "starter" (an upload that never finished)
    expected_size: int


@dataclass
class Release:
    id: int
    tag: str
    name: str
    body: str
    assets: dict[int, Asset] = field(default_factory=dict)


@dataclass
class GitCommit:
    sha: str
    tree: str
    parents: list[str]
    message: str
    date: datetime
    files: dict[str, str]  # path -> blob sha: the whole snapshot, so "did this commit change path" is a lookup


@dataclass
class Repo:
    owner: str
    name: str
    releases: dict[int, Release] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    trees: dict[str, list[tuple[str, str, str, str]]] = field(default_factory=dict)  # sha -> (mode, type, name, sha)
    commits: dict[str, GitCommit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)  # branch -> head commit sha


def git_object_id(kind: str, data: bytes) -> str:
    """The id git gives an object: sha1 over '<kind> <size>\\0' and the data."""
    return hashlib.sha1(f"{kind} {len(data)}\0".encode() + data).hexdigest()


@dataclass
class Fault:
    method: str
    path: re.Pattern[str]
    times: int = 1
    status: int = 500
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    after: bool = False  # let the request take effect, then answer with the fault
    action: Callable[[FakeGitHub], None] | None = None  # runs before the request (e.g. a concurrent creator)
    cut_upload: bool = False  # read half the body, leave a "starter" asset, drop the connection
    hits: int = 0


@dataclass
class RateLimit:
    until: float
    status: int  # 403 (primary, X-RateLimit-Reset) or 429 (secondary, Retry-After)
    rejected: int = 0


@dataclass
class Seen:
    method: str
    path: str
    owner: str | None
    authorization: str
    status: int = 0


class FakeGitHub(GitWriteRoutes):
    def __init__(self, *, digests: bool = True) -> None:
        self.digests = digests  # github.com reports asset digests; older Enterprise servers do not
        self.lock = threading.RLock()
        self.repos: dict[tuple[str, str], Repo] = {}
        self.tokens: dict[str, str] = {}  # token -> owner it may act for
        self.apps: dict[int, str] = {}  # app id -> public key PEM
        self.installations: dict[int, tuple[int, str]] = {}  # installation id -> (app id, owner)
        self.faults: list[Fault] = []
        self.rate_limits: list[RateLimit] = []
        self.seen: list[Seen] = []
        self.issued_tokens: list[str] = []
        self._ids = iter(range(1000, 10**9))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-github", daemon=True)

    # --- lifecycle and setup -----------------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/api/v3"

    def start(self) -> FakeGitHub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    def add_repo(self, owner: str, name: str, token: str | None = None) -> Repo:
        with self.lock:
            repo = self.repos.setdefault((owner, name), Repo(owner, name))
            if token:
                self.tokens[token] = owner
            return repo

    def add_app(self, app_id: int, public_key_pem: str, installation_id: int, owner: str) -> None:
        with self.lock:
            self.apps[app_id] = public_key_pem
            self.installations[installation_id] = (app_id, owner)

    def inject(self, method: str, path_regex: str, **kwargs: Any) -> Fault:
        fault = Fault(method, re.compile(path_regex), **kwargs)
        with self.lock:
            self.faults.append(fault)
        return fault

    def rate_limit(self, seconds: float, status: int = 403) -> RateLimit:
        """Every request is rejected for `seconds` of real time (primary: 403 + reset; secondary: 429)."""
        limit = RateLimit(until=time.time() + seconds, status=status)
        if status == 403:
            limit.until = math.ceil(limit.until)  # X-RateLimit-Reset has one-second resolution
        with self.lock:
            self.rate_limits.append(limit)
        return limit

    # --- state helpers (tests read and seed through these) -------------------------------------

    def next_id(self) -> int:
        return next(self._ids)

    def create_release(self, owner: str, repo: str, tag: str, name: str = "", body: str = "") -> Release:
        with self.lock:
            rel = Release(self.next_id(), tag, name or tag, body)
            self.repos[(owner, repo)].releases[rel.id] = rel
            return rel

    def release(self, owner: str, repo: str, tag: str) -> Release | None:
        with self.lock:
            return next((r for r in self.repos[(owner, repo)].releases.values() if r.tag == tag), None)

    def add_asset(self, release: Release, name: str, data: bytes, *, state: str = "uploaded", size: int = 0) -> Asset:
        with self.lock:
            asset = Asset(self.next_id(), name, "", "application/octet-stream", data, state, size or len(data))
            release.assets[asset.id] = asset
            return asset

    def requests_to(self, method: str, pattern: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.method == method and re.search(pattern, s.path)]

    def commit_files(
        self, owner: str, repo: str, changes: dict[str, bytes | None], message: str = "", branch: str = "main"
    ) -> GitCommit:
        """A new commit on `branch` (created when missing): the parent's files with `changes` applied
        (None deletes a path). Returns the commit; its sha is a real git commit id."""
        with self.lock:
            r = self.repos[(owner, repo)]
            parent = r.commits.get(r.branches.get(branch, ""))
            files = dict(parent.files) if parent else {}
            for path, data in changes.items():
                if data is None:
                    files.pop(path, None)
                else:
                    sha = git_object_id("blob", data)
                    r.blobs[sha] = data
                    files[path] = sha
            tree = self._write_tree(r, files)
            # one second apart at least, as a real history would be; dates order nothing here, parents do
            date = datetime.now(UTC).replace(microsecond=0)
            if parent and date <= parent.date:
                date = parent.date + timedelta(seconds=1)
            stamp = f"PSP Test <test@psp.example> {int(date.timestamp())} +0000"
            text = f"tree {tree}\n" + (f"parent {parent.sha}\n" if parent else "")
            text += f"author {stamp}\ncommitter {stamp}\n\n{message or 'update'}\n"
            sha = git_object_id("commit", text.encode())
            commit = GitCommit(sha, tree, [parent.sha] if parent else [], message or "update", date, files)
            r.commits[sha] = commit
            r.branches[branch] = sha
            return commit

    @staticmethod
    def _write_tree(r: Repo, files: dict[str, str]) -> str:
        """Store the trees for a flat path -> blob map; returns the root tree's id (git's tree format)."""
        blobs: dict[str, str] = {}
        subdirs: dict[str, dict[str, str]] = {}
        for path, sha in files.items():
            head, _, rest = path.partition("/")
            if rest:
                subdirs.setdefault(head, {})[rest] = sha
            else:
                blobs[head] = sha
        entries = [("100644", "blob", name, sha) for name, sha in blobs.items()]
        entries += [("40000", "tree", name, FakeGitHub._write_tree(r, sub)) for name, sub in subdirs.items()]
        # git orders entries by name, a directory's name compared as if it ended in "/"
        entries.sort(key=lambda e: e[2] + ("/" if e[1] == "tree" else ""))
        data = b"".join(f"{mode} {name}\0".encode() + bytes.fromhex(sha) for mode, _, name, sha in entries)
        sha = git_object_id("tree", data)
        r.trees[sha] = entries
        return sha

    # --- JSON shapes (as documented) -----------------------------------------------------------

    def _repo_json(self, repo: Repo) -> dict[str, Any]:
        return {
            "id": abs(hash((repo.owner, repo.name))) % 10**8,
            "node_id": "R_fake",
            "name": repo.name,
            "full_name": f"{repo.owner}/{repo.name}",
            "owner": {"login": repo.owner, "id": 1, "type": "Organization"},
            "private": True,
            "html_url": f"{self.origin}/{repo.owner}/{repo.name}",
            "url": f"{self.base_url}/repos/{repo.owner}/{repo.name}",
            "default_branch": "main",
        }

    def _asset_json(self, repo: Repo, rel: Release, asset: Asset) -> dict[str, Any]:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        complete = asset.state == "uploaded"
        return {
            "url": f"{self.base_url}/repos/{repo.owner}/{repo.name}/releases/assets/{asset.id}",
            "browser_download_url": f"{self.origin}/{repo.owner}/{repo.name}/releases/download/{rel.tag}/{asset.name}",
            "id": asset.id,
            "node_id": f"RA_{asset.id}",
            "name": asset.name,
            "label": asset.label,
            "state": asset.state,
            "content_type": asset.content_type,
            "size": len(asset.data),
            "digest": f"sha256:{hashlib.sha256(asset.data).hexdigest()}" if complete and self.digests else None,
            "download_count": 0,
            "created_at": now,
            "updated_at": now,
            "uploader": None,
        }

    def _release_json(self, repo: Repo, rel: Release) -> dict[str, Any]:
        api = f"{self.base_url}/repos/{repo.owner}/{repo.name}/releases/{rel.id}"
        return {
            "url": api,
            "html_url": f"{self.origin}/{repo.owner}/{repo.name}/releases/tag/{rel.tag}",
            "assets_url": f"{api}/assets",
            "upload_url": f"{self.origin}/api/uploads/repos/{repo.owner}/{repo.name}/releases/{rel.id}/assets"
            "{?name,label}",
            "id": rel.id,
            "node_id": f"RE_{rel.id}",
            "tag_name": rel.tag,
            "target_commitish": "main",
            "name": rel.name,
            "body": rel.body,
            "draft": False,
            "prerelease": False,
            "created_at": "2025-01-01T00:00:00Z",
            "published_at": "2025-01-01T00:00:00Z",
            "assets": [self._asset_json(repo, rel, a) for a in rel.assets.values()],
        }

    # --- request handling ----------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out as two writes: without this, Nagle and delayed ACKs add ~40 ms a request
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                fake._serve(self)

            do_POST = do_DELETE = do_PATCH = do_GET

        return Handler

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: Any = None, headers: dict | None = None) -> None:
        raw = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        h.send_response(status)
        ctype = "application/octet-stream" if isinstance(body, bytes) else "application/json; charset=utf-8"
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(raw)))
        h.send_header("X-RateLimit-Limit", "5000")
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(raw)

    def _body(self, h: BaseHTTPRequestHandler) -> bytes:
        length = int(h.headers.get("Content-Length") or 0)
        return h.rfile.read(length) if length else b""

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        path, query = unquote(url.path), parse_qs(url.query)
        owner = m.group(1) if (m := re.match(r"^/api/(?:v3|uploads)/repos/([^/]+)/", path)) else None
        seen = Seen(h.command, path, owner, h.headers.get("Authorization", ""))
        with self.lock:
            self.seen.append(seen)

        def send(status: int, body: Any = None, headers: dict | None = None) -> None:
            seen.status = status
            self._send(h, status, body, headers)

        # rate limits apply to every request while in force, like GitHub's
        with self.lock:
            limit = next((r for r in self.rate_limits if time.time() < r.until), None)
            if limit:
                limit.rejected += 1
        if limit:
            self._body(h)
            if limit.status == 429:
                msg = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
                return send(429, {"message": msg}, {"Retry-After": str(max(1, math.ceil(limit.until - time.time())))})
            return send(
                403,
                {
                    "message": "API rate limit exceeded for installation.",
                    "documentation_url": "https://docs.github.com",
                },
                {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(limit.until))},
            )

        with self.lock:
            fault = next(
                (f for f in self.faults if f.hits < f.times and f.method == h.command and f.path.search(path)), None
            )
            if fault:
                fault.hits += 1
        if fault and fault.action:
            fault.action(self)
        if fault and fault.cut_upload:
            return self._cut_upload(h, path, query)
        if fault and not fault.after and not fault.action:
            self._body(h)
            return send(fault.status, fault.body or {"message": "Server Error"}, fault.headers)

        status, body, headers = self._route(h, path, query, owner)
        if fault and fault.after:
            return send(fault.status, fault.body or {"message": "Server Error"}, fault.headers)
        send(status, body, headers)

    def _authorized(self, h: BaseHTTPRequestHandler, owner: str) -> int:
        scheme, _, token = h.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("token", "bearer") or token not in self.tokens:
            return 401
        return 200 if self.tokens[token] == owner else 404

    def _route(
        self, h: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]], owner: str | None
    ) -> tuple[int, Any, dict | None]:
        method = h.command
        if m := re.fullmatch(r"/api/v3/app/installations/(\d+)/access_tokens", path):
            self._body(h)
            return self._access_token(h, int(m.group(1)))
        if owner is None:
            self._body(h)
            return 404, {"message": "Not Found"}, None
        auth = self._authorized(h, owner)
        if auth != 200:
            self._body(h)
            message = "Bad credentials" if auth == 401 else "Not Found"
            return auth, {"message": message, "documentation_url": "https://docs.github.com/rest"}, None
        if method == "POST" and (m := re.fullmatch(r"/api/uploads/repos/([^/]+)/([^/]+)/releases/(\d+)/assets", path)):
            return self._upload(h, m.group(1), m.group(2), int(m.group(3)), query)
        body = self._body(h)
        m = re.fullmatch(r"/api/v3/repos/([^/]+)/([^/]+)(/.*)?", path)
        if not m or (m.group(1), m.group(2)) not in self.repos:
            return 404, {"message": "Not Found"}, None
        repo, rest = self.repos[(m.group(1), m.group(2))], m.group(3) or ""
        with self.lock:
            if method == "GET" and rest == "":
                return 200, self._repo_json(repo), None
            if method == "GET" and (t := re.fullmatch(r"/releases/tags/(.+)", rest)):
                rel = next((r for r in repo.releases.values() if r.tag == t.group(1)), None)
                return (200, self._release_json(repo, rel), None) if rel else (404, {"message": "Not Found"}, None)
            if method == "POST" and rest == "/releases":
                data = json.loads(body or b"{}")
                tag = data.get("tag_name", "")
                if any(r.tag == tag for r in repo.releases.values()):
                    errors = [{"resource": "Release", "code": "already_exists", "field": "tag_name"}]
                    return 422, {"message": "Validation Failed", "errors": errors}, None
                rel = Release(self.next_id(), tag, data.get("name") or tag, data.get("body") or "")
                repo.releases[rel.id] = rel
                return 201, self._release_json(repo, rel), None
            if method == "GET" and (r := re.fullmatch(r"/releases/(\d+)(/assets)?", rest)):
                rel = repo.releases.get(int(r.group(1)))
                if rel is None:
                    return 404, {"message": "Not Found"}, None
                if r.group(2):
                    return 200, [self._asset_json(repo, rel, a) for a in rel.assets.values()], None
                return 200, self._release_json(repo, rel), None
            if a := re.fullmatch(r"/releases/assets/(\d+)", rest):
                found = next(
                    (
                        (rel, rel.assets[int(a.group(1))])
                        for rel in repo.releases.values()
                        if int(a.group(1)) in rel.assets
                    ),
                    None,
                )
                if found is None:
                    return 404, {"message": "Not Found"}, None
                rel, asset = found
                if method == "DELETE":
                    del rel.assets[asset.id]
                    return 204, None, None
                if method == "GET" and "octet-stream" in h.headers.get("Accept", ""):
                    return 200, asset.data, None
                if method == "GET":
                    return 200, self._asset_json(repo, rel, asset), None
            if (answer := self._git_route(repo, method, rest, query, body)) is not None:
                return answer
            if method == "GET" and (answer := self._read_route(repo, rest, query)) is not None:
                return answer
        return 404, {"message": "Not Found"}, None

    # --- repository contents (read side) ---------------------------------------------------------

    def _resolve(self, repo: Repo, ref: str) -> GitCommit | None:
        """A branch name or a commit sha (full, or a prefix of at least 7 characters, as GitHub accepts)."""
        if ref in repo.branches:
            return repo.commits[repo.branches[ref]]
        if len(ref) >= 7:
            return next((c for sha, c in repo.commits.items() if sha.startswith(ref)), None)
        return None

    @staticmethod
    def _under(files: dict[str, str], path: str) -> dict[str, str]:
        """The entries at or below `path` (a file or a directory), keyed by their full path."""
        path = path.strip("/")
        return {p: s for p, s in files.items() if not path or p == path or p.startswith(path + "/")}

    def _commit_json(self, repo: Repo, c: GitCommit) -> dict[str, Any]:
        api, web = f"{self.base_url}/repos/{repo.owner}/{repo.name}", f"{self.origin}/{repo.owner}/{repo.name}"
        person = {"name": "PSP Test", "email": "test@psp.example", "date": c.date.strftime("%Y-%m-%dT%H:%M:%SZ")}
        return {
            "url": f"{api}/commits/{c.sha}",
            "sha": c.sha,
            "node_id": f"C_{c.sha[:16]}",
            "html_url": f"{web}/commit/{c.sha}",
            "comments_url": f"{api}/commits/{c.sha}/comments",
            "commit": {
                "url": f"{api}/git/commits/{c.sha}",
                "author": person,
                "committer": person,
                "message": c.message,
                "tree": {"url": f"{api}/git/trees/{c.tree}", "sha": c.tree},
                "comment_count": 0,
                "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None},
            },
            "author": None,
            "committer": None,
            "parents": [{"url": f"{api}/commits/{p}", "sha": p, "html_url": f"{web}/commit/{p}"} for p in c.parents],
        }

    def _list_commits(self, repo: Repo, query: dict[str, list[str]]) -> tuple[int, Any, dict | None]:
        ref = (query.get("sha") or [""])[0] or "main"
        path = (query.get("path") or [""])[0]
        per_page = min(100, int((query.get("per_page") or ["30"])[0]))
        page = max(1, int((query.get("page") or ["1"])[0]))
        head = self._resolve(repo, ref)
        if head is None:
            return 404, {"message": "No commit found for SHA: " + ref}, None
        history, commit = [], head
        while commit is not None:  # first-parent history, newest first
            parent = repo.commits[commit.parents[0]] if commit.parents else None
            before = parent.files if parent else {}
            if not path or self._under(commit.files, path) != self._under(before, path):
                history.append(commit)
            commit = parent
        chunk = history[(page - 1) * per_page : page * per_page]
        headers = {}
        last = max(1, math.ceil(len(history) / per_page))
        if page < last:
            base = f"{self.base_url}/repos/{repo.owner}/{repo.name}/commits?sha={ref}&path={path}&per_page={per_page}"
            headers["Link"] = f'<{base}&page={page + 1}>; rel="next", <{base}&page={last}>; rel="last"'
        return 200, [self._commit_json(repo, c) for c in chunk], headers

    def _tree_entries(self, repo: Repo, tree: str, prefix: str, recursive: bool) -> list[dict[str, Any]]:
        api = f"{self.base_url}/repos/{repo.owner}/{repo.name}/git"
        out = []
        for mode, kind, name, sha in repo.trees[tree]:
            entry = {"path": prefix + name, "mode": mode.rjust(6, "0"), "type": kind, "sha": sha}
            if kind == "blob":
                entry |= {"size": len(repo.blobs[sha]), "url": f"{api}/blobs/{sha}"}
            else:
                entry["url"] = f"{api}/trees/{sha}"
            out.append(entry)
            if kind == "tree" and recursive:
                out += self._tree_entries(repo, sha, prefix + name + "/", recursive)
        return out

    def _contents(self, repo: Repo, path: str, ref: str) -> tuple[int, Any, dict | None]:
        commit = self._resolve(repo, ref)
        if commit is None:
            return 404, {"message": "No commit found for the ref " + ref}, None
        path = path.strip("/")
        tree, kind, sha = commit.tree, "dir", commit.tree
        for part in [p for p in path.split("/") if p]:  # walk down to the entry at `path`
            if kind != "dir":
                return 404, {"message": "Not Found"}, None
            found = next((e for e in repo.trees[tree] if e[2] == part), None)
            if found is None:
                return 404, {"message": "Not Found"}, None
            kind, sha = ("dir", found[3]) if found[1] == "tree" else ("file", found[3])
            tree = sha

        def item(entry_path: str, entry_kind: str, entry_sha: str) -> dict[str, Any]:
            api = f"{self.base_url}/repos/{repo.owner}/{repo.name}"
            web = f"{self.origin}/{repo.owner}/{repo.name}"
            url = f"{api}/contents/{entry_path}?ref={ref}"
            git = f"{api}/git/{'trees' if entry_kind == 'dir' else 'blobs'}/{entry_sha}"
            html = f"{web}/{'tree' if entry_kind == 'dir' else 'blob'}/{ref}/{entry_path}"
            return {
                "type": entry_kind,
                "size": len(repo.blobs[entry_sha]) if entry_kind == "file" else 0,
                "name": entry_path.rsplit("/", 1)[-1],
                "path": entry_path,
                "sha": entry_sha,
                "url": url,
                "git_url": git,
                "html_url": html,
                "download_url": f"{self.origin}/raw/{repo.owner}/{repo.name}/{ref}/{entry_path}"
                if entry_kind == "file"
                else None,
                "_links": {"self": url, "git": git, "html": html},
            }

        if kind == "file":
            data = repo.blobs[sha]
            return 200, item(path, "file", sha) | {"encoding": "base64", "content": _base64_lines(data)}, None
        prefix = path + "/" if path else ""
        entries = [item(prefix + e[2], "dir" if e[1] == "tree" else "file", e[3]) for e in repo.trees[tree]]
        return 200, entries, None

    def _read_route(self, repo: Repo, rest: str, query: dict[str, list[str]]) -> tuple[int, Any, dict | None] | None:
        """GET routes over the repository's commits, contents, trees and blobs; None when none matches."""
        if rest == "/commits":
            return self._list_commits(repo, query)
        if rest == "/contents" or rest.startswith("/contents/"):
            ref = (query.get("ref") or [""])[0] or "main"
            return self._contents(repo, rest[len("/contents") :], ref)
        if t := re.fullmatch(r"/git/trees/([0-9a-f]{40})", rest):
            if t.group(1) not in repo.trees:
                return 404, {"message": "Not Found"}, None
            recursive = (query.get("recursive") or [""])[0] not in ("", "0", "false")
            tree = self._tree_entries(repo, t.group(1), "", recursive)
            url = f"{self.base_url}/repos/{repo.owner}/{repo.name}/git/trees/{t.group(1)}"
            return 200, {"sha": t.group(1), "url": url, "tree": tree, "truncated": False}, None
        if b := re.fullmatch(r"/git/blobs/([0-9a-f]{40})", rest):
            data = repo.blobs.get(b.group(1))
            if data is None:
                return 404, {"message": "Not Found"}, None
            url = f"{self.base_url}/repos/{repo.owner}/{repo.name}/git/blobs/{b.group(1)}"
            body = {"sha": b.group(1), "node_id": f"B_{b.group(1)[:16]}", "size": len(data), "url": url}
            return 200, body | {"content": _base64_lines(data), "encoding": "base64"}, None
        return None

    def _upload(
        self, h: BaseHTTPRequestHandler, owner: str, name: str, release_id: int, query: dict[str, list[str]]
    ) -> tuple[int, Any, dict | None]:
        data = self._body(h)
        with self.lock:
            repo = self.repos.get((owner, name))
            rel = repo.releases.get(release_id) if repo else None
            if rel is None:
                return 404, {"message": "Not Found"}, None
            asset_name = (query.get("name") or [""])[0]
            if any(a.name == asset_name for a in rel.assets.values()):
                errors = [{"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}]
                return 422, {"message": "Validation Failed", "errors": errors}, None
            asset = Asset(
                self.next_id(),
                asset_name,
                (query.get("label") or [""])[0],
                h.headers.get("Content-Type", ""),
                data,
                "uploaded",
                len(data),
            )
            rel.assets[asset.id] = asset
            return 201, self._asset_json(repo, rel, asset), None

    def _cut_upload(self, h: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]]) -> None:
        m = re.fullmatch(r"/api/uploads/repos/([^/]+)/([^/]+)/releases/(\d+)/assets", path)
        assert m, f"cut_upload fault on a non-upload path {path}"
        length = int(h.headers.get("Content-Length") or 0)
        partial = h.rfile.read(length // 2)
        with self.lock:
            rel = self.repos[(m.group(1), m.group(2))].releases[int(m.group(3))]
            name = (query.get("name") or [""])[0]
            aid = self.next_id()
            rel.assets[aid] = Asset(aid, name, "", "", partial, "starter", length)
        h.close_connection = True
        with suppress(OSError):
            h.connection.shutdown(socket.SHUT_RDWR)

    def _access_token(self, h: BaseHTTPRequestHandler, installation_id: int) -> tuple[int, Any, dict | None]:
        if installation_id not in self.installations:
            return 404, {"message": "Not Found"}, None
        app_id, owner = self.installations[installation_id]
        scheme, _, token = h.headers.get("Authorization", "").partition(" ")
        try:
            claims = jwt.decode(token, self.apps[app_id], algorithms=["RS256"]) if scheme == "Bearer" else {}
        except jwt.PyJWTError:
            claims = {}
        if str(claims.get("iss")) != str(app_id):
            return 401, {"message": "A JSON web token could not be decoded"}, None
        issued = f"ghs_fake{self.next_id()}installation{installation_id}"
        with self.lock:
            self.tokens[issued] = owner
            self.issued_tokens.append(issued)
        expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return 201, {"token": issued, "expires_at": expires, "permissions": {"contents": "write"}}, None


def _base64_lines(data: bytes) -> str:
    """Base64 as GitHub sends file and blob content: wrapped at 60 characters, each line newline-terminated."""
    return "".join(line + "\n" for line in textwrap.wrap(base64.b64encode(data).decode(), 60))

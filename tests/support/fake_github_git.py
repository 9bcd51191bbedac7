"""The local GitHub stand-in's write side of git data, and its pull requests (part of fake_github.py).

Documented endpoints (docs.github.com/rest), on the objects fake_github.py stores as git stores them:

- GET    /repos/{owner}/{repo}/git/ref/{ref}             (git/refs#get-a-reference; branches: heads/<name>)
- POST   /repos/{owner}/{repo}/git/refs                  (git/refs#create-a-reference; 422 "Reference already exists")
- PATCH  /repos/{owner}/{repo}/git/refs/{ref}            (git/refs#update-a-reference; 422 unless a fast-forward
                                                         or `force`)
- DELETE /repos/{owner}/{repo}/git/refs/{ref}            (git/refs#delete-a-reference)
- GET    /repos/{owner}/{repo}/git/commits/{sha}         (git/commits#get-a-commit-object)
- POST   /repos/{owner}/{repo}/git/commits               (git/commits#create-a-commit)
- POST   /repos/{owner}/{repo}/git/blobs                 (git/blobs#create-a-blob; utf-8 or base64)
- POST   /repos/{owner}/{repo}/git/trees                 (git/trees#create-a-tree; `base_tree`, entries with
                                                         `content` or `sha`, `sha: null` deletes a path)
- GET    /repos/{owner}/{repo}/pulls?state=&head=&base=  (pulls#list-pull-requests; newest first)
- POST   /repos/{owner}/{repo}/pulls                     (pulls#create-a-pull-request; 422 when one is open for
                                                         the head, or the head has no commits the base lacks)
- GET    /repos/{owner}/{repo}/pulls/{number}            (pulls#get-a-pull-request)

The subset: branches only (no tags), regular files only (mode 100644), and every commit written
through the API is authored "PSP Test". Tests merge pull requests with `merge_pull` (a fast-forward,
or a commit of the pull request's tree when the base moved on).
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.fake_github import GitCommit, Repo

Answer = tuple[int, Any, dict | None]
VALIDATION = "https://docs.github.com/rest"
NOT_FOUND: Answer = (404, {"message": "Not Found", "documentation_url": VALIDATION}, None)


@dataclass
class Pull:
    number: int
    title: str
    body: str
    head: str  # branch in the same repository
    base: str
    created_at: datetime
    state: str = "open"  # open | closed
    merged_at: datetime | None = None
    head_sha: str = ""


def _when(d: datetime | None) -> str | None:
    return d.strftime("%Y-%m-%dT%H:%M:%SZ") if d else None


def _invalid(message: str, errors: list[dict[str, Any]] | None = None) -> Answer:
    body: dict[str, Any] = {"message": message, "documentation_url": VALIDATION}
    if errors is not None:
        body["errors"] = errors
    return 422, body, None


class GitWriteRoutes:
    """Mixed into FakeGitHub: git data writes, refs and pull requests (see the module docstring)."""

    # provided by FakeGitHub
    repos: dict[tuple[str, str], Repo]
    base_url: str
    origin: str

    def _pulls(self, repo: Repo) -> list[Pull]:
        store: dict[tuple[str, str], list[Pull]] = self.__dict__.setdefault("_pull_store", {})
        return store.setdefault((repo.owner, repo.name), [])

    # --- helpers tests use ---------------------------------------------------------------------

    def files_at(self, owner: str, repo: str, ref: str) -> dict[str, bytes]:
        """Every file of a branch (or commit sha) as bytes."""
        with self.lock:  # type: ignore[attr-defined]
            r = self.repos[(owner, repo)]
            commit = r.commits[r.branches.get(ref, ref)]
            return {path: r.blobs[sha] for path, sha in commit.files.items()}

    def pulls_of(self, owner: str, repo: str) -> list[Pull]:
        with self.lock:  # type: ignore[attr-defined]
            return list(self._pulls(self.repos[(owner, repo)]))

    def merge_pull(self, owner: str, repo: str, number: int) -> None:
        """Merge an open pull request as a person would press the button (see the module docstring)."""
        with self.lock:  # type: ignore[attr-defined]
            r = self.repos[(owner, repo)]
            pull = next(p for p in self._pulls(r) if p.number == number)
            head, base = r.branches[pull.head], r.branches[pull.base]
            if self._is_ancestor(r, base, head):
                r.branches[pull.base] = head
            else:
                message = f"Merge pull request #{number} from {owner}/{pull.head}"
                r.branches[pull.base] = self._new_commit(r, r.commits[head].tree, [base, head], message).sha
            pull.state, pull.merged_at = "closed", datetime.now(UTC)

    # --- git objects ---------------------------------------------------------------------------

    def _flat(self, r: Repo, tree: str, prefix: str = "") -> dict[str, str]:
        out: dict[str, str] = {}
        for _mode, kind, name, sha in r.trees[tree]:
            if kind == "tree":
                out.update(self._flat(r, sha, prefix + name + "/"))
            else:
                out[prefix + name] = sha
        return out

    def _new_commit(self, r: Repo, tree: str, parents: list[str], message: str) -> GitCommit:
        from tests.support.fake_github import GitCommit, git_object_id

        date = datetime.now(UTC).replace(microsecond=0)
        stamp = f"PSP Test <test@psp.example> {int(date.timestamp())} +0000"
        text = f"tree {tree}\n" + "".join(f"parent {p}\n" for p in parents)
        text += f"author {stamp}\ncommitter {stamp}\n\n{message}"
        sha = git_object_id("commit", text.encode())
        commit = GitCommit(sha, tree, list(parents), message, date, self._flat(r, tree))
        r.commits[sha] = commit
        return commit

    def _is_ancestor(self, r: Repo, ancestor: str, sha: str) -> bool:
        todo, seen = [sha], set()
        while todo:
            current = todo.pop()
            if current == ancestor:
                return True
            if current in seen or current not in r.commits:
                continue
            seen.add(current)
            todo += r.commits[current].parents
        return False

    # --- JSON shapes (as documented) -----------------------------------------------------------

    def _api(self, r: Repo) -> str:
        return f"{self.base_url}/repos/{r.owner}/{r.name}"

    def _ref_json(self, r: Repo, branch: str) -> dict[str, Any]:
        sha = r.branches[branch]
        return {
            "ref": f"refs/heads/{branch}",
            "node_id": f"REF_{branch}",
            "url": f"{self._api(r)}/git/refs/heads/{branch}",
            "object": {"type": "commit", "sha": sha, "url": f"{self._api(r)}/git/commits/{sha}"},
        }

    def _git_commit_json(self, r: Repo, c: GitCommit) -> dict[str, Any]:
        person = {"name": "PSP Test", "email": "test@psp.example", "date": _when(c.date)}
        web = f"{self.origin}/{r.owner}/{r.name}"
        return {
            "sha": c.sha,
            "node_id": f"C_{c.sha[:16]}",
            "url": f"{self._api(r)}/git/commits/{c.sha}",
            "html_url": f"{web}/commit/{c.sha}",
            "author": person,
            "committer": person,
            "message": c.message,
            "tree": {"sha": c.tree, "url": f"{self._api(r)}/git/trees/{c.tree}"},
            "parents": [
                {"sha": p, "url": f"{self._api(r)}/git/commits/{p}", "html_url": f"{web}/commit/{p}"} for p in c.parents
            ],
            "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None},
        }

    def _tree_json(self, r: Repo, sha: str) -> dict[str, Any]:
        tree = self._tree_entries(r, sha, "", False)  # type: ignore[attr-defined]
        return {"sha": sha, "url": f"{self._api(r)}/git/trees/{sha}", "tree": tree, "truncated": False}

    def _pull_json(self, r: Repo, p: Pull) -> dict[str, Any]:
        web = f"{self.origin}/{r.owner}/{r.name}"
        repo_json = self._repo_json(r)  # type: ignore[attr-defined]
        user = {"login": "psp-test", "id": 1, "type": "User"}

        def part(branch: str, sha: str) -> dict[str, Any]:
            return {"label": f"{r.owner}:{branch}", "ref": branch, "sha": sha, "user": user, "repo": repo_json}

        head_sha = r.branches.get(p.head, p.head_sha)
        return {
            "url": f"{self._api(r)}/pulls/{p.number}",
            "id": 5000 + p.number,
            "node_id": f"PR_{p.number}",
            "html_url": f"{web}/pull/{p.number}",
            "number": p.number,
            "state": p.state,
            "locked": False,
            "title": p.title,
            "user": user,
            "body": p.body,
            "created_at": _when(p.created_at),
            "updated_at": _when(p.merged_at or p.created_at),
            "closed_at": _when(p.merged_at),
            "merged_at": _when(p.merged_at),
            "merged": p.merged_at is not None,
            "draft": False,
            "head": part(p.head, head_sha),
            "base": part(p.base, r.branches.get(p.base, "")),
        }

    # --- routes --------------------------------------------------------------------------------

    def _git_route(self, r: Repo, method: str, rest: str, query: dict[str, list[str]], body: bytes) -> Answer | None:
        """The routes above; None when none matches. Called with the server lock held."""
        data: Any = {}
        if method in ("POST", "PATCH") and body:
            try:
                data = json.loads(body)
            except ValueError:
                return 400, {"message": "Problems parsing JSON"}, None
        if method == "GET" and (m := re.fullmatch(r"/git/ref/heads/(.+)", rest)):
            return (200, self._ref_json(r, m.group(1)), None) if m.group(1) in r.branches else NOT_FOUND
        if method == "POST" and rest == "/git/refs":
            return self._create_ref(r, data)
        if method in ("PATCH", "DELETE") and (m := re.fullmatch(r"/git/refs/heads/(.+)", rest)):
            return self._change_ref(r, method, m.group(1), data)
        if method == "GET" and (m := re.fullmatch(r"/git/commits/([0-9a-f]{40})", rest)):
            commit = r.commits.get(m.group(1))
            return (200, self._git_commit_json(r, commit), None) if commit else NOT_FOUND
        if method == "POST" and rest == "/git/commits":
            return self._create_commit(r, data)
        if method == "POST" and rest == "/git/blobs":
            return self._create_blob(r, data)
        if method == "POST" and rest == "/git/trees":
            return self._create_tree(r, data)
        if method == "GET" and rest == "/pulls":
            return 200, self._list_pulls(r, query), None
        if method == "POST" and rest == "/pulls":
            return self._create_pull(r, data)
        if method == "GET" and (m := re.fullmatch(r"/pulls/(\d+)", rest)):
            pull = next((p for p in self._pulls(r) if p.number == int(m.group(1))), None)
            return (200, self._pull_json(r, pull), None) if pull else NOT_FOUND
        return None

    def _create_ref(self, r: Repo, data: dict[str, Any]) -> Answer:
        ref, sha = str(data.get("ref", "")), str(data.get("sha", ""))
        m = re.fullmatch(r"refs/heads/([A-Za-z0-9._/-]+)", ref)
        if not m or ".." in ref or ref.endswith(("/", ".lock")):
            return _invalid("Reference name must start with 'refs/' and have at least two slashes.")
        if sha not in r.commits:
            return _invalid("Object does not exist")
        if m.group(1) in r.branches:
            return _invalid("Reference already exists")
        r.branches[m.group(1)] = sha
        return 201, self._ref_json(r, m.group(1)), None

    def _change_ref(self, r: Repo, method: str, branch: str, data: dict[str, Any]) -> Answer:
        if branch not in r.branches:
            return _invalid("Reference does not exist")
        if method == "DELETE":
            del r.branches[branch]
            return 204, None, None
        sha = str(data.get("sha", ""))
        if sha not in r.commits:
            return _invalid("Object does not exist")
        if not data.get("force") and not self._is_ancestor(r, r.branches[branch], sha):
            return _invalid("Update is not a fast forward")
        r.branches[branch] = sha
        return 200, self._ref_json(r, branch), None

    def _create_blob(self, r: Repo, data: dict[str, Any]) -> Answer:
        from tests.support.fake_github import git_object_id

        content, encoding = data.get("content"), data.get("encoding", "utf-8")
        if not isinstance(content, str) or encoding not in ("utf-8", "base64"):
            return _invalid("Validation Failed", [{"resource": "Blob", "field": "content", "code": "invalid"}])
        raw = base64.b64decode(content) if encoding == "base64" else content.encode()
        sha = git_object_id("blob", raw)
        r.blobs[sha] = raw
        return 201, {"url": f"{self._api(r)}/git/blobs/{sha}", "sha": sha}, None

    def _create_tree(self, r: Repo, data: dict[str, Any]) -> Answer:
        from tests.support.fake_github import git_object_id

        base = data.get("base_tree")
        if base is not None and base not in r.trees:
            return _invalid("Validation Failed", [{"resource": "Tree", "field": "base_tree", "code": "invalid"}])
        files = self._flat(r, base) if base else {}
        entries = data.get("tree")
        if not isinstance(entries, list):
            return _invalid('Invalid request.\n\n"tree" wasn\'t supplied.')
        for entry in entries:
            path = str(entry.get("path", ""))
            if not path or path.startswith("/") or any(part in ("", ".", "..") for part in path.split("/")):
                return _invalid(f"tree.path contains a malformed path component: {path!r}")
            if entry.get("mode") != "100644" or entry.get("type") != "blob":
                return _invalid("this stand-in stores regular files only (mode 100644, type blob)")
            if "content" in entry:
                raw = str(entry["content"]).encode()
                sha = git_object_id("blob", raw)
                r.blobs[sha] = raw
                files[path] = sha
            elif entry.get("sha") is None:
                files.pop(path, None)  # deleting a path the base lacks changes nothing
            elif entry["sha"] in r.blobs:
                files[path] = entry["sha"]
            else:
                return _invalid("Validation Failed", [{"resource": "Tree", "field": "sha", "code": "invalid"}])
        sha = self._write_tree(r, files)  # type: ignore[attr-defined]
        return 201, self._tree_json(r, sha), None

    def _create_commit(self, r: Repo, data: dict[str, Any]) -> Answer:
        tree, parents = data.get("tree"), data.get("parents") or []
        if tree not in r.trees:
            return _invalid("Tree SHA does not exist")
        if any(p not in r.commits for p in parents):
            return _invalid("Parent SHA does not exist or is not a commit object")
        commit = self._new_commit(r, tree, list(parents), str(data.get("message", "")))
        return 201, self._git_commit_json(r, commit), None

    def _list_pulls(self, r: Repo, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        state = (query.get("state") or ["open"])[0]
        head = (query.get("head") or [""])[0]
        base = (query.get("base") or [""])[0]
        found = []
        for p in sorted(self._pulls(r), key=lambda p: p.number, reverse=True):
            if state != "all" and p.state != state:
                continue
            if ":" in head and head != f"{r.owner}:{p.head}":  # GitHub filters only on user:ref-name
                continue
            if base and p.base != base:
                continue
            found.append(self._pull_json(r, p))
        return found

    def _create_pull(self, r: Repo, data: dict[str, Any]) -> Answer:
        head, base = str(data.get("head", "")), str(data.get("base", ""))
        if ":" in head:
            owner, _, head = head.partition(":")
            if owner != r.owner:
                return _invalid("Validation Failed", [{"resource": "PullRequest", "field": "head", "code": "invalid"}])
        for field_name, branch in (("head", head), ("base", base)):
            if branch not in r.branches:
                error = {"resource": "PullRequest", "field": field_name, "code": "invalid"}
                return _invalid("Validation Failed", [error])
        pulls = self._pulls(r)
        if any(p.head == head and p.base == base and p.state == "open" for p in pulls):
            message = f"A pull request already exists for {r.owner}:{head}."
            return _invalid("Validation Failed", [{"resource": "PullRequest", "code": "custom", "message": message}])
        if self._is_ancestor(r, r.branches[head], r.branches[base]):
            message = f"No commits between {base} and {head}"
            return _invalid("Validation Failed", [{"resource": "PullRequest", "code": "custom", "message": message}])
        pull = Pull(
            number=len(pulls) + 1,
            title=str(data.get("title", "")),
            body=str(data.get("body") or ""),
            head=head,
            base=base,
            created_at=datetime.now(UTC).replace(microsecond=0),
            head_sha=r.branches[head],
        )
        pulls.append(pull)
        return 201, self._pull_json(r, pull), None

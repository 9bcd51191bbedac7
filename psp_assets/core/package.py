"""Packaging a rendered tree into the platform's installable archive.

Archives are reproducible: the same tree always gives the same bytes (sorted entries, a fixed
timestamp, fixed modes, fixed compression), so a sha256 identifies a release across machines.
A manifest of every file's sha256 travels beside the archive; deploys verify against it. The manifest
also carries the deploy facts (health route, lint globs, install path) rendered for the client, so a
deploy reads them from the artifact and needs no template.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from psp_assets.core.errors import PackageError
from psp_assets.core.render.engine import RenderedTree

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o100644
DIR_MODE = 0o040755


@dataclass(frozen=True)
class DeployFacts:
    """What a deploy needs to know about the plugin it installs (template.yaml `deploy`, `lint_globs`,
    `js_check_globs`, rendered for the client): written into the artifact's manifest at packaging."""

    health_route: str | None = None  # path of the plugin's health route on the store
    install_path: str | None = None  # where the platform installs the plugin, relative to the store root
    lint_globs: tuple[str, ...] = ()  # live files the health gate lints with PHP on local stores
    js_check_globs: tuple[str, ...] = ()  # live files the health gate checks with `node --check`

    def as_json(self) -> dict[str, Any]:
        return {
            "health_route": self.health_route,
            "install_path": self.install_path,
            "lint_globs": list(self.lint_globs),
            "js_check_globs": list(self.js_check_globs),
        }

    @classmethod
    def from_json(cls, doc: Any, where: str) -> DeployFacts:
        if not isinstance(doc, dict):
            raise PackageError(f"{where}: deploy: must be a mapping of the deploy facts, got {type(doc).__name__}")
        try:
            return cls(
                health_route=_optional_str(doc.get("health_route")),
                install_path=_optional_str(doc.get("install_path")),
                lint_globs=tuple(str(g) for g in doc.get("lint_globs") or ()),
                js_check_globs=tuple(str(g) for g in doc.get("js_check_globs") or ()),
            )
        except TypeError as exc:
            raise PackageError(f"{where}: deploy: {exc}") from None


def _optional_str(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Artifact:
    path: Path
    sha256: str
    size: int
    release_id: str
    root: str  # the folder inside the archive that holds the plugin ('' = archive root)
    manifest: dict[str, str]  # tree-relative path -> sha256
    # None: a manifest written before the deploy facts travelled with the artifact (lineage.deploy_facts_of)
    deploy: DeployFacts | None = None

    @property
    def manifest_path(self) -> Path:
        return manifest_path_for(self.path)


def manifest_path_for(artifact_path: Path) -> Path:
    return artifact_path.with_name(artifact_path.name + ".manifest.json")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def zip_bytes_entries(tree: RenderedTree, root: str) -> list[tuple[str, bytes | None]]:
    """Archive entries in order: directories (None) and files, under `root`."""
    prefix = f"{root.strip('/')}/" if root.strip("/") else ""
    names: dict[str, bytes | None] = {}
    for rel, data in tree.files.items():
        full = prefix + rel
        parent = PurePosixPath(full).parent
        while str(parent) != ".":
            names.setdefault(f"{parent}/", None)
            parent = parent.parent
        names[full] = data
    return sorted(names.items())


def package(
    tree: RenderedTree, root: str, artifact_name: str, out_dir: Path, deploy: DeployFacts | None = None
) -> Artifact:
    """Write `<out_dir>/<artifact_name>` (zip) and its manifest (with the `deploy` facts) atomically;
    returns the Artifact. lineage.build_plugin packages a plugin from its plan."""
    if "/" in artifact_name or not artifact_name.endswith(".zip") or artifact_name.startswith("."):
        raise PackageError(f"packaging.artifact: {artifact_name!r} must be a plain file name ending in .zip")
    if not tree.files:
        raise PackageError(f"{tree.client_id}|{tree.platform}: the rendered tree is empty; nothing to package")
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / artifact_name
    fd, tmp_name = tempfile.mkstemp(prefix=f".{artifact_name}.", dir=out_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with zipfile.ZipFile(tmp, "w") as zf:
            for name, data in zip_bytes_entries(tree, root):
                info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
                info.create_system = 3  # unix, so the modes below are honoured
                if data is None:
                    info.external_attr = (DIR_MODE << 16) | 0x10
                    zf.writestr(info, b"")
                else:
                    info.external_attr = FILE_MODE << 16
                    info.compress_type = zipfile.ZIP_DEFLATED
                    zf.writestr(info, data, compresslevel=9)
        manifest = {rel: hashlib.sha256(data).hexdigest() for rel, data in sorted(tree.files.items())}
        digest = sha256_file(tmp)
        manifest_doc: dict[str, Any] = {
            "release_id": tree.release_id,
            "client": tree.client_id,
            "platform": tree.platform,
            "plugin_version": tree.plugin_version,
            "build": tree.build,
            "artifact": artifact_name,
            "sha256": digest,
            "root": root,
            "files": manifest,
        }
        if deploy is not None:
            manifest_doc["deploy"] = deploy.as_json()
        manifest_tmp = manifest_path_for(tmp)
        manifest_tmp.write_text(json.dumps(manifest_doc, indent=2, sort_keys=True))
        os.replace(tmp, target)
        os.replace(manifest_tmp, manifest_path_for(target))
    except BaseException:
        tmp.unlink(missing_ok=True)
        manifest_path_for(tmp).unlink(missing_ok=True)
        raise
    return Artifact(
        path=target,
        sha256=digest,
        size=target.stat().st_size,
        release_id=tree.release_id,
        root=root,
        manifest=manifest,
        deploy=deploy,
    )


def load_artifact(path: Path) -> Artifact:
    """An artifact from disk, verified against its manifest's sha256."""
    try:
        doc = json.loads(manifest_path_for(path).read_text())
    except (OSError, ValueError) as exc:
        raise PackageError(f"{path}: manifest missing or unreadable ({exc})") from None
    digest = sha256_file(path)
    if digest != doc["sha256"]:
        raise PackageError(f"{path}: sha256 {digest} does not match its manifest ({doc['sha256']}); refusing to use it")
    deploy = DeployFacts.from_json(doc["deploy"], str(manifest_path_for(path))) if "deploy" in doc else None
    return Artifact(path, digest, path.stat().st_size, doc["release_id"], doc["root"], doc["files"], deploy)

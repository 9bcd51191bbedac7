"""Platform templates: discovery, the `template.yaml` spec, and content hashing.

Everything that differs between platforms is data in `templates/<platform>/template.yaml`: supported
versions, PHP range, the status map, packaging layout and the convention checks. Python code reads
the data; it never branches on the platform name.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from .config import PLATFORMS, validation_problems
from .errors import TemplateError
from .statuses import validate_status_map
from .yamlio import YamlError, read_yaml_mapping

SPEC_FILE = "template.yaml"
SHARED_DIR = "_shared"
PhpVersion = Annotated[str, StringConstraints(pattern=r"^[78]\.[0-9]$")]
PHP_VERSIONS: tuple[str, ...] = ("7.4", "8.0", "8.1", "8.2", "8.3", "8.4", "8.5")


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PhpRange(_Spec):
    min: PhpVersion
    max: PhpVersion

    @model_validator(mode="after")
    def _ordered(self) -> PhpRange:
        if self.min not in PHP_VERSIONS or self.max not in PHP_VERSIONS:
            raise ValueError(f"PHP versions must be among {', '.join(PHP_VERSIONS)}")
        if PHP_VERSIONS.index(self.min) > PHP_VERSIONS.index(self.max):
            raise ValueError(f"min {self.min} is newer than max {self.max}")
        return self

    def versions(self) -> list[str]:
        return list(PHP_VERSIONS[PHP_VERSIONS.index(self.min) : PHP_VERSIONS.index(self.max) + 1])


class SharedDir(_Spec):
    src: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+$")]
    dest: str


class Packaging(_Spec):
    format: Literal["zip"] = "zip"
    root: str = Field(description="Folder inside the archive that holds the tree ('' for the archive root).")
    artifact: str = Field(description="Artifact file name, e.g. '{{ ids.slug }}-{{ plugin.version }}.zip'.")


class Rule(_Spec):
    """One packaging-convention check, evaluated on the rendered tree (see checks.py)."""

    rule: Literal["required", "matches", "every", "same", "json_equals", "xml_wellformed"]
    message: str
    files: list[str] = Field(default_factory=list)
    file: str | None = None
    glob: str | None = None
    pattern: str | None = None
    other_file: str | None = None
    other_pattern: str | None = None
    field: str | None = None
    equals: str | None = None


class Contract(_Spec):
    """How the contract tests load the plugin's platform-neutral core."""

    namespace: str
    bootstrap: list[str]
    define: dict[str, str] = Field(default_factory=dict)


class TemplateSpec(_Spec):
    platform: str
    title: str
    version: Annotated[str, StringConstraints(pattern=r"^\d+\.\d+\.\d+$")]
    platform_versions: list[str] = Field(min_length=1)
    php: PhpRange
    status_map: dict[str, str]
    vars: dict[str, str] = Field(default_factory=dict)
    shared: list[SharedDir] = Field(default_factory=list)
    compile_mo: bool = False
    packaging: Packaging
    rules: list[Rule] = Field(default_factory=list)
    contract: Contract
    lint_globs: list[str] = Field(default_factory=lambda: ["**/*.php"])
    deploy: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> TemplateSpec:
        if self.platform not in PLATFORMS:
            raise ValueError(f"platform {self.platform!r} is not one of {', '.join(PLATFORMS)}")
        return self


@dataclass(frozen=True)
class Template:
    """A platform template on disk: its spec, its files, and the shared files it pulls in."""

    spec: TemplateSpec
    root: Path
    templates_dir: Path

    @property
    def platform(self) -> str:
        return self.spec.platform

    def source_files(self) -> list[tuple[str, Path]]:
        """(destination path template, source file) for every file that goes into the rendered tree."""
        files = [(rel, path) for rel, path in _walk(self.root) if rel != SPEC_FILE]
        for shared in self.spec.shared:
            src = self.templates_dir / SHARED_DIR / shared.src
            if not src.is_dir():
                raise TemplateError(f"{self.root / SPEC_FILE}: shared.src: {shared.src!r} not found in {src.parent}")
            files += [(f"{shared.dest.rstrip('/')}/{rel}", path) for rel, path in _walk(src)]
        return files

    @cached_property
    def content_hash(self) -> str:
        """sha256 over every input file (the template's own, the shared dirs it uses, the i18n catalogs)."""
        digest = hashlib.sha256()
        inputs = [(SPEC_FILE, self.root / SPEC_FILE), *self.source_files()]
        inputs += [(f"{SHARED_DIR}/i18n/{rel}", p) for rel, p in _walk(self.templates_dir / SHARED_DIR / "i18n")]
        for rel, path in sorted(inputs):
            digest.update(rel.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
        return digest.hexdigest()


def _walk(root: Path) -> list[tuple[str, Path]]:
    if not root.is_dir():
        return []
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise TemplateError(f"{path}: templates may not contain symlinks (they could point outside)")
        if path.is_file() and "__pycache__" not in path.parts:
            out.append((path.relative_to(root).as_posix(), path))
    return out


def load_template(templates_dir: Path, platform: str) -> Template:
    if platform not in PLATFORMS:
        raise TemplateError(f"unknown platform {platform!r}; expected one of {', '.join(PLATFORMS)}")
    root = templates_dir / platform
    spec_path = root / SPEC_FILE
    if not spec_path.is_file():
        raise TemplateError(f"{spec_path}: no template for platform {platform!r} (missing {SPEC_FILE})")
    try:
        data = read_yaml_mapping(spec_path)
        spec = TemplateSpec.model_validate(data)
    except YamlError as exc:
        raise TemplateError(str(exc)) from None
    except ValidationError as exc:
        raise TemplateError("\n".join(validation_problems(exc, str(spec_path)))) from None
    if spec.platform != platform:
        raise TemplateError(f"{spec_path}: platform: says {spec.platform!r} but lives in templates/{platform}/")
    problems = validate_status_map(spec.status_map, str(spec_path))
    if problems:
        raise TemplateError("\n".join(problems))
    for rule in spec.rules:
        for pattern in (rule.pattern, rule.other_pattern):
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise TemplateError(f"{spec_path}: rules: bad regex {pattern!r}: {exc}") from None
    return Template(spec=spec, root=root, templates_dir=templates_dir)


def available_platforms(templates_dir: Path) -> list[str]:
    return [p for p in PLATFORMS if (templates_dir / p / SPEC_FILE).is_file()]

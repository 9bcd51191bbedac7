"""Platform templates: discovery, the `template.yaml` spec, and content hashing.

Everything that differs between platforms is data in `templates/<platform>/template.yaml`: supported
versions, PHP range, the status map, packaging layout and the convention checks. Python code reads
the data; it never branches on the platform name.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from psp_assets.core.payments import iban
from psp_assets.core.payments import openapi
from psp_assets.core.errors import pydantic_problems, TemplateError
from psp_assets.core.payments.statuses import CANONICAL_STATUSES, validate_status_map
from psp_assets.core.yamlio import YamlError, read_yaml_mapping

# Every platform a template may be written for; tests/core/config checks it against templates/*/template.yaml
# (and the store-order sources, the schema), naming what to change when a platform is added.
PLATFORMS: tuple[str, ...] = ("woocommerce", "magento2", "shopify", "prestashop", "opencart")

SPEC_FILE = "template.yaml"
SHARED_DIR = "_shared"
PhpVersion = Annotated[str, StringConstraints(pattern=r"^[78]\.[0-9]$")]
NodeMajor = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]$")]
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


class NodeRange(_Spec):
    """Node.js majors a JavaScript plugin (an app server) supports, e.g. min "18", max "22"."""

    min: NodeMajor
    max: NodeMajor

    @model_validator(mode="after")
    def _ordered(self) -> NodeRange:
        if int(self.min) > int(self.max):
            raise ValueError(f"min {self.min} is newer than max {self.max}")
        return self


class SharedDir(_Spec):
    src: Annotated[str, StringConstraints(pattern=r"^[a-z0-9-]+$")]
    dest: str


class Packaging(_Spec):
    format: Literal["zip"] = "zip"
    root: str = Field(description="Folder inside the archive that holds the tree ('' for the archive root).")
    artifact: str = Field(description="Artifact file name, e.g. '{{ ids.slug }}-{{ plugin.version }}.zip'.")


class Rule(_Spec):
    """One packaging-convention check, evaluated on the rendered tree (see verify/checks.py)."""

    rule: Literal["required", "matches", "every", "same", "json_equals", "xml_wellformed", "each_folder", "at_least"]
    message: str
    files: list[str] = Field(default_factory=list)
    file: str | None = None
    glob: str | None = None
    pattern: str | None = None
    other_file: str | None = None
    other_pattern: str | None = None
    field: str | None = None
    equals: str | None = None
    minimum: str | None = Field(None, description="at_least: the lowest version the captured one may be (rendered).")


class Contract(_Spec):
    """How the contract tests load the plugin's platform-neutral core."""

    runtime: Literal["php", "node"] = Field(
        "php",
        description="php: the PHP core, via php/contract_harness.php; node: an ES module, via js/contract_harness.mjs",
    )
    namespace: str = ""
    bootstrap: list[str] = Field(default_factory=list)
    define: dict[str, str] = Field(default_factory=dict)
    module: str | None = Field(None, description="node: the core's ES module, relative to the plugin root.")

    @model_validator(mode="after")
    def _complete(self) -> Contract:
        if self.runtime == "php" and not self.namespace:
            raise ValueError("runtime php needs namespace (and bootstrap: the core's PHP namespace and files)")
        if self.runtime == "node" and not self.module:
            raise ValueError("runtime node needs module (the core's ES module, e.g. src/core.mjs)")
        return self


class TranslationFile(_Spec):
    """One translation file the plugin ships per client locale."""

    path: str = Field(description="Path in the tree, rendered per client locale ({{ locale }} is e.g. nl_NL).")
    format: Literal["po", "csv", "xliff", "json", "php_array"]


class Translations(_Spec):
    """How a plugin marks translatable strings and ships its translations (check_translations).

    Templates that omit this block are checked the original way: gettext-style calls in .php/.phtml/.js
    files, and a `<locale>.po` or `<locale>.csv` per client locale with every catalog message.
    """

    calls: list[str] = Field(
        default_factory=list, description="Regexes whose group 1 is a message id, searched in the code files."
    )
    code_globs: list[str] = Field(default_factory=lambda: ["**/*.php", "**/*.js", "**/*.mjs", "**/*.tpl", "**/*.twig"])
    files: list[TranslationFile] = Field(min_length=1)
    complete: bool = Field(
        True,
        description="Every catalog message must be in each locale's files (msgid-keyed formats; php_array files "
        "are keyed by the platform's own keys and are checked for the same keys in every locale instead).",
    )


class LocaleCodes(_Spec):
    """The code the platform knows each catalog locale by: the names of its translation files and the
    language they declare. Templates use it as `{{ locale_codes[locale] }}` (docs/templates.md)."""

    rule: str = Field(
        "{{ locale }}", description="Rendered with `locale` (e.g. pt_BR): `{{ locale|replace('_', '-') }}` gives pt-BR."
    )
    overrides: dict[str, str] = Field(
        default_factory=dict, description="Catalog locale -> the platform's code where it differs from the rule."
    )

    def code(self, locale: str, render: Callable[[str], str]) -> str:
        return self.overrides.get(locale) or render(self.rule)


class ApiCheck(_Spec):
    """A platform API that differs between platform versions, checked on the rendered plugin for the
    versions it names (the compatibility matrix runs these per platform version; see docs/templates.md)."""

    name: str
    versions: list[str] = Field(min_length=1, description="The template's platform_versions this check applies to.")
    message: str
    rule: Rule | None = Field(None, description="A convention rule evaluated on the rendered tree.")
    php: str | None = Field(
        None,
        description="A PHP contract under templates/_shared/, run as `php <script> <plugin root> <platform version>`; "
        'exit 0 and a JSON {"ok": true} on stdout pass.',
    )

    @model_validator(mode="after")
    def _one_kind(self) -> ApiCheck:
        if (self.rule is None) == (self.php is None):
            raise ValueError(f"api check {self.name!r}: set exactly one of rule or php")
        return self


class DeploySpec(_Spec):
    """What a deploy needs to know about the platform."""

    health_route: str | None = Field(
        None, description="Path of the plugin's health route on the store, e.g. '/wp-json/<namespace>/health'."
    )
    install_path: str | None = Field(
        None,
        description="Where the platform installs the plugin, relative to the store (or app host) root, e.g. "
        "'wp-content/plugins/{{ ids.slug }}': the tree's files land below it (docs/templates.md, Side by side).",
    )


class ReconciliationSpec(_Spec):
    """How the payment reconciliation reads this platform's order states (docs/reconciliation.md)."""

    other_states: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Order states the plugin never sets but the platform or merchant moves orders on to (e.g. "
        "shipped), with the PSP statuses each is consistent with.",
    )
    api_states: dict[str, str] = Field(
        default_factory=dict,
        description="State identifiers as the platform's order API returns them -> the names used in status_map.",
    )

    @model_validator(mode="after")
    def _canonical(self) -> ReconciliationSpec:
        for state, statuses in self.other_states.items():
            unknown = sorted(set(statuses) - set(CANONICAL_STATUSES))
            if unknown:
                raise ValueError(f"other_states.{state}: unknown PSP statuses {', '.join(unknown)}")
        return self


class TemplateSpec(_Spec):
    platform: str
    title: str
    version: Annotated[str, StringConstraints(pattern=r"^\d+\.\d+\.\d+$")]
    platform_versions: list[str] = Field(min_length=1)
    php: PhpRange | None = Field(None, description="PHP versions the plugin supports; omitted when it has no PHP.")
    node: NodeRange | None = Field(None, description="Node.js majors the plugin (an app server) supports.")
    status_map: dict[str, str]
    vars: dict[str, str] = Field(default_factory=dict)
    shared: list[SharedDir] = Field(default_factory=list)
    compile_mo: bool = False
    packaging: Packaging
    rules: list[Rule] = Field(default_factory=list)
    contract: Contract
    lint_globs: list[str] = Field(default_factory=lambda: ["**/*.php"])
    js_check_globs: list[str] = Field(default_factory=list, description="JavaScript files `node --check` must accept.")
    translations: Translations | None = None
    locale_codes: LocaleCodes = Field(default_factory=lambda: LocaleCodes())
    api_checks: list[ApiCheck] = Field(default_factory=list)
    deploy: DeploySpec = Field(default_factory=lambda: DeploySpec())
    reconciliation: ReconciliationSpec = Field(default_factory=lambda: ReconciliationSpec())

    @model_validator(mode="after")
    def _known(self) -> TemplateSpec:
        if self.platform not in PLATFORMS:
            raise ValueError(f"platform {self.platform!r} is not one of {', '.join(PLATFORMS)}")
        if self.php is None and self.node is None:
            raise ValueError("declare the runtime range the plugin supports: php (min/max) or node (min/max)")
        if self.contract.runtime == "php" and self.php is None:
            raise ValueError("contract.runtime php needs a php range")
        if self.contract.runtime == "node" and self.node is None:
            raise ValueError("contract.runtime node needs a node range")
        if self.php is None and self.lint_globs:
            raise ValueError("lint_globs must be [] for a template without a php range (nothing to lint PHP with)")
        for check in self.api_checks:
            unknown = [v for v in check.versions if v not in self.platform_versions]
            if unknown:
                raise ValueError(
                    f"api_checks: {check.name!r} names {', '.join(unknown)}, not among platform_versions "
                    f"({', '.join(self.platform_versions)})"
                )
        return self


@dataclass(frozen=True)
class Template:
    """A platform template on disk: its spec, its files, and the shared files it pulls in."""

    spec: TemplateSpec
    root: Path
    templates_dir: Path
    contract_file: Path = openapi.DEFAULT_CONTRACT_FILE

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

    @property
    def api_contract(self) -> openapi.Contract:
        """The PSP API contract the plugin is checked against (docs/contract.md)."""
        return openapi.Contract.load(self.contract_file)

    @cached_property
    def content_hash(self) -> str:
        """sha256 over every input file (the template's own, the shared dirs it uses, the i18n catalogs)
        and over the PSP API contract's meaning (its digest: wording edits do not count), so a contract
        change makes every plugin stale and re-tested before anything is built."""
        digest = hashlib.sha256()
        digest.update(b"psp-api-contract\0" + self.api_contract.digest.encode())
        digest.update(b"bank-id-rules\0" + iban.rules_digest().encode())  # generated into BankAccount
        inputs = [(SPEC_FILE, self.root / SPEC_FILE), *self.source_files()]
        inputs += [(f"{SHARED_DIR}/i18n/{rel}", p) for rel, p in _walk(self.templates_dir / SHARED_DIR / "i18n")]
        checks = sorted({c.php for c in self.spec.api_checks if c.php})
        inputs += [(f"{SHARED_DIR}/{rel}", self.templates_dir / SHARED_DIR / rel) for rel in checks]
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


def load_template(templates_dir: Path, platform: str, contract: Path | None = None) -> Template:
    """The template for `platform`; `contract` is the PSP API contract file (default: openapi.contract_file())."""
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
        raise TemplateError("\n".join(pydantic_problems(exc, str(spec_path)))) from None
    if spec.platform != platform:
        raise TemplateError(f"{spec_path}: platform: says {spec.platform!r} but lives in templates/{platform}/")
    problems = validate_status_map(spec.status_map, str(spec_path))
    if problems:
        raise TemplateError("\n".join(problems))
    rules = [*spec.rules, *(c.rule for c in spec.api_checks if c.rule is not None)]
    calls = spec.translations.calls if spec.translations else []
    for pattern in calls:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise TemplateError(f"{spec_path}: translations.calls: bad regex {pattern!r}: {exc}") from None
    for check in spec.api_checks:
        if check.php is not None and not (templates_dir / SHARED_DIR / check.php).is_file():
            raise TemplateError(f"{spec_path}: api_checks: {check.name!r}: php {check.php!r} not found under _shared/")
    for rule in rules:
        for pattern in (rule.pattern, rule.other_pattern):
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise TemplateError(f"{spec_path}: rules: bad regex {pattern!r}: {exc}") from None
    contract_file = contract or openapi.contract_file()
    return Template(spec=spec, root=root, templates_dir=templates_dir, contract_file=contract_file)


def available_platforms(templates_dir: Path) -> list[str]:
    return [p for p in PLATFORMS if (templates_dir / p / SPEC_FILE).is_file()]

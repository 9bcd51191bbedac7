"""Rendering a platform template for one client into an in-memory tree, then onto disk atomically.

Safety rules, enforced by the engine rather than by review:
- a sandboxed Jinja environment with StrictUndefined: a typo in a template is an error, not a blank;
- every `{{ ... }}` must go through an escaping filter (see `render/escape.py`); a raw string is refused;
- rendered file paths are checked segment by segment and can never leave the output directory;
- the tree is written to a temporary sibling and renamed into place, so no half-rendered tree exists.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from psp_assets.core.config.identity import SLUG_KEYS, identity_for
from psp_assets.core.config.model import ClientConfig
from psp_assets.core.errors import RenderError
from psp_assets.core.i18n import Catalog, compile_mo, load_catalog, parse_po
from psp_assets.core.payments import iban
from psp_assets.core.payments.statuses import CANONICAL_STATUSES, TRANSITIONS
from psp_assets.core.render import escape
from psp_assets.core.templates.spec import SHARED_DIR, Template

RENDER_SUFFIX = ".j2"


def build_id(template_hash: str, config_hash: str) -> str:
    """Identifies one (template content, client config) pair; the health route reports it."""
    return hashlib.sha256(f"{template_hash}:{config_hash}".encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RenderedTree:
    """A rendered plugin: relative POSIX path -> bytes, plus what it was rendered from."""

    client_id: str
    platform: str
    plugin_version: str
    build: str
    files: Mapping[str, bytes] = field(repr=False)

    @property
    def release_id(self) -> str:
        return f"{self.plugin_version}-{self.build}"

    def digest(self) -> str:
        h = hashlib.sha256()
        for path in sorted(self.files):
            h.update(path.encode() + b"\0" + hashlib.sha256(self.files[path]).digest())
        return h.hexdigest()


def _finalize(value: Any) -> Any:
    if isinstance(value, escape.Escaped) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    shown = str(value)[:60]
    raise RenderError(
        f"unescaped value {shown!r}: pipe it through the filter for its target language "
        "(php, js, json, xml, po, csv, header, ident, slug)"
    )


def _environment(template: Template) -> ImmutableSandboxedEnvironment:
    loader = jinja2.FileSystemLoader([str(template.root), str(template.templates_dir / SHARED_DIR)])
    env = ImmutableSandboxedEnvironment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(escape.FILTERS)
    return env


def _path_environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, finalize=escape.path_segment)


def _tag(value: Any, path: str) -> Any:
    """Wrap every string of the config in `Tagged` so filters can name the field in errors."""
    if isinstance(value, str):
        return escape.Tagged(value, path)
    if isinstance(value, Mapping):
        return {k: _tag(v, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, list):
        return [_tag(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def render_context(template: Template, config: ClientConfig, catalog: Catalog) -> dict[str, Any]:
    spec = template.spec
    identity = identity_for(config, spec.platform)
    client = _tag(config.model_dump(mode="json"), "")
    client["api_base"] = escape.Tagged(config.api_base, "api_base_url")
    ids = {k: escape.Tagged(v, f"derived id {k}") for k, v in identity.as_context().items()}
    build = build_id(template.content_hash, config.config_hash())
    context: dict[str, Any] = {
        "client": client,
        "ids": ids,
        "platform": {"name": spec.platform, "versions": spec.platform_versions},
        "template": {
            "title": spec.title,
            "php_min": spec.php.min if spec.php else None,
            "php_max": spec.php.max if spec.php else None,
            "node_min": spec.node.min if spec.node else None,
            "node_max": spec.node.max if spec.node else None,
        },
        "plugin": {"version": spec.version, "build": build},
        "statuses": list(CANONICAL_STATUSES),
        "transitions": {k: list(v) for k, v in TRANSITIONS.items()},
        "status_map": dict(spec.status_map),
        "messages": list(catalog.messages),
        "translations": catalog.translations,
        "source_locale": catalog.source_locale,
        # the platform's code for each client locale (template.yaml locale_codes) and its text direction
        "locale_codes": {loc: _locale_code(template, loc) for loc in config.locales},
        "locale_dirs": {loc: catalog.direction(loc) for loc in config.locales},
        "bank_ids": iban.render_data(config.payment_methods),
    }
    # template.yaml `vars` are small templates themselves (e.g. a namespace built from ids); they are
    # escaped where they are used, like any other value
    context["vars"] = {
        name: escape.Tagged(render_string(text, context), derived_field(f"vars.{name}", text, spec.platform))
        for name, text in spec.vars.items()
    }
    return context


_LOCALE_CODE = re.compile(r"^[A-Za-z]{2,3}(?:[_-][A-Za-z]{2,4})?$")


def _locale_code(template: Template, locale: str) -> escape.Tagged:
    """The platform's code for a catalog locale (template.yaml locale_codes), e.g. fi_FI -> fi on WordPress."""
    code = template.spec.locale_codes.code(locale, lambda rule: render_string(rule, {"locale": locale}))
    if not _LOCALE_CODE.match(code):
        raise RenderError(f"template.yaml locale_codes: {locale} -> {code!r} is not a language code (ll, ll_CC, ll-cc)")
    return escape.Tagged(code, "locales")


def derived_field(name: str, text: str, platform: str) -> str:
    """`name`, plus the config fields its template reads: an error in a derived value names its source."""
    try:
        parsed = _VALUE_ENV.parse(text)
    except jinja2.TemplateError:
        return name
    sources = set()
    for node in parsed.find_all(jinja2.nodes.Getattr):
        if isinstance(node.node, jinja2.nodes.Name) and node.node.name == "client":
            sources.add("api_base_url" if node.attr == "api_base" else node.attr)
        elif isinstance(node.node, jinja2.nodes.Name) and node.node.name == "ids":
            sources.add(f"platforms.{platform}.slug" if node.attr in SLUG_KEYS else "id")
    return f"{name} (derived from {', '.join(sorted(sources))})" if sources else name


_VALUE_ENV = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
_VALUE_ENV.filters["re"] = re.escape


def render_string(text: str, context: Mapping[str, Any]) -> str:
    """Render a template.yaml value (a var, the artifact name, a rule pattern) with the plugin's context."""
    if "{{" not in text and "{%" not in text:
        return text
    try:
        return _VALUE_ENV.from_string(text).render(context)
    except jinja2.TemplateError as exc:
        raise RenderError(f"template.yaml value {text!r}: {exc}") from None


def _render_path(path_env: ImmutableSandboxedEnvironment, rel: str, context: Mapping[str, Any]) -> str:
    rendered = path_env.from_string(rel).render(context) if "{{" in rel else rel
    if rendered.endswith(RENDER_SUFFIX):
        rendered = rendered[: -len(RENDER_SUFFIX)]
    parts = rendered.split("/")
    for part in parts:
        escape.path_segment(part)
    return "/".join(parts)


def render(
    template: Template,
    config: ClientConfig,
    catalog: Catalog | None = None,
    context: Mapping[str, Any] | None = None,
) -> RenderedTree:
    """Render `template` for `config`. Raises RenderError naming the template file and the problem.
    `context`: the render context already made for this pair (plan.PluginPlan), else made here."""
    spec = template.spec
    if spec.platform not in config.enabled_platforms():
        raise RenderError(f"client {config.id!r} does not enable platform {spec.platform!r}")
    if context is None:
        if catalog is None:
            catalog = load_catalog(template.templates_dir / SHARED_DIR / "i18n", list(config.locales))
        context = render_context(template, config, catalog)
    env = _environment(template)
    path_env = _path_environment()
    files: dict[str, bytes] = {}
    for rel, source in template.source_files():
        try:
            per_locale = "locale" in jinja2.meta.find_undeclared_variables(path_env.parse(rel))
            for locale in config.locales if per_locale else [None]:
                ctx = {**context, "locale": escape.Tagged(locale, "locales")} if locale else context
                out_path = _render_path(path_env, rel, ctx)
                if out_path in files:
                    raise RenderError(f"renders to {out_path!r}, which another template file already produced")
                if source.name.endswith(RENDER_SUFFIX):
                    text = env.from_string(source.read_text(encoding="utf-8")).render(ctx)
                    files[out_path] = text.encode("utf-8")
                else:
                    files[out_path] = source.read_bytes()
        except RenderError as exc:
            raise RenderError(f"{source}: {exc}") from None
        except jinja2.TemplateError as exc:
            line = getattr(exc, "lineno", None)
            where = f"{source}:{line}" if line else str(source)
            raise RenderError(f"{where}: {type(exc).__name__}: {exc}") from None
    if spec.compile_mo:
        for path in [p for p in files if p.endswith(".po")]:
            try:
                files[path[:-3] + ".mo"] = compile_mo(parse_po(files[path].decode()))
            except ValueError as exc:
                raise RenderError(f"{path}: {exc}") from None
    return RenderedTree(
        client_id=config.id,
        platform=spec.platform,
        plugin_version=spec.version,
        build=context["plugin"]["build"],
        files=files,
    )


def write_tree(tree: RenderedTree, out_dir: Path) -> Path:
    """Write `tree` to `out_dir`, replacing what was there, all or nothing."""
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for rel, data in sorted(tree.files.items()):
            target = (staging / rel).resolve()
            if staging not in target.parents:
                raise RenderError(f"{rel}: would be written outside the output directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            os.chmod(target, 0o644)
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
            os.replace(out_dir, old)
        os.replace(staging, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def read_tree(root: Path, client_id: str, platform: str, plugin_version: str, build: str) -> RenderedTree:
    files = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
    return RenderedTree(client_id, platform, plugin_version, build, files)

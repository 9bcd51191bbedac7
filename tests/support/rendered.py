"""One plugin rendered from the real templates and written to disk, for the template tests that execute it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from psp_assets.core.config.model import ClientConfig
from psp_assets.core.i18n import load_catalog
from psp_assets.core.render.engine import RenderedTree, render, render_context, write_tree
from psp_assets.core.templates.spec import SHARED_DIR, Template, load_template
from tests.conftest import TEMPLATES


@dataclass(frozen=True)
class RenderedPlugin:
    config: ClientConfig
    template: Template
    tree: RenderedTree
    root: Path
    context: dict[str, Any]

    def text(self, path: str) -> str:
        return self.tree.files[path].decode()


P = TypeVar("P", bound=RenderedPlugin)


def render_to(platform: str, config: ClientConfig, where: Callable[[dict[str, Any]], Path], kind: type[P]) -> P:
    """Render `platform` for `config` and write it to `where(ids)` (the folder the platform installs it in)."""
    template = load_template(TEMPLATES, platform)
    catalog = load_catalog(TEMPLATES / SHARED_DIR / "i18n", list(config.locales))
    tree = render(template, config, catalog)
    context = render_context(template, config, catalog)
    return kind(config, template, tree, write_tree(tree, where(context["ids"])), context)

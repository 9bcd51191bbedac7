"""The names a generated plugin puts into a store's shared namespaces, derived from the client.

Two banks' plugins for one platform may be installed in the same store, so every name that is global
there (slug, PHP namespace, option and table prefix, REST namespace, script handle, gateway id ...) is
derived from the client id or the client's slug. Platforms compare some of these names loosely (PHP
class names ignore case; PrestaShop's module name drops the slug's '-'; OpenCart turns `psp_nord_bank`
into the namespace `PspNordBank`), so two clients whose names differ only in case, '-' or '_' would
still collide: `clashes` finds them and `config.load_fleet` refuses the later config.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from psp_assets.core.config.model import ClientConfig

# Keys of PluginIdentity.as_context() that come from the slug (the others come from the client id).
SLUG_KEYS = frozenset({"slug", "module", "text_domain", "rest_namespace", "js_handle"})


@dataclass(frozen=True)
class PluginIdentity:
    """Every name a generated plugin puts into a shared namespace, derived from the client id (and the
    slug), so that two banks' plugins installed in one store never collide."""

    client_id: str
    slug: str

    @property
    def studly(self) -> str:
        return "".join(part.capitalize() for part in self.client_id.split("-"))

    @property
    def snake(self) -> str:
        return self.client_id.replace("-", "_")

    def as_context(self) -> dict[str, str]:
        studly, snake = self.studly, self.snake
        return {
            "slug": self.slug,
            "module": re.sub(r"[^a-z0-9]", "", self.slug),
            "php_namespace": f"Psp{studly}",
            "vendor": f"Psp{studly}",
            "prefix": f"psp_{snake}",
            "const_prefix": f"PSP_{snake.upper()}",
            "text_domain": self.slug,
            "rest_namespace": f"{self.slug}/v1",
            "js_handle": f"{self.slug}-checkout",
            "gateway_id": f"psp_{snake}",
            "composer_vendor": f"psp-{self.client_id}",
        }


def identity_for(config: ClientConfig, platform: str) -> PluginIdentity:
    settings = config.platform(platform)
    slug = settings.slug if settings is not None and settings.slug else f"{config.id}-payments"
    return PluginIdentity(client_id=config.id, slug=slug)


def folded(name: str) -> str:
    """A name as the loosest platform compares it: case, '-' and '_' ignored."""
    return re.sub(r"[-_]", "", name).lower()


def clashes(a: PluginIdentity, b: PluginIdentity) -> list[tuple[str, str, str]]:
    """(key, a's name, b's name) for every derived name the two plugins would share in one store."""
    names_a, names_b = a.as_context(), b.as_context()
    return [(key, names_a[key], names_b[key]) for key in names_a if folded(names_a[key]) == folded(names_b[key])]


def clash_problem(label: str, config: ClientConfig, other: ClientConfig, other_label: str) -> str | None:
    """The problem of `config` (file `label`) next to `other`, an already accepted client: None when the two
    clients' plugins can be installed side by side on every platform both enable."""
    for platform in config.enabled_platforms():
        if platform not in other.enabled_platforms():
            continue
        found = clashes(identity_for(config, platform), identity_for(other, platform))
        if not found:
            continue
        names = ", ".join(f"{key} {mine!r} ~ {theirs!r}" for key, mine, theirs in found)
        if all(key in SLUG_KEYS for key, _, _ in found):
            where, fix = f"platforms.{platform}.slug", f"set platforms.{platform}.slug to a name of its own"
        else:
            where, fix = "id", "choose a client id that differs in more than case, '-' or '_'"
        return (
            f"{label}: {where}: the {platform} plugin would share names with client {other.id!r} ({other_label}) "
            f"in a store that installs both ({names}; compared ignoring case, '-' and '_'); {fix}"
        )
    return None

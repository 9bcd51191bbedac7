"""Templates and translation catalogs loaded once for a batch of plugins, not once per plugin.

Rendering, testing, building and deploying a plugin each need its platform's template (spec parsed and
validated, content hash over every file) and the client's translation catalog. Over a fleet that is the
same few templates loaded hundreds of times. A `TemplateCache` loads each one once and hands out the
same object after that; make one per run (or per loop) and drop it afterwards, so an edit on disk is
seen by the next run, never half-way through one.
"""

from __future__ import annotations

import threading
from pathlib import Path

from psp_assets.core.i18n import Catalog, load_catalog
from psp_assets.core.templates.spec import SHARED_DIR, Template, load_template


class TemplateCache:
    """`template(dir, platform, contract)` and `catalog(template, locales)`, each loaded at most once.
    Errors are not cached: a template that fails to load fails again, with its message, on every call."""

    def __init__(self) -> None:
        self._templates: dict[tuple[Path, str, Path | None], Template] = {}
        self._catalogs: dict[tuple[Path, tuple[str, ...]], Catalog] = {}
        self._lock = threading.Lock()
        self.loads = 0  # templates actually read from disk (what tests and benchmarks count)

    def template(self, templates_dir: Path, platform: str, contract: Path | None = None) -> Template:
        key = (Path(templates_dir).resolve(), platform, contract)
        with self._lock:
            found = self._templates.get(key)
        if found is None:
            found = load_template(templates_dir, platform, contract)
            with self._lock:
                found = self._templates.setdefault(key, found)
                self.loads += 1
        return found

    def catalog(self, template: Template, locales: list[str] | tuple[str, ...]) -> Catalog:
        i18n = (template.templates_dir / SHARED_DIR / "i18n").resolve()
        key = (i18n, tuple(locales))
        with self._lock:
            found = self._catalogs.get(key)
        if found is None:
            found = load_catalog(i18n, list(locales))
            with self._lock:
                found = self._catalogs.setdefault(key, found)
        return found

"""Our escaping filters as a Jinja extension, for the Copier comparison in bench/fleet.py.

Copier loads it through the template's `_jinja_extensions: [copier_escape.PspEscapeFilters]` (bench/ is
on sys.path when bench/fleet.py runs), so Copier renders our templates with exactly our filters.
"""

from __future__ import annotations

from jinja2 import Environment
from jinja2.ext import Extension

from psp_assets.core.render import escape


class PspEscapeFilters(Extension):
    """Registers `php`, `js`, `json`, `xml`, `po`, `csv`, `header`, `ident` and `slug`
    (psp_assets.core.render.escape)."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters.update(escape.FILTERS)

"""The PHP stand-ins of the platforms, kept as PHP files in tests/standins/<platform>/ (linted by
tests/standins/test_lint.py) and read by the tests that run them with the machine's PHP.

A platform that cannot be installed here (WordPress with WooCommerce, Magento 2, PrestaShop, OpenCart) is
imitated by the part of its API the rendered plugin calls; a scenario file drives it. tests/standins/_shared/
holds the PHP helper scripts that are not one platform's (a symbol lister, a class loader, a transport driver).
"""

from __future__ import annotations

from pathlib import Path

STANDINS = Path(__file__).resolve().parents[1] / "standins"
OPEN_TAG = "<?php"


def standin_path(platform: str, name: str) -> Path:
    """tests/standins/<platform>/<name>, which must exist."""
    path = STANDINS / platform / name
    if not path.is_file():
        raise FileNotFoundError(f"no PHP stand-in {path.relative_to(STANDINS.parent)}")
    return path


def standin(platform: str, *names: str) -> str:
    """The stand-in files `names` of `platform` as one PHP script, in order: the first keeps its `<?php`
    tag, each later one loses its own (a stand-in's API first, then the scenario that drives it)."""
    if not names:
        raise ValueError("standin() needs at least one file name")
    texts = [standin_path(platform, name).read_text() for name in names]
    for name, text in zip(names[1:], texts[1:], strict=True):
        if not text.startswith(OPEN_TAG):
            raise ValueError(f"tests/standins/{platform}/{name} must start with {OPEN_TAG}")
    return texts[0] + "".join(text.removeprefix(OPEN_TAG) for text in texts[1:])

"""Every PHP stand-in under tests/standins/ is valid PHP for the machine's PHP, the one that runs it
(Debian's php-cli through NativePhp, as the template tests run them), and none is left in a Python string.

The stand-ins never ship: they imitate the part of a platform a rendered plugin calls, so they need the
PHP the tests execute them with, not the plugins' whole 7.4 ... 8.5 range (tests/compat/ covers that).
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from psp_assets.core.runtimes.php import NativePhp
from tests.support.standins import STANDINS, standin

TESTS = STANDINS.parent
FILES = sorted(path.relative_to(STANDINS).as_posix() for path in STANDINS.rglob("*.php"))
# a string constant this long that opens with <?php is a stand-in that belongs in tests/standins/
MAX_INLINE_PHP_LINES = 20


def test_the_stand_ins_are_found() -> None:
    platforms = {rel.split("/")[0] for rel in FILES}
    assert {"woocommerce", "magento2", "prestashop", "opencart"} <= platforms, FILES


@pytest.mark.parametrize("rel", FILES)
def test_each_stand_in_lints_on_the_machines_php(php: NativePhp, rel: str) -> None:
    [result] = php.lint_uncached(STANDINS, [rel])
    assert result.ok, f"tests/standins/{rel} on PHP {php.version}: {result.message}"


def test_the_lint_fails_on_a_stand_in_with_a_syntax_error(php: NativePhp, tmp_path: Path) -> None:
    broken = tmp_path / "opencart" / "opencart.php"
    broken.parent.mkdir()
    shutil.copy(STANDINS / "opencart" / "opencart.php", broken)
    text = broken.read_text()
    cut = text.rindex("}")  # the last closing brace: an unclosed namespace block
    broken.write_text(text[:cut] + text[cut + 1 :])
    [result] = php.lint_uncached(tmp_path, ["opencart/opencart.php"])
    assert not result.ok and "opencart.php" in result.message


@pytest.mark.parametrize("rel", [rel for rel in FILES if rel.count("/") == 1])
def test_each_stand_in_is_read_by_a_test(rel: str) -> None:
    name = rel.split("/")[1]
    sources = [p.read_text() for p in TESTS.rglob("*.py") if p.name != Path(__file__).name]
    assert any(f'"{name}"' in text for text in sources), f"tests/standins/{rel} is read by no test: delete it"


def test_a_stand_in_made_of_several_files_keeps_one_open_tag() -> None:
    script = standin("woocommerce", "wordpress.php", "runtime_scenario.php")
    assert script.startswith("<?php") and script.count("<?php\n") == 1


def test_no_php_stand_in_is_left_in_a_python_string() -> None:
    found = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
                if text.lstrip().startswith("<?php") and text.count("\n") > MAX_INLINE_PHP_LINES:
                    found.append(f"{path.relative_to(TESTS.parent)}:{node.lineno}")
    assert found == [], f"PHP stand-ins in Python strings (move them to tests/standins/<platform>/): {found}"

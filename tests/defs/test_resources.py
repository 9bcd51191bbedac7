"""PhpResource: PSP_PHP_MATRIX decides, for the whole process, whether test_report runs on every PHP version
a template declares or on the machine's PHP only (make test-fast); a value it does not know is refused."""

from __future__ import annotations

import dagster as dg
import pytest

from psp_assets.defs.resources import MATRIX_ENV, PhpResource


@pytest.mark.parametrize(
    ("env", "matrix", "expected"),
    [(None, True, True), ("1", True, True), ("0", True, False), (None, False, False), ("1", False, False)],
)
def test_the_matrix_runs_unless_the_config_or_PSP_PHP_MATRIX_turns_it_off(
    monkeypatch: pytest.MonkeyPatch, env: str | None, matrix: bool, expected: bool
) -> None:
    if env is None:
        monkeypatch.delenv(MATRIX_ENV, raising=False)
    else:
        monkeypatch.setenv(MATRIX_ENV, env)
    assert PhpResource(matrix=matrix).on_every_php is expected


def test_an_unknown_PSP_PHP_MATRIX_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MATRIX_ENV, "no")
    with pytest.raises(dg.Failure, match=r"PSP_PHP_MATRIX='no': expected 0 .* or 1"):
        PhpResource().on_every_php  # noqa: B018

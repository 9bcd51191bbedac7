"""IBAN/BIC rules against the shared vectors (the plugins will be checked against the same file)."""

import json
from pathlib import Path

import pytest

from psp_assets.core.iban import bic_problem, iban_problem, normalize_iban

VECTORS = json.loads((Path(__file__).parents[2] / "psp_assets" / "contract" / "bank_id_vectors.json").read_text())


@pytest.mark.parametrize("iban", VECTORS["iban_valid"])
def test_valid_ibans_from_many_countries_pass(iban):
    assert iban_problem(iban) == ""


@pytest.mark.parametrize(("iban", "why"), VECTORS["iban_invalid"].items())
def test_invalid_ibans_are_refused_for_the_right_reason(iban, why):
    problem = iban_problem(iban)
    expected = {
        "check digits": "check digits",
        "length": "characters, not",
        "country": "not accepted",
        "format": "starts with",
    }
    assert expected[why] in problem


def test_the_vectors_cover_at_least_ten_countries():
    assert len({normalize_iban(i)[:2] for i in VECTORS["iban_valid"]}) >= 10


@pytest.mark.parametrize("bic", VECTORS["bic_valid"])
def test_valid_bics_pass(bic):
    assert bic_problem(bic) == ""


@pytest.mark.parametrize("bic", VECTORS["bic_invalid"])
def test_malformed_bics_are_refused(bic):
    assert bic_problem(bic) != ""

"""IBAN/BIC rules against the shared vectors (the plugins will be checked against the same file)."""

import json
from pathlib import Path

import pytest

from psp_assets.core.payments.iban import bic_problem, iban_problem, normalize_iban

VECTORS = json.loads((Path(__file__).parents[3] / "psp_assets" / "contract" / "bank_id_vectors.json").read_text())


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


# --- the same vectors through config validation (a client's payout account) -----------------------------


@pytest.mark.parametrize("value", [*VECTORS["iban_valid"], *VECTORS["iban_invalid"]])
def test_config_validation_accepts_and_refuses_each_iban_vector_as_core_iban_does(value):
    from psp_assets.core.errors import ConfigError
    from tests.conftest import make_client

    problem = iban_problem(value)
    if problem == "":
        config = make_client(settlement={"iban": value})
        assert config.settlement.iban == normalize_iban(value)
    else:
        with pytest.raises(ConfigError) as refused:
            make_client(settlement={"iban": value})
        assert refused.value.problems == [f"test.yaml: settlement.iban: {problem} (got {value!r})"]


@pytest.mark.parametrize("value", [*VECTORS["bic_valid"], *VECTORS["bic_invalid"]])
def test_config_validation_accepts_and_refuses_each_bic_vector_as_core_iban_does(value):
    from psp_assets.core.errors import ConfigError
    from tests.conftest import make_client

    account = {"iban": "NL91ABNA0417164300", "bic": value}
    if bic_problem(value) == "":
        assert make_client(settlement=account).settlement.bic == value.strip().upper()
    else:
        with pytest.raises(ConfigError) as refused:
            make_client(settlement=account)
        assert refused.value.problems == [f"test.yaml: settlement.bic: {bic_problem(value)} (got {value!r})"]


def test_the_payout_account_is_kept_in_electronic_form_and_rebuilds_no_plugin():
    from tests.conftest import make_client

    typed = make_client(settlement={"iban": "nl91 abna 0417 1643 00", "bic": "abnanl2a"})
    assert (typed.settlement.iban, typed.settlement.bic) == ("NL91ABNA0417164300", "ABNANL2A")
    assert typed.config_hash() == make_client().config_hash()  # an operations setting: no plugin embeds it

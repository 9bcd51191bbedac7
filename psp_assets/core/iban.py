"""IBAN (ISO 13616) and BIC (ISO 9362) validation: the rules the plugins apply at the edge, kept once here
with shared test vectors (psp_assets/contract/bank_id_vectors.json) so both sides agree."""

from __future__ import annotations

import re

# Registered IBAN lengths per country (SWIFT IBAN registry) for the countries the PSP serves, SEPA and
# a few more. A country missing here is not accepted: a payout account must be in a known format.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20,
    "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GI": 23, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IS": 26,
    "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28,
    "PT": 25, "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "VA": 22,
}  # fmt: skip

BIC_PATTERN = re.compile(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?")


def normalize_iban(value: str) -> str:
    """Upper case without spaces: the electronic form."""
    return re.sub(r"\s+", "", value).upper()


def iban_problem(value: str) -> str:
    """'' when `value` is a valid IBAN, else why not (in English; plugins translate by message id)."""
    iban = normalize_iban(value)
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{1,30}", iban):
        return "an IBAN starts with a country code and two check digits, followed by letters and digits"
    country = iban[:2]
    if country not in IBAN_LENGTHS:
        return f"IBANs from {country} are not accepted"
    if len(iban) != IBAN_LENGTHS[country]:
        return f"an IBAN from {country} has {IBAN_LENGTHS[country]} characters, not {len(iban)}"
    digits = "".join(str(int(c, 36)) for c in iban[4:] + iban[:4])
    if int(digits) % 97 != 1:
        return "the IBAN check digits do not match (a typing error?)"
    return ""


def bic_problem(value: str) -> str:
    """'' when `value` is a well-formed BIC (8 or 11 characters: bank, country, location, branch)."""
    bic = value.strip().upper()
    if not BIC_PATTERN.fullmatch(bic):
        return (
            "a BIC has 8 or 11 characters: 4 letters (bank), 2 letters (country), "
            "2 letters or digits (location) and an optional 3-character branch"
        )
    if bic[4:6] not in IBAN_LENGTHS and bic[4:6] not in {"US", "CA", "JP", "AU", "CN", "SG", "HK"}:
        return f"the BIC's country code {bic[4:6]} is not a known country"
    return ""

"""IBAN (ISO 13616) and BIC (ISO 9362) validation: the rules the plugins apply at the edge, kept once here
with shared test vectors (psp_assets/contract/bank_id_vectors.json) so both sides agree.

The generated plugins do not copy these rules by hand: `render_data()` hands the country table, the
accepted BIC countries and the space characters to the templates (the PHP core's `BankAccount`, the
Shopify app's JavaScript core), and the contract tests run the same vectors through them.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
from collections.abc import Sequence
from typing import Any

# Registered IBAN lengths per country (SWIFT IBAN registry) for the countries the PSP serves, SEPA and
# a few more. A country missing here is not accepted: a payout account must be in a known format.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20,
    "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GI": 23, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IS": 26,
    "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "NL": 18, "NO": 15, "PL": 28,
    "PT": 25, "RO": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "VA": 22,
}  # fmt: skip

# Countries outside the IBAN table whose banks' BICs are accepted (correspondent banks).
BIC_OTHER_COUNTRIES: tuple[str, ...] = ("AU", "CA", "CN", "HK", "JP", "SG", "US")

# What an IBAN as typed or pasted may contain besides its characters: ASCII whitespace and the
# non-breaking spaces that statements and PDFs use. Listed as code points so every implementation
# removes exactly the same characters (a language's own "\s" differs between Python, PHP and JS).
SPACES: tuple[int, ...] = (0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0xA0, 0x2007, 0x202F)

BIC_PATTERN = re.compile(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}([A-Z0-9]{3})?")
_IBAN_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{1,30}")
_SPACE_RUN = re.compile("[" + "".join(re.escape(chr(c)) for c in SPACES) + "]+")

# Reason codes, shared with the plugins (which show their own translated message for each).
IBAN_REASONS = ("format", "country", "length", "checksum")
BIC_REASONS = ("format", "country")


_ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)


def _ascii_upper(value: str) -> str:
    # Only ASCII letters are upper-cased: Unicode case mapping turns e.g. U+017F (long s) into 'S', which the
    # plugins' byte-wise checks would not, and both sides must agree.
    return value.translate(_ASCII_UPPER)


def normalize_iban(value: str) -> str:
    """Upper case without spaces: the electronic form."""
    return _ascii_upper(_SPACE_RUN.sub("", value))


def normalize_bic(value: str) -> str:
    """Upper case, surrounding spaces removed (inner spaces stay, and make the BIC invalid)."""
    spaces = "".join(chr(c) for c in SPACES)
    return _ascii_upper(value.strip(spaces))


def mod97(iban: str) -> int:
    """ISO 7064 MOD 97-10 of an IBAN's rearranged form (letters as 10..35); 1 when the check digits match."""
    remainder = 0
    for char in iban[4:] + iban[:4]:
        value = int(char, 36)
        remainder = (remainder * (100 if value > 9 else 10) + value) % 97
    return remainder


def iban_reason(value: str) -> str:
    """'' when `value` is a valid IBAN, else one of IBAN_REASONS."""
    iban = normalize_iban(value)
    if not _IBAN_SHAPE.fullmatch(iban):
        return "format"
    if iban[:2] not in IBAN_LENGTHS:
        return "country"
    if len(iban) != IBAN_LENGTHS[iban[:2]]:
        return "length"
    return "" if mod97(iban) == 1 else "checksum"


def iban_problem(value: str) -> str:
    """'' when `value` is a valid IBAN, else why not (in English; plugins translate by reason code)."""
    reason = iban_reason(value)
    iban = normalize_iban(value)
    country = iban[:2]
    return {
        "": "",
        "format": "an IBAN starts with a country code and two check digits, followed by letters and digits",
        "country": f"IBANs from {country} are not accepted",
        "length": f"an IBAN from {country} has {IBAN_LENGTHS.get(country)} characters, not {len(iban)}",
        "checksum": "the IBAN check digits do not match (a typing error?)",
    }[reason]


def bic_reason(value: str) -> str:
    """'' when `value` is a well-formed BIC of a known country, else one of BIC_REASONS."""
    bic = normalize_bic(value)
    if not BIC_PATTERN.fullmatch(bic):
        return "format"
    if bic[4:6] not in IBAN_LENGTHS and bic[4:6] not in BIC_OTHER_COUNTRIES:
        return "country"
    return ""


def bic_problem(value: str) -> str:
    """'' when `value` is a well-formed BIC (8 or 11 characters: bank, country, location, branch)."""
    reason = bic_reason(value)
    if reason == "format":
        return (
            "a BIC has 8 or 11 characters: 4 letters (bank), 2 letters (country), "
            "2 letters or digits (location) and an optional 3-character branch"
        )
    if reason == "country":
        return f"the BIC's country code {normalize_bic(value)[4:6]} is not a known country"
    return ""


def debtor_collection(payment_methods: Sequence[str]) -> str:
    """How a checkout collects the debtor's IBAN: '' (no SEPA Direct Debit), 'required' (it is the only
    payment method) or 'optional' (the shopper may choose another method on the PSP's payment page)."""
    if "sepa_direct_debit" not in payment_methods:
        return ""
    return "required" if list(payment_methods) == ["sepa_direct_debit"] else "optional"


def check_debtor(iban: str, bic: str, required: bool) -> dict[str, Any]:
    """The debtor account a shopper entered, as the plugins check it (BankAccount::checkDebtor).

    Returns {"errors": [codes], "debtor": {"iban", "bic"?} | None}; codes are "iban_missing",
    "iban_<reason>" and "bic_<reason>". An empty optional IBAN is no debtor; a BIC without an IBAN is
    an error (the BIC alone identifies no account).
    """
    errors: list[str] = []
    number, code = normalize_iban(iban), normalize_bic(bic)
    if number == "":
        if required or code != "":
            errors.append("iban_missing")
    elif reason := iban_reason(number):
        errors.append(f"iban_{reason}")
    if code != "" and (reason := bic_reason(code)):
        errors.append(f"bic_{reason}")
    if errors or number == "":
        return {"errors": errors, "debtor": None}
    return {"errors": [], "debtor": {"iban": number, **({"bic": code} if code else {})}}


def render_data(payment_methods: Sequence[str]) -> dict[str, Any]:
    """What templates need to apply these rules: `bank_ids` in the render context."""
    return {
        "iban_lengths": dict(sorted(IBAN_LENGTHS.items())),
        "bic_countries": sorted(set(IBAN_LENGTHS) | set(BIC_OTHER_COUNTRIES)),
        "spaces": list(SPACES),
        "collect": debtor_collection(payment_methods),
    }


def rules_digest() -> str:
    """sha256 of the tables the plugins are generated from: a changed table changes every template hash."""
    tables = {"iban_lengths": IBAN_LENGTHS, "bic_other_countries": BIC_OTHER_COUNTRIES, "spaces": SPACES}
    return hashlib.sha256(json.dumps(tables, sort_keys=True).encode()).hexdigest()

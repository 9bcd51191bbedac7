"""The published JSON Schema and `psp validate` agree: an engineer whose editor shows a config green must not
see `psp validate` turn it red.

A seeded mutator derives hundreds of configs from valid ones (near-miss values per field, wrong types,
removed and added keys, repeated items, pairs of settings that exclude each other) and feeds each to the
schema (jsonschema, evaluating patterns as ECMA-262 does, like editors) and to `psp validate`'s checks.
The schema may be stricter; it may not accept a config `psp validate` rejects, except for the rules only
code can check, listed in config.CODE_ONLY_RULES.
"""

from __future__ import annotations

import copy
import json
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from psp_assets.cli import SCHEMA_PATH
from psp_assets.core.config.fleet import template_problems
from psp_assets.core.config.model import CODE_ONLY_RULES, json_schema, parse_client, shipped_locales
from psp_assets.core.errors import ConfigError
from tests.conftest import DEMO_CLIENTS, TEMPLATES

SEED = 20261207
CASES = 800
LABEL = "client_configs/mutant.yaml"
KEY = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"

# Every section of the model, with values validate accepts: the mutations start from here and the demo clients.
RICH: dict[str, Any] = {
    "id": "rich-bank",
    "name": "Rich Bank",
    "api_base_url": "https://api.rich.psp.example:8443/v2",
    "locales": ["de_DE", "en_US"],
    "currencies": ["EUR", "CHF"],
    "payment_methods": ["card", "sepa_direct_debit"],
    "checkout": {"title": "Pay", "description": "Two\nlines"},
    "webhooks": {"tolerance_seconds": 600},
    "settlement": {"iban": "NL91 ABNA 0417 1643 00", "bic": "ABNANL2A"},
    "reconciliation": {
        "stores": [
            {
                "name": "shop",
                "platform": "woocommerce",
                "api_base_url": "https://shop.rich.example/",
                "key_env": "RICH_KEY",
                "secret_env": "RICH_SECRET",
            },
            {"name": "export", "platform": "magento2", "export_file": "exports/orders.csv"},
        ]
    },
    "github": {
        "organization": "rich-bank",
        "repository": "plugins",
        "repositories": {"magento2": "rich-magento"},
        "base_url": "https://ghe.rich.example/api/v3",
        "app": {"app_id": 1, "installation_id": 2, "private_key_env": "RICH_APP_PRIVATE_KEY"},
        "source": {"repository": "plugin-source", "base_branch": "release/2026"},
    },
    "platforms": {
        "woocommerce": {
            "slug": "rich-payments",
            "targets": [
                {
                    "name": "staging",
                    "transport": "local",
                    "path": "rich/wp-content/plugins/rich-payments",
                    "health": {"store_url": "http://127.0.0.1:8080/", "count": 4, "failure_limit": 3},
                },
                {
                    "name": "prod",
                    "transport": "sftp",
                    "host": "shop.rich.example",
                    "user": "deploy",
                    "private_key_env": "RICH_SSH_KEY",
                    "known_host": f"ssh-ed25519 {KEY}",
                    "path": "/var/www/plugins/rich",
                },
            ],
        },
        "shopify": {"enabled": False},
        "opencart": None,
    },
}

# Near misses per setting (by its key), then generic wrong values: what a person or a tool gets wrong.
NEAR: dict[str, list[Any]] = {
    "id": ["Rich", "r", "rich_bank", "-rich", "rich-" + "x" * 40, "rich\n", " rich"],
    "name": ["R", "Rich */ Bank", "Rich <b>", "Rich\nBank", "x" * 81, "Rich Bänk"],
    "api_base_url": [
        "http://api.rich.example/v1",
        "https://{$x}${x}/v1",
        "https://a..b/",
        "https://" + "a" * 64 + ".example/",
        "https://" + "a." * 130 + "example/",
        "https://api.rich.example:99999/",
        "https://api.rich.example:0/",
        "https://u:p@api.rich.example/",
        "https://api.rich.example/v1?x=1",
        "https://api.rich.example/v1#f",
        "https://api.rich.example/v 1",
        "https://api.rich.example/v1%20",
        "https://10.0.0.1/v1",
        "https://api.example.123/",
        "https://api_rich.example/",
        "https://-api.example/",
        "ftp://api.rich.example/",
        "https:///v1",
        "https://api.rich.example",
    ],
    "locales": ["en_us", "xx_XX", "de_AT", "en", "nl-NL", "NL_nl", "sv_SE", "pt_BR", "ar"],
    "currencies": ["eur", "EURO", "EU", "BTC", "XXX", "Eur", " EUR"],
    "payment_methods": ["cards", "iDEAL", "klarna", "blik"],
    "title": ["", "Tab\there", "Line\nbreak", "x" * 201],
    "description": ["Bell\x07", "cr\rlf", "x" * 1001],
    "tolerance_seconds": [29, 3601, "300", 300.5, True],
    "iban": [
        "NL92ABNA0417164300",
        "NL91ABNA041716430",
        "nl91abna0417164300",
        "XX91ABNA0417164300",
        "NL91-ABNA-0417-1643-00",
        "DE89 3704 0044 0532 0130 00",
        "DE88 3704 0044 0532 0130 00",
        "",
    ],
    "bic": ["ABNANL2", "ABNAXX2A", "abnanl2a", "ABNANL2AXXX", "ABNANL2AXX", "ABNA NL2A", "1BNANL2A", "DEUTDEFF500"],
    "name_target": ["Prod", "prod_1", "-prod", "p" * 32],
    "transport": ["ftp", "SFTP", "local "],
    "path": [
        "../x",
        "/abs/path",
        "a//b",
        "a/./b",
        "a/../b",
        "a/",
        ".",
        "a\\b",
        "a b",
        "/var/www/../x",
        "/var//www",
        "/",
        "var/www",
        "/var/www/",
        "x" * 241,
    ],
    "host": ["-host", "host name", "h" * 254, "host:22"],
    "user": ["Root", "1user", "u" * 33],
    "port": [0, 65536, "22"],
    "known_host": [
        "ssh-ed25519",
        "ssh-ed25519 short",
        f"rsa {KEY}",
        f"example.com ssh-rsa {KEY}",
        f"ssh-ed25519 {KEY}!",
    ],
    "private_key_env": ["key", "RICH_KEY_PEM", "RICH_PRIVATE_KEY"],
    "private_key_file": ["keys/id_ed25519", "../id", "/root/.ssh/id"],
    "keep_releases": [1, 51],
    "count": [0, 1, 31, 2],
    "failure_limit": [0, 3, 4, 30, -1],
    "interval_seconds": [-1, 61],
    "timeout_seconds": [0, 61],
    "store_url": ["ftp://shop/", "http://u@shop.example/", "http://shop..example/", "https://shop.example/x?y#z"],
    "health_url": ["http://{x}/health", "https://shop.example:0/"],
    "export_file": ["orders.txt", "../orders.csv", "/orders.csv", "dir/orders.parquet"],
    "secret_env": [None, "secret"],
    "key_env": ["key"],
    "platform": ["wix", "WooCommerce"],
    "organization": ["rich bank", "-rich", "r" * 40],
    "repository": [".", "..", "a/b", "r" * 101],
    "base_url": [
        "http://ghe.rich.example/api/v3",
        "https://ghe.rich.example/api",
        "https://api.github.com/api/v3",
        "https://api.github.com/",
        "https://API.GITHUB.COM",
        "http://127.0.0.1:8080/api/v3",
        "http://localhost/api/v3",
        "https://ghe.rich.example:0/api/v3",
        "https://ghe.rich.example/api/v3?x",
        "https://{x}/api/v3",
    ],
    "token_env": ["RICH_TOKEN", "RICH_PAT", "rich_token", "RICH_GITHUB_TOKEN"],
    "base_branch": ["main", "a..b", ".hidden", "x.lock", "-x", "a//b", "feature/", "release/2026.", "ma in"],
    "app_id": [0, -1, "1"],
    "installation_id": [0],
    "enabled": [False, True, "no"],
    "slug": ["Rich", "rich_payments", "r", "rich-payments-", "rich-" + "p" * 50],
    "max_open_hours": [0, 721],
    "min_authorization_rate": [1.5, -0.1],
}
GENERIC: list[Any] = [None, True, 0, -1, 1.5, "", " ", "x", "X" * 300, [], {}, ["x"], {"x": 1}, "../x", "nl_NL"]


def _paths(node: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*path, index))


def _get(node: Any, path: tuple) -> Any:
    for part in path:
        node = node[part]
    return node


def _near(path: tuple) -> list[Any]:
    key = next((p for p in reversed(path) if isinstance(p, str)), "")
    if key == "name" and "targets" in path:
        key = "name_target"
    if key == "name" and "stores" in path:
        key = "name_target"
    return NEAR.get(key, [])


def _mutate(data: dict[str, Any], rng: random.Random) -> str:
    """Apply one mutation in place; return what it did."""
    path = rng.choice([p for p in _paths(data) if p])
    parent, last = _get(data, path[:-1]), path[-1]
    value = parent[last]
    op = rng.random()
    where = ".".join(map(str, path))
    if op < 0.45 and _near(path):
        new = rng.choice(_near(path))
        if isinstance(value, list):
            if not value:
                value.append(new)
            else:
                value[rng.randrange(len(value))] = new
        else:
            parent[last] = new
        return f"{where} = {new!r:.40}"
    if op < 0.55 and isinstance(value, list) and value:
        value.append(copy.deepcopy(rng.choice(value)))
        return f"{where}: repeated an item"
    if op < 0.6 and isinstance(value, list):
        value.clear()
        return f"{where}: emptied"
    if op < 0.7 and isinstance(parent, dict):
        del parent[last]
        return f"del {where}"
    if op < 0.75 and isinstance(value, dict):
        value[rng.choice(["extra", "Id", "token_env", "app", "export_file", "api_base_url", "enabled"])] = rng.choice(
            [*GENERIC, "RICH_TOKEN", {"app_id": 1, "installation_id": 1, "private_key_env": "X_PRIVATE_KEY"}]
        )
        return f"{where}: added a key"
    if op < 0.85 and isinstance(value, str):
        new = rng.choice(
            [value.upper(), value.lower(), value + "\n", " " + value, value + "/", value + "..", value[:1], value * 2]
        )
        parent[last] = new
        return f"{where} = {new!r:.40}"
    new = copy.deepcopy(rng.choice(GENERIC))
    parent[last] = new
    return f"{where} = {new!r:.40}"


def corpus() -> Iterator[tuple[str, dict[str, Any]]]:
    rng = random.Random(SEED)
    bases = [RICH] + [yaml.safe_load(p.read_text()) for p in sorted(DEMO_CLIENTS.glob("*.yaml"))]
    for i in range(CASES):
        data = copy.deepcopy(bases[i % len(bases)])
        steps = [_mutate(data, rng) for _ in range(rng.choice((1, 1, 1, 2, 3)))]
        yield f"#{i} from {data.get('id', '?') if isinstance(data, dict) else '?'}: " + "; ".join(steps), data


def _ecma(pattern: str) -> str:
    # ECMA-262 (what editors run): `$` matches only at the very end; Python's also before a final newline
    return re.sub(r"(?<!\\)\$", r"\\Z", pattern)


def _pattern(validator, pattern, instance, schema):  # a jsonschema keyword
    if validator.is_type(instance, "string") and not re.search(_ecma(pattern), instance):
        yield jsonschema.ValidationError(f"{instance!r:.60} does not match {pattern!r:.80}")


EditorValidator = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": _pattern})


@pytest.fixture(scope="module")
def schema_validator() -> jsonschema.Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return EditorValidator(schema)


def validate_problems(data: Any) -> list[str]:
    """What `psp validate` reports for one config (the model, then templates and catalogs)."""
    if not isinstance(data, dict):
        return [f"{LABEL}: top level is not a mapping"]
    try:
        config = parse_client(data, LABEL)
    except ConfigError as exc:
        return exc.problems
    return template_problems(config, LABEL, TEMPLATES)


def test_the_valid_bases_pass_both(schema_validator):
    for data in [RICH] + [yaml.safe_load(p.read_text()) for p in DEMO_CLIENTS.glob("*.yaml")]:
        assert validate_problems(data) == [], data["id"]
        assert [e.message for e in schema_validator.iter_errors(data)] == [], data["id"]


def test_schema_never_accepts_a_config_psp_validate_rejects(schema_validator):
    escapes, agree, stricter, code_only = [], 0, 0, 0
    for what, data in corpus():
        schema_ok = schema_validator.is_valid(data)
        problems = validate_problems(data)
        if schema_ok and problems:
            if all(any(marker in p for marker in CODE_ONLY_RULES.values()) for p in problems):
                code_only += 1
            else:
                escapes.append(f"{what}\n    validate: {problems[0]}")
        elif not schema_ok and not problems:
            stricter += 1
        else:
            agree += 1
    print(f"{CASES} mutated configs: {agree} agree, {stricter} only the schema rejects, {code_only} code-only")
    assert not escapes, f"{len(escapes)} configs the schema accepts but psp validate rejects:\n" + "\n".join(
        escapes[:15]
    )
    assert agree > CASES * 0.8, "the mutator should mostly produce configs both judge alike"


# The twelve configs the issue found the schema accepting, and then some; each must be red in the editor.
def _with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(RICH)
    for dotted, value in changes.items():
        *head, last = dotted.split("__")
        node = data
        for part in head:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return data


SCHEMA_REJECTS = {
    "lowercase currency": _with(currencies=["eur"]),
    "non-ISO currency": _with(currencies=["EURO"]),
    "repeated currency": _with(currencies=["EUR", "EUR"]),
    "locale without a catalog": _with(locales=["xx_XX"]),
    "http api_base_url": _with(api_base_url="http://api.rich.example/v1"),
    "template syntax as the API host": _with(api_base_url="https://{$x}${x}/v1"),
    "5,000-character API host": _with(api_base_url="https://" + "a" * 5000 + ".example/"),
    "../ target path": _with(platforms__woocommerce__targets__0__path="../elsewhere"),
    "absolute local target path": _with(platforms__woocommerce__targets__0__path="/var/www/x"),
    "malformed BIC": _with(settlement__bic="ABNANL2"),
    "BIC of an unknown country": _with(settlement__bic="ABNAXX2A"),
    "IBAN of the wrong length": _with(settlement__iban="NL91ABNA041716430"),
    "both token_env and app": _with(github__token_env="RICH_TOKEN"),
    "neither token_env nor app": _with(github__app=KeyError),
    "empty platforms": _with(platforms={}),
    "only disabled platforms": _with(platforms={"woocommerce": {"enabled": False}, "magento2": None}),
    "repeated locale": _with(locales=["de_DE", "de_DE"]),
    "repeated payment method": _with(payment_methods=["card", "card"]),
    "failure_limit not below count": _with(platforms__woocommerce__targets__0__health__failure_limit=4),
    "both SSH key sources": _with(platforms__woocommerce__targets__1__private_key_file="keys/id"),
    "store API without secret_env": _with(reconciliation__stores__0__secret_env=KeyError),
    "GitHub token not ending in _TOKEN": _with(github__app=KeyError, github__token_env="RICH_PAT"),
    "repository '..'": _with(github__repository=".."),
    "unknown platform in repositories": _with(github__repositories={"wix": "x"}),
    "branch ending in .lock": _with(github__source__base_branch="main.lock"),
    "line break in the checkout title": _with(checkout__title="a\nb"),
}


@pytest.mark.parametrize("data", SCHEMA_REJECTS.values(), ids=SCHEMA_REJECTS.keys())
def test_schema_rejects_what_validate_rejects(schema_validator, data):
    assert validate_problems(data), "psp validate should reject this"
    assert not schema_validator.is_valid(data)


def test_only_code_checks_the_iban_checksum_and_unique_target_names(schema_validator):
    bad_checksum = _with(settlement__iban="NL92ABNA0417164300")
    twins = _with(platforms__woocommerce__targets__1__name="staging")
    for data, marker in ((bad_checksum, "the IBAN check digits do not match"), (twins, "target names must be unique")):
        assert marker in CODE_ONLY_RULES.values()
        assert schema_validator.is_valid(data)
        assert any(marker in p for p in validate_problems(data))


def test_locale_enum_follows_the_shipped_catalogs(tmp_path):
    i18n = tmp_path / "i18n"
    shutil.copytree(TEMPLATES / "_shared" / "i18n", i18n)
    (i18n / "ga_IE.yaml").write_text((i18n / "de_DE.yaml").read_text())
    (i18n / "mt.yaml").write_text((i18n / "de_DE.yaml").read_text())
    locales = json_schema(i18n)["properties"]["locales"]["items"]["enum"]
    assert {"ga_IE", "mt", "en_US", "ar"} <= set(locales)
    assert "messages" not in locales and "locales" not in locales
    assert set(locales) - {"ga_IE", "mt"} == set(shipped_locales(TEMPLATES / "_shared" / "i18n"))


def test_published_schema_is_the_generated_one():
    assert json.loads(SCHEMA_PATH.read_text()) == json_schema(Path(TEMPLATES / "_shared" / "i18n"))

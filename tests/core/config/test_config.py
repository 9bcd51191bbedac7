import shutil
from pathlib import Path

import pytest
import yaml

from psp_assets.cli import SCHEMA_PATH
from psp_assets.core.config.fleet import load_fleet
from psp_assets.core.config.model import json_schema, load_client, parse_client, starter_config
from psp_assets.core.errors import ConfigError
from psp_assets.core.workspace import REPO_ROOT
from tests.conftest import DEMO_CLIENTS, TEMPLATES, client_dict


def problems_for(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_client(data, "client_configs/x.yaml")
    return info.value.problems


def test_demo_clients_are_valid_and_differ_in_locales_currencies_methods_and_platforms():
    fleet = load_fleet(DEMO_CLIENTS)
    assert fleet.ok, fleet.problems
    assert len(fleet.clients) == 3
    configs = [c.config for c in fleet.clients.values()]
    for attr in ("locales", "currencies", "payment_methods"):
        assert len({tuple(getattr(c, attr)) for c in configs}) == 3, attr
    assert len({tuple(c.enabled_platforms()) for c in configs}) == 3


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"id": "Nord Bank"}, "x.yaml: id: 'Nord Bank' must match"),
        ({"locales": "nl_NL"}, "x.yaml: locales: Input should be a valid list"),
        ({"currencies": ["EUR", "EURO"]}, "x.yaml: currencies: not ISO 4217 currency codes: 'EURO'"),
        ({"api_base_url": "http://api.example.com"}, "x.yaml: api_base_url: must use https"),
        ({"colour": "blue"}, "x.yaml: colour: unknown setting"),
        ({"platforms": {"wix": {}}}, "x.yaml: platforms: unknown platform 'wix'"),
        (
            {"platforms": {"woocommerce": {"slug": "Nord Bank"}}},
            "x.yaml: platforms.woocommerce.slug: 'Nord Bank' must match",
        ),
        ({"payment_methods": ["card", "card"]}, "x.yaml: payment_methods: repeated values: card"),
        ({"name": "Bank */ <?php"}, "x.yaml: name: 'Bank */ <?php' must be 2-80 letters"),
        ({"checkout": {"title": "two\nlines"}}, "x.yaml: checkout.title: contains a line break"),
        (
            {"checkout": {"description": "nul\x00byte"}},
            "x.yaml: checkout.description: contains control character U+0000",
        ),
        ({"checkout": {"title": "x" * 201}}, "x.yaml: checkout.title: String should have at most 200 characters"),
    ],
)
def test_invalid_values_name_file_field_and_reason(override, expected):
    problems = problems_for(client_dict(**override))
    assert any(p.startswith("client_configs/" + expected) for p in problems), problems


def test_target_paths_may_not_leave_the_stores_directory():
    for bad in ("../elsewhere/plugin", "/var/www/plugin", "shop/../../etc", "shop//x"):
        data = client_dict(platforms={"woocommerce": {"targets": [{"name": "p", "transport": "local", "path": bad}]}})
        problems = problems_for(data)
        assert any("platforms.woocommerce.targets[0].path" in p for p in problems), problems


def test_unknown_transport_is_named_with_the_supported_ones():
    data = client_dict(platforms={"woocommerce": {"targets": [{"name": "p", "transport": "ftp", "path": "x"}]}})
    assert any("unknown transport 'ftp'; supported transports: local" in p for p in problems_for(data))


def test_malformed_yaml_names_file_and_line(tmp_path: Path):
    bad = tmp_path / "broken.yaml"
    bad.write_text("id: broken\nname: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_client(bad, "client_configs/broken.yaml")
    assert info.value.problems[0].startswith("client_configs/broken.yaml: line 3")


def test_duplicate_yaml_keys_are_rejected_not_silently_overwritten(tmp_path: Path):
    bad = tmp_path / "dup.yaml"
    bad.write_text((DEMO_CLIENTS / "nordbank.yaml").read_text() + "\nid: other\n")
    with pytest.raises(ConfigError, match=r"dup\.yaml: id: duplicate key"):
        load_client(bad)


def test_duplicate_client_id_rejects_the_later_file_and_keeps_the_first(tmp_path: Path):
    (tmp_path / "a.yaml").write_text((DEMO_CLIENTS / "nordbank.yaml").read_text())
    (tmp_path / "b.yaml").write_text((DEMO_CLIENTS / "nordbank.yaml").read_text())
    fleet = load_fleet(tmp_path)
    assert list(fleet.clients) == ["nordbank"]
    assert fleet.clients["nordbank"].path.name == "a.yaml"
    [problem] = fleet.problems[f"{tmp_path.name}/b.yaml"]
    assert "id: 'nordbank' is already used by" in problem and "a.yaml" in problem


def test_invalid_file_produces_no_partition(tmp_path: Path):
    (tmp_path / "good.yaml").write_text((DEMO_CLIENTS / "nordbank.yaml").read_text())
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(client_dict(id="baltic", currencies=["ZZZ"])))
    fleet = load_fleet(tmp_path)
    enabled = load_client(DEMO_CLIENTS / "nordbank.yaml").enabled_platforms()
    assert fleet.partition_keys() == [f"nordbank|{p}" for p in enabled]
    assert list(fleet.problems) == [f"{tmp_path.name}/bad.yaml"]


def test_disabled_platforms_have_no_partition():
    fleet = load_fleet(DEMO_CLIENTS)
    assert "alpenkasse|woocommerce" not in fleet.partition_keys()
    assert "alpenkasse|magento2" in fleet.partition_keys()


def test_config_hash_ignores_comments_and_formatting(tmp_path: Path):
    original = (DEMO_CLIENTS / "nordbank.yaml").read_text()
    reformatted = tmp_path / "n.yaml"
    reformatted.write_text("# a new comment\n" + yaml.safe_dump(yaml.safe_load(original), default_flow_style=True))
    assert load_client(reformatted).config_hash() == load_client(DEMO_CLIENTS / "nordbank.yaml").config_hash()


def test_starter_config_is_valid_and_rejects_bad_ids():
    assert parse_client(yaml.safe_load(starter_config("new-bank")), "x").id == "new-bank"
    with pytest.raises(ConfigError, match="must match"):
        starter_config("New Bank")


def test_committed_json_schema_matches_the_model():
    import json

    from psp_assets.cli import SCHEMA_PATH

    assert json.loads(SCHEMA_PATH.read_text()) == json_schema()


@pytest.mark.parametrize(
    "url",
    [
        "https://api.bank.example/v1",
        "https://bücher.example/v1",  # IDNA: checked as xn--bcher-kva.example
        "https://10.0.0.7:8443/v1",
        "https://localhost:9443/v1",
        "https://" + "a" * 63 + ".example/",
    ],
)
def test_api_hosts_that_are_dns_names_or_addresses_pass(url):
    assert parse_client(client_dict(api_base_url=url), "x.yaml").api_base.startswith("https://")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://{$x}${x}/v1", "host '{$x}${x}' is not a DNS name"),
        ("https://" + "a" * 5000 + ".example/", "host is 5008 characters long; a DNS name has at most 253"),
        ("https://" + "a" * 64 + ".example/", "is 64 characters long; at most 63 are allowed"),
        ("https://" + "abc." * 70 + "example/", "host is 287 characters long"),
        ("https://api_bank.example/", "is not a DNS name"),
        ("https://-api.example/", "is not a DNS name"),
        ("https://api.example.42/", "invalid IPv4 address"),
        ("https://api.example/v1?", "must be a plain base URL"),
        ("https://api.example:0/", "port 0 is not a port"),
    ],
)
def test_api_hosts_are_checked_as_dns_names_and_the_error_names_the_field(url, reason):
    problems = problems_for(client_dict(api_base_url=url))
    assert any(p.startswith("client_configs/x.yaml: api_base_url: ") and reason in p for p in problems), problems


def test_non_scalar_inputs_are_described_by_type_only():
    shared = ["x"] * 9
    for _ in range(7):
        shared = [shared] * 9  # 9**8 values if ever expanded: only the type may be shown
    problems = problems_for(client_dict(id=shared, locales=shared, currencies=shared))
    assert len(problems) <= 26 and all(len(p) < 600 for p in problems), problems
    assert any("id: Input should be a valid string" in p for p in problems)


def test_a_derived_value_names_the_field_it_comes_from():
    from psp_assets.core.render.engine import derived_field

    app_url = "{{ client.api_base.split('/')[:3]|join('/') }}/apps/shopify/{{ ids.slug }}"
    assert derived_field("vars.app_url", app_url, "shopify") == (
        "vars.app_url (derived from api_base_url, platforms.shopify.slug)"
    )


def platform_problems(templates_dir: Path) -> list[str]:
    """Adding a platform: what still differs between templates/<platform>/template.yaml and the code that
    lists platforms, each line naming the file to change."""
    import json

    from psp_assets.core.reconciliation.store_orders import API_CLIENTS
    from psp_assets.core.templates.spec import PLATFORMS, SHARED_DIR, SPEC_FILE
    from psp_assets.core.yamlio import read_yaml_mapping
    from psp_assets.defs.partitions import platform_partitions

    problems = []
    templates = []
    for spec in sorted(templates_dir.glob(f"*/{SPEC_FILE}")):
        folder = spec.parent.name
        if folder == SHARED_DIR:
            continue
        templates.append(folder)
        declared = read_yaml_mapping(spec, str(spec)).get("platform")
        if declared != folder:
            problems.append(
                f"templates/{folder}/{SPEC_FILE}: platform: {declared!r} must be the folder name {folder!r}"
            )
    for p in sorted(set(templates) - set(PLATFORMS)):
        problems.append(f"psp_assets/core/config/model.py: PLATFORMS: add {p!r} (templates/{p}/{SPEC_FILE} exists)")
    for p in [p for p in PLATFORMS if p not in templates]:
        problems.append(f"templates/{p}/{SPEC_FILE}: missing for {p!r}, which PLATFORMS lists")
    if platform_partitions.get_partition_keys() != list(PLATFORMS):
        problems.append("psp_assets/defs/partitions.py: platform_partitions must list PLATFORMS, in order")
    for p in [p for p in PLATFORMS if p not in API_CLIENTS]:
        problems.append(
            f"psp_assets/core/reconciliation/store_orders.py: API_CLIENTS: add the order API client of {p!r}"
        )
    schema = json.loads(SCHEMA_PATH.read_text())
    if set(schema["$defs"]["Platforms"]["properties"]) != set(PLATFORMS):
        problems.append(f"{SCHEMA_PATH.relative_to(REPO_ROOT)}: out of date; run `psp schema`")
    return problems


def test_every_platform_list_matches_the_templates():
    """templates/*/template.yaml is the list of platforms; PLATFORMS (and the Platforms model and platform
    partitions made from it), the order API clients and the JSON schema must name the same ones
    (docs/templates.md, "Adding a platform")."""
    assert platform_problems(TEMPLATES) == []


def test_a_new_template_names_every_place_left_to_change(tmp_path):
    shutil.copytree(TEMPLATES, tmp_path / "templates")
    new = tmp_path / "templates" / "newshop"
    shutil.copytree(tmp_path / "templates" / "opencart", new)
    spec = new / "template.yaml"
    spec.write_text(spec.read_text().replace("platform: opencart", "platform: newshop", 1))
    wrong = tmp_path / "templates" / "shopify" / "template.yaml"
    wrong.write_text(wrong.read_text().replace("platform: shopify", "platform: shopify2", 1))
    assert platform_problems(tmp_path / "templates") == [
        "templates/shopify/template.yaml: platform: 'shopify2' must be the folder name 'shopify'",
        "psp_assets/core/config/model.py: PLATFORMS: add 'newshop' (templates/newshop/template.yaml exists)",
    ]

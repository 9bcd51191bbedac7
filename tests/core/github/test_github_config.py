"""The `github:` section of a client config: what is accepted, what is refused and how it is named."""

from __future__ import annotations

import pytest

from psp_assets.core.config.fleet import load_fleet
from psp_assets.core.errors import ConfigError, PublishError
from psp_assets.core.github.client_repo import source_target_for
from psp_assets.core.github.session import AppCredentials, TokenCredentials, target_for
from psp_assets.defs.github.resources import GitHubPublisher
from tests.conftest import DEMO_CLIENTS, make_client

TOKEN_SECTION = {"organization": "nordbank-psp", "repository": "payment-plugins", "token_env": "NORDBANK_GITHUB_TOKEN"}


def problems(github: dict) -> str:
    with pytest.raises(ConfigError) as err:
        make_client(github=github)
    return str(err.value)


def test_demo_clients_use_a_token_on_github_com_and_an_app_on_github_enterprise():
    fleet = load_fleet(DEMO_CLIENTS)
    assert fleet.ok
    nord = fleet.clients["nordbank"].config.github
    target, creds = target_for(nord, "woocommerce")
    assert (target.base_url, target.full_name) == ("https://api.github.com", "nordbank-psp/payment-plugins")
    assert creds == TokenCredentials("NORDBANK_GITHUB_TOKEN")
    alpen = fleet.clients["alpenkasse"].config.github
    target, creds = target_for(alpen, "magento2")
    assert target.base_url == "https://github.alpenkasse.example/api/v3"
    assert target.full_name == "ecommerce/psp-magento-module"  # its per-platform override
    assert target_for(alpen, "prestashop")[0].full_name == "ecommerce/psp-plugins"
    assert isinstance(creds, AppCredentials) and creds.private_key_env == "ALPENKASSE_GITHUB_APP_PRIVATE_KEY"
    assert fleet.clients["baltic-credit"].config.github is None


def test_a_platform_can_publish_to_its_own_repository():
    config = make_client(github={**TOKEN_SECTION, "repositories": {"magento2": "nordbank-magento2-module"}})
    assert target_for(config.github, "magento2")[0].repository == "nordbank-magento2-module"
    assert target_for(config.github, "woocommerce")[0].repository == "payment-plugins"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"token_env": None}, "github: set exactly one of token_env (a token) or app"),
        (
            {"app": {"app_id": 1, "installation_id": 2, "private_key_env": "X_GITHUB_PRIVATE_KEY"}},
            "set exactly one of token_env",
        ),
        ({"token_env": "nordbank_token"}, "github.token_env: 'nordbank_token' must match ^[A-Z]"),
        ({"token_env": "NORDBANK_GITHUB_PAT"}, "github.token_env: 'NORDBANK_GITHUB_PAT' must end in _TOKEN"),
        ({"organization": "-nordbank"}, "github.organization: '-nordbank' must match"),
        ({"repository": ".."}, "github.repository: '.' and '..' are not repository names"),
        ({"repositories": {"magento": "x"}}, "github.repositories: unknown platform 'magento'"),
        ({"base_url": "http://ghe.bank.example/api/v3"}, "github.base_url: must use https (got http://)"),
        ({"base_url": "https://ghe.bank.example"}, "GitHub Enterprise API URLs end in /api/v3"),
        ({"base_url": "https://api.github.com/v3"}, "use https://api.github.com (no path)"),
        ({"base_url": "https://user:pw@ghe.bank.example/api/v3"}, "without credentials"),
        ({"token": "ghp_x"}, "github.token: unknown setting"),
        ({"source": {"repository": ".."}}, "github.source.repository: '.' and '..' are not repository names"),
        ({"source": {"repository": "a b"}}, "github.source.repository: 'a b' must match"),
        ({"source": {"base_branch": "main"}}, "github.source.repository: Field required"),
        ({"source": {"repository": "src", "base_branch": "x/../main"}}, "github.source.base_branch: not a branch"),
        ({"source": {"repository": "src", "base_branch": "-main"}}, "github.source.base_branch: not a branch"),
        ({"source": {"repository": "src", "token_env": "X_TOKEN"}}, "github.source.token_env: unknown setting"),
    ],
)
def test_invalid_github_settings_name_the_field_and_what_would_be_right(change: dict, expected: str):
    section = {**TOKEN_SECTION, **change}
    section = {k: v for k, v in section.items() if v is not None}
    assert expected in problems(section)


def test_app_key_variable_must_be_named_like_a_private_key():
    app = {"app_id": 1, "installation_id": 2, "private_key_env": "BANK_GITHUB_APP_KEY"}
    section = {"organization": "bank", "repository": "plugins", "app": app}
    assert "github.app.private_key_env: 'BANK_GITHUB_APP_KEY' must end in _PRIVATE_KEY" in problems(section)


def test_http_is_accepted_only_for_a_loopback_server():
    config = make_client(github={**TOKEN_SECTION, "base_url": "http://127.0.0.1:8080/api/v3/"})
    assert config.github.api_base == "http://127.0.0.1:8080/api/v3"


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("true", True), ("0", False), ("", False)])
def test_publishing_follows_PSP_GITHUB_PUBLISH(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool):
    monkeypatch.setenv("PSP_GITHUB_PUBLISH", value)
    assert GitHubPublisher().enabled() is expected
    assert GitHubPublisher(publish=not expected).enabled() is (not expected)


def test_publishing_is_off_when_PSP_GITHUB_PUBLISH_is_unset_and_refuses_a_typo(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PSP_GITHUB_PUBLISH", raising=False)
    assert GitHubPublisher().enabled() is False
    monkeypatch.setenv("PSP_GITHUB_PUBLISH", "yes please")
    with pytest.raises(PublishError, match="PSP_GITHUB_PUBLISH='yes please': expected 1"):
        GitHubPublisher().enabled()


def test_a_source_repository_is_opt_in_and_leaves_the_build_of_configs_without_it_alone():
    plain = make_client(github=TOKEN_SECTION)
    with_source = make_client(github={**TOKEN_SECTION, "source": {"repository": "payment-plugins-source"}})
    assert plain.github.source is None
    assert (with_source.github.source.repository, with_source.github.source.base_branch) == (
        "payment-plugins-source",
        "main",
    )
    assert '"source"' not in plain.canonical_json(), "configs written before github.source keep their hash"
    assert with_source.config_hash() != plain.config_hash()
    target, creds = source_target_for(with_source.github)
    assert target.full_name == "nordbank-psp/payment-plugins-source" and creds == TokenCredentials(
        "NORDBANK_GITHUB_TOKEN"
    )

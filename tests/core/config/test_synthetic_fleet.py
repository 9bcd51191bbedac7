"""The benchmarks' synthetic fleet (bench/synthetic.py) is a fleet the platform accepts: every generated
config validates, enables all five platforms and renders; the same seed gives the same fleet."""

from __future__ import annotations

from pathlib import Path

from bench.synthetic import synthetic_client, write_fleet
from psp_assets.core.config.fleet import load_fleet
from psp_assets.core.config.model import LocalTarget
from psp_assets.core.render.engine import render
from psp_assets.core.templates.spec import PLATFORMS, load_template
from tests.conftest import TEMPLATES


def test_generated_configs_validate_and_enable_every_platform_with_local_health_gated_targets(tmp_path: Path):
    written = write_fleet(30, tmp_path, seed=7, store_url="http://127.0.0.1:8099")
    fleet = load_fleet(tmp_path)
    assert fleet.problems == {}
    assert len(fleet.clients) == len(written) == 30
    for loaded in fleet.clients.values():
        config = loaded.config
        assert config.enabled_platforms() == list(PLATFORMS)
        for platform in PLATFORMS:
            targets = config.platform(platform).targets
            assert targets and all(isinstance(t, LocalTarget) for t in targets)
            assert all(str(t.health.store_url).startswith(f"http://127.0.0.1:8099/{platform}/") for t in targets)
        assert not any(ch.isdigit() for ch in config.id)  # OpenCart extension codes may not contain digits
        assert not {"en_US", "en_GB"} <= set(config.locales)  # OpenCart folds both into en-gb


def test_the_fleet_is_varied_and_the_same_seed_draws_the_same_fleet(tmp_path: Path):
    write_fleet(30, tmp_path, seed=3)
    configs = [c.config for c in load_fleet(tmp_path).clients.values()]
    assert len({tuple(c.locales) for c in configs}) > 5
    assert len({tuple(c.currencies) for c in configs}) > 5
    assert len({tuple(c.payment_methods) for c in configs}) > 5
    assert len({c.checkout.title for c in configs}) > 5
    assert synthetic_client(12, seed=3) == synthetic_client(12, seed=3)
    assert synthetic_client(12, seed=3) != synthetic_client(12, seed=4)
    assert (tmp_path / f"{synthetic_client(0, seed=3)['id']}.yaml").is_file()


def test_a_generated_client_renders_on_every_platform(tmp_path: Path):
    write_fleet(3, tmp_path, seed=7)
    for loaded in load_fleet(tmp_path).clients.values():
        for platform in PLATFORMS:
            tree = render(load_template(TEMPLATES, platform), loaded.config)
            assert tree.files and tree.client_id == loaded.config.id

"""The `psp` command, run as a person would (a subprocess), against a private workspace."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from psp_assets.cli import RENDER_MARKER
from tests.conftest import DEMO_CLIENTS, TEMPLATES


def psp(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/bin:/bin",
        "PSP_CLIENT_CONFIGS_DIR": str(tmp_path / "client_configs"),
        "PSP_TEMPLATES_DIR": str(TEMPLATES),
        "PSP_DATA_DIR": str(tmp_path / "data"),
    }
    return subprocess.run(
        [sys.executable, "-m", "psp_assets.cli", *args], capture_output=True, text=True, env=env, cwd=tmp_path
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    import shutil

    shutil.copytree(DEMO_CLIENTS, tmp_path / "client_configs")
    return tmp_path


def test_validate_passes_the_demo_fleet(workspace):
    result = psp(workspace, "validate")
    assert result.returncode == 0, result.stderr
    assert "3 config(s) checked, 0 problem(s)" in result.stdout


def test_validate_exits_non_zero_and_names_file_field_and_reason(workspace):
    bad = workspace / "client_configs" / "broken.yaml"
    bad.write_text((DEMO_CLIENTS / "nordbank.yaml").read_text().replace("id: nordbank", "id: Broken!"))
    result = psp(workspace, "validate", str(bad))
    assert result.returncode == 1
    assert "broken.yaml: id: 'Broken!' must match" in result.stderr


def test_new_client_writes_a_config_that_validates_and_refuses_to_overwrite(workspace):
    assert psp(workspace, "new-client", "acme-bank").returncode == 0
    assert psp(workspace, "validate", str(workspace / "client_configs" / "acme-bank.yaml")).returncode == 0
    again = psp(workspace, "new-client", "acme-bank")
    assert again.returncode == 1 and "already exists" in again.stderr


def test_render_writes_exactly_what_the_pipeline_renders(workspace):
    from psp_assets.core.config.fleet import load_fleet
    from psp_assets.core.lineage import render_plugin
    from psp_assets.core.plan import plan_plugin
    from psp_assets.core.workspace import Paths

    out = workspace / "cli-out"
    result = psp(workspace, "render", "--client", "nordbank", "--platform", "woocommerce", "--out", str(out))
    assert result.returncode == 0, result.stderr
    paths = Paths(workspace / "client_configs", TEMPLATES, workspace / "data", workspace / "stores")
    config = load_fleet(paths.configs_dir).clients["nordbank"].config
    source = render_plugin(plan_plugin(paths, config, "woocommerce"))
    cli_files = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    marker = json.loads(cli_files.pop(RENDER_MARKER))  # the one file added: it lets a re-render replace the folder
    assert marker == {"client": "nordbank", "platform": "woocommerce", "build": source.tree.build}
    assert cli_files == dict(source.tree.files)
    again = psp(workspace, "render", "--client", "nordbank", "--platform", "woocommerce", "--out", str(out))
    assert again.returncode == 0, again.stderr


def test_render_of_an_unknown_client_says_which_clients_exist(workspace):
    result = psp(workspace, "render", "--client", "nobody", "--platform", "woocommerce", "--out", str(workspace / "o"))
    assert result.returncode == 1 and "client 'nobody': no valid config found" in result.stderr
    assert not (workspace / "o").exists()

"""deployed_store over SFTP through Dagster: steps in the metadata, and no secret anywhere."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from psp_assets.core.workspace import Paths
from psp_assets.fleet import latest_metadata, run_fleet
from tests.conftest import DEMO_CLIENTS, TEMPLATES

pytestmark = pytest.mark.integration
KEY_ENV = "PSP_NORDBANK_STORE_SSH_KEY"


def test_sftp_deploy_records_every_step_and_no_secret_reaches_logs_metadata_or_artifacts(
    sshd, store_root, tmp_path: Path, monkeypatch
):
    configs = tmp_path / "client_configs"
    configs.mkdir()
    data = yaml.safe_load((DEMO_CLIENTS / "nordbank.yaml").read_text())
    live = store_root / "shop" / "wp-content" / "plugins" / "nordbank-payments"
    data["platforms"] = {
        "woocommerce": {
            "slug": "nordbank-payments",
            "targets": [
                {
                    "name": "production",
                    "transport": "sftp",
                    "host": "127.0.0.1",
                    "port": sshd.port,
                    "user": "pspdeploy",
                    "private_key_env": KEY_ENV,
                    "known_host": sshd.known_host(),
                    "path": str(live),
                }
            ],
        }
    }
    (configs / "nordbank.yaml").write_text(yaml.safe_dump(data))
    for key, value in {
        "PSP_CLIENT_CONFIGS_DIR": configs,
        "PSP_TEMPLATES_DIR": TEMPLATES,
        "PSP_DATA_DIR": tmp_path / "data",
        KEY_ENV: sshd.client_private,
    }.items():
        monkeypatch.setenv(key, str(value))
    with dg.instance_for_test() as instance:
        assert run_fleet(Paths.from_env(), instance=instance) == 0
        [target] = latest_metadata(instance, "deployed_store", "nordbank|woocommerce")["targets"]
        assert target["health"] == "healthy" and live.is_symlink()
        assert [s.split(":")[0] for s in target["steps"]] == [
            "verify archive",
            "upload",
            "verify",
            "switch",
            "health",
            "prune",
        ]
        everything = ""
        for run in instance.get_runs():
            everything += "".join(str(entry) for entry in instance.all_logs(run.run_id))
    secret_lines = [ln for ln in sshd.client_private.splitlines() if len(ln) > 20 and "PRIVATE KEY" not in ln]
    assert secret_lines and not any(line in everything for line in secret_lines)
    for artifact in (tmp_path / "data" / "artifacts").rglob("*.zip"):
        blob = artifact.read_bytes()
        assert not any(line.encode() in blob for line in secret_lines)

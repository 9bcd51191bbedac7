"""A PSP API contract change travels the lineage like a template change: every plugin_template is stale,
the sensors re-record it, the test reports go red naming the broken field, and nothing is built."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml

from psp_assets.core.payments.openapi import DEFAULT_CONTRACT_FILE
from psp_assets.core.templates.spec import available_platforms
from psp_assets.core.workspace import Paths
from psp_assets.definitions import defs
from psp_assets.defs.plugins.resources import TemplateRepository
from psp_assets.defs.plugins.sensors import template_change_sensor
from psp_assets.defs.resources import PspWorkspace
from psp_assets.fleet import latest_metadata, run_fleet

CLIENT = "baltic-credit"  # woocommerce and opencart: two PHP platforms, the smallest demo fleet


def tick(instance: dg.DagsterInstance) -> dg.SensorResult:
    resources = {"workspace": PspWorkspace(), "template_repo": TemplateRepository()}
    return template_change_sensor(dg.build_sensor_context(instance=instance, resources=resources))


def edit(contract: Path, change) -> None:
    doc = yaml.safe_load(contract.read_text(encoding="utf-8"))
    change(doc)
    contract.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")


def rename_order_reference(doc: dict) -> None:
    data = doc["components"]["schemas"]["PaymentEvent"]["properties"]["data"]
    data["properties"]["order_ref"] = data["properties"].pop("order_reference")
    data["required"] = ["order_ref" if r == "order_reference" else r for r in data["required"]]
    media = doc["webhooks"]["payment.updated"]["post"]["requestBody"]["content"]["application/json"]
    event = media["examples"]["paid"]["value"]
    event["data"]["order_ref"] = event["data"].pop("order_reference")


@pytest.fixture
def contract(env: Paths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "contract" / "psp-api.openapi.yaml"
    path.parent.mkdir()
    shutil.copy(DEFAULT_CONTRACT_FILE, path)
    monkeypatch.setenv("PSP_CONTRACT_FILE", str(path))
    return path


def test_a_renamed_webhook_field_reaches_every_report_before_anything_is_built(env, instance, contract) -> None:
    paths = Paths.from_env()
    assert paths.contract_file == contract
    for request in tick(instance).run_requests:
        job = defs.resolve_job_def("plugin_template_job")
        assert job.execute_in_process(partition_key=request.partition_key, instance=instance).success
    assert run_fleet(paths, clients=[CLIENT], instance=instance) == 0
    keys = [f"{CLIENT}|woocommerce", f"{CLIENT}|opencart"]
    built = {key: latest_metadata(instance, "built_artifact", key)["sha256"] for key in keys}

    edit(contract, lambda doc: doc["info"].update(description="Reworded, nothing else."))
    assert not tick(instance).run_requests  # a wording edit makes nothing stale

    edit(contract, rename_order_reference)
    stale = tick(instance)
    assert {r.partition_key for r in stale.run_requests} == set(available_platforms(paths.templates_dir))

    assert run_fleet(paths, clients=[CLIENT], instance=instance) == 1
    for key in keys:
        report = latest_metadata(instance, "test_report", key)
        assert report["passed"] is False
        results = json.loads(Path(report["report_path"]).read_text())["results"]
        details = [r["detail"] for r in results if not r["passed"]]
        assert any(
            d.startswith("webhook field data.order_reference, read by the plugin (WebhookProcessor::PAYLOAD_FIELDS), ")
            and "is not in the contract's payment.updated payload" in d
            for d in details
        ), details[:3]
        assert latest_metadata(instance, "built_artifact", key)["sha256"] == built[key]  # nothing new was built

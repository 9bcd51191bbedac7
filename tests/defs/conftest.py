"""Fixtures for the Dagster tests: a private workspace, a temporary instance and a real SMTP server."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from psp_assets.core.workspace import Paths
from tests.conftest import DEMO_CLIENTS, TEMPLATES


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Paths:
    """Configs and templates copied into tmp (tests edit them), outputs and stores in tmp too."""
    shutil.copytree(DEMO_CLIENTS, tmp_path / "client_configs")
    shutil.copytree(TEMPLATES, tmp_path / "templates")
    values = {
        "PSP_CLIENT_CONFIGS_DIR": tmp_path / "client_configs",
        "PSP_TEMPLATES_DIR": tmp_path / "templates",
        "PSP_DATA_DIR": tmp_path / "data",
        "PSP_STORES_DIR": tmp_path / "stores",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, str(value))
    return Paths.from_env()


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


class _Inbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes

        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[str, int, _Inbox]]:
    """A real SMTP server (aiosmtpd) on a free loopback port."""
    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield "127.0.0.1", port, inbox
    finally:
        controller.stop()

"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest

from emulator import EmulatorConfig, SystemLogServer
from tests.helpers import write_jsonl
from tests.okta_helpers import TOKEN


@pytest.fixture
def okta_server(tmp_path):
    """okta_server(events, **config) -> a running SystemLogServer holding ``events``, stopped at teardown."""
    servers = []

    def _start(events: list[dict] | None = None, **config) -> SystemLogServer:
        if events is not None:
            config["events_file"] = str(write_jsonl(tmp_path / f"server-{len(servers)}.jsonl", events))
        config.setdefault("token", TOKEN)
        server = SystemLogServer(EmulatorConfig(**config)).start()
        servers.append(server)
        return server

    yield _start
    for server in servers:
        server.stop()

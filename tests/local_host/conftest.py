"""Fixtures for the local host's tests: one sample-app host per module (Azurite: tests/conftest.py)."""
from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import QueueClient

from local_host import LaunchedHost, launch
from local_host.azurite import Azurite
from tests.conftest import wait_for  # noqa: F401 - shared with this folder's tests

SAMPLE_APP = Path(__file__).parent / "sample_app"


def sample_env(azurite: Azurite, output_dir: Path, queue_prefix: str) -> dict[str, str]:
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "SAMPLE_OUTPUT_DIR": str(output_dir),
        "SAMPLE_QUEUE_PREFIX": queue_prefix,
    }


@dataclass
class SampleHost:
    """The launched sample app, with the folder it writes to and the prefix of its queue names."""

    host: LaunchedHost
    output_dir: Path
    queue_prefix: str

    @property
    def url(self) -> str:
        return self.host.url

    def logs(self) -> str:
        return self.host.logs()


@pytest.fixture(scope="module")
def sample_host(azurite, tmp_path_factory):
    """The sample app under `python -m local_host`, with its output folder and queue names."""
    output_dir = tmp_path_factory.mktemp("sample-output")
    prefix = f"s{uuid.uuid4().hex[:8]}"
    host = launch(SAMPLE_APP, env=sample_env(azurite, output_dir, prefix))
    yield SampleHost(host, output_dir, prefix)
    host.stop()


def queue(azurite: Azurite, name: str) -> QueueClient:
    return QueueClient.from_connection_string(azurite.connection_string, name)


def send_base64(client: QueueClient, text: str) -> str:
    """Send the way the Functions host expects by default (base64 message text)."""
    return client.send_message(base64.b64encode(text.encode()).decode()).id


def peek(client: QueueClient) -> list:
    """Visible messages; a queue the host has not created yet counts as empty."""
    try:
        return list(client.peek_messages(max_messages=32))
    except ResourceNotFoundError:
        return []


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

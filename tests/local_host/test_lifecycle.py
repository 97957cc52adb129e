"""Start-up and shutdown of `python -m local_host`."""
from __future__ import annotations

import threading
import time

import requests

from local_host import launch

from .conftest import SAMPLE_APP, sample_env


def test_sigterm_lets_in_flight_request_finish_and_exits_0(azurite, tmp_path):
    host = launch(SAMPLE_APP, env=sample_env(azurite, tmp_path, "shutdown-test"))
    result: dict[str, requests.Response] = {}
    request = threading.Thread(
        target=lambda: result.update(response=requests.get(f"{host.url}/api/slow?seconds=1.5")))
    request.start()
    time.sleep(0.5)
    assert host.stop() == 0
    request.join()
    assert result["response"].status_code == 200 and result["response"].text == "slept"
    assert "Local Functions host stopped" in host.logs()


def test_startup_error_is_reported(tmp_path):
    (tmp_path / "function_app.py").write_text("raise RuntimeError('broken app')\n")
    try:
        launch(tmp_path, env={}, timeout=15)
    except RuntimeError as error:
        assert "broken app" in str(error)
        assert "exit code 1" in str(error)
    else:
        raise AssertionError("launch() should fail for a broken app")


def test_a_function_disabled_by_its_app_setting_is_not_started(azurite, tmp_path):
    """`AzureWebJobs.<name>.Disabled` = true: the host ignores that function's trigger, as Azure does."""
    env = {**sample_env(azurite, tmp_path, "disabled-test"), "AzureWebJobs.work.Disabled": "true"}
    host = launch(SAMPLE_APP, env=env)
    try:
        assert requests.get(f"{host.url}/api/items/7").text == "id=7"  # the others run
        logs = host.logs()
        assert "Function work is disabled (AzureWebJobs.work.Disabled)" in logs
        assert "\twork: queueTrigger" not in logs and "\talways_fails: queueTrigger" in logs
    finally:
        host.stop()

"""HTTP functions through the local host (real sockets, sample app, Azurite for AzureWebJobsStorage)."""
from __future__ import annotations

import importlib.util
import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from http.client import HTTPResponse
from urllib.parse import urlsplit

import requests

from local_host import build_http_request, response_parts

from .conftest import SAMPLE_APP, wait_for

GUID = "0f8fad5b-d9cb-469f-a165-70867728950e"
HOST_ADDED = {"date", "server", "content-length"}  # framing the host adds; never app headers


def raw_exchange(url: str, request: bytes) -> tuple[HTTPResponse, bytes]:
    """Send exact request bytes, so the test knows every header the function could see; the response
    and its body."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    sock.sendall(request)
    response = HTTPResponse(sock)
    response.begin()
    body = response.read()
    sock.close()
    return response, body


def test_route_parameters_constraints_and_precedence(sample_host):
    api = f"{sample_host.url}/api"
    assert requests.get(f"{api}/items/42").text == "id=42"
    # As on Azure, the function named first wins, not the more specific template: item_by_name sorts
    # before item_latest, so its `items/{name:alpha}` answers for "latest" too (local_host/routing.py).
    assert requests.get(f"{api}/items/latest").text == "name=latest"
    assert requests.get(f"{api}/ITEMS/Latest").text == "name=Latest"
    assert requests.get(f"{api}/items/abc").text == "name=abc"
    assert requests.get(f"{api}/items/a1").status_code == 404
    assert requests.get(f"{api}/things/{GUID}").json() == {"guid": GUID}
    assert requests.delete(f"{api}/things/{GUID}/part-1").json() == {"guid": GUID, "part": "part-1"}
    assert requests.get(f"{api}/things/not-a-guid").status_code == 404
    assert requests.get(f"{api}/echo").json()["route_params"] == {}
    assert requests.get(f"{api}/echo/a/b%20c/d").json()["route_params"] == {"rest": "a/b c/d"}
    assert requests.get(f"{api}/no_route").text == "named after the function"


def test_unknown_route_is_404_and_wrong_method_is_405(sample_host):
    missing = requests.get(f"{sample_host.url}/api/does-not-exist")
    assert (missing.status_code, missing.content) == (404, b"")
    assert requests.get(f"{sample_host.url}/items/42").status_code == 404  # outside the route prefix
    wrong = requests.post(f"{sample_host.url}/api/items/42")
    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "GET"


def test_query_headers_and_body_round_trip(sample_host):
    body = "ünïcode and bytes \x00\x01".encode()
    response = requests.post(
        f"{sample_host.url}/api/echo/x?a=1&a=2&empty=&sp=a+b%26c",
        headers={"X-Custom": "value", "Content-Type": "application/octet-stream"}, data=body,
    )
    assert response.status_code == 200
    assert response.headers["X-Echo"] == "yes"
    assert response.headers["Content-Type"] == "application/json"
    echoed = response.json()
    assert echoed["method"] == "POST"
    assert echoed["url"] == f"{sample_host.url}/api/echo/x?a=1&a=2&empty=&sp=a+b%26c"
    # Repeated parameters arrive joined with "," as the host's StringValues.ToString() does.
    assert echoed["params"] == {"a": "1,2", "empty": "", "sp": "a b&c"}
    assert echoed["headers"]["x-custom"] == "value"  # header names are lower-case in req.headers
    assert echoed["body"] == body.decode()


def test_chunked_request_body(sample_host):
    response = requests.put(f"{sample_host.url}/api/echo/chunked", data=iter([b"part one, ", b"part two"]))
    assert response.json()["body"] == "part one, part two"
    assert response.json()["headers"]["transfer-encoding"] == "chunked"


def test_multiple_set_cookie_headers_are_separate_lines(sample_host):
    response, _ = raw_exchange(sample_host.url,
                               b"GET /api/cookies HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    assert response.status == 201
    assert response.msg.get_all("Set-Cookie") == ["a=1; Path=/; HttpOnly", "b=2; Path=/; Secure; SameSite=Lax"]
    assert response.getheader("Cache-Control") == "no-store"


def test_function_raising_gives_500_with_empty_body(sample_host):
    response = requests.get(f"{sample_host.url}/api/boom")
    assert (response.status_code, response.content) == (500, b"")
    # The host's output is read by another thread: the log line may land just after the response.
    wait_for(lambda: "Executed 'Functions.boom' (Failed" in sample_host.logs(), message="failure logged")
    assert "RuntimeError: deliberate failure" in sample_host.logs()


def test_redirect_and_async_function(sample_host):
    redirect = requests.get(f"{sample_host.url}/api/redirect", allow_redirects=False)
    assert redirect.status_code == 302 and redirect.headers["Location"] == "/api/echo/landed"
    assert requests.get(f"{sample_host.url}/api/async-hello?name=async").text == "hello async"


def test_invocations_are_logged_like_the_host(sample_host):
    requests.get(f"{sample_host.url}/api/items/7")
    logs = sample_host.logs()
    assert "item_by_id: [GET] http://localhost:" in logs  # the startup function list
    assert ("Executing 'Functions.item_by_id' "
            "(Reason='This function was programmatically called via the host APIs.', Id=") in logs
    assert "Executed 'Functions.item_by_id' (Succeeded, Id=" in logs


def _load_sample_blueprint():
    # Under its own module name, so it cannot clash with the project's function_app in this process.
    spec = importlib.util.spec_from_file_location("sample_blueprint_direct", SAMPLE_APP / "sample_blueprint.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_same_request_through_host_and_called_directly(sample_host):
    authority = urlsplit(sample_host.url).netloc
    target = "/api/echo/some/where?b=2&a=1&a=3"
    body = b'{"hello": "world"}'
    headers = [("Host", authority), ("Content-Type", "application/json"), ("X-Twice", "1"), ("X-Twice", "2"),
               ("Content-Length", str(len(body))), ("Connection", "close")]
    wire = f"POST {target} HTTP/1.1\r\n".encode() + b"".join(
        f"{name}: {value}\r\n".encode() for name, value in headers) + b"\r\n" + body
    through_host, through_host_body = raw_exchange(sample_host.url, wire)

    direct_request = build_http_request("POST", f"http://{authority}{target}", headers, body,
                                        route_params={"rest": "some/where"})
    direct_response = _load_sample_blueprint().echo(direct_request)

    assert through_host.status == direct_response.status_code
    assert through_host_body == direct_response.get_body()
    host_headers = [(n, v) for n, v in through_host.getheaders() if n.lower() not in HOST_ADDED]
    assert host_headers == response_parts(direct_response)[1]
    for name, value in direct_response.headers.items():
        assert through_host.getheader(name) == value


def test_concurrent_requests_run_in_parallel(sample_host):
    started = time.monotonic()
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda _: requests.get(f"{sample_host.url}/api/slow?seconds=1"), range(20)))
    elapsed = time.monotonic() - started
    assert [r.text for r in responses] == ["slept"] * 20
    assert elapsed < 3, f"20 one-second requests took {elapsed:.1f}s"


def test_app_settings_from_local_settings_json_do_not_override_environment(azurite, tmp_path):
    """Also: a changed routePrefix in host.json is followed."""
    import shutil

    from local_host import launch

    from .conftest import sample_env

    app = tmp_path / "app"
    shutil.copytree(SAMPLE_APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    host_json = json.loads((app / "host.json").read_text())
    host_json["extensions"]["http"]["routePrefix"] = "v1/x"
    (app / "host.json").write_text(json.dumps(host_json))
    (app / "local.settings.json").write_text(json.dumps({
        "IsEncrypted": False,
        "Values": {"FROM_FILE": "file value", "SET_TWICE": "file value", "FUNCTIONS_WORKER_RUNTIME": "python"},
    }))
    env = {**sample_env(azurite, tmp_path, "prefix-test"), "SET_TWICE": "environment value"}
    with launch(app, env=env) as host:
        assert requests.get(f"{host.url}/v1/x/items/42").text == "id=42"
        assert requests.get(f"{host.url}/api/items/42").status_code == 404
        assert requests.get(f"{host.url}/v1/x/settings/FROM_FILE").text == "file value"
        assert requests.get(f"{host.url}/v1/x/settings/SET_TWICE").text == "environment value"

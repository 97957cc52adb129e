"""The real app under the local host: health, API description, routing, e-mail to the outbox."""

import json
import urllib.error
import urllib.request

from services.mail import MailMessage, enqueue
from tests.conftest import wait_for


def get(url: str, headers: dict | None = None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_health_reports_storage(stack):
    status, headers, body = get(f"{stack.url}/api/health")
    assert status == 200
    assert json.loads(body) == {"status": "ok", "storage": {"tables": "ok", "queues": "ok"}}
    assert headers["Content-Type"].startswith("application/json")


def test_openapi_describes_json_endpoints(stack):
    status, _, body = get(f"{stack.url}/api/openapi.json")
    assert status == 200
    document = json.loads(body)
    assert document["openapi"].startswith("3.")
    assert {"/health", "/stripe/webhook"} <= set(document["paths"])
    assert document["servers"][0]["url"] == f"{stack.url}/api"


def test_unknown_route_is_404(stack):
    assert get(f"{stack.url}/api/no-such-thing")[0] == 404


def test_enqueued_mail_reaches_the_outbox_once(stack):
    storage = stack.storage()
    message = MailMessage(id="foundation-test-mail", template="test", to="alice@contoso.example", language="de")
    enqueue(storage, message)
    enqueue(storage, message)  # a retried request enqueues the same mail again
    mails = wait_for(lambda: [m for m in stack.outbox()
                              if m["to"] == "alice@contoso.example" and "Test" in m["subject"]],
                     message="mail in outbox")
    assert mails[0]["subject"] == "SecureMailMerge-Testnachricht"
    assert stack.settings.support_email in mails[0]["text"]
    # The duplicate is processed (and skipped) too: wait until the queue is empty, then count.
    wait_for(lambda: storage.queue_depth("outbound-email") == 0, message="queue drained")
    wait_for(lambda: True)
    assert len([m for m in stack.outbox() if m["subject"] == "SecureMailMerge-Testnachricht"]) == 1


def test_bad_configuration_gives_one_clear_answer_not_a_traceback(stack):
    from local_host import launch
    from tests.conftest import REPO_ROOT

    env = {**stack.env, "SESSION_SECRET": "", "PUBLIC_BASE_URL": "not a url"}
    host = launch(REPO_ROOT, env=env)
    try:
        status, _, body = get(f"{host.url}/api/health")
        assert status == 503
        detail = json.loads(body)["detail"]
        assert "SESSION_SECRET: missing" in detail and "PUBLIC_BASE_URL: must be an absolute http(s) URL" in detail
        status, headers, body = get(f"{host.url}/api/dashboard")
        assert status == 503 and json.loads(body)["error"] == "misconfigured"
        assert "Traceback" not in host.logs()
        wait_for(lambda: "cannot serve dashboard: Invalid configuration" in host.logs(), message="one log line")
    finally:
        host.stop()

"""A bulk assignment job survives its host being killed halfway (PRODUCT.md capability 3, section 4).

Through the JSON API on a stack of its own (tests/bulk_stack.py: no other host takes its queue): the
request answers 202 with the job's Location, the host process is killed (SIGKILL by its id) while the job
runs, a new host starts, the client retries with the same request id, and the job ends with every seat,
lookup row and welcome mail exactly once. The first host does not send mail
(`AzureWebJobs.send_email.Disabled`): killing it must not interrupt a mail sender halfway through a send
(what happens to one mail then is the mail sender's own business), only the job.
"""

from __future__ import annotations

import pytest

from adapters.subscription_repository import SubscriptionRepository
from adapters.table_storage import USER_LICENSES
from services import subscription_store
from tests.bulk_stack import bulk_stack
from tests.conftest import wait_for
from tests.licenses_support import call, idp_person, token_for

pytestmark = pytest.mark.slow

OWNER = "admin@contoso.example"
N = 1_200


@pytest.fixture(scope="module")
def bulk(identity_provider, stripe_emulator, tmp_path_factory):
    stack = bulk_stack(identity_provider, stripe_emulator, tmp_path_factory.mktemp("bulk-outbox"))
    yield stack
    stack.stop()
    stack.azurite.stop()


def _job(bulk, token: str, location: str) -> dict:
    status, job, _ = call(bulk.url, "GET", location, token)
    assert status == 200, job
    return job


def test_a_job_killed_halfway_completes_after_a_restart_with_nothing_duplicated_or_lost(bulk):
    bulk.start(**{"AzureWebJobs.send_email.Disabled": "true"})
    owner = idp_person(bulk, OWNER)
    token = token_for(bulk, OWNER)
    sub = bulk.subscription(owner, quantity=N)
    addresses = [f"killed{i:05d}@contoso.example" for i in range(N)]
    csv = "email\n" + "\n".join(addresses) + "\n"
    path = f"/api/v1/subscriptions/{sub.id}/licenses"
    headers = {"Idempotency-Key": "bulk-kill-1"}

    status, accepted, answer_headers = call(bulk.url, "POST", path, token, csv, content_type="text/csv",
                                            headers=headers)
    assert status == 202, accepted
    location = answer_headers["Location"]
    assert location == f"/api/v1/subscriptions/{sub.id}/jobs/bulk-kill-1" == accepted["url"]
    assert accepted["status"] == "running" and accepted["to_assign"] == N

    # Halfway or so: some chunks done, the rest queued or running. Then the process dies.
    wait_for(lambda: _job(bulk, token, location)["assigned"] >= N // 4, timeout=120, interval=0.2,
             message="a quarter of the seats written")
    bulk.kill()
    storage = bulk.storage()
    at_kill = SubscriptionRepository(storage).job_chunks(sub.id, "bulk-kill-1")
    assert sum(1 for c in at_kill if c.finished) < (N + 98) // 99, "the job ended before the host was killed"

    # A new host; the client retries with the same request id (and the same list): the same job resumes.
    bulk.start()
    status, again, again_headers = call(bulk.url, "POST", path, token, csv, content_type="text/csv", headers=headers)
    assert status == 202 and again_headers["Location"] == location and again["job_id"] == "bulk-kill-1"
    def finished() -> dict | None:
        job = _job(bulk, token, location)
        return job if job["status"] != "running" else None

    done = wait_for(finished, timeout=180, interval=0.5, message="the job to finish")
    assert (done["status"], done["percent"], done["assigned"], done["mails_queued"], done["failed"]) == (
        "completed", 100, N, N, 0)

    seats = [s.email for s in SubscriptionRepository(storage).seats(sub.id)]
    assert sorted(seats) == addresses
    assert subscription_store.load(storage, sub.id).assigned_count == N
    assert SubscriptionRepository(storage).reservations(sub.id) == []
    lookups = [r["Email"] for r in storage.query(USER_LICENSES, where="RowKey eq @sub", parameters={"sub": sub.id})]
    assert sorted(lookups) == addresses
    # Every welcome mail sent once: the new host sends what the job queued (once per mail id).
    wait_for(lambda: len(bulk.outbox_recipients()) >= N, timeout=240, interval=1, message="the welcome mails")
    recipients = bulk.outbox_recipients()
    assert sorted(recipients) == addresses
    bulk.stop()


def test_the_api_accepts_a_big_list_with_202_follows_the_job_and_refuses_its_id_for_another_list(bulk):
    bulk.stop()
    bulk.start(BULK_ASSIGN_THRESHOLD="150")
    owner = idp_person(bulk, OWNER)
    token = token_for(bulk, OWNER)
    sub = bulk.subscription(owner, quantity=500)
    path = f"/api/v1/subscriptions/{sub.id}/licenses"

    # Up to the threshold: written before the answer (200), the rest of the job follows.
    mid = [f"mid{i:03d}@contoso.example" for i in range(120)]
    status, body, _ = call(bulk.url, "POST", path, token, {"emails": mid, "request_id": "mid-1"})
    assert status == 200 and sorted(body["assigned"]) == mid and body["assigned_count"] == 120
    assert body["job_url"] == f"/api/v1/subscriptions/{sub.id}/jobs/mid-1"

    big = [f"big{i:03d}@contoso.example" for i in range(200)]
    status, job, headers = call(bulk.url, "POST", path, token, {"emails": big, "request_id": "big-1"})
    assert status == 202 and headers["Location"] == f"/api/v1/subscriptions/{sub.id}/jobs/big-1"
    assert (job["job_id"], job["to_assign"], job["listed"]) == ("big-1", 200, 200)
    status, refused, _ = call(bulk.url, "POST", path, token, {"emails": big[:150] + mid[:50], "request_id": "big-1"})
    assert status == 409 and refused["error"] == "request_id_reused"

    for location in (body["job_url"], headers["Location"]):
        def finished(location: str = location) -> dict | None:
            job = _job(bulk, token, location)
            return job if job["status"] == "completed" else None

        done = wait_for(finished, timeout=60, interval=0.3, message="the job to finish")
        assert done["percent"] == 100 and done["assigned"] == done["to_assign"] == done["mails_queued"]
    status, missing, _ = call(bulk.url, "GET", f"/api/v1/subscriptions/{sub.id}/jobs/no-such-job", token)
    assert status == 404 and missing["error"] == "job_not_found"
    status, invalid, _ = call(bulk.url, "GET", f"/api/v1/subscriptions/{sub.id}/jobs/a%20b", token)
    assert status == 400 and invalid["error"] == "invalid_request_id" and invalid["field"] == "job_id"
    assert subscription_store.load(bulk.storage(), sub.id).assigned_count == 320
    bulk.stop()

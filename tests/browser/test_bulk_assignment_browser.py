"""A 10,000-address CSV through the browser (PRODUCT.md capability 3, issue 14): the form answers at once,
the job's page shows a progress bar that moves without reloading and reaches 100 %, the license list shows
the running import across a reload, and storage ends with exactly 10,000 seats, lookup rows and welcome
mails.

On a stack of its own (tests/bulk_stack.py). Its host queues the welcome mails but does not send them
(`AzureWebJobs.send_email.Disabled`): sending 10,000 mails through the local outbox would take minutes of the
suite and is the mail sender's own business (each mail id sent once: tests/unit/test_mail_limits.py and the
kill test in tests/integration/test_bulk_assignment_job.py, which sends every mail of its job). Here the
welcome mails are read back where the job puts them: on the `outbound-email` queue.
"""

from __future__ import annotations

import time

import pytest
from azure.storage.queue import BinaryBase64DecodePolicy, QueueClient

from adapters.subscription_repository import SubscriptionRepository
from adapters.table_storage import OUTBOUND_EMAIL_QUEUE, USER_LICENSES
from services import subscription_store
from tests.browser.conftest import sign_in
from tests.bulk_stack import bulk_stack
from tests.licenses_support import idp_person
from tests.mail_support import unpacked

pytestmark = [pytest.mark.browser, pytest.mark.slow]

OWNER = "admin@contoso.example"
N = 10_000


@pytest.fixture(scope="module")
def bulk(identity_provider, stripe_emulator, tmp_path_factory):
    stack = bulk_stack(identity_provider, stripe_emulator, tmp_path_factory.mktemp("bulk-outbox"))
    stack.start(**{"AzureWebJobs.send_email.Disabled": "true"})
    yield stack
    stack.stop()
    stack.azurite.stop()


def test_a_10000_address_csv_runs_as_a_job_whose_page_reaches_100_percent(page, bulk):
    owner = idp_person(bulk, OWNER)
    sub = bulk.subscription(owner, quantity=N)
    licenses = f"/api/subscriptions/{sub.id}/licenses"
    addresses = [f"bulk{i:05d}@contoso.example" for i in range(N)]
    sign_in(page, bulk, OWNER, next_path=licenses)

    page.get_by_label("CSV file").set_input_files(
        {"name": "people.csv", "mimeType": "text/csv", "buffer": ("email\n" + "\n".join(addresses)).encode()})
    started = time.monotonic()
    page.get_by_role("button", name="Assign licenses").click()
    page.wait_for_url(f"**/api/subscriptions/{sub.id}/jobs/*")
    answered = time.monotonic() - started
    print(f"\n10,000-address CSV: the form answered (redirect to the job page) after {answered:.2f} s")
    assert answered < 20  # the goal is 2 s (benchmarks/licenses.py); this only catches a regression
    job_page = page.url
    bar = page.locator("progress")
    assert page.locator("[data-job-progress]").get_attribute("data-status") == "running"

    # The bar moves while the page stays loaded (a reload would drop the marker).
    page.evaluate("window.__notReloaded = true")
    page.wait_for_function("() => document.querySelector('progress').value >= 20 && window.__notReloaded === true",
                           timeout=180_000, polling=500)
    # The license list shows the running import too, also after a reload.
    other = page.context.new_page()
    other.goto(f"{bulk.url}{licenses}")
    other.reload()
    running = other.locator("#running-jobs progress")
    assert running.count() == 1 and int(running.get_attribute("value") or 0) >= 20
    other.close()

    # Done: the script reloads the page once the job has finished; the bar stands at 100 %.
    page.locator("#job-done").wait_for(timeout=240_000)
    assert page.url == job_page and bar.get_attribute("value") == "100"
    assert page.locator("[data-field=assigned]").inner_text() == "10,000"
    assert page.locator("[data-field=mails_queued]").inner_text() == "10,000"
    assert page.locator("[data-field=failed]").inner_text() == "0"

    storage = bulk.storage()
    repository = SubscriptionRepository(storage)
    assert sorted(s.email for s in repository.seats(sub.id)) == addresses
    assert subscription_store.load(storage, sub.id).assigned_count == N
    assert repository.reservations(sub.id) == []
    lookups = [r["Email"] for r in storage.query(USER_LICENSES, where="RowKey eq @sub", parameters={"sub": sub.id})]
    assert sorted(lookups) == addresses
    # One welcome mail per address (its id: subscription, address, day), counted once per seat by the job;
    # all of them on the queue, in batches of up to 50 (services/mail/message.py).
    queue = QueueClient.from_connection_string(bulk.azurite.connection_string, OUTBOUND_EMAIL_QUEUE,
                                               message_decode_policy=BinaryBase64DecodePolicy())
    queued = [mail for message in queue.receive_messages(messages_per_page=32, visibility_timeout=600)
              for mail in unpacked(message.content)]
    assert sorted(mail["to"] for mail in queued) == addresses
    assert len({mail["id"] for mail in queued}) == N

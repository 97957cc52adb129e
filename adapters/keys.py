"""Every PartitionKey / RowKey format, in one place (PRODUCT.md section 4).

Subscription partition (table Subscriptions, partition = the Stripe subscription id):
    `subscription`                      the subscription entity
    `seat|<normalised address>`         one seat per assigned address
    `seatgone|<normalised address>`     a seat deleted since the last lookup reconciliation
    `reservation|<request id>`          an open bulk assignment
    `audit|<inverted time>|<random>`    audit rows, newest first

Parts built from input (addresses, request ids, object ids) go through `encode`: Table Storage forbids
slash, backslash, `#`, `?` and control characters in keys, and Azurite does not enforce it.

Lookup tables:
    UserLicenses       `oid|<oid>` once bound, `email|<normalised address>` until then; row = subscription id
    UserSubscriptions  `<tid>|<oid>`; row = subscription id (owner or delegate)
    StripeIndex        `session` / `customer`; row = the Stripe id
                       `pending|<tid>|<oid>`: the buyer's purchases waiting for a delayed payment;
                       row = the checkout session id
    StripeEvents       last two characters of the event id; row = the event id
    TenantSubscriptions  `<lower-case tid>` of the licensed user (individual) or the subscription's
                       tenant; row = subscription id (merge candidates without a scan)

Merges (services/merge.py) live in the organisation subscription's partition: `merge|<merge id>`.
Bulk assignment jobs too: `job|<job id>` and `jobchunk|<job id>|<n>` (see `job_row`).
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime

SUBSCRIPTION_ROW = "subscription"

SEAT_PREFIX = "seat|"
RESERVATION_PREFIX = "reservation|"
AUDIT_PREFIX = "audit|"

# Ticks counted down from this bound sort newer audit rows first in the table's ascending order.
_MAX_MICROS = 10**17


def after_prefix(prefix: str) -> str:
    """The first key after every key that starts with `prefix` (its last character raised by one)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def seat_row(address: str) -> str:
    return SEAT_PREFIX + encode(address)


def seat_address(row_key: str) -> str:
    return decode(row_key.removeprefix(SEAT_PREFIX))


# A seat deleted by a commit whose lookup rows may not be gone yet (the reconciliation finishes them):
# `seatgone|<address>`, outside the `seat|` range ('g' sorts before '|').
SEAT_GONE_PREFIX = "seatgone|"


def seat_gone_row(address: str) -> str:
    return SEAT_GONE_PREFIX + encode(address)


def reservation_row(request_id: str) -> str:
    return RESERVATION_PREFIX + encode(request_id)


# Long address lists continue in part rows, outside the `reservation|` range ('p' sorts before '|').
RESERVATION_PART_PREFIX = "reservationpart|"


def reservation_part_prefix(request_id: str) -> str:
    return f"{RESERVATION_PART_PREFIX}{encode(request_id)}|"


def reservation_part_row(request_id: str, number: int) -> str:
    return f"{reservation_part_prefix(request_id)}{number:03d}"


def audit_row(at: datetime) -> str:
    micros = int(at.timestamp() * 1_000_000)
    return f"{AUDIT_PREFIX}{_MAX_MICROS - micros:017d}|{uuid.uuid4().hex[:12]}"


def audit_rows_before(at: datetime) -> str:
    """The key that audit rows written at `at` or later sort below (they come first: newest first)."""
    micros = int(at.timestamp() * 1_000_000)
    return f"{AUDIT_PREFIX}{_MAX_MICROS - micros + 1:017d}"


# --- lookup tables -----------------------------------------------------------------------------------

OID_PREFIX = "oid|"
EMAIL_PREFIX = "email|"


def licenses_of_oid(oid: str) -> str:
    return OID_PREFIX + encode(oid)


def licenses_of_address(address: str) -> str:
    return EMAIL_PREFIX + encode(address)


def address_of_licenses(partition_key: str) -> str:
    return decode(partition_key.removeprefix(EMAIL_PREFIX))


def oid_of_licenses(partition_key: str) -> str:
    return decode(partition_key.removeprefix(OID_PREFIX))


def person(tid: str, oid: str) -> str:
    return f"{encode(tid)}|{encode(oid)}"


CHECKOUT_SESSION = "session"
CUSTOMER = "customer"
PENDING_PURCHASES_PREFIX = "pending|"


def pending_purchases(tid: str, oid: str) -> str:
    return PENDING_PURCHASES_PREFIX + person(tid, oid)


def stripe_event(event_id: str) -> tuple[str, str]:
    key = encode(event_id)
    return key[-2:], key


def tenant(tid: str) -> str:
    """TenantSubscriptions partition: tenant ids are GUIDs, compared case-insensitively."""
    return encode(tid.strip().lower())


MERGE_PREFIX = "merge|"


def merge_row(merge_id: str) -> str:
    return MERGE_PREFIX + encode(merge_id)


# Bulk assignment jobs (services/assignment_job.py) live in the subscription's partition: `job|<job id>`
# (the job id is its request id), and one row per finished chunk `jobchunk|<job id>|<chunk, 5 digits>`
# ('c' sorts before '|': the chunk rows stay outside the `job|` range). Table OpenJobs indexes the jobs
# not finished yet: partition = subscription id, row = job id.
JOB_PREFIX = "job|"
JOB_CHUNK_PREFIX = "jobchunk|"


def job_row(job_id: str) -> str:
    return JOB_PREFIX + encode(job_id)


def job_chunk_prefix(job_id: str) -> str:
    return f"{JOB_CHUNK_PREFIX}{encode(job_id)}|"


def job_chunk_row(job_id: str, chunk: int) -> str:
    return f"{job_chunk_prefix(job_id)}{chunk:05d}"


def usable(key: str) -> bool:
    """Whether `key` (an id from a URL, say) can be a key as it is: no character Azure forbids."""
    return bool(key) and len(key) <= 512 and encode(key) == key


# --- keys built from input: one reversible encoding -----------------------------------------------------

_FORBIDDEN = {"%", "/", "\\", "#", "?"}


def encode(text: str) -> str:
    """`text` made safe for a PartitionKey/RowKey: `% / \\ # ?` and control characters become `%XX`
    (reversible with `decode`; '%' itself is encoded first, so nothing is ambiguous)."""
    return "".join(f"%{ord(c):02X}" if c in _FORBIDDEN or ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F else c
                   for c in text)


def decode(key: str) -> str:
    return re.sub(r"%([0-9A-F]{2})", lambda match: chr(int(match.group(1), 16)), key)


# --- delegated administration -------------------------------------------------------------------------

DELEGATE_PREFIX = "delegate|"
INVITATION_PREFIX = "invitation|"
INVITATION_LOOKUP_ROW = "invitation"  # table Invitations: partition = the token's SHA-256 (hex)


def delegate_row(tid: str, oid: str) -> str:
    return f"{DELEGATE_PREFIX}{encode(tid.lower())}|{encode(oid)}"


def invitation_row(kind: str, email: str) -> str:
    return f"{INVITATION_PREFIX}{kind}|{encode(email)}"

"""Dashboard sessions in Table Storage: timeouts, rotation, sign-out, cleanup, keyed storage."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.settings import load_settings
from services.web_session import Person, SessionStore

ALICE = Person(tid="11111111-1111-1111-1111-111111111111", oid="10000000-0000-4000-8000-000000000002", name="Alice",
               email="alice@contoso.example")


def store(stack, **overrides):
    return SessionStore(stack.storage(), load_settings({**stack.env, **overrides}))


def test_idle_and_absolute_timeouts_end_a_session(stack):
    sessions = store(stack)
    session = sessions.new(person=ALICE)
    assert sessions.load(session.id).person == ALICE
    sessions.save(replace(session, last_seen_at=datetime.now(UTC) - timedelta(minutes=31)))
    assert sessions.load(session.id) is None  # idle for longer than 30 minutes
    old = sessions.new(person=ALICE)
    sessions.save(replace(old, created_at=datetime.now(UTC) - timedelta(hours=9)))
    assert sessions.load(old.id) is None  # older than 8 hours, however active


def test_rotation_and_sign_out(stack):
    sessions = store(stack)
    anonymous = sessions.new()
    signed_in = sessions.rotate(anonymous, ALICE)
    assert signed_in.id != anonymous.id and signed_in.csrf_token != anonymous.csrf_token
    assert sessions.load(anonymous.id) is None
    sessions.delete(signed_in)
    assert sessions.load(signed_in.id) is None


def test_purge_removes_only_expired_sessions(stack):
    # Idle for 10 minutes: expired for this store (5-minute idle timeout), not yet for the running
    # app's own purge timer (30 minutes), which therefore cannot remove it first and leave ours
    # nothing to count.
    sessions = store(stack, SESSION_IDLE_MINUTES="5")
    live = sessions.new(person=ALICE)
    stale = sessions.new(person=ALICE)
    sessions.save(replace(stale, last_seen_at=datetime.now(UTC) - timedelta(minutes=10)))
    assert sessions.purge_expired() >= 1
    assert sessions.load(live.id) is not None
    # Read back with the app's own 30-minute timeout: gone, not just refused by the shorter one.
    assert store(stack).load(stale.id) is None


def test_stored_keys_depend_on_the_session_secret(stack):
    session = store(stack).new(person=ALICE)
    other = store(stack, SESSION_SECRET="another-local-dev-only-secret-0123456789abcdef")
    assert other.load(session.id) is None
    assert store(stack).load(session.id) is not None

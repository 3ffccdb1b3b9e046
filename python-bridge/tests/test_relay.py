"""Worker down: policies raise/defer/local, then the relay delivers exactly once."""

import io

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

import signal_bridge
from accounts.models import UserProfile
from bridge_helpers import applied_count, make_user
from signal_bridge.models import DeadLetter, OutboxMessage

pytestmark = pytest.mark.django_db(transaction=True)

FAST_FAIL = {"TIMEOUT_MS": 200, "RETRIES": 0}


def test_defer_then_relay_once_delivers_everything_exactly_once(bridge, worker_down):
    bridge(ON_UNREACHABLE="defer", **FAST_FAIL)
    ann = make_user("r-ann", sex="F")
    bob = make_user("r-bob", birthdate="1999-01-02")
    ann._profile_data = {"profile_type": "business"}
    ann.save()  # an update queued behind ann's 'created'
    message_ids = list(OutboxMessage.objects.order_by("seq").values_list("message_id", flat=True))
    assert len(message_ids) == 3
    assert signal_bridge.stats()["deferred"] == 3
    assert not UserProfile.objects.exists()

    with pytest.raises(CommandError) as info:
        call_command("signal_bridge", "relay", "--once", stdout=io.StringIO(), stderr=io.StringIO())
    assert info.value.returncode == 1
    assert OutboxMessage.objects.count() == 3, "nothing is lost while the worker is down"

    worker_down.start()
    out = io.StringIO()
    call_command("signal_bridge", "relay", "--once", stdout=out)
    assert "remaining 0" in out.getvalue()
    assert OutboxMessage.objects.count() == 0
    assert applied_count(message_ids) == 3
    ann_profile = UserProfile.objects.get(user=ann)
    assert (ann_profile.profile_type, ann_profile.sex) == ("business", "F")
    assert str(UserProfile.objects.get(user=bob).birthdate) == "1999-01-02"


def test_raise_policy_raises_and_keeps_the_row(bridge, worker_down):
    bridge(ON_UNREACHABLE="raise", **FAST_FAIL)
    user = User(username="r-raise")
    with pytest.raises(signal_bridge.WorkerUnreachable) as info:
        user.save()
    assert info.value.retryable and info.value.code == "unreachable"
    assert User.objects.filter(username="r-raise").exists(), "the save itself committed"
    assert OutboxMessage.objects.filter(message_id=info.value.message_id).count() == 1


def test_cooldown_skips_the_network(bridge, worker_down):
    bridge(ON_UNREACHABLE="defer", TIMEOUT_MS=1000, RETRIES=0, UNREACHABLE_COOLDOWN_MS=60000)
    make_user("r-cool1")
    import time

    started = time.monotonic()
    make_user("r-cool2")
    assert time.monotonic() - started < 0.5, "the second save must not wait TIMEOUT_MS again"
    assert OutboxMessage.objects.count() == 2


def test_local_policy_runs_python_receiver(bridge, worker_down):
    bridge(
        ON_UNREACHABLE="local",
        LOCAL_RECEIVERS={"auth.user": "accounts.receivers.create_or_update_user_profile"},
        **FAST_FAIL,
    )
    user = make_user("r-local", sex="O")
    assert UserProfile.objects.get(user=user).sex == "O"
    assert OutboxMessage.objects.count() == 0
    assert signal_bridge.stats()["local"] == 1


def test_relay_dead_letters_final_errors_and_continues(bridge):
    bridge(MODE="outbox")
    bad = make_user("r-bad", birthdate="02/01/1990")
    good = make_user("r-good", sex="M")
    call_command("signal_bridge", "relay", "--once", stdout=io.StringIO(), stderr=io.StringIO())
    assert OutboxMessage.objects.count() == 0
    assert UserProfile.objects.filter(user=good).exists()
    assert not UserProfile.objects.filter(user=bad).exists()
    letter = DeadLetter.objects.get()
    assert (letter.code, letter.field, letter.object_pk) == ("invalid_value", "birthdate", str(bad.pk))
    out = io.StringIO()
    call_command("signal_bridge", "deadletters", stdout=out)
    assert "code=invalid_value field=birthdate" in out.getvalue()
    out = io.StringIO()
    call_command("signal_bridge", "status", stdout=out)
    assert "outbox: 0 rows" in out.getvalue() and "dead letters: 1" in out.getvalue()


def test_relay_of_an_already_applied_message_is_a_duplicate(bridge):
    bridge(MODE="outbox")
    user = make_user("r-dup", sex="F")
    row = OutboxMessage.objects.get()
    call_command("signal_bridge", "relay", "--once", stdout=io.StringIO())
    # Put the same message back (as if the ack had been lost) and relay again.
    OutboxMessage.objects.create(
        message_id=row.message_id, sender=row.sender, object_pk=row.object_pk, payload=row.payload
    )
    call_command("signal_bridge", "relay", "--once", stdout=io.StringIO())
    assert OutboxMessage.objects.count() == 0
    assert applied_count([row.message_id]) == 1
    assert signal_bridge.stats()["acked.duplicate"] == 1
    assert UserProfile.objects.filter(user=user).count() == 1


def test_ping_command(bridge):
    out = io.StringIO()
    call_command("signal_bridge", "ping", stdout=out)
    assert out.getvalue().startswith("pong from tcp://127.0.0.1:")
    bridge(ENDPOINT="tcp://127.0.0.1:1", TIMEOUT_MS=200)
    with pytest.raises(CommandError) as info:
        call_command("signal_bridge", "ping", stdout=io.StringIO())
    assert info.value.returncode == 1


def test_the_relays_signal_handler_cannot_deadlock_on_its_stop_event():
    """SIGTERM arriving while the main thread holds the Event's lock (inside ``stop.wait()``)."""
    import signal
    import threading

    from signal_bridge.management.commands.signal_bridge import stop_on_signal

    stop = threading.Event()
    handler = stop_on_signal(stop)

    def signal_inside_wait():
        with stop._cond:  # what Event.wait() holds around its bookkeeping
            handler(signal.SIGTERM, None)

    thread = threading.Thread(target=signal_inside_wait, daemon=True)
    thread.start()
    thread.join(timeout=5)
    assert not thread.is_alive(), "the handler blocked on the lock its own thread holds"
    assert stop.wait(timeout=5)

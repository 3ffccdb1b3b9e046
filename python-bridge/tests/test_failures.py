"""``stale`` after a retryable failure is a lost change: dead letter, never a silent delete.

The first tests drive ``outbox.settle`` with reply dicts (the shapes of docs/PROTOCOL.md);
the last ones get the ``stale`` from the real worker, with its ``last_seq``.
"""

import io
import json

import pytest
from django.core.management import call_command

import signal_bridge
from accounts.models import UserProfile
from bridge_helpers import make_user
from signal_bridge import conf, envelope, failures, outbox, publisher, relay, transport
from signal_bridge.models import DeadLetter, OutboxMessage

STORE_UNAVAILABLE = {"status": "error", "error": {"code": "store_unavailable", "message": "locked", "retryable": True}}


def reply(message, **body):
    return {message.message_id: {"v": 1, "id": message.message_id, **body}}


def stale(message, last_seq=None):
    result = {"action": "stale"} if last_seq is None else {"action": "stale", "last_seq": last_seq}
    return reply(message, status="ok", result=result)


def row(pk="7", payload='{"v":1}'):
    message = outbox.Message(
        message_id=envelope.uuid7(), using="default", label="auth.user", object_pk=pk, body=payload
    )
    outbox.insert(message)
    return message


@pytest.fixture(autouse=True)
def fresh_record():
    failures.clear()
    yield
    failures.clear()


@pytest.mark.django_db
def test_stale_after_a_retryable_error_goes_to_the_dead_letters_with_the_newer_seq():
    message = row()
    outbox.settle([message], reply(message, **STORE_UNAVAILABLE))
    assert OutboxMessage.objects.filter(seq=message.seq).exists(), "a retryable error keeps the row"

    acked, finals, left = outbox.settle([message], stale(message, last_seq=message.seq + 5))

    assert (acked, left) == ([], [])
    assert [(m.message_id, e.code, e.message) for m, e in finals] == [
        (message.message_id, "stale", f"overtaken by seq {message.seq + 5}")
    ]
    assert not OutboxMessage.objects.exists()
    letter = DeadLetter.objects.get()
    assert (letter.message_id, letter.seq, letter.code, letter.message) == (
        message.message_id, message.seq, "stale", f"overtaken by seq {message.seq + 5}"
    )
    assert not failures.failed(message.message_id), "dead-lettered: no longer watched"
    out = io.StringIO()
    call_command("signal_bridge", "deadletters", stdout=out)
    assert f"auth.user:7 code=stale attempts=1: overtaken by seq {message.seq + 5}" in out.getvalue()


@pytest.mark.django_db
def test_stale_after_no_reply_from_a_worker_without_last_seq_says_a_newer_message():
    message = row()
    outbox.settle([message], {})  # no reply
    outbox.settle([message], stale(message))
    letter = DeadLetter.objects.get()
    assert (letter.code, letter.message) == ("stale", "overtaken by a newer message")


@pytest.mark.django_db
def test_stale_to_a_message_that_never_failed_here_is_deleted():
    message = row()
    acked, finals, _ = outbox.settle([message], stale(message, last_seq=message.seq + 5))
    assert acked == [message] and finals == []
    assert not OutboxMessage.objects.exists()
    assert not DeadLetter.objects.exists()


@pytest.mark.django_db
def test_stale_to_a_row_whose_attempts_record_a_failure_elsewhere_goes_to_the_dead_letters():
    message = row()
    outbox.record_failure("default", [message.seq], "no reply")  # another process saw it fail
    (read_back,) = outbox.oldest("default", 10)
    assert not failures.failed(message.message_id) and read_back.attempts == 1

    acked, finals, _ = outbox.settle([read_back], stale(read_back, last_seq=message.seq + 3))

    assert acked == [] and [e.message for _, e in finals] == [f"overtaken by seq {message.seq + 3}"]
    assert DeadLetter.objects.get().message_id == message.message_id


@pytest.mark.django_db
def test_an_ack_after_a_failure_ends_the_watch():
    message = row()
    outbox.settle([message], reply(message, **STORE_UNAVAILABLE))
    assert failures.failed(message.message_id)
    outbox.settle([message], reply(message, status="ok", result={"action": "updated"}))
    assert not failures.failed(message.message_id)
    assert not OutboxMessage.objects.exists() and not DeadLetter.objects.exists()


def test_the_record_is_bounded_and_drops_the_oldest_first(monkeypatch):
    monkeypatch.setattr(failures, "MAX_TRACKED", 3)
    failures.record(["a", "b", "c"])
    failures.record(["a"])  # seen failing again: now the newest
    failures.record(["d"])
    assert [i for i in "abcd" if failures.failed(i)] == ["a", "c", "d"]
    assert failures.count() == 3


def test_an_object_whose_first_message_failed_sends_only_that_one():
    def message(message_id, pk, using="default"):
        return outbox.Message(message_id=message_id, using=using, label="auth.user", object_pk=pk, body="{}")

    a1, a2, b1, a3, b2, other_db = (
        message("a1", "1"), message("a2", "1"), message("b1", "2"), message("a3", "1"), message("b2", "2"),
        message("x1", "1", using="other"),
    )
    failures.record(["a1", "b2"])  # b2 is not its object's first message here: b is not held
    send, held = failures.hold_back([a1, a2, b1, a3, b2, other_db])
    assert [m.message_id for m in send] == ["a1", "b1", "b2", "x1"]
    assert [m.message_id for m in held] == ["a2", "a3"]


# --- against the worker: its stale reply and its last_seq ------------------------------------


def overtake(user_pk: int, seq: int) -> dict:
    """Apply a newer message of the user straight through the transport (another producer)."""
    message_id = envelope.uuid7()
    frame = json.dumps({
        "v": 1, "id": message_id, "seq": seq, "signal": "post_save", "sender": "auth.user", "created": False,
        "instance": {"model": "auth.user", "pk": user_pk, "fields": {}},
        "attrs": {"_profile_data": {"profile_type": "business"}},
    }).encode()
    config = conf.get()
    return transport.request(frame, message_id, endpoints=config.endpoints, timeout_ms=5000, retries=0)


@pytest.mark.django_db(transaction=True)
def test_the_relay_dead_letters_a_row_overtaken_while_the_worker_was_down(bridge, worker):
    bridge(MODE="outbox", TIMEOUT_MS=300, RETRIES=0, UNREACHABLE_COOLDOWN_MS=0)
    user = make_user("ov-relay")
    relay.run(once=True)
    user._profile_data = {"sex": "F"}
    user.save()
    (pending,) = OutboxMessage.objects.all()
    worker.stop()
    try:
        assert relay.run(once=True).remaining == 1, "no reply: the row stays"
    finally:
        worker.start()
    newer = pending.seq + 10
    assert overtake(user.pk, newer)["result"]["action"] == "updated"

    assert relay.run(once=True).remaining == 0
    letter = DeadLetter.objects.get()
    assert (letter.message_id, letter.code, letter.message) == (pending.message_id, "stale", f"overtaken by seq {newer}")
    assert UserProfile.objects.get(user=user).sex is None, "the overtaken change was indeed not applied"
    assert signal_bridge.stats()["overtaken"] == 1


def message_of(user) -> outbox.Message:
    """An update message of ``user`` without profile data, as the receiver would capture it."""
    message_id = envelope.uuid7()
    body = envelope.build(
        message_id=message_id, signal="post_save", label="auth.user", using="default", created=False,
        raw=False, update_fields=None, instance=user, attrs=(), fields=(),
    )
    return outbox.Message(message_id=message_id, using="default", label="auth.user", object_pk=str(user.pk), body=body)


@pytest.mark.django_db(transaction=True)
def test_sync_delivery_raises_overtaken_for_a_message_it_saw_fail(bridge, worker):
    bridge(MODE="outbox")
    user = make_user("ov-sync")
    relay.run(once=True)
    bridge(MODE="sync", TIMEOUT_MS=300, RETRIES=0, UNREACHABLE_COOLDOWN_MS=0, ON_UNREACHABLE="defer")
    config = conf.get()
    first, second = message_of(user), message_of(user)
    for message in (first, second):
        outbox.insert(message)  # as a save inside atomic() does
    worker.stop()
    try:
        publisher.deliver_sync(config, first, None)  # no reply: deferred, its row stays
    finally:
        worker.start()
    assert failures.failed(first.message_id)
    newer = second.seq + 10
    overtake(user.pk, newer)

    with pytest.raises(signal_bridge.WorkerError) as info:
        publisher.deliver_sync(config, first, None)
    assert (info.value.code, info.value.message, info.value.retryable) == ("stale", f"overtaken by seq {newer}", False)
    publisher.deliver_sync(config, second, None)  # never failed: stale as documented, deleted
    assert not OutboxMessage.objects.exists()
    assert list(DeadLetter.objects.values_list("message_id", "code")) == [(first.message_id, "stale")]

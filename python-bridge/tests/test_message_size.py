"""Messages larger than ``MAX_MESSAGE_BYTES`` are never sent: dead letter ``too_large`` at once.

Past the worker's ``--max-request-bytes`` the worker would refuse the frame; past the
transport cap (1 MiB) libzmq drops the connection without a reply, and the relay would
resend the row forever.
"""

import re

import pytest
from django.db import transaction

import signal_bridge
from accounts.models import UserProfile
from bridge_helpers import make_user
from signal_bridge import checks, envelope, relay
from signal_bridge import MessageTooLarge
from signal_bridge.models import DeadLetter, OutboxMessage

pytestmark = pytest.mark.django_db(transaction=True)

OVER_64_KIB = "x" * 70_000
OVER_1_MIB = "x" * 1_100_000


def assert_too_large(letter, limit=65536, *, durable=True):
    size = len(envelope.wire(letter.payload, letter.seq, durable=durable))
    assert size > limit
    assert (letter.code, letter.message) == ("too_large", f"too large: {size} bytes (MAX_MESSAGE_BYTES is {limit})")


def test_sync_raises_too_large_and_sends_nothing(bridge):
    user = make_user("big-sync")
    sent = signal_bridge.stats()["sent"]
    user._profile_data = {"sex": OVER_64_KIB}
    with pytest.raises(signal_bridge.WorkerError) as info:
        user.save()
    error = info.value
    assert isinstance(error, MessageTooLarge)
    assert (error.code, error.retryable) == ("too_large", False)
    assert signal_bridge.stats()["sent"] == sent, "not sent"
    letter = DeadLetter.objects.get()
    assert letter.message_id == error.message_id and letter.message == error.message
    assert_too_large(letter)
    assert not OutboxMessage.objects.exists()


def test_sync_inside_atomic_uses_the_configured_limit(bridge):
    bridge(MAX_MESSAGE_BYTES=2000)
    user = make_user("big-atomic")
    with pytest.raises(MessageTooLarge):
        with transaction.atomic():
            user._profile_data = {"sex": "y" * 2500}
            user.save()
    assert_too_large(DeadLetter.objects.get(), 2000, durable=False)
    assert not OutboxMessage.objects.exists(), "the row moved to the dead letters"
    assert UserProfile.objects.get(user=user).sex is None


def test_async_dead_letters_too_large_and_delivers_the_rest(bridge):
    bridge(MODE="async")
    big = make_user("big-async", sex=OVER_64_KIB)
    small = make_user("small-async", sex="F")
    assert signal_bridge.flush(30)
    assert UserProfile.objects.get(user=small).sex == "F"
    assert not UserProfile.objects.filter(user=big).exists()
    letter = DeadLetter.objects.get()
    assert letter.object_pk == str(big.pk) and letter.seq is None
    assert_too_large(letter, durable=False)
    assert not OutboxMessage.objects.exists()


def test_relay_dead_letters_a_row_over_the_transport_cap_instead_of_retrying_it(bridge):
    bridge(MODE="outbox", TIMEOUT_MS=500)
    big = make_user("big-relay", sex=OVER_1_MIB)
    small = make_user("small-relay", sex="M")
    result = relay.run(once=True)
    assert (result.remaining, result.dead_lettered, result.acked) == (0, 1, 1)
    assert UserProfile.objects.get(user=small).sex == "M"
    letter = DeadLetter.objects.get()
    assert letter.object_pk == str(big.pk)
    assert_too_large(letter)
    assert re.fullmatch(r"too large: \d{7} bytes \(MAX_MESSAGE_BYTES is 65536\)", letter.message)


def test_the_limit_must_be_a_positive_integer(bridge):
    bridge(MAX_MESSAGE_BYTES=0)
    assert "signal_bridge.E009" in {m.id for m in checks.check_settings()}

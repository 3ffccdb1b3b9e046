"""Async mode: save() does not wait; the background sender delivers."""

import pytest
from django.db import transaction

import signal_bridge
from accounts.models import UserProfile
from bridge_helpers import applied_count, make_user, wait_for
from signal_bridge import sender
from signal_bridge.models import OutboxMessage

pytestmark = pytest.mark.django_db(transaction=True)


def test_async_delivers_autocommit_saves(bridge):
    bridge(MODE="async")
    users = [make_user(f"async{i}", sex="F") for i in range(20)]
    ids = [u.pk for u in users]
    wait_for(lambda: UserProfile.objects.filter(user_id__in=ids).count() == 20)
    assert signal_bridge.flush(5)
    assert OutboxMessage.objects.count() == 0, "acked rows are deleted"
    stats = signal_bridge.stats()
    assert stats["acked.created"] == 20
    assert stats.get("outbox_written", 0) == 0, "delivered autocommit messages never touch the outbox"


def test_async_in_atomic_waits_for_commit_and_rollback_sends_nothing(bridge):
    bridge(MODE="async")
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            make_user("rolled-back", sex="M")
            raise RuntimeError
    with transaction.atomic():
        user = make_user("committed", sex="M")
        assert signal_bridge.stats().get("sent", 0) == 0
    wait_for(lambda: UserProfile.objects.filter(user_id=user.pk).exists())
    assert signal_bridge.flush(5)
    assert signal_bridge.stats()["sent"] == 1
    assert OutboxMessage.objects.count() == 0


def test_full_queue_leaves_message_in_outbox_without_blocking(bridge, monkeypatch):
    bridge(MODE="async", ASYNC_QUEUE_SIZE=1)
    sender.shutdown()
    monkeypatch.setattr(sender.Sender, "_started", lambda self: None)  # nobody drains the queue
    first = make_user("queued")
    second = make_user("overflow")
    stats = signal_bridge.stats()
    assert stats["queue_full"] == 1
    rows = list(OutboxMessage.objects.values_list("object_pk", flat=True))
    assert rows == [str(second.pk)], "the overflowing message is in the outbox for the relay"
    monkeypatch.undo()
    sender.get()._started()
    assert signal_bridge.flush(5)
    assert UserProfile.objects.filter(user_id=first.pk).exists()
    sender.shutdown()


def test_async_worker_down_leaves_rows_for_relay(bridge, worker_down):
    bridge(MODE="async", TIMEOUT_MS=200)
    users = [make_user(f"down{i}") for i in range(3)]
    assert signal_bridge.flush(5)
    message_ids = list(OutboxMessage.objects.values_list("message_id", flat=True))
    assert len(message_ids) == 3
    worker_down.start()
    from django.core.management import call_command

    call_command("signal_bridge", "relay", "--once")
    assert OutboxMessage.objects.count() == 0
    assert applied_count(message_ids) == 3
    assert UserProfile.objects.filter(user_id__in=[u.pk for u in users]).count() == 3


def test_async_sender_drains_what_it_deferred_once_the_worker_is_back(bridge, worker_down):
    # No relay runs here: the sender thread itself sends the rows it had to leave in the
    # outbox, once it is idle and the cooldown is over.
    bridge(MODE="async", TIMEOUT_MS=200, UNREACHABLE_COOLDOWN_MS=300)
    users = [make_user(f"drain{i}", sex="F") for i in range(3)]
    assert signal_bridge.flush(5)
    message_ids = list(OutboxMessage.objects.values_list("message_id", flat=True))
    assert len(message_ids) == 3, "the worker is down: every message waits in the outbox"
    assert applied_count(message_ids) == 0
    worker_down.start()
    wait_for(lambda: OutboxMessage.objects.count() == 0, timeout=15)
    assert applied_count(message_ids) == 3
    assert UserProfile.objects.filter(user_id__in=[u.pk for u in users], sex="F").count() == 3
    # The sender counts the drained rows after its relay pass returns, a moment after the
    # last row left the outbox.
    wait_for(lambda: signal_bridge.stats().get("drained") == 3, timeout=5)


def test_async_sends_the_values_saved_not_later_changes(bridge):
    # The message is rendered on the sender thread, after save() returned: it must still carry
    # what was saved, whatever the caller does to the instance next.
    bridge(MODE="async")
    user = make_user("changed-after-save", sex="F", profile_type="business")
    user._profile_data["sex"] = "M"
    user._profile_data = {"sex": "M"}
    user.username = "renamed-in-memory"
    wait_for(lambda: UserProfile.objects.filter(user_id=user.pk).exists())
    assert signal_bridge.flush(5)
    profile = UserProfile.objects.get(user_id=user.pk)
    assert (profile.sex, profile.profile_type) == ("F", "business")


def test_frames_say_which_commits_need_not_wait_for_the_disk(bridge, monkeypatch):
    """Async messages and messages with an outbox row carry ``"durable": false``
    (docs/PROTOCOL.md); a sync autocommit message without a row does not."""
    import json

    from signal_bridge import transport

    sent = []
    real_pipeline, real_request, real_quick = transport.pipeline, transport.request, transport.quick_request

    def recording_pipeline(frames, **kwargs):
        sent.extend(("async", json.loads(frame)) for _, frame in frames)
        return real_pipeline(frames, **kwargs)

    def recording_request(frame, *args, **kwargs):
        sent.append(("sync", json.loads(frame)))
        return real_request(frame, *args, **kwargs)

    def recording_quick_request(frame, *args, **kwargs):
        result = real_quick(frame, *args, **kwargs)
        if result is not None:  # None: nothing was sent (request() sends it)
            sent.append(("sync", json.loads(frame)))
        return result

    monkeypatch.setattr(transport, "pipeline", recording_pipeline)
    monkeypatch.setattr(transport, "request", recording_request)
    monkeypatch.setattr(transport, "quick_request", recording_quick_request)

    bridge(MODE="async")
    make_user("async-autocommit", sex="F")
    with transaction.atomic():
        make_user("async-atomic", sex="F")
    assert signal_bridge.flush(5)
    bridge(MODE="sync")
    make_user("sync-autocommit", sex="M")
    with transaction.atomic():
        make_user("sync-atomic", sex="M")

    seen = {(mode, "seq" in frame): frame.get("durable", True) for mode, frame in sent}
    assert seen == {("async", False): False, ("async", True): False, ("sync", False): True, ("sync", True): False}
    assert UserProfile.objects.count() == 4

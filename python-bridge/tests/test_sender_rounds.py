"""The async sender's rounds (no worker: its gathering and rendering only)."""

import logging
import time

from signal_bridge import outbox, state
from signal_bridge.sender import Sender


class _Draft:
    def __init__(self, text=None):
        self.text = text

    def render(self):
        if self.text is None:
            raise ValueError("cannot render")
        return self.text


def message(text='{"v":1}'):
    return outbox.Message(message_id="m", using="default", label="auth.user", object_pk="1", body=_Draft(text))


def gather(queued: int, *, last_round_ago: float, limit: int, interval_s: float) -> tuple[list, float]:
    """One ``_gather`` on a fresh sender with ``queued`` messages; the batch and the seconds it took."""
    sender = Sender(100)
    sender.last_round = time.monotonic() - last_round_ago
    for _ in range(queued):
        sender.queue.put(message())
    batch, started = [], time.monotonic()
    sender._gather(batch, limit=limit, interval_s=interval_s)
    return batch, time.monotonic() - started


def test_a_message_after_a_quiet_spell_goes_at_once():
    batch, waited = gather(1, last_round_ago=10, limit=500, interval_s=5.0)
    assert len(batch) == 1
    assert waited < 2.0, "the interval since the last round is long over: no wait"


def test_under_load_messages_wait_for_the_interval_and_go_together():
    batch, waited = gather(3, last_round_ago=0, limit=500, interval_s=0.3)
    assert len(batch) == 3
    assert waited >= 0.25, f"a round started {waited:.3f} s after the previous one (interval 0.3 s)"


def test_a_full_batch_does_not_wait():
    batch, waited = gather(5, last_round_ago=0, limit=5, interval_s=5.0)
    assert len(batch) == 5 and waited < 2.0


def test_messages_are_rendered_as_they_are_taken_and_a_broken_one_is_dropped(caplog):
    state.reset_stats()
    sender = Sender(100)
    sender.last_round = time.monotonic() - 10
    good, broken = message('{"v":1,"ok":true}'), message(None)
    sender.unfinished = 2
    sender.queue.put(broken)
    sender.queue.put(good)
    batch = []
    with caplog.at_level(logging.ERROR, logger="signal_bridge"):
        sender._gather(batch, limit=500, interval_s=0.0)
    assert batch == [good]
    assert isinstance(good.body, str), "rendered on the sender thread, before the round"
    assert sender.unfinished == 1, "the dropped message no longer counts as pending (flush() would wait)"
    assert state.stats()["errors.render"] == 1
    assert "could not be rendered" in caplog.text


def test_a_saves_tuple_becomes_its_message_on_the_sender_thread_with_ids_in_queue_order():
    """save() queues a plain tuple (publisher); ids, heads and messages are made as items leave the queue."""
    import json

    sender = Sender(100)
    sender.last_round = time.monotonic() - 10
    made = [1_700_000_000.0 + i for i in range(3)]
    for i, when in enumerate(made):
        values, attrs_json = {"model": "auth.user", "pk": i + 1, "fields": {}}, '{"_profile_data":{"sex":"F"}}'
        sender.queue.put(("auth.user", "default", str(i + 1), i == 0, False, None, values, (), attrs_json, None, when))
    sender.unfinished = 3
    batch = []
    sender._gather(batch, limit=500, interval_s=0.0)
    assert [m.object_pk for m in batch] == ["1", "2", "3"]
    assert [m.made for m in batch] == made, "made: the save's time, not the sender's"
    ids = [m.message_id for m in batch]
    assert ids == sorted(ids) and len(set(ids)) == 3, "UUIDv7 ids increase in queue order"
    first = json.loads(batch[0].payload)
    assert {k: first[k] for k in ("v", "id", "signal", "sender", "db", "created", "raw", "update_fields")} == {
        "v": 1, "id": ids[0], "signal": "post_save", "sender": "auth.user", "db": "default", "created": True,
        "raw": False, "update_fields": None}
    assert first["instance"] == {"model": "auth.user", "pk": 1, "fields": {}}
    assert first["attrs"] == {"_profile_data": {"sex": "F"}}
    assert [m.older for m in batch] == [None, None, None]


def test_a_sender_thread_that_ended_is_started_again_by_the_next_message():
    """enqueue() skips ``is_alive()`` while the thread runs (``running``); once it has ended, it starts a new one."""
    sender = Sender(100)
    sender._started()
    first = sender.thread
    assert sender.running and first.is_alive()
    sender.stopping = True  # the thread ends at its next idle wake-up (at most 0.5 s)
    first.join(timeout=5)
    assert not first.is_alive() and not sender.running
    sender._started()
    assert sender.thread is not first and sender.thread.is_alive() and sender.running
    sender.stopping = True
    sender.thread.join(timeout=5)

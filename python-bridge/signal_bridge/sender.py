"""The background sender: async delivery and batched deletes of acked rows.

One daemon thread per process, started on first use and made anew in a
forked child (the parent's thread does not exist there, and its queue's
locks may be held). Each round it takes up to ``ASYNC_BATCH`` messages; rounds
start at most every ``ASYNC_INTERVAL_MS`` (a message after a quiet spell goes
at once, under load an interval's messages go together; see ``_gather``):

1. older rows of the same objects still in the outbox go first (no
   overtaking; one raw indexed ``SELECT`` per round tells whether any exist);
   of an object whose oldest message failed retryably before, only that
   message is sent, the others wait in the outbox until it is acked or
   dead-lettered (``failures``); a message larger than ``MAX_MESSAGE_BYTES``
   goes to the dead letters unsent;
2. everything else is sent over one DEALER, pipelined, replies matched by id;
3. acked rows (messages saved inside ``atomic()``) are deleted in one
   statement, final errors go to the dead letters, and messages without an
   ack (or held back) are left in the outbox for the relay: those from
   autocommit saves, which had no row, get their rows now, in one transaction.

Messages from autocommit saves get an outbox row only when they could not be
delivered: writing every one ahead of the send and deleting it after the ack
costs two extra SQLite commits per round, which hold the write lock that
``save()`` needs (README, "Delivery guarantees", has the measurement). The
price is the same loss window as the in-process receiver's: a crash between
the user's commit and the ack loses the message.

``save()`` never blocks on it: when the queue is full the message's row is
written by ``save()`` itself (counted as ``queue_full``) and the relay sends it.

Rows this process left in the outbox (worker unreachable or too slow, queue
full) are not left for the relay alone: when the queue has been idle for a
moment and no cooldown is running, the thread runs one relay pass
(``relay.run(once=True)``) for each database it deferred to, until the rows
are gone. A worker that was only slow for a while thus catches up without
anyone running ``manage.py signal_bridge relay``; the relay is still what
sends rows of processes that died.
At interpreter exit, ``atexit`` waits up to ``ASYNC_FLUSH_TIMEOUT_MS`` for the
queue to drain, then writes what is left to the outbox.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import queue
import threading
import time

from django.db import DatabaseError, connections

from . import conf, envelope, failures, outbox, state, transport

logger = logging.getLogger("signal_bridge")

# How long a round that has only acked rows to delete waits for more.
DELETE_WAIT_S = 0.05
# Messages rendered in a row before the sender thread offers the GIL to save()'s thread.
RENDER_CHUNK = 64


class Sender:
    """The queue and thread; use :func:`get`."""

    def __init__(self, maxsize: int) -> None:
        # A SimpleQueue (C) with the bound checked before each put: ``queue.Queue``'s put alone cost
        # save()'s thread more than the rest of enqueue() (Benchmarks/callgrind, path async-create).
        # Several saving threads may each pass the check at once: the queue then holds at most one
        # message per such thread beyond ``maxsize``, still a bound.
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.maxsize = maxsize
        self.deletes: collections.deque = collections.deque()
        # ``unfinished`` is guarded by ``lock``; ``condition`` (on the same lock) wakes flush().
        # enqueue() takes the lock itself: a Condition's ``with`` runs two Python-level calls.
        self.lock = threading.Lock()
        self.condition = threading.Condition(self.lock)
        self.unfinished = 0  # queued + in-progress items (messages and deletes)
        self.stopping = False
        self.thread: threading.Thread | None = None
        # Databases whose outbox holds rows this process deferred (drained when idle),
        # and when the next drain may run (after one that left rows: a cooldown later).
        self.deferred_to: set[str] = set()
        self.next_drain = 0.0
        self.last_round = 0.0  # when the previous round started (ASYNC_INTERVAL_MS)
        # A round waiting for its start sleeps on ``wake``; a producer sets it when ``early``
        # messages are queued (a full batch, or the first message after a deletes-only wait).
        # 0: no round is waiting.
        self.wake = threading.Event()
        self.early = 0
        # True from the thread's start until its last step: while it is, enqueue() need not ask
        # ``is_alive()`` (a few Python calls per save); once it is not, _started() asks as before.
        self.running = False

    # --- producer side (Django threads) ---

    def _started(self) -> None:
        if self.running:
            return
        if self.thread is None or not self.thread.is_alive():
            with self.condition:
                if self.thread is None or not self.thread.is_alive():
                    self.stopping = False
                    self.running = True
                    self.thread = threading.Thread(target=self._run, name="signal-bridge-sender", daemon=True)
                    self.thread.start()

    def enqueue(self, config, item) -> None:
        """Queue ``item`` (a ``Message``, or a save's tuple: :func:`from_save`); if the queue is full, leave it to the relay."""
        with self.lock:
            self.unfinished += 1
        if self.queue.qsize() >= self.maxsize:
            with self.condition:
                self.unfinished -= 1
                self.condition.notify_all()
            state.count("queue_full")
            state.count("deferred")
            message = _message(item)
            if message.seq is None:
                outbox.insert(message)
            self.deferred_to.add(message.using)
            logger.warning(
                "signal_bridge: async queue full (%d); message %s left in the outbox for the relay",
                self.maxsize, message.message_id,
            )
            return
        self.queue.put(item)
        early = self.early
        if early and self.queue.qsize() >= early:
            self.wake.set()
        self._started()

    def delete_later(self, using: str, seq: int) -> None:
        """Delete an acked row on the sender thread (``DELETE_ACKED = "batch"``).

        Only the first delete since the last round wakes the thread; the
        round it starts waits ``DELETE_WAIT_S`` and takes every delete queued
        by then (one wake-up and one statement per round, not per message).
        """
        with self.condition:
            self.unfinished += 1
            first = not self.deletes
            self.deletes.append((using, seq))
        self._started()
        if first:
            self.queue.put(None)  # wake the thread (at most one per round: only the first delete)

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self.condition:
            while self.unfinished > 0:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.thread is None or not self.thread.is_alive():
                    return self.unfinished == 0
                self.condition.wait(remaining)
        return True

    def _done(self, n: int) -> None:
        if n:
            with self.condition:
                self.unfinished -= n
                self.condition.notify_all()

    # --- the thread ---

    def _run(self) -> None:
        try:
            while not self.stopping:
                try:
                    first = self.queue.get(timeout=0.5)
                except queue.Empty:
                    self._drain_deferred()
                    continue
                message = self._render(first) if first is not None else None
                batch = [message] if message is not None else []
                try:
                    config = conf.get()
                    limit, interval_s = config.async_batch, config.async_interval_ms / 1000.0
                except Exception:
                    limit, interval_s = 500, 0.1
                self._gather(batch, limit, interval_s)
                self.last_round = time.monotonic()
                deletes = []
                while self.deletes:
                    deletes.append(self.deletes.popleft())
                try:
                    try:
                        self._round(batch, deletes)
                    except DatabaseError:
                        # A connection the database dropped (a restart) fails the round's
                        # first query: reconnect and run the round once more (a message
                        # sent twice is answered "duplicate").
                        _close_db()
                        self._round(batch, deletes)
                except Exception:
                    logger.exception(
                        "signal_bridge: sender round failed (%d messages, %d deletes); "
                        "messages with outbox rows stay for the relay",
                        len(batch), len(deletes),
                    )
                    _close_db()
                finally:
                    self._done(len(batch) + len(deletes))
        finally:
            self.running = False
            _close_db()
            transport.close_socket()

    def _gather(self, batch: list, limit: int, interval_s: float) -> None:
        """Add queued messages to ``batch`` until the round may start.

        A round starts at most every ``interval_s`` (``ASYNC_INTERVAL_MS``):
        every round costs commits (the worker's, and Django's deletes) that
        hold SQLite's write lock, and a ``save()`` that meets the lock held
        sleeps in SQLite's busy handler (1 ms, then 2, 5, ...). So a message
        after a quiet spell goes at once, and under load the messages of one
        interval go together. A round with only acked rows to delete is in
        no hurry: it waits ``DELETE_WAIT_S`` at least.

        The thread sleeps until then in one wait: it is not woken by every
        ``put()`` (each wake-up takes the GIL from ``save()``'s thread), only
        when a full batch is queued or, while it waits with deletes only, by
        the first message. What was queued is then taken and rendered.
        """
        def deadline() -> float:
            earliest = self.last_round + interval_s
            return max(earliest, time.monotonic() if batch else started + DELETE_WAIT_S)

        started = time.monotonic()
        until = deadline()
        try:
            while len(batch) < limit:
                had = len(batch)
                self._take(batch, limit)
                if len(batch) >= limit:
                    break
                if batch and not had:
                    until = deadline()  # a message ends a deletes-only wait
                remaining = until - time.monotonic()
                if remaining <= 0:
                    break
                self.wake.clear()
                self.early = limit - len(batch) if batch else 1
                if self.queue.qsize() >= self.early:
                    continue  # queued between _take() and clear()
                self.wake.wait(remaining)
        finally:
            self.early = 0

    def _take(self, batch: list, limit: int) -> None:
        """Move queued messages to ``batch`` (up to ``limit``), rendering each (``_render``)."""
        rendered = 0
        while len(batch) < limit:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                return
            message = self._render(item) if item is not None else None
            if message is None:
                continue
            batch.append(message)
            rendered += 1
            if rendered % RENDER_CHUNK == 0:
                time.sleep(0)  # let save()'s thread have the GIL between chunks

    def _render(self, item) -> outbox.Message | None:
        """The message of a queued ``item`` (:func:`from_save`), rendered now; None if it cannot be.

        Rendering (field serialization, JSON) holds the GIL, a few µs per
        message; ``_take`` offers the GIL to ``save()``'s thread every
        ``RENDER_CHUNK`` messages, so a large round never keeps it waiting
        for the whole batch. A message that cannot be rendered is logged
        and dropped.
        """
        message = _message(item)
        try:
            message.payload
        except Exception:
            logger.exception(
                "signal_bridge: message %s (%s pk %s) could not be rendered; dropped",
                message.message_id, message.label, message.object_pk,
            )
            state.count("errors.render")
            self._done(1)
            return None
        return message

    def _round(self, batch: list[outbox.Message], deletes: list[tuple[str, int]]) -> None:
        by_db: dict[str, list[int]] = {}
        for using, seq in deletes:
            by_db.setdefault(using, []).append(seq)
        for using, seqs in by_db.items():
            outbox.delete(using, seqs)
        if not batch:
            return
        config = conf.get()
        groups: dict[str, list[outbox.Message]] = {}
        for message in batch:
            groups.setdefault(message.using, []).append(message)
        for using, messages in groups.items():
            if not transport.may_send(endpoints=config.endpoints, timeout_ms=config.timeout_ms):
                outbox.insert_many(using, [m for m in messages if m.seq is None])
                state.count("deferred", len(messages))
                self.deferred_to.add(using)
                continue
            # Messages known to have no older rows (a new object's: publisher.on_pre_save) need
            # no look-up; when none is left, no query runs.
            unknown = [m for m in messages if m.older is not False]
            older = outbox.backlog(using, messages) if unknown and outbox.has_backlog(using, unknown) else []
            ordered = sorted(older, key=lambda m: m.seq) + _seq_ordered(messages)
            # An object whose oldest message here failed before sends only that one (failures).
            candidates, held = failures.hold_back(ordered)
            frames, to_send, _ = outbox.frames(candidates, config.max_message_bytes, durable=False)
            left: list = []
            if to_send:
                state.count("sent", len(to_send))
                replies = transport.pipeline(frames, endpoints=config.endpoints, timeout_ms=config.timeout_ms)
                if len(replies) < len(to_send):
                    state.count("unreachable")
                    transport.trip(config.unreachable_cooldown_ms)
                _, _, left = outbox.settle(to_send, replies)
            waiting = {id(m) for m, _ in left} | {id(m) for m in held}
            # Rows in send order, so that an object's seqs keep its order.
            unsaved = [m for m in ordered if id(m) in waiting and m.seq is None]
            if unsaved:
                outbox.insert_many(using, unsaved)
            if waiting:
                self.deferred_to.add(using)
                state.count("deferred", len(waiting))
            if left:
                logger.warning(
                    "signal_bridge: %d of %d messages not acknowledged; left in the outbox for the relay",
                    len(left), len(to_send),
                )
            if held:
                logger.info(
                    "signal_bridge: %d messages wait in the outbox behind an earlier message of their object "
                    "that failed retryably",
                    len(held),
                )

    def _drain_deferred(self) -> None:
        """One relay pass per database this process deferred to, once idle and not cooling down.

        During a cool-down a probe (``transport.may_send``) may find the worker back and end it.
        """
        if not self.deferred_to or time.monotonic() < self.next_drain:
            return
        config = conf.get()
        if not transport.may_send(endpoints=config.endpoints, timeout_ms=config.timeout_ms):
            return
        from . import relay

        for using in sorted(self.deferred_to):
            try:
                result = relay.run(using=using, once=True, log=logger.info)
            except Exception:
                logger.exception("signal_bridge: draining the outbox of %r failed; the relay will send it", using)
                _close_db()
                result = None
            if result is not None and result.remaining == 0:
                self.deferred_to.discard(using)
                state.count("drained", result.acked)
            else:
                # Rows left (worker still unreachable, or other processes' rows): try again
                # a cooldown later. Live sends are not held back meanwhile.
                self.next_drain = time.monotonic() + conf.get().unreachable_cooldown_ms / 1000.0

    def stop(self, timeout: float) -> None:
        """Drain for up to ``timeout`` seconds, stop the thread, persist the rest."""
        self.flush(timeout)
        self.stopping = True
        thread = self.thread
        if thread is not None and thread.is_alive():
            thread.join(timeout=2.0)
        leftovers = []
        while True:
            try:
                item = self.queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                leftovers.append(_message(item))
        groups: dict[str, list[outbox.Message]] = {}
        for m in leftovers:
            if m.seq is None:
                groups.setdefault(m.using, []).append(m)
        for using, messages in groups.items():
            try:
                outbox.insert_many(using, messages)
                state.count("deferred", len(messages))
            except Exception:
                logger.exception("signal_bridge: could not write %d unsent messages to the outbox", len(messages))


def from_save(item: tuple) -> outbox.Message:
    """The message of an async ``save()`` in autocommit, queued as a plain tuple by ``publisher``.

    ``save()``'s thread only copies what can change after it returns (the
    instance's values, its extra attributes as JSON: ``envelope.snapshot``)
    and the time; the id, the head and the ``Message`` are made here, on the
    sender thread, as the item leaves the queue. Queue order is this process's
    commit order, so the ids (UUIDv7, time-ordered) still increase in the
    order of the saves, and ``made`` is still the save's time (the row's
    ``created_at`` if it gets one).
    """
    label, using, object_pk, created, raw, update_fields, values, fields, attrs_json, older, made = item
    message_id = envelope.uuid7()
    head = envelope.head(message_id, "post_save", label, using, created, raw, update_fields)
    return outbox.Message(
        message_id=message_id,
        using=using,
        label=label,
        object_pk=object_pk,
        body=envelope.Draft(head, values, fields, attrs_json),
        older=older,
        made=made,
    )


def _message(item) -> outbox.Message:
    return item if item.__class__ is not tuple else from_save(item)


def _seq_ordered(messages: list[outbox.Message]) -> list[outbox.Message]:
    """Queue order, except that messages with a seq are sorted by it.

    Two transactions that saved the same object commit in seq order but may
    call ``on_commit`` (and so enqueue) in the other order; the worker would
    then answer ``stale`` to the older one. Messages without a seq (autocommit
    saves) keep their place: the queue order is this process's commit order.
    """
    result = list(messages)
    positions = [i for i, m in enumerate(result) if m.seq is not None]
    for i, m in zip(positions, sorted((result[i] for i in positions), key=lambda m: m.seq)):
        result[i] = m
    return result


def _close_db() -> None:
    """Close this thread's database connections (the thread owns them)."""
    try:
        connections.close_all()
    except Exception:  # pragma: no cover - closing must not kill the thread
        logger.debug("signal_bridge: closing connections failed", exc_info=True)


_lock = threading.Lock()
_sender: Sender | None = None


def get() -> Sender:
    """This process's sender (created on first use)."""
    global _sender
    sender = _sender
    if sender is None:
        with _lock:
            if _sender is None:
                _sender = Sender(conf.get().async_queue_size)
            sender = _sender
    return sender


def flush(timeout: float | None = None) -> bool:
    sender = _sender
    if sender is None:
        return True
    if timeout is None:
        timeout = conf.get().async_flush_timeout_ms / 1000.0
    return sender.flush(timeout)


def shutdown(timeout: float | None = None) -> None:
    """Stop the sender (drain first); the next use starts a new one."""
    global _sender
    with _lock:
        sender, _sender = _sender, None
    if sender is not None:
        if timeout is None:
            try:
                timeout = conf.get().async_flush_timeout_ms / 1000.0
            except Exception:
                timeout = 5.0
        sender.stop(timeout)


def _after_fork_in_child() -> None:
    global _sender, _lock
    _sender = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(shutdown)

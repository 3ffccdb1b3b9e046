"""Messages this process saw fail retryably, so that none of them is lost to ``stale``.

A message answered with a retryable error (``store_unavailable``) or not at
all is sent again later. If a later message of the same object (sender label,
pk) is applied in between, the worker answers the resent one ``stale``
(docs/PROTOCOL.md, "Exactly once and ordering"), and deleting its row as for
any ``ok`` would silently drop its change. So every path records here the
messages it saw fail (sync ``save()``, the async sender, the relay: one
record per process), and:

- a ``stale`` answer to a recorded message (or to one whose outbox row
  records a failure, see below) is not an acknowledgement: the
  message goes to the dead letters, code ``stale``, "overtaken by seq N"
  (``outbox.settle``, ``publisher._send_one``);
- the async sender and the relay send nothing else of an object whose oldest
  message in a round is recorded here: that message goes alone, the object's
  later ones wait in the outbox until it is acked or dead-lettered
  (:func:`hold_back`).

A message leaves the record once it is acked or dead-lettered. A ``stale``
answer to a message that never failed here is what the protocol documents
(another process sent a newer message of the object first) and is deleted.

Process memory, and bounded: at most ``MAX_TRACKED`` ids in an
``OrderedDict``, the oldest dropped first. For ``stale``, the outbox row
speaks too (:func:`seen_failing`): a row whose ``attempts`` > 0 failed in
some process, or is a dead letter put back by ``deadletters.requeue``, and
counts as seen failing in every process. A failure the row does not record
(rows written for messages that had none when they failed start at 0) and
that this process never saw, or dropped from the record after that many
other failures, is treated as never seen. Holding an object back
(:func:`hold_back`) uses this process's record only. No Django imports here.
"""

from __future__ import annotations

import collections
import os
import threading

# Most message ids kept; past it the oldest are forgotten (see the module docstring).
MAX_TRACKED = 100_000

_lock = threading.Lock()
_failed: collections.OrderedDict[str, None] = collections.OrderedDict()


def record(message_ids) -> None:
    """Remember that these messages failed retryably (or got no reply) in this process."""
    with _lock:
        for message_id in message_ids:
            _failed[message_id] = None
            _failed.move_to_end(message_id)
        while len(_failed) > MAX_TRACKED:
            _failed.popitem(last=False)


def forget(message_ids) -> None:
    """The messages were acked or dead-lettered: nothing to watch for any more."""
    if not _failed:  # nothing recorded, the usual case: no lock to take
        return
    with _lock:
        for message_id in message_ids:
            _failed.pop(message_id, None)


def failed(message_id: str) -> bool:
    """Whether this process saw ``message_id`` fail retryably and has not settled it since."""
    with _lock:
        return message_id in _failed


def seen_failing(message) -> bool:
    """Whether a ``stale`` answer to ``message`` (an ``outbox.Message``) means its change was lost.

    True when this process saw it fail retryably (:func:`failed`) or when its
    outbox row says it failed before (``attempts`` > 0): a row that failed in
    another process, or a dead letter put back into the outbox by
    ``deadletters.requeue``, which marks its row that way. The row is read by
    whichever process sends it (the relay, the async sender, a sync ``save()``
    of the same object), so the mark holds across processes.
    """
    return message.attempts > 0 or failed(message.message_id)


def count() -> int:
    with _lock:
        return len(_failed)


def clear() -> None:
    """Forget everything (tests)."""
    with _lock:
        _failed.clear()


def hold_back(messages: list) -> tuple[list, list]:
    """Split ``messages`` (``outbox.Message``, in send order) into ``(send, held)``.

    For each object (database, sender label, pk), if its first message in
    ``messages`` failed retryably before, only that message is sent; the
    object's later messages are held (they stay in, or go to, the outbox).
    Objects whose first message never failed here are sent in full. The order
    of ``messages`` is kept in both lists.
    """
    if not _failed:  # nothing failed in this process, the usual case: everything goes
        return list(messages), []
    send: list = []
    held: list = []
    first_seen: set = set()
    holding: set = set()
    with _lock:
        for message in messages:
            key = (message.using, message.label, message.object_pk)
            if key in holding:
                held.append(message)
                continue
            if key not in first_seen:
                first_seen.add(key)
                if message.message_id in _failed:
                    holding.add(key)
            send.append(message)
    return send, held


def _after_fork_in_child() -> None:
    global _lock
    # The child keeps what the parent saw fail (the rows are the same), with a lock of its own.
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)

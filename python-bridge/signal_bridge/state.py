"""Process-wide switches and counters (no Django model imports here).

``suspended()`` turns publishing off for the whole process, e.g. while a
test calls the Python receiver by hand. ``stats()`` returns the counters of
this process (sync sends, async sender, outbox writes).
"""

from __future__ import annotations

import collections
import contextlib
import threading

_lock = threading.Lock()
_suspended = 0
_counters: collections.Counter = collections.Counter()


@contextlib.contextmanager
def suspended():
    """Publish nothing while the block runs (process-wide, nestable).

    Saves inside the block write no outbox row and send nothing: the bridge
    behaves as if its receivers were disconnected.
    """
    global _suspended
    with _lock:
        _suspended += 1
    try:
        yield
    finally:
        with _lock:
            _suspended -= 1


def is_suspended() -> bool:
    return _suspended > 0


def count(name: str, n: int = 1) -> None:
    """Add ``n`` to counter ``name`` (thread-safe)."""
    if n:
        with _lock:
            _counters[name] += n


def count_each(*names: str) -> None:
    """Add 1 to each counter in ``names`` (one lock for all)."""
    with _lock:
        for name in names:
            _counters[name] += 1


def stats() -> dict[str, int]:
    """A copy of this process's counters.

    Names: ``published`` (post_save handled), ``sent``, ``acked``,
    ``acked.<action>``, ``errors``, ``errors.<code>``, ``unreachable``,
    ``deferred`` (left in the outbox for the relay), ``queue_full``,
    ``local`` (run by the local receiver), ``dead_lettered``, ``overtaken``
    (``stale`` after a retryable failure: dead-lettered), ``outbox_written``,
    ``outbox_deleted``; ``errors.too_large`` counts messages never sent;
    ``features_learned`` (pings that asked the workers' features),
    ``outbox_check.behind`` and ``outbox_check.unsupported`` (sync messages
    the worker refused to apply before their older outbox rows, or could
    not check: sent again after those rows).
    """
    with _lock:
        return dict(_counters)


def reset_stats() -> None:
    with _lock:
        _counters.clear()

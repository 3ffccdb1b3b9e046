"""django-signal-bridge: publish post_save to signal-worker over ZeroMQ.

Public API (importable before Django's app registry is ready):
``WorkerError``, ``WorkerUnreachable``, ``MessageTooLarge``, ``SignalBridgeError``,
``suspended()``, ``stats()``, ``flush()``.
"""

from .exceptions import MessageTooLarge, SignalBridgeError, WorkerError, WorkerUnreachable
from .state import reset_stats, stats, suspended

__version__ = "0.1.0"
__all__ = [
    "MessageTooLarge",
    "SignalBridgeError",
    "WorkerError",
    "WorkerUnreachable",
    "flush",
    "reset_stats",
    "stats",
    "suspended",
]


def flush(timeout: float | None = None) -> bool:
    """Wait until the async sender has handled every queued message.

    Returns ``True`` when the queue is empty and nothing is in flight,
    ``False`` when ``timeout`` (seconds; ``None``: ``ASYNC_FLUSH_TIMEOUT_MS``)
    passed first. Messages it could not deliver are in the outbox then.
    """
    from .sender import flush as _flush

    return _flush(timeout)

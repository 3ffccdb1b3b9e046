"""Exceptions the bridge raises to Django code.

Hierarchy::

    SignalBridgeError
    └── WorkerError            an error reply (docs/PROTOCOL.md, "Errors")
        ├── WorkerUnreachable  no reply at all (timeouts after every retry)
        └── MessageTooLarge    not sent: larger than MAX_MESSAGE_BYTES

``except WorkerError`` therefore catches every failure to get a message
applied. ``retryable`` says whether sending the same message again later can
succeed (``store_unavailable`` and unreachable: yes; ``bad_request``,
``unsupported``, ``conflict``, ``invalid_value``, unknown codes, and the
bridge's own ``too_large`` and ``stale`` after a retryable failure: no).
"""

from __future__ import annotations

from .redaction import redact


class SignalBridgeError(Exception):
    """Base class of everything ``signal_bridge`` raises on purpose."""


class WorkerError(SignalBridgeError):
    """The worker answered ``status: error`` for a message.

    Attributes: ``code`` (``invalid_value``, ``conflict``, ...), ``message``
    (for people; may change between releases), ``field`` (the field at
    fault or ``None``), ``receiver`` (the worker's receiver whose rule
    refused the message, e.g. ``"profile"`` or ``"drf-token"``, when the
    reply names one: ``error.receiver``; ``None`` otherwise), ``message_id``
    (the request's ``id``: grep the worker's log for it) and ``retryable``.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        message_id: str | None,
        field: str | None = None,
        retryable: bool = False,
        receiver: str | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.field = field
        self.receiver = receiver
        self.message_id = message_id
        self.retryable = retryable
        super().__init__(str(self))

    def where(self) -> str:
        """``" (receiver drf-token, field instance.pk)"``, the parts that are set, or ``""``."""
        parts = [f"{name} {value}" for name, value in (("receiver", self.receiver), ("field", self.field)) if value]
        return f" ({', '.join(parts)})" if parts else ""

    def __str__(self) -> str:
        return f"signal-worker replied {self.code}{self.where()} to message {self.message_id}: {self.message}"

    @classmethod
    def from_reply(cls, reply: dict, message_id: str | None) -> "WorkerError":
        """Build from a reply's ``error`` object; tolerant of missing keys."""
        error = reply.get("error") if isinstance(reply.get("error"), dict) else {}
        code = str(error.get("code") or "unknown")
        retryable = error.get("retryable")
        receiver = error.get("receiver")
        if not isinstance(retryable, bool):
            # PROTOCOL.md: unknown codes are final unless `retryable` says otherwise.
            retryable = code == "store_unavailable"
        return cls(
            code,
            str(error.get("message") or ""),
            message_id=reply.get("id") or message_id,
            field=error.get("field"),
            retryable=retryable,
            receiver=receiver if isinstance(receiver, str) else None,
        )


class WorkerUnreachable(WorkerError):
    """No reply within ``TIMEOUT_MS`` on any attempt (or the cool-down is on)."""

    def __init__(self, message: str, *, message_id: str | None, endpoints=()) -> None:
        self.endpoints = tuple(endpoints)
        super().__init__("unreachable", message, message_id=message_id, retryable=True)

    def __str__(self) -> str:
        where = redact(", ".join(self.endpoints)) or "?"
        return f"signal-worker unreachable at {where} for message {self.message_id}: {self.message}"


class MessageTooLarge(WorkerError):
    """Not sent: the frame is larger than ``MAX_MESSAGE_BYTES`` (code ``too_large``, final).

    A frame over the worker's ``--max-request-bytes`` would be refused, and one
    over the transport cap makes libzmq drop the connection without a reply;
    either way, sending it again can never succeed.
    """

    def __init__(self, size: int, limit: int, *, message_id: str | None) -> None:
        self.size = size
        self.limit = limit
        super().__init__(
            "too_large", f"too large: {size} bytes (MAX_MESSAGE_BYTES is {limit})", message_id=message_id
        )

    def __str__(self) -> str:
        return f"signal_bridge did not send message {self.message_id}: {self.message}"

"""The relay: sends the rows left in the outbox, in ``seq`` order.

Rows are left behind when the worker was unreachable (``defer``/``raise``),
the async queue was full, the process died between commit and send, or in
``MODE = "outbox"``. Each round reads ``RELAY_BATCH`` rows, sends them
pipelined over one DEALER and settles the replies (``outbox.settle``): acked
rows are deleted, final errors move to the dead letters (so one bad message
never blocks the rows behind it), retryable errors and missing replies stay.
While the worker is unreachable or answers ``store_unavailable`` the relay
backs off exponentially (``RELAY_BACKOFF_MS`` doubling up to
``RELAY_BACKOFF_MAX_MS``) and, with ``forever``, never gives up.

Rows that stay after a failed round are retried from the oldest one, so the
order per object holds (the worker's ``seq`` check drops anything older than
what it applied). Of an object whose oldest row failed retryably, the next
rounds send that row alone and hold the object's later rows back until it is
acked or dead-lettered (``failures``): a later row applied first would make
the worker answer it ``stale``, and its change would be lost. Other objects
proceed normally. A row larger than ``MAX_MESSAGE_BYTES`` goes to the dead
letters unsent.
"""

from __future__ import annotations

import dataclasses
import logging
import threading

from django.db import DatabaseError, connections

from . import conf, failures, outbox, state, transport
from .redaction import redact

logger = logging.getLogger("signal_bridge")


@dataclasses.dataclass
class RelayResult:
    """What one ``run`` did; ``remaining`` is the outbox depth it left."""

    sent: int = 0
    acked: int = 0
    dead_lettered: int = 0
    failed_rounds: int = 0
    remaining: int = 0


def _reconnect_later(using: str) -> None:
    """Drop the connection after a database error: a long-running command has no request
    cycle to do it, and Django would otherwise keep the broken connection (after a server
    restart: "the connection is closed" forever)."""
    try:
        connections[using].close()
    except DatabaseError:
        pass  # already broken; the next query opens a new one


def depth(using: str) -> int:
    from .models import OutboxMessage

    return OutboxMessage.objects.using(using).count()


def run(
    *,
    using: str = "default",
    once: bool = True,
    batch: int | None = None,
    stop: threading.Event | None = None,
    log=logger.info,
) -> RelayResult:
    """Relay until the outbox is empty (``once``) or ``stop`` is set.

    With ``once`` only rows present at the start are sent, and the run ends
    after the first round that made no progress (worker unreachable or
    ``store_unavailable``); ``remaining`` then says what is left.
    """
    from .models import OutboxMessage

    config = conf.get()
    batch = batch or config.relay_batch
    stop = stop or threading.Event()
    result = RelayResult()
    backoff_ms = config.relay_backoff_ms
    up_to = None
    if once:
        up_to = OutboxMessage.objects.using(using).order_by("-seq").values_list("seq", flat=True).first()
        if up_to is None:
            return result

    while not stop.is_set():
        try:
            messages = outbox.oldest(using, batch, up_to_seq=up_to)
            if not messages:
                if once:
                    break
                stop.wait(config.relay_poll_ms / 1000.0)
                continue
            # An object whose oldest row failed retryably before sends only that row this
            # round; its later rows are held back until it is acked or dead-lettered.
            candidates, held = failures.hold_back(messages)
            frames, to_send, too_large = outbox.frames(candidates, config.max_message_bytes)
            acked, finals, left = [], [], []
            if to_send:
                state.count("sent", len(to_send))
                result.sent += len(to_send)
                replies = transport.pipeline(frames, endpoints=config.endpoints, timeout_ms=config.timeout_ms)
                acked, finals, left = outbox.settle(to_send, replies)
        except DatabaseError as error:
            # The outbox's own database is unavailable or locked past its timeout: like
            # an unreachable worker, a reason to wait, never to give up. Rows the worker
            # acked but we could not delete are resent later and answered "duplicate".
            result.failed_rounds += 1
            state.count("database_errors")
            _reconnect_later(using)
            log(f"relay: the outbox database failed ({redact(str(error))}); retrying in {backoff_ms} ms")
            if once:
                break
            stop.wait(backoff_ms / 1000.0)
            backoff_ms = min(backoff_ms * 2, config.relay_backoff_max_ms)
            continue
        result.acked += len(acked)
        result.dead_lettered += len(finals) + len(too_large)
        if acked or finals:
            transport.reset_cooldown()
        if held:
            log(f"relay: {len(held)} rows wait behind an earlier row of their object that failed retryably")
        if not left:
            backoff_ms = config.relay_backoff_ms
            continue
        result.failed_rounds += 1
        reason = next((str(e) for _, e in left if e is not None), None) or (
            f"no reply from {redact(', '.join(config.endpoints))} within {config.timeout_ms} ms"
        )
        log(f"relay: {len(left)} of {len(to_send)} rows not acknowledged ({reason}); retrying in {backoff_ms} ms")
        if once and not acked and not finals and not too_large:
            break
        stop.wait(backoff_ms / 1000.0)
        backoff_ms = min(backoff_ms * 2, config.relay_backoff_max_ms)

    try:
        result.remaining = depth(using)
    except DatabaseError:
        result.remaining = -1  # unknown: a caller that checks for leftovers treats it as "some"
    return result

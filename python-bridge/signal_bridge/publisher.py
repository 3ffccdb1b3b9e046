"""The ``post_save`` receiver and the sync delivery path.

Where a message goes depends on the mode and on whether the save runs inside
``atomic()`` (python-bridge/README.md, "Delivery guarantees"):

- inside ``atomic()`` (any mode): the outbox row is written now, in the
  save's transaction; an ``on_commit`` callback then sends it (sync), hands
  it to the background sender (async), or does nothing (outbox).
- autocommit ``save()``: Django has already committed the row when
  ``post_save`` fires (``Model.save_base`` opens no transaction for a model
  without parents), so there is no transaction to join and a row would cost
  a commit of its own. Sync sends at once and writes a row only when the
  message could not be delivered; async hands the message to the sender,
  which likewise writes rows only for messages it could not deliver (in one
  transaction per batch); outbox writes the row.

Never sends before commit: the worker's connection could not see the saved
row (foreign key) and, on SQLite, would wait on Django's write lock.
"""

from __future__ import annotations

import functools
import logging
import threading
import time

from django.db import transaction
from django.db.models.signals import post_save, pre_save
from django.utils.module_loading import import_string

from . import conf, envelope, failures, outbox, state, transport
from . import sender as background
from .exceptions import WorkerError, WorkerUnreachable

logger = logging.getLogger("signal_bridge")

_connected: list[tuple[object, str, str]] = []
# The instance whose pre_save saw no primary key, per thread (on_pre_save, on_post_save).
_fresh = threading.local()


def dispatch_uid(label: str) -> str:
    return f"signal_bridge.post_save.{label}"


def pre_save_dispatch_uid(label: str) -> str:
    return f"signal_bridge.pre_save.{label}"


def connect_receivers() -> list[str]:
    """Connect the ``post_save`` receiver for every configured sender.

    Called by ``AppConfig.ready()`` and again whenever ``SIGNAL_BRIDGE``
    changes. Labels that name no installed model are skipped (the system
    check ``signal_bridge.E006`` reports them). An invalid configuration
    connects nothing here: the checks report it. Returns the labels connected.
    """
    from django.apps import apps

    disconnect_receivers()
    config, _ = conf.validate(conf.raw_settings())
    if config is None:
        return []
    labels = []
    for label, sender_config in config.senders.items():
        if "post_save" not in sender_config.signals:
            continue
        try:
            model = apps.get_model(label)
        except (LookupError, ValueError):
            continue
        uid, pre_uid = dispatch_uid(label), pre_save_dispatch_uid(label)
        pre_save.connect(on_pre_save, sender=model, dispatch_uid=pre_uid, weak=False)
        post_save.connect(on_post_save, sender=model, dispatch_uid=uid, weak=False)
        _connected.append((model, uid, pre_uid))
        labels.append(label)
    return labels


def disconnect_receivers() -> None:
    """Disconnect every receiver the bridge connected (see also ``suspended()``)."""
    while _connected:
        model, uid, pre_uid = _connected.pop()
        post_save.disconnect(sender=model, dispatch_uid=uid)
        pre_save.disconnect(sender=model, dispatch_uid=pre_uid)


def on_pre_save(sender, instance, **kwargs):
    """Note whether the database will choose ``instance``'s primary key (``on_post_save`` asks).

    A save that creates an object whose key the database generated (an
    ``AutoField``: a sequence, SQLite's ``AUTOINCREMENT``) makes a message no
    older message can be waiting for: no earlier save had that key. Such a
    message skips the backlog query. A key set by the caller (fixtures,
    ``raw`` saves, a key reused by hand) is checked as always.
    """
    _fresh.instance = instance if instance.pk is None else None


def on_post_save(sender, instance, created, raw=False, using="default", update_fields=None, **kwargs):
    """Publish one ``post_save`` (connected per configured sender)."""
    if state.is_suspended():
        return
    config = conf.get()
    if not config.enabled:
        return
    label = sender._meta.label_lower
    sender_config = config.senders.get(label)
    if sender_config is None or "post_save" not in sender_config.signals:
        return
    # A created object whose primary key the database just generated: no older message of
    # it can wait in any outbox (on_pre_save), so no backlog query before sending it.
    fresh = created and getattr(_fresh, "instance", None) is instance
    _fresh.instance = None
    connection = transaction.get_connection(using)
    atomic = connection.in_atomic_block
    # The attribute, not get_autocommit(): the save has just used the connection, and the
    # method's connection check and async guard cost more than the rest of this line.
    autocommit = not atomic and connection.autocommit
    if config.mode == "async" and autocommit:
        # No row: the values are copied now, the message is made and rendered on the sender
        # thread (its id too, in queue order: sender.from_save).
        values, attrs_json = envelope.snapshot(instance, sender_config.attrs, sender_config.fields)
        state.count("published")
        background.get().enqueue(config, (
            label, using, str(instance.pk), created, raw, update_fields, values, sender_config.fields, attrs_json,
            False if fresh else None, time.time(),
        ))
        return
    # Every other message is rendered at once (for its row or its send), straight from the instance.
    message_id = envelope.uuid7()
    message = outbox.Message(
        message_id=message_id,
        using=using,
        label=label,
        object_pk=str(instance.pk),
        body=envelope.capture(
            message_id=message_id,
            signal="post_save",
            label=label,
            using=using,
            created=created,
            raw=raw,
            update_fields=update_fields,
            instance=instance,
            attrs=sender_config.attrs,
            fields=sender_config.fields,
            detach=False,
        ),
        older=False if fresh else None,
    )
    state.count("published")

    if config.mode == "outbox":
        outbox.insert(message)
        return
    if atomic:
        # Same transaction as the save: gets its seq, cannot be lost.
        outbox.insert(message, older=config.mode == "sync" and not fresh)
        if config.mode == "sync":
            local = _local_receiver(config, sender, instance, created, raw, using, update_fields)
            transaction.on_commit(lambda: deliver_sync(config, message, local), using=using)
        else:
            transaction.on_commit(lambda: _enqueue(config, message), using=using)
        return
    if not autocommit:
        # Manual transaction management: on_commit() is not available; the
        # row commits (or not) with the caller's transaction, the relay sends.
        outbox.insert(message)
        return
    deliver_sync(config, message, _local_receiver(config, sender, instance, created, raw, using, update_fields))


def _local_receiver(config, model, instance, created, raw, using, update_fields):
    """``_run_local`` bound to this save, for ``ON_UNREACHABLE = "local"`` (else None)."""
    if config.on_unreachable != "local":
        return None
    return functools.partial(_run_local, config, model, instance, created, raw, using, update_fields)


def _enqueue(config, message: outbox.Message) -> None:
    background.get().enqueue(config, message)


class _CheckRefused(Exception):
    """The worker did not apply a message sent with ``outbox_check`` (``deliver_sync`` recovers).

    ``behind``: an older row of the object waits in the outbox; ``unsupported``
    (field ``outbox_check``): the worker cannot check (it lost its outbox
    table); ``too_large``: the flag would push the frame over
    ``MAX_MESSAGE_BYTES`` (not sent). None is a failure of the message:
    nothing of it was written.
    Not a ``WorkerError``, so no caller can take it for one.
    """

    def __init__(self, code: str) -> None:
        self.code = code
        super().__init__(code)


def _check_refusal(reply: dict) -> str | None:
    """``"behind"`` or ``"unsupported"`` when ``reply`` refuses a message sent with ``outbox_check``."""
    if reply.get("status") != "error":
        return None
    error = reply.get("error")
    if not isinstance(error, dict):
        return None
    code = error.get("code")
    if code == "behind" or (code == "unsupported" and error.get("field") == transport.OUTBOX_CHECK):
        return code
    return None



def _send_one(config, message: outbox.Message, *, check: bool = False) -> str:
    """Send and wait; the ok action, or raise ``WorkerError``/``WorkerUnreachable``.

    A retryable error reply (``store_unavailable``) is retried ``RETRIES``
    times with a short backoff; timeouts are retried by ``transport.request``.
    Every failed attempt is recorded in ``failures``, so that a ``stale``
    answer to the message later is raised as a final error ("overtaken")
    rather than taken for an acknowledgement. A message larger than
    ``MAX_MESSAGE_BYTES`` is not sent: ``MessageTooLarge`` (final).

    ``check``: sent with ``"outbox_check": true``; a reply refusing it raises
    ``_CheckRefused``, and so does a message that fits ``MAX_MESSAGE_BYTES``
    only without that member (``too_large``: sent without it after the query).

    The first attempt goes through ``transport.quick_request`` when it
    applies (the usual case: one endpoint, its socket ready, no cool-down);
    a plain ``ok`` then ends here, with one counter update. That path stays
    written out here, without helper calls (``Benchmarks/callgrind`` counts
    its instructions); everything else goes on in ``_send_slow``.
    """
    frame = envelope.wire(message.payload, message.seq, outbox_check=check)
    if len(frame) > config.max_message_bytes:
        if check:
            # No room for the flag: deliver_sync asks the database instead and sends the message without it.
            raise _CheckRefused("too_large")
        outbox.check_size(message, frame, config.max_message_bytes)  # raises MessageTooLarge: final
    message_id = message.message_id
    quick = transport.quick_request(
        frame, message_id, endpoints=config.endpoints, timeout_ms=config.timeout_ms, keys=config.curve
    )
    if quick.__class__ is str and (quick != "stale" or not failures.seen_failing(message)):
        state.count_each("sent", "acked", "acked." + quick)
        failures.forget((message_id,))
        return quick
    return _send_slow(config, message, frame, quick, check)


def _send_slow(config, message: outbox.Message, frame: bytes, quick, check: bool) -> str:
    """The rest of ``_send_one`` after a quick attempt that did not end it; ``quick`` is what it returned.

    - ``None``: nothing was sent (the quick path did not apply). During a
      cool-down ``transport.may_send`` may defer the message at once
      (``WorkerUnreachable``); otherwise every attempt goes through
      ``transport.request``.
    - ``False``: the quick attempt got no reply; it counts as attempt 1 of
      ``transport.request``'s, which goes on from attempt 2.
    - a ``str``: ``stale`` to a message seen failing; judged as the ok reply it was.
    - a ``dict``: any other reply, judged as it is.
    """
    message_id = message.message_id
    if quick is None:
        if not transport.may_send(endpoints=config.endpoints, timeout_ms=config.timeout_ms):
            state.count("unreachable")
            raise WorkerUnreachable(
                "skipped: the worker was unreachable moments ago (UNREACHABLE_COOLDOWN_MS)",
                message_id=message_id,
                endpoints=config.endpoints,
            )
        return _attempts(config, message, frame, check)
    state.count("sent")  # the quick attempt
    if quick is False:  # the first attempt got no reply
        failures.record([message_id])
        return _attempts(config, message, frame, check, first_attempt=2)
    if quick.__class__ is str:  # "stale" to a message seen failing
        quick = {"id": message_id, "status": "ok", "result": {"action": quick}}
    return _attempts(config, message, frame, check, reply=quick)


def _attempts(
    config, message: outbox.Message, frame: bytes, check: bool, *, reply: dict | None = None, first_attempt: int = 1
) -> str:
    """Request and judge replies until one settles the message; its ok action.

    ``reply``: one already received (from the quick attempt), judged before
    any request. ``first_attempt``: of the first ``transport.request`` (2
    when the quick attempt got no reply). A retryable error reply is tried
    again, ``RETRIES`` times at most, after ``0.1``, ``0.2``, ``0.4`` ... s
    (at most 1 s); after the last, its ``WorkerError`` is raised.
    """
    retried = 0
    while True:
        if reply is None:
            reply = _request(config, message.message_id, frame, first_attempt)
            first_attempt = 1
        kind, detail = _judge(message, reply, check)
        if kind == "ack":
            return detail
        if retried >= config.retries:
            raise detail
        retried += 1
        time.sleep(min(0.05 * 2**retried, 1.0))
        reply = None


def _request(config, message_id: str, frame: bytes, first_attempt: int) -> dict:
    """One ``transport.request`` (up to ``RETRIES`` + 1 attempts); its reply, error replies included.

    Counts ``sent``, unless it goes on from the quick attempt (``first_attempt``
    2: counted already). Every attempt that gets no reply is recorded in
    ``failures``; when none got one, the cool-down trips and
    ``WorkerUnreachable`` is raised.
    """
    if first_attempt == 1:
        state.count("sent")
    try:
        return transport.request(
            frame,
            message_id,
            endpoints=config.endpoints,
            timeout_ms=config.timeout_ms,
            retries=config.retries,
            on_timeout=lambda: failures.record([message_id]),
            first_attempt=first_attempt,
        )
    except WorkerUnreachable:
        state.count("unreachable")
        transport.trip(config.unreachable_cooldown_ms)
        raise


def _judge(message: outbox.Message, reply: dict, check: bool) -> tuple[str, object]:
    """What one reply to ``message`` means: ``("ack", action)`` or ``("retry", WorkerError)``.

    Raises when the reply ends the send otherwise: ``_CheckRefused`` (with
    ``check``, a refusal of ``outbox_check``), the final "overtaken"
    ``WorkerError`` (``stale`` to a message seen failing: dead-lettered by
    the caller), or the ``WorkerError`` of a final error reply. An ack
    forgets the message in ``failures``, a retryable error records it.
    """
    message_id = message.message_id
    if check:
        refusal = _check_refusal(reply)
        if refusal is not None:
            state.count("outbox_check." + refusal)
            raise _CheckRefused(refusal)
    kind, detail = outbox.classify(reply, message_id)
    if kind == "ack":
        if detail == "stale" and failures.seen_failing(message):
            raise outbox.overtaken(reply, message_id)
        failures.forget([message_id])
    elif kind == "final":
        raise detail
    else:
        failures.record([message_id])
    return kind, detail


def _worker_checks(config) -> bool:
    """Whether the worker checks the outbox itself (pong feature ``outbox_check``).

    Known after one ping per process and endpoint tuple (``transport.learn_features``).
    Not asked during a cool-down (the send is deferred at once anyway) nor
    kept when the ping went unanswered: the send that follows finds out.
    """
    features = transport.known_features(config.endpoints)
    if features is None:
        if transport.cooling_down():
            return False
        features = transport.learn_features(endpoints=config.endpoints, timeout_ms=config.timeout_ms)
        if features is None:
            return False
    return transport.OUTBOX_CHECK in features


def _send_backlog(config, message: outbox.Message) -> None:
    """Send the older rows of ``message``'s object, oldest first (final errors: dead letters)."""
    for older in outbox.backlog(message.using, [message]):
        try:
            _send_one(config, older)
        except WorkerError as error:
            if error.retryable:
                raise
            outbox.dead_letter(older, error)
            continue
        outbox.delete(older.using, [older.seq])


def deliver_sync(config, message: outbox.Message, run_local) -> None:
    """Deliver ``message`` now (sync mode); see the module docstring.

    Older rows of the same object still in the outbox go first, so the live
    message cannot overtake them. Whether there are any is known from the
    INSERT (``message.older``), asked of the worker (a worker whose pong
    announces ``outbox_check`` looks in the apply transaction and answers
    ``behind``: the rows are sent then, and the message again without the
    flag), or else asked of the database (``outbox.has_backlog``) before
    sending. Raises ``WorkerError`` for a final error reply (after moving the
    message to the dead letters) and, with ``ON_UNREACHABLE = "raise"``,
    ``WorkerUnreachable`` or the retryable ``WorkerError``; the message then
    stays in the outbox.
    """
    try:
        older = message.older  # known when the INSERT could tell (outbox.insert)
        check = False
        if older is None:
            check = _worker_checks(config)
            older = False if check else outbox.has_backlog(message.using, [message])
        if older:
            _send_backlog(config, message)
        try:
            _send_one(config, message, check=check)
        except _CheckRefused as refused:
            if refused.code == "unsupported":
                # A worker that lost its outbox table: today's path until the cool-down trips.
                transport.drop_feature(config.endpoints, transport.OUTBOX_CHECK)
            _send_backlog(config, message)
            _send_one(config, message)
    except WorkerError as error:
        if not error.retryable:
            outbox.dead_letter(message, error)
            raise
        _on_unreachable(config, message, error, run_local)
        return
    if message.seq is not None:
        if config.delete_acked == "inline":
            outbox.delete(message.using, [message.seq])
        else:
            background.get().delete_later(message.using, message.seq)


def _on_unreachable(config, message: outbox.Message, error: WorkerError, run_local) -> None:
    policy = config.on_unreachable
    if policy == "local":
        try:
            run_local(message)
        except Exception:
            # The receiver failed too: keep the message for the relay.
            if message.seq is None:
                outbox.insert(message)
            state.count("deferred")
            raise
        return
    if message.seq is None:
        outbox.insert(message)  # autocommit path: the row is written only now
    state.count("deferred")
    if policy == "raise":
        raise error
    logger.warning(
        "signal_bridge: message %s deferred to the outbox (seq %s): %s",
        message.message_id, message.seq, error,
    )


def _run_local(config, model, instance, created, raw, using, update_fields, message: outbox.Message) -> None:
    """``ON_UNREACHABLE = "local"``: run the Python receiver in process.

    The receiver and the removal of the outbox row share one transaction.
    If the worker did get the message but its reply was lost, the message is
    applied twice (see README, "Delivery guarantees").
    """
    receiver = import_string(config.local_receivers[message.label])
    with transaction.atomic(using=using):
        receiver(
            sender=model,
            instance=instance,
            created=created,
            raw=raw,
            using=using,
            update_fields=update_fields,
            signal=post_save,
        )
        if message.seq is not None:
            outbox.delete(using, [message.seq])
    failures.forget([message.message_id])
    state.count("local")
    logger.warning(
        "signal_bridge: worker unreachable; message %s applied by the local receiver %s",
        message.message_id, config.local_receivers[message.label],
    )

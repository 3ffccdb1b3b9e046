"""Reading and writing the outbox; what a reply does to a row.

Every path (sync, async sender, relay) ends in :func:`settle`: an ``ok``
reply of any action (``duplicate`` and ``stale`` included) removes the row;
a final error moves it to the dead-letter table so it never blocks later
rows; a retryable error or no reply leaves it (with ``attempts`` and
``last_error`` updated) for a later attempt.

One exception: ``stale`` to a message seen failing retryably (by this
process, or by any process: its row's ``attempts`` > 0, which a requeued dead
letter also has; ``failures.seen_failing``) means a newer message of its
object was applied while it waited, and its own change never was. It is a
final error, code ``stale``, "overtaken by seq N", and goes to the dead
letters instead of being deleted.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import time

from django.db import connections, transaction
from django.db.models import F, Q

from . import envelope, failures, state
from .exceptions import MessageTooLarge, WorkerError

logger = logging.getLogger("signal_bridge")


@dataclasses.dataclass
class Message:
    """A message on its way; ``seq`` is None until it has an outbox row.

    ``body`` is the request's JSON text, or an :class:`envelope.Draft`
    rendered (once) when :attr:`payload` is first read.
    """

    message_id: str
    using: str
    label: str
    object_pk: str
    body: str | envelope.Draft
    seq: int | None = None
    # When the message was made; None until first needed (made_at()), from ``made``: most
    # messages never get a row, and timezone.now() costs more than time.time().
    created_at: datetime.datetime | None = None
    attempts: int = 0
    # Whether older rows of the object wait in the outbox, when known without asking: False
    # for a new object (publisher.on_pre_save), or the INSERT's answer (insert()); None: ask
    # before sending (has_backlog).
    older: bool | None = None
    made: float = dataclasses.field(default_factory=time.time)

    @property
    def payload(self) -> str:
        body = self.body
        if not isinstance(body, str):
            body = self.body = body.render()
        return body

    def made_at(self) -> datetime.datetime:
        """``created_at``: what ``timezone.now()`` said when the message was made."""
        created_at = self.created_at
        if created_at is None:
            from django.conf import settings

            if settings.USE_TZ:
                created_at = datetime.datetime.fromtimestamp(self.made, datetime.timezone.utc)
            else:
                created_at = datetime.datetime.fromtimestamp(self.made)
            self.created_at = created_at
        return created_at

    def row(self):
        from .models import OutboxMessage

        return OutboxMessage(
            seq=self.seq,
            message_id=self.message_id,
            sender=self.label,
            object_pk=self.object_pk,
            payload=self.payload,
            created_at=self.made_at(),
            attempts=self.attempts,
        )


def _from_row(row, using: str) -> Message:
    return Message(
        message_id=row.message_id,
        using=using,
        label=row.sender,
        object_pk=row.object_pk,
        body=row.payload,
        seq=row.seq,
        created_at=row.created_at,
        attempts=row.attempts,
    )


# Backends whose DB-API connection runs the outbox's own statements directly (see _execute).
_RAW_VENDORS = frozenset({"sqlite", "postgresql"})
_QMARK: dict[str, str] = {}  # statement with %s placeholders -> with ? (sqlite3's paramstyle)


def _execute(connection, sql: str, params, read):
    """Run one of the outbox's statements (``%s`` placeholders); ``read(cursor)`` is returned.

    The bridge runs a statement or two in every ``save()`` of a configured
    sender. Django's cursor wraps each in several layers (thread and async
    guards, the execute wrappers, the placeholder rewrite, error mapping) that
    cost a few times what SQLite itself spends on an indexed lookup (measured:
    about 60 µs against 8 µs). So on SQLite and PostgreSQL the statement runs
    on the DB-API connection under Django's, in the same transaction; a
    database error is still raised as Django's (``wrap_database_errors``).
    Django's cursor is used whenever someone may be looking at the queries
    (``DEBUG``, ``CaptureQueriesContext``/``assertNumQueries``, an
    ``execute_wrapper``), before the connection is open, and when the
    transaction is already broken (Django then raises its usual error).
    """
    raw = connection.connection
    if (
        raw is None
        or connection.vendor not in _RAW_VENDORS
        or connection.execute_wrappers
        or connection.queries_logged
        or connection.needs_rollback
    ):
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return read(cursor)
    try:
        if connection.vendor == "sqlite":
            qmark = _QMARK.get(sql)
            if qmark is None:
                qmark = _QMARK[sql] = sql.replace("%s", "?")
            return read(raw.execute(qmark, params))
        cursor = raw.cursor()
        try:
            cursor.execute(sql, params)
            return read(cursor)
        finally:
            cursor.close()
    except Exception:
        with connection.wrap_database_errors:  # a DB-API error becomes Django's, as from a cursor
            raise


def _first_value(cursor):
    row = cursor.fetchone()
    return None if row is None else row[0]


def _rowcount(cursor) -> int:
    return max(cursor.rowcount, 0)


def insert(message: Message, *, older: bool = False) -> int:
    """Write one row (joins the caller's transaction, if any); sets ``seq``.

    One raw ``INSERT`` rather than ``OutboxMessage(...).save()``: this runs
    inside every ``save()`` of a configured sender, and the ORM's save path
    (model instance, pre/post_save signals, per-field preparation) cost about
    as much as the statement itself (measured in the example project: 300-350
    vs 80-160 us per row on SQLite, 400-520 vs 270 us on PostgreSQL); it runs
    on the DB-API connection (:func:`_execute`). Values are prepared as the
    ORM would (``adapt_datetimefield_value``), so the row reads back
    identically (tests/test_outbox_rows.py).

    ``older=True`` (a sync message saved inside ``atomic()``): on SQLite the
    same statement also says whether older rows of the object are in the
    outbox (``message.older``), which spares the backlog query before the
    send. That answer is the one the query would give after the commit:
    the save's transaction holds SQLite's only write lock from its first
    write (the object's row, before this one) to its commit, so no row can
    be added or removed in between, and rows added after the commit are
    newer. On PostgreSQL, whose writers do not wait for each other, the
    query still runs at send time.
    """
    connection = connections[message.using]
    sql, returns_seq = _insert_statement(connection)
    params = (
        message.message_id,
        message.label,
        message.object_pk,
        message.payload,
        _datetime_value(connection, message.made_at()),
        message.attempts,
        "",
    )
    if returns_seq:
        if older and connection.vendor == "sqlite":
            row = _execute(
                connection, _insert_and_older_statement(connection), (*params, message.label, message.object_pk),
                _first_row,
            )
            seq, message.older = row[0], bool(row[1])
        else:
            seq = _execute(connection, sql, params, _first_value)
    else:
        from .models import OutboxMessage

        table = OutboxMessage._meta.db_table
        seq = _execute(connection, sql, params, lambda cursor: connection.ops.last_insert_id(cursor, table, "seq"))
    message.seq = seq
    state.count("outbox_written")
    return seq


def _first_row(cursor):
    return cursor.fetchone()


_INSERT_AND_OLDER: dict[str, str] = {}


def _insert_and_older_statement(connection) -> str:
    """``INSERT ... RETURNING seq, <an older row of the object exists>`` (SQLite)."""
    sql = _INSERT_AND_OLDER.get(connection.vendor)
    if sql is None:
        from .models import OutboxMessage

        quote = connection.ops.quote_name
        table = quote(OutboxMessage._meta.db_table)
        base, _ = _insert_statement(connection)
        # The object as parameters, not as references to the new row: SQLite searches the
        # (sender, object_pk, seq) index only for the former (a correlated reference scans).
        sql = _INSERT_AND_OLDER[connection.vendor] = (
            f"{base}, EXISTS (SELECT 1 FROM {table} AS older WHERE older.sender = %s "
            f"AND older.object_pk = %s AND older.seq < {table}.seq)"
        )
    return sql


def _datetime_value(connection, value: datetime.datetime):
    """``connection.ops.adapt_datetimefield_value(value)``, without its time zone work in the usual case.

    On SQLite with ``USE_TZ`` Django stores an aware datetime as naive text in
    the connection's time zone; when that zone is UTC and ``value`` is in UTC
    (``timezone.now()``'s), that is ``value`` without its ``tzinfo``, as text.
    """
    if connection.vendor == "sqlite" and value.tzinfo is datetime.timezone.utc and connection.timezone is value.tzinfo:
        return str(value.replace(tzinfo=None))
    return connection.ops.adapt_datetimefield_value(value)


_INSERT_STATEMENTS: dict[str, tuple[str, bool]] = {}


def _insert_statement(connection) -> tuple[str, bool]:
    """The ``INSERT`` of one outbox row for this backend, and whether it returns ``seq``."""
    cached = _INSERT_STATEMENTS.get(connection.vendor)
    if cached is not None:
        return cached
    from .models import OutboxMessage

    quote = connection.ops.quote_name
    meta = OutboxMessage._meta
    names = ["message_id", "sender", "object_pk", "payload", "created_at", "attempts", "last_error"]
    columns = ", ".join(quote(meta.get_field(name).column) for name in names)
    sql = f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({', '.join(['%s'] * len(names))})"
    returns_seq = connection.features.can_return_columns_from_insert
    if returns_seq:
        sql += f" RETURNING {quote(meta.get_field('seq').column)}"
    _INSERT_STATEMENTS[connection.vendor] = (sql, returns_seq)
    return sql, returns_seq


def insert_many(using: str, messages: list[Message]) -> None:
    """Write rows in one transaction (one commit for the whole batch); sets ``seq``."""
    from .models import OutboxMessage

    if not messages:
        return
    with transaction.atomic(using=using):
        rows = OutboxMessage.objects.using(using).bulk_create([m.row() for m in messages])
    for message, row in zip(messages, rows):
        message.seq = row.seq
    if any(m.seq is None for m in messages):
        # Backends that cannot return ids from a bulk insert: read them back.
        seqs = dict(
            OutboxMessage.objects.using(using)
            .filter(message_id__in=[m.message_id for m in messages])
            .values_list("message_id", "seq")
        )
        for message in messages:
            message.seq = seqs[message.message_id]
    state.count("outbox_written", len(messages))


def delete(using: str, seqs) -> int:
    """Delete acknowledged rows: one raw ``DELETE ... WHERE seq IN (...)`` per 500.

    Raw SQL (:func:`_execute`) because the sender thread runs this for every
    batch and the ORM's delete collector costs several times the statement
    itself.
    """
    from .models import OutboxMessage

    seqs = [int(s) for s in seqs if s is not None]
    if not seqs:
        return 0
    connection = connections[using]
    table = connection.ops.quote_name(OutboxMessage._meta.db_table)
    deleted = 0
    for start in range(0, len(seqs), 500):
        chunk = seqs[start : start + 500]
        sql = f"DELETE FROM {table} WHERE seq IN ({', '.join(['%s'] * len(chunk))})"
        deleted += _execute(connection, sql, chunk, _rowcount)
    state.count("outbox_deleted", deleted)
    return deleted


_BACKLOG_STATEMENTS: dict[tuple, str] = {}


def has_backlog(using: str, messages: list[Message]) -> bool:
    """Whether older rows of the objects of ``messages`` wait in the outbox.

    Asked before every live send, so it is one indexed ``SELECT ... LIMIT 1``
    on the DB-API connection (:func:`_execute`; about 8 µs on SQLite, where
    Django's cursor cost 60 µs and the ORM twenty times more), its text made
    once per shape. Rows of ``messages`` themselves do not count; when every
    message has a seq, only rows older than the newest one do.
    """
    connection = connections[using]
    if len(messages) == 1:  # a sync send: no grouping to do
        m = messages[0]
        if m.seq is None:
            shape, params = (connection.vendor, (1,), 0, False), (m.label, m.object_pk)
        else:
            shape, params = (connection.vendor, (1,), 1, True), (m.label, m.object_pk, m.seq, m.seq)
    else:
        by_sender: dict[str, set[str]] = {}
        for m in messages:
            by_sender.setdefault(m.label, set()).add(m.object_pk)
        own = [m.seq for m in messages if m.seq is not None]
        every_seq = bool(own) and len(own) == len(messages)
        shape = (connection.vendor, tuple(len(pks) for pks in by_sender.values()), len(own), every_seq)
        params = []
        for label, pks in by_sender.items():
            params.append(label)
            params += sorted(pks)
        params += own
        if every_seq:
            params.append(max(own))
    sql = _BACKLOG_STATEMENTS.get(shape)
    if sql is None:
        sql = _BACKLOG_STATEMENTS[shape] = _backlog_statement(connection, shape)
    return _execute(connection, sql, params, _first_value) is not None


def _backlog_statement(connection, shape: tuple) -> str:
    from .models import OutboxMessage

    _, pk_counts, own, every_seq = shape
    table = connection.ops.quote_name(OutboxMessage._meta.db_table)
    clauses = [f"(sender = %s AND object_pk IN ({', '.join(['%s'] * count)}))" for count in pk_counts]
    sql = f"SELECT 1 FROM {table} WHERE ({' OR '.join(clauses)})"
    if own:
        sql += f" AND seq NOT IN ({', '.join(['%s'] * own)})"
        if every_seq:
            sql += " AND seq < %s"
    return sql + " LIMIT 1"


def backlog(using: str, messages: list[Message], exclude: set[int] = frozenset()) -> list[Message]:
    """Older rows of the same objects as ``messages``, oldest first.

    A live send must not overtake them: the worker would apply the newer
    message and then answer ``stale`` to the older one, or ``skipped`` an
    update whose ``created`` is still waiting here. Rows whose seq is in
    ``exclude`` (in flight in this process) are left out.
    """
    from .models import OutboxMessage

    by_sender: dict[str, set[str]] = {}
    newest = None
    for m in messages:
        by_sender.setdefault(m.label, set()).add(m.object_pk)
        if m.seq is not None:
            newest = m.seq if newest is None else max(newest, m.seq)
    own = {m.seq for m in messages if m.seq is not None} | set(exclude)
    if newest is not None and len(own) < len(messages):
        newest = None  # some messages have no row yet: every row of the object is older
    condition = Q()
    for label, pks in by_sender.items():
        condition |= Q(sender=label, object_pk__in=sorted(pks))
    rows = OutboxMessage.objects.using(using).filter(condition)
    if newest is not None:
        rows = rows.filter(seq__lt=newest)
    return [_from_row(r, using) for r in rows.order_by("seq") if r.seq not in own]


def oldest(using: str, limit: int, after_seq: int = 0, up_to_seq: int | None = None) -> list[Message]:
    """The next ``limit`` rows in seq order (the relay's reading)."""
    from .models import OutboxMessage

    rows = OutboxMessage.objects.using(using).filter(seq__gt=after_seq)
    if up_to_seq is not None:
        rows = rows.filter(seq__lte=up_to_seq)
    return [_from_row(r, using) for r in rows.order_by("seq")[:limit]]


def dead_letter(message: Message, error: WorkerError) -> None:
    """Move ``message`` to ``signal_bridge_deadletter`` (and out of the outbox)."""
    from .models import DeadLetter, OutboxMessage

    with transaction.atomic(using=message.using):
        DeadLetter.objects.using(message.using).create(
            seq=message.seq,
            message_id=message.message_id,
            sender=message.label,
            object_pk=message.object_pk,
            payload=message.payload,
            created_at=message.made_at(),
            attempts=message.attempts + 1,
            code=error.code,
            message=error.message,
            field=error.field,
        )
        if message.seq is not None:
            OutboxMessage.objects.using(message.using).filter(seq=message.seq).delete()
    failures.forget([message.message_id])
    state.count("dead_lettered")


def record_failure(using: str, seqs, error: str) -> None:
    """Count an attempt on rows that stay in the outbox."""
    from .models import OutboxMessage

    seqs = [s for s in seqs if s is not None]
    if seqs:
        OutboxMessage.objects.using(using).filter(seq__in=seqs).update(
            attempts=F("attempts") + 1, last_error=error[:2000]
        )


def classify(reply: dict, message_id: str) -> tuple[str, object]:
    """``("ack", action)``, ``("final", WorkerError)`` or ``("retry", WorkerError)``."""
    if reply.get("status") == "ok":
        action = (reply.get("result") or {}).get("action") or "unknown"
        state.count_each("acked", "acked." + action)
        return "ack", action
    error = WorkerError.from_reply(reply, message_id)
    state.count_each("errors", f"errors.{error.code}")
    logger.warning(
        "signal_bridge: message %s got %s%s: %s",
        error.message_id, error.code, error.where(), error.message,
    )
    return ("retry" if error.retryable else "final"), error


def overtaken(reply: dict, message_id: str) -> WorkerError:
    """The final error for ``stale`` to a message that had failed retryably (see the module docstring).

    ``result.last_seq`` is the newest seq the worker applied for the object;
    a worker that does not send it gets "overtaken by a newer message".
    """
    last_seq = (reply.get("result") or {}).get("last_seq")
    if isinstance(last_seq, int) and not isinstance(last_seq, bool):
        text = f"overtaken by seq {last_seq}"
    else:
        text = "overtaken by a newer message"
    state.count("overtaken")
    logger.warning(
        "signal_bridge: message %s was answered stale after a retryable failure (%s): "
        "its change was not applied; moved to the dead letters",
        message_id, text,
    )
    return WorkerError("stale", text, message_id=message_id, retryable=False)


def check_size(message: Message, frame: bytes, limit: int) -> None:
    """Raise ``MessageTooLarge`` when ``frame`` (what goes on the wire) exceeds ``limit`` bytes.

    Checked before every send (sync, async, relay): a frame over the worker's
    ``--max-request-bytes`` is refused, and one over the transport cap makes
    libzmq drop the connection, so no reply ever comes and the relay would
    retry it forever.
    """
    if len(frame) > limit:
        error = MessageTooLarge(len(frame), limit, message_id=message.message_id)
        state.count("errors")
        state.count("errors.too_large")
        logger.warning("signal_bridge: %s (%s pk %s)", error, message.label, message.object_pk)
        raise error


def frames(messages: list[Message], limit: int, *, durable: bool = True):
    """The wire frames of ``messages`` that fit ``limit``; the others are dead-lettered (``too_large``).

    Returns ``(frames, sendable, too_large)``: ``(id, frame)`` pairs for
    ``transport.pipeline``, the messages they belong to (in the order given),
    and the messages moved to the dead letters.
    """
    result: list[tuple[str, bytes]] = []
    sendable: list[Message] = []
    too_large: list[Message] = []
    for message in messages:
        frame = envelope.wire(message.payload, message.seq, durable=durable)
        try:
            check_size(message, frame, limit)
        except MessageTooLarge as error:
            dead_letter(message, error)
            too_large.append(message)
            continue
        result.append((message.message_id, frame))
        sendable.append(message)
    return result, sendable, too_large


def settle(messages: list[Message], replies: dict[str, dict], *, delete_acked: bool = True):
    """Apply replies to rows; return ``(acked, final_errors, left)``.

    ``acked``: messages answered ok (rows deleted when ``delete_acked``);
    ``final_errors``: ``(message, WorkerError)`` moved to dead letters, among
    them ``stale`` answers to messages seen failing (:func:`overtaken`);
    ``left``: ``(message, WorkerError | None)`` without a final answer
    (retryable error, or no reply: ``None``), rows kept and the messages
    recorded in ``failures``. Replies are applied in the order of ``messages``
    (the send order: seq order per object).
    """
    acked: list[Message] = []
    finals: list[tuple[Message, WorkerError]] = []
    left: list[tuple[Message, WorkerError | None]] = []
    for message in messages:
        reply = replies.get(message.message_id)
        if reply is None:
            left.append((message, None))
            continue
        kind, detail = classify(reply, message.message_id)
        if kind == "ack":
            if detail == "stale" and failures.seen_failing(message):
                finals.append((message, overtaken(reply, message.message_id)))
            else:
                acked.append(message)
        elif kind == "final":
            finals.append((message, detail))
        else:
            left.append((message, detail))
    # In memory first: the database writes below may fail, the record must not.
    if left:
        failures.record(m.message_id for m, _ in left)
    by_db: dict[str, list[int]] = {}
    if delete_acked:
        for m in acked:
            if m.seq is not None:
                by_db.setdefault(m.using, []).append(m.seq)
        for using, seqs in by_db.items():
            delete(using, seqs)
    failures.forget(m.message_id for m in acked)
    for message, error in finals:
        dead_letter(message, error)
    failed: dict[str, list[int]] = {}
    for message, error in left:
        if message.seq is not None:
            failed.setdefault(message.using, []).append(message.seq)
    for using, seqs in failed.items():
        first_error = next((e for m, e in left if m.using == using and e is not None), None)
        record_failure(using, seqs, str(first_error) if first_error else "no reply")
    return acked, finals, left

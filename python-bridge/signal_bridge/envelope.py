"""Messages of wire protocol v1 (``docs/PROTOCOL.md``): ids, requests, replies.

A message is captured in the ``post_save`` receiver, while the instance
still holds the values it was saved with (:func:`capture`), and rendered to
JSON text once (:meth:`Draft.render`): at once when it goes into an outbox
row, on the sender thread when an async message has no row. The text has no
``seq`` (the outbox row's primary key, unknown until the row is inserted);
:func:`wire` splices ``seq`` in when it is sent, so the outbox row is written
once and never updated.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import decimal
import json
import os
import threading
import time
import uuid
from typing import Any

from django.core import serializers
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.encoding import is_protected_type

try:  # Django >= 5.2
    from django.db.models.fields.composite import CompositePrimaryKey
except ImportError:  # pragma: no cover - older Django has no composite keys
    CompositePrimaryKey = None

PROTOCOL_VERSION = 1

_uuid_lock = threading.Lock()
_last_ms = 0
_counter = 0
# Random bytes for ids, drawn from os.urandom a pool at a time (one system call per
# _RANDOM_POOL_BYTES // 10 ids instead of one per id); guarded by _uuid_lock, emptied in a
# forked child so that a parent and its children never hand out the same bytes.
_RANDOM_POOL_BYTES = 4000
_random_pool = b""
_random_at = 0
_RAND_B = (1 << 62) - 1  # the 62 random bits after the variant


def uuid7() -> str:
    """A UUIDv7 string (RFC 9562): 48-bit Unix milliseconds, then random bits.

    Time-ordered ids keep the worker's dedupe index growing at its right
    edge (docs/PROTOCOL.md, "Request"). Within one millisecond a 12-bit counter in
    ``rand_a`` keeps the ids of this process increasing. Each id takes 10 bytes of
    the process's random pool (``os.urandom``, refilled when used up): a new
    millisecond's counter start and ``rand_b``.
    """
    global _last_ms, _counter, _random_pool, _random_at
    with _uuid_lock:
        at = _random_at
        if at + 10 > len(_random_pool):
            _random_pool, at = os.urandom(_RANDOM_POOL_BYTES), 0
        _random_at = at + 10
        rand = int.from_bytes(_random_pool[at : at + 10], "big")  # bits 64-79: the counter's start
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                ms += 1
                _counter = 0
        else:
            _counter = (rand >> 64) & 0x3FF  # leave room to count up
        _last_ms = ms
        counter = _counter
    hexed = "%032x" % ((ms << 80) | ((0x7000 | counter) << 64) | 0x8000000000000000 | (rand & _RAND_B))
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


def _after_fork_in_child() -> None:
    """A forked child draws its own random bytes (and never waits on a lock held at the fork)."""
    global _uuid_lock, _random_pool, _random_at
    _uuid_lock = threading.Lock()
    _random_pool, _random_at = b"", 0


os.register_at_fork(after_in_child=_after_fork_in_child)


_second: tuple[int, str] = (-1, "")  # (Unix second, its "YYYY-MM-DDTHH:MM:SS"), shared by threads


def _now_iso() -> str:
    """Now in UTC as ``2026-01-02T03:04:05.678901Z``.

    The text of the second is formatted once per second and reused (a tuple,
    replaced whole, so threads never see half of one); only the microseconds
    are formatted per call.
    """
    global _second
    ns = time.time_ns()
    seconds = ns // 1_000_000_000
    cached = _second
    if cached[0] != seconds:
        cached = _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{cached[1]}.{ns // 1000 % 1_000_000:06d}Z"


def _absent():  # sentinel for getattr
    pass


# Per (model, fields): the fields the "python" serializer would visit, in its
# order, or None where only Django's serializer will do (many-to-many fields
# selected, composite primary keys). Filled on first use; models do not change
# while the process runs.
_serialization_plans: dict[tuple[type, tuple[str, ...] | None], tuple | None] = {}


def _serialization_plan(model, fields: tuple[str, ...] | None) -> tuple | None:
    key = (model, fields)
    try:
        return _serialization_plans[key]
    except KeyError:
        pass
    meta = model._meta.concrete_model._meta
    if fields is None:
        fields = tuple(f.name for f in model._meta.concrete_fields if not f.primary_key)
    selected = set(fields)
    composite_pk = isinstance(meta.pk, CompositePrimaryKey) if CompositePrimaryKey else False
    many_to_many = any(f.serialize and f.attname in selected for f in meta.local_many_to_many)
    if composite_pk or many_to_many:
        plan = None
    else:
        # The selection rule of django.core.serializers.base.Serializer.serialize:
        # a plain field by attname, a foreign key by attname without "_id".
        plan = tuple(
            f
            for f in meta.local_fields
            if f.serialize and (f.attname if f.remote_field is None else f.attname[:-3]) in selected
        )
    _serialization_plans[key] = plan
    return plan


def _field_value(instance, field):
    """What the "python" serializer stores for one field (``_value_from_field``)."""
    value = field.value_from_object(instance)
    return value if is_protected_type(value) else field.value_to_string(instance)


def serialize_instance(instance, fields: tuple[str, ...] | None) -> dict:
    """Django's "python" serializer output for ``instance``, without its machinery.

    The same dict as ``serializers.serialize("python", [instance],
    fields=...)[0]`` (a test compares them field for field), built from a
    cached field list: the serializer itself costs about ten times as much,
    inside every ``save()``. ``fields=None`` means every concrete,
    non-many-to-many field: the serializer would otherwise run one query per
    many-to-many field inside ``save()``. Listing such a field in ``fields``
    opts in, and then Django's serializer does the work.
    """
    plan = _serialization_plan(type(instance), fields)
    if plan is None:
        if fields is None:
            fields = tuple(f.name for f in instance._meta.concrete_fields if not f.primary_key)
        return serializers.serialize("python", [instance], fields=fields)[0]
    return {
        "model": str(instance._meta),
        "pk": _field_value(instance, instance._meta.pk),
        "fields": {field.name: _field_value(instance, field) for field in plan},
    }


# Compact JSON of dates, decimals and UUIDs as docs/PROTOCOL.md says; encode() keeps no state between calls.
_encoder = DjangoJSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _fast_encoder():
    """``_encoder.encode`` without building an encoder per call.

    ``JSONEncoder.encode`` makes a new C encoder (``json.encoder.c_make_encoder``)
    for every value; this makes one, with the same separators, string escaping
    and ``DjangoJSONEncoder.default``, and reuses it: the same text in half
    the time. It keeps no state between calls (no circular-reference markers:
    a self-containing attribute raises ``RecursionError`` rather than
    ``ValueError``), so threads share it. Without the C encoder (not CPython),
    ``_encoder.encode``.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # pragma: no cover - CPython always has it
        return _encoder.encode
    encode_chunks = make(None, _encoder.default, json.encoder.encode_basestring, None, ":", ",", False, False, True)

    def encode(value) -> str:
        if isinstance(value, str):
            return _quote(value)
        return "".join(encode_chunks(value, 0))

    return encode


_quote = json.encoder.encode_basestring  # a str as JSON, non-ASCII kept (ensure_ascii=False)
encode = _fast_encoder()

# Values that cannot change after post_save returns: a detached copy of the
# instance shares them; anything else (a JSONField's dict, a list) is copied.
_IMMUTABLE = frozenset({
    str, int, float, bool, type(None), bytes, datetime.datetime, datetime.date, datetime.time,
    datetime.timedelta, decimal.Decimal, uuid.UUID,
})


def _detached(instance, plan: tuple) -> Any | None:
    """A copy of ``instance`` holding only the values ``plan`` serializes, or None.

    The copy does not change when the caller changes ``instance`` after
    ``save()``, so the message can be rendered later on another thread with
    exactly the values saved. None when a value is not loaded (a deferred
    field would cost a query, on whichever thread reads it).
    """
    values = instance.__dict__
    snapshot = {}
    for field in (instance._meta.pk, *plan):
        value = values.get(field.attname, _absent)
        if value is _absent:
            return None
        snapshot[field.attname] = value if type(value) in _IMMUTABLE else copy.deepcopy(value)
    model = type(instance)
    clone = model.__new__(model)
    clone.__dict__ = snapshot
    return clone


@dataclasses.dataclass(slots=True)
class Draft:
    """A request captured in ``post_save``, rendered to JSON text later.

    :func:`capture` takes what can change after ``save()`` returns (the
    instance's values, the extra attributes, encoded at once so that an
    attribute JSON cannot encode fails in ``save()``, as before);
    :meth:`render` does the rest, on whichever thread sends the message.
    The async sender thus spends the serializer's CPU while ``save()``'s
    thread waits for its database, not inside ``save()``.
    """

    head: str  # the request's JSON text up to update_fields, without the closing brace
    instance: Any  # a detached model instance, or its already serialized dict
    fields: tuple[str, ...] | None
    attrs_json: str

    def render(self) -> str:
        instance = self.instance
        if not isinstance(instance, dict):
            instance = serialize_instance(instance, self.fields)
        return (self.head + ',"sent_at":"' + _now_iso() + '","instance":' + encode(instance)
                + ',"attrs":' + self.attrs_json + "}")


# (signal, label, using) -> the JSON text between the id and "created": the same for every
# message of a sender.
_middles: dict[tuple[str, str, str], str] = {}


def head(message_id: str, signal: str, label: str, using: str, created, raw, update_fields) -> str:
    """``{"v":1,"id":...,"update_fields":...`` (no closing brace), keys in the order of PROTOCOL.md."""
    key = (signal, label, using)
    middle = _middles.get(key)
    if middle is None:
        middle = _middles[key] = f',"signal":{_quote(signal)},"sender":{_quote(label)},"db":{_quote(using)}'
    return (
        '{"v":%d,"id":' % PROTOCOL_VERSION + _quote(message_id) + middle
        + (',"created":true' if created else ',"created":false')
        + (',"raw":true' if raw else ',"raw":false')
        + (',"update_fields":null' if update_fields is None else ',"update_fields":' + encode(sorted(update_fields)))
    )


def capture(
    *,
    message_id: str,
    signal: str,
    label: str,
    using: str,
    created: bool,
    raw: bool,
    update_fields,
    instance,
    attrs: tuple[str, ...],
    fields: tuple[str, ...] | None,
    detach: bool = True,
) -> Draft:
    """Capture a request (``docs/PROTOCOL.md``, "Request"); ``.render()`` gives its text.

    ``attrs`` lists instance attributes to copy: an attribute the instance
    does not have stays absent, one that is ``None`` travels as ``null``
    (the receiver tells them apart). Dates and datetimes become ISO 8601
    strings, ``Decimal`` and ``UUID`` strings (``DjangoJSONEncoder``).

    ``detach=False`` when the draft is rendered before ``save()`` returns
    (an outbox row, a sync send): the fields are then serialized at once
    instead of being copied for a later rendering.
    """
    values, attrs_json = snapshot(instance, attrs, fields, detach=detach)
    return Draft(head(message_id, signal, label, using, created, raw, update_fields), values, fields, attrs_json)


def snapshot(instance, attrs: tuple[str, ...], fields: tuple[str, ...] | None, *, detach: bool = True):
    """What :func:`capture` takes from ``instance``: ``(values, attrs_json)``.

    ``values`` is a detached copy of the instance (``detach``, when every
    value it needs is loaded) or its serialized fields; ``attrs_json`` the
    extra attributes as JSON text, encoded now so that one JSON cannot encode
    fails in ``save()``. The rest of a :class:`Draft` (id, head) can be made
    later, on another thread: the async sender does (``sender.from_save``).
    """
    attr_values: dict[str, Any] = {}
    for name in attrs:
        value = getattr(instance, name, _absent)
        if value is not _absent:
            attr_values[name] = value
    attrs_json = encode(attr_values)
    if detach:
        plan = _serialization_plan(type(instance), fields)
        detached = _detached(instance, plan) if plan is not None else None
        if detached is not None:
            return detached, attrs_json
    return serialize_instance(instance, fields), attrs_json


def build(**options) -> str:
    """The request as JSON text, without ``seq``: ``capture(**options).render()``."""
    return capture(**options).render()


def wire(payload: str, seq: int | None, *, durable: bool = True, outbox_check: bool = False) -> bytes:
    """The frame to send: ``payload`` with ``"seq":N`` first (absent when None).

    ``"durable":false`` follows (docs/PROTOCOL.md) when the message has an
    outbox row (``seq``): the row outlives the acknowledgement in the same
    database, so the worker's commit need not wait for the disk. Also when
    the caller passes ``durable=False`` (async sends: the message was only
    in memory until now anyway). A sync message without a row stays durable.

    ``outbox_check=True`` adds ``"outbox_check":true``: the worker looks for
    an older row of the object in the outbox before applying the message and
    answers ``behind`` if there is one (docs/PROTOCOL.md); a sync ``save()``
    sends it instead of running the backlog query itself.

    ``payload`` always starts with ``{`` (it is a JSON object built by
    :func:`build`), so prefixing the members keeps the object valid without
    parsing it again.
    """
    if seq is not None:
        members = '{"seq":%d,"durable":false,' % seq
    elif not durable:
        members = '{"durable":false,'
    elif not outbox_check:
        return payload.encode("utf-8")
    else:
        members = "{"
    if outbox_check:
        members += OUTBOX_CHECK_MEMBER
    return (members + payload[1:]).encode("utf-8")


# The request member that asks the worker to check the outbox first (wire(outbox_check=True)).
OUTBOX_CHECK_MEMBER = '"outbox_check":true,'


def ping(message_id: str) -> bytes:
    """A ping request: answered with ``pong`` without touching the store."""
    return json.dumps({"v": PROTOCOL_VERSION, "id": message_id, "type": "ping"}).encode()


_decoder = json.JSONDecoder()


def parse_reply(frame: bytes) -> dict | None:
    """Decode a reply frame; ``None`` if it is not a JSON object with a ``status``.

    ``raw_decode`` on the decoded text: what ``json.loads`` does minus its
    encoding detection and whitespace regexes (the worker's replies are
    compact UTF-8); whitespace around the object is allowed, anything else is not.
    """
    try:
        text = frame.decode("utf-8") if isinstance(frame, bytes) else frame
        if text[:1] != "{":
            text = text.lstrip()
        reply, end = _decoder.raw_decode(text)
    except (ValueError, UnicodeDecodeError):
        return None
    if end != len(text) and text[end:].strip():
        return None
    if not isinstance(reply, dict) or reply.get("status") not in ("ok", "error"):
        return None
    return reply

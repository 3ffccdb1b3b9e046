"""The ``SIGNAL_BRIDGE`` settings: defaults, validation, lazy access.

Everything the app reads from Django's settings goes through :func:`get`,
which validates the dictionary once and caches the result until Django sends
``setting_changed`` for ``SIGNAL_BRIDGE`` (``override_settings`` in tests).
Nothing is read at import time, so ``manage.py check`` can report a bad
configuration (see ``signal_bridge.checks``) instead of crashing on start-up.

Keys (all optional; ``python-bridge/README.md`` has the same table):

``ENABLED`` (``True``)
    Master switch. ``False``: no receiver publishes anything.
``ENDPOINT`` (``"tcp://127.0.0.1:5557"``)
    ZeroMQ endpoint of ``signal-worker serve --bind`` (or of ``signal-worker
    broker``'s frontend), or a list of workers' endpoints: each message then
    goes to the one its sender and pk hash to (``transport.endpoint_for``),
    so one user's messages always reach the same worker, in order.
``MODE`` (``"sync"``)
    ``"sync"``: ``save()`` (or the ``atomic()`` exit) waits for the worker's
    reply; ``"async"``: a background thread sends, ``save()`` does not wait;
    ``"outbox"``: only the outbox row is written, the relay command sends.
``SENDERS`` (``{}``)
    ``{"app_label.model": {"signals": ["post_save"], "attrs": [...],
    "fields": [...]}}``. ``signals``: only ``post_save`` exists in protocol v1.
    ``attrs``: instance attributes that are not model fields but that the
    worker's receiver reads (``_profile_data``). ``fields``: model fields put
    in ``instance.fields``; unset or ``None``: none (the message carries the
    primary key, ``instance.fields`` is ``{}``), so nothing the receiver does
    not read (a password hash) reaches the wire, the outbox or the dead
    letters; ``"__all__"``: every concrete non-many-to-many field (list a
    many-to-many field to send it: it costs a query inside ``save()``).
    Secret-looking names in ``fields`` are reported by ``signal_bridge.W004``.
``TIMEOUT_MS`` (``300``)
    How long one attempt waits for a reply (sync, async and relay; in a
    pipeline, how long it may go without any reply).
``RETRIES`` (``1``)
    Sync only: attempts after the first, each on a fresh socket (Lazy Pirate);
    also how often a ``store_unavailable`` reply is retried.
``ON_UNREACHABLE`` (``"defer"``)
    Sync only, when no reply came after all attempts (or the worker kept
    answering ``store_unavailable``): ``"defer"`` logs a warning and
    returns, ``"raise"`` raises ``WorkerUnreachable`` (or the retryable
    ``WorkerError``); with both the message stays in the outbox for the
    relay. ``"local"`` runs the Python receiver named in
    ``LOCAL_RECEIVERS`` in process instead.

    Why these three defaults: with the worker down, the first sync ``save()``
    waits ``TIMEOUT_MS * (RETRIES + 1)`` = 0.6 s, returns, and leaves the
    message in the outbox for the relay; the saves after it skip the network
    for ``UNREACHABLE_COOLDOWN_MS``. (The earlier 2000 ms, 2 retries and
    ``"raise"`` made that first save wait 6 s and then raise after the user's
    row had committed: a 500 page, a user without a profile.) 300 ms is over
    twice the slowest sync ``save()`` measured (p99 108-132 ms with four
    Django processes on SQLite, 6-22 ms on PostgreSQL; docs/OPERATIONS.md,
    "SQLite shared with Django"). The one retry goes out on a fresh socket
    with the same id: a reply that was only slow still arrives within the same
    ``save()`` (the resend is answered ``duplicate`` once the first commits),
    and behind ``signal-worker broker`` a resend after a worker died reaches a
    live one. In the async and relay pipelines the timeout bounds a silence
    (every reply restarts it); a round cut short leaves its messages in the
    outbox, resent later with the same ids (``duplicate``). Raise
    ``TIMEOUT_MS`` where the worker is known to pause longer, e.g. SQLite
    shared with long Django transactions.
``LOCAL_RECEIVERS`` (``{}``)
    ``{"app_label.model": "dotted.path.to.receiver"}`` for ``"local"``.
``UNREACHABLE_COOLDOWN_MS`` (``5000``)
    After the worker was found unreachable, sync and async sends skip the
    network for this long and apply the failure policy at once (so one dead
    worker does not add ``TIMEOUT_MS * (RETRIES + 1)`` to every ``save()``).
    Half-open: meanwhile one send at a time (process-wide) first pings the
    worker, waiting at most 250 ms (``TIMEOUT_MS`` if shorter); a pong ends
    the cool-down for the process and the send goes ahead, so the first
    ``save()`` after the worker is back is delivered at once; no pong keeps
    the cool-down and that send is deferred too. Sends that find another
    thread probing do not wait. ``0`` disables it.
``ASYNC_QUEUE_SIZE`` (``10000``)
    Async only: messages waiting for the background sender. When full,
    ``save()`` does not block: the message goes to the outbox for the relay.
``ASYNC_BATCH`` (``500``)
    Async only: most messages the sender writes, sends (pipelined) and
    deletes per round.
``ASYNC_INTERVAL_MS`` (``100``)
    Async only: the sender starts a round at most this often. A message
    that arrives after a quiet spell goes at once; under load, the messages
    of an interval go together, so a busy process pays the sender's and the
    worker's commits per interval rather than per message (each of them can
    make a ``save()`` wait for SQLite's write lock). The most it adds to a
    message's delivery latency; ``0`` sends whatever is queued as soon as
    the previous round ends.
``ASYNC_FLUSH_TIMEOUT_MS`` (``5000``)
    Async only: how long interpreter exit waits for the queue to drain; what
    is left is written to the outbox.
``DELETE_ACKED`` (``"batch"``)
    Who deletes the outbox row of an acknowledged sync message: ``"batch"``:
    the background thread, many rows per statement; ``"inline"``: ``save()``
    itself, one ``DELETE`` (and one commit) per message.
``RELAY_BATCH`` (``500``)
    Relay: rows read and sent (pipelined, in ``seq`` order) per round.
``RELAY_BACKOFF_MS`` (``500``) and ``RELAY_BACKOFF_MAX_MS`` (``30000``)
    Relay: first and largest pause while the worker is unreachable or
    answers ``store_unavailable`` (doubles every failed round).
``RELAY_POLL_MS`` (``1000``)
    ``relay --forever``: pause between polls of an empty outbox.
``MAX_MESSAGE_BYTES`` (``65536``)
    Largest frame the bridge sends (UTF-8 bytes on the wire, ``seq``
    included); the worker's ``--max-request-bytes`` default. A larger
    message is never sent (the worker would refuse it, and past the
    transport cap libzmq drops the connection without a reply): it goes to
    the dead letters at once, code ``too_large``, and sync mode raises that
    ``WorkerError``. Keep it at most the worker's ``--max-request-bytes``.
``CURVE`` (``None``)
    For a worker started with CURVE: ``{"SERVER_PUBLIC_KEY_FILE":
    "/etc/signal-worker/worker.pub", "SECRET_KEY_FILE":
    "/etc/signal-worker/django.key"}`` (files from ``signal-worker keygen``;
    the secret key file must be readable by its owner only, the worker's
    public key file writable by its owner only). Every socket of
    the bridge then encrypts and authenticates. ``None``: plaintext.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from . import curve
from .curve import CurveKeys
from .redaction import redact

SETTING_NAME = "SIGNAL_BRIDGE"
# A sender's "fields" value that sends every concrete field (as Django's ModelForm.Meta.fields).
ALL_FIELDS = "__all__"
SUPPORTED_SIGNALS = ("post_save",)
MODES = ("sync", "async", "outbox")
POLICIES = ("raise", "defer", "local")
DELETE_STRATEGIES = ("batch", "inline")

DEFAULTS: dict[str, Any] = {
    "ENABLED": True,
    "ENDPOINT": "tcp://127.0.0.1:5557",
    "MODE": "sync",
    "SENDERS": {},
    "TIMEOUT_MS": 300,
    "RETRIES": 1,
    "ON_UNREACHABLE": "defer",
    "LOCAL_RECEIVERS": {},
    "UNREACHABLE_COOLDOWN_MS": 5000,
    "ASYNC_QUEUE_SIZE": 10000,
    "ASYNC_BATCH": 500,
    "ASYNC_INTERVAL_MS": 100,
    "ASYNC_FLUSH_TIMEOUT_MS": 5000,
    "DELETE_ACKED": "batch",
    "RELAY_BATCH": 500,
    "RELAY_BACKOFF_MS": 500,
    "RELAY_BACKOFF_MAX_MS": 30000,
    "RELAY_POLL_MS": 1000,
    "MAX_MESSAGE_BYTES": 65536,
    "CURVE": None,
}

# Keys of earlier versions: (the key now, what changed), for the E002 hint.
RENAMED = {
    "ASYNC_BATCH_WAIT_MS": (
        "ASYNC_INTERVAL_MS",
        "the sender no longer waits for more messages after the first one; it starts a round at most every "
        "ASYNC_INTERVAL_MS",
    ),
}

# (key, minimum) of the integer settings.
_INTEGERS = {
    "TIMEOUT_MS": 1,
    "RETRIES": 0,
    "UNREACHABLE_COOLDOWN_MS": 0,
    "ASYNC_QUEUE_SIZE": 1,
    "ASYNC_BATCH": 1,
    "ASYNC_INTERVAL_MS": 0,
    "ASYNC_FLUSH_TIMEOUT_MS": 0,
    "RELAY_BATCH": 1,
    "RELAY_BACKOFF_MS": 1,
    "RELAY_BACKOFF_MAX_MS": 1,
    "RELAY_POLL_MS": 1,
    "MAX_MESSAGE_BYTES": 1,
}

_SENDER_KEYS = {"signals", "attrs", "fields"}


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with the settings; ``checks`` turns it into an Error."""

    id: str
    msg: str
    hint: str | None = None


@dataclasses.dataclass(frozen=True)
class SenderConfig:
    """What to publish for one model (``label`` is lower case).

    ``fields``: the model fields sent in ``instance.fields``; ``()`` (the
    default) none, ``None`` every concrete field (``"__all__"``).
    """

    label: str
    signals: tuple[str, ...]
    attrs: tuple[str, ...]
    fields: tuple[str, ...] | None


@dataclasses.dataclass(frozen=True)
class BridgeConfig:
    """The validated ``SIGNAL_BRIDGE`` settings (read-only)."""

    enabled: bool
    endpoints: tuple[str, ...]
    mode: str
    senders: dict[str, SenderConfig]
    timeout_ms: int
    retries: int
    on_unreachable: str
    local_receivers: dict[str, str]
    unreachable_cooldown_ms: int
    async_queue_size: int
    async_batch: int
    async_interval_ms: int
    async_flush_timeout_ms: int
    delete_acked: str
    relay_batch: int
    relay_backoff_ms: int
    relay_backoff_max_ms: int
    relay_poll_ms: int
    max_message_bytes: int = DEFAULTS["MAX_MESSAGE_BYTES"]
    curve: CurveKeys | None = None


def raw_settings() -> Any:
    """The user's ``SIGNAL_BRIDGE`` value as written (``{}`` when unset)."""
    from django.conf import settings

    return getattr(settings, SETTING_NAME, {})


def validate(raw: Any) -> tuple[BridgeConfig | None, list[Problem]]:
    """Check ``raw`` against the documented keys.

    Returns the config (``None`` when anything is wrong) and the problems,
    each with the check id ``signal_bridge.checks`` reports. Model labels are
    checked separately (``checks``), because the app registry may not be
    ready when this runs.
    """
    problems: list[Problem] = []
    if not isinstance(raw, dict):
        return None, [
            Problem(
                "signal_bridge.E001",
                f"SIGNAL_BRIDGE must be a dict, not {type(raw).__name__}.",
            )
        ]
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        renamed = [f"{old!r} is now {RENAMED[old][0]!r} ({RENAMED[old][1]})" for old in unknown if old in RENAMED]
        problems.append(
            Problem(
                "signal_bridge.E002",
                f"SIGNAL_BRIDGE has unknown keys: {', '.join(map(repr, unknown))}.",
                ("; ".join(renamed) + ". " if renamed else "") + "Known keys: " + ", ".join(sorted(DEFAULTS)) + ".",
            )
        )
    values = {**DEFAULTS, **raw}

    if not isinstance(values["ENABLED"], bool):
        problems.append(Problem("signal_bridge.E009", "SIGNAL_BRIDGE['ENABLED'] must be True or False."))

    endpoints = values["ENDPOINT"]
    if isinstance(endpoints, str):
        endpoints = [endpoints]
    if (
        not isinstance(endpoints, (list, tuple))
        or not endpoints
        or not all(isinstance(e, str) and "://" in e for e in endpoints)
    ):
        problems.append(
            Problem(
                "signal_bridge.E005",
                f"SIGNAL_BRIDGE['ENDPOINT'] = {redact(repr(values['ENDPOINT']))} is not a ZeroMQ endpoint "
                "or a non-empty list of them.",
                'Use e.g. "tcp://127.0.0.1:5557" (what signal-worker serve --bind binds).',
            )
        )
        endpoints = []

    if values["MODE"] not in MODES:
        problems.append(
            Problem(
                "signal_bridge.E003",
                f"SIGNAL_BRIDGE['MODE'] = {values['MODE']!r} is not one of {', '.join(MODES)}.",
            )
        )
    if values["ON_UNREACHABLE"] not in POLICIES:
        problems.append(
            Problem(
                "signal_bridge.E004",
                f"SIGNAL_BRIDGE['ON_UNREACHABLE'] = {values['ON_UNREACHABLE']!r} "
                f"is not one of {', '.join(POLICIES)}.",
            )
        )
    if values["DELETE_ACKED"] not in DELETE_STRATEGIES:
        problems.append(
            Problem(
                "signal_bridge.E009",
                f"SIGNAL_BRIDGE['DELETE_ACKED'] = {values['DELETE_ACKED']!r} "
                f"is not one of {', '.join(DELETE_STRATEGIES)}.",
            )
        )
    for key, minimum in _INTEGERS.items():
        value = values[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            problems.append(
                Problem(
                    "signal_bridge.E009",
                    f"SIGNAL_BRIDGE[{key!r}] = {value!r} must be an integer >= {minimum}.",
                )
            )

    senders = _validate_senders(values["SENDERS"], problems)
    curve_keys = _validate_curve(values["CURVE"], problems)

    local = values["LOCAL_RECEIVERS"]
    if not isinstance(local, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in local.items()
    ):
        problems.append(
            Problem(
                "signal_bridge.E008",
                "SIGNAL_BRIDGE['LOCAL_RECEIVERS'] must map model labels to dotted paths.",
            )
        )
        local = {}
    local = {k.lower(): v for k, v in local.items()}
    if values["ON_UNREACHABLE"] == "local":
        missing = sorted(set(senders) - set(local))
        if missing:
            problems.append(
                Problem(
                    "signal_bridge.E008",
                    "ON_UNREACHABLE is 'local' but LOCAL_RECEIVERS has no receiver for "
                    + ", ".join(missing) + ".",
                    'Add e.g. LOCAL_RECEIVERS = {"auth.user": "accounts.receivers.create_or_update_user_profile"}.',
                )
            )

    if problems:
        return None, problems
    return (
        BridgeConfig(
            enabled=values["ENABLED"],
            endpoints=tuple(endpoints),
            mode=values["MODE"],
            senders=senders,
            timeout_ms=values["TIMEOUT_MS"],
            retries=values["RETRIES"],
            on_unreachable=values["ON_UNREACHABLE"],
            local_receivers=local,
            unreachable_cooldown_ms=values["UNREACHABLE_COOLDOWN_MS"],
            async_queue_size=values["ASYNC_QUEUE_SIZE"],
            async_batch=values["ASYNC_BATCH"],
            async_interval_ms=values["ASYNC_INTERVAL_MS"],
            async_flush_timeout_ms=values["ASYNC_FLUSH_TIMEOUT_MS"],
            delete_acked=values["DELETE_ACKED"],
            relay_batch=values["RELAY_BATCH"],
            relay_backoff_ms=values["RELAY_BACKOFF_MS"],
            relay_backoff_max_ms=max(values["RELAY_BACKOFF_MAX_MS"], values["RELAY_BACKOFF_MS"]),
            relay_poll_ms=values["RELAY_POLL_MS"],
            max_message_bytes=values["MAX_MESSAGE_BYTES"],
            curve=curve_keys,
        ),
        [],
    )


def _validate_curve(raw: Any, problems: list[Problem]) -> CurveKeys | None:
    if raw is None:
        return None
    keys = {"SERVER_PUBLIC_KEY_FILE", "SECRET_KEY_FILE"}
    if not isinstance(raw, dict) or set(raw) != keys or not all(isinstance(v, str) for v in raw.values()):
        problems.append(
            Problem(
                "signal_bridge.E010",
                "SIGNAL_BRIDGE['CURVE'] must be None or a dict with exactly SERVER_PUBLIC_KEY_FILE and "
                "SECRET_KEY_FILE (paths).",
            )
        )
        return None
    try:
        return curve.load(raw["SERVER_PUBLIC_KEY_FILE"], raw["SECRET_KEY_FILE"])
    except curve.CurveKeyError as error:
        problems.append(
            Problem("signal_bridge.E010", f"SIGNAL_BRIDGE['CURVE']: {error}", "Create keys with `signal-worker keygen`.")
        )
        return None


def _validate_senders(raw: Any, problems: list[Problem]) -> dict[str, SenderConfig]:
    if not isinstance(raw, dict):
        problems.append(Problem("signal_bridge.E006", "SIGNAL_BRIDGE['SENDERS'] must be a dict."))
        return {}
    senders: dict[str, SenderConfig] = {}
    for label, options in raw.items():
        where = f"SIGNAL_BRIDGE['SENDERS'][{label!r}]"
        if not isinstance(label, str) or label.count(".") != 1:
            problems.append(
                Problem("signal_bridge.E006", f"{where}: the key must be a model label 'app_label.model'.")
            )
            continue
        if not isinstance(options, dict):
            problems.append(Problem("signal_bridge.E006", f"{where} must be a dict."))
            continue
        unknown = sorted(set(options) - _SENDER_KEYS)
        if unknown:
            problems.append(
                Problem(
                    "signal_bridge.E006",
                    f"{where} has unknown keys: {', '.join(map(repr, unknown))}.",
                    "Known keys: signals, attrs, fields.",
                )
            )
        signals = options.get("signals", ["post_save"])
        if not isinstance(signals, (list, tuple)) or not all(isinstance(s, str) for s in signals):
            problems.append(Problem("signal_bridge.E007", f"{where}['signals'] must be a list of names."))
            signals = []
        bad = [s for s in signals if s not in SUPPORTED_SIGNALS]
        if bad:
            problems.append(
                Problem(
                    "signal_bridge.E007",
                    f"{where}['signals'] has {', '.join(map(repr, bad))}: protocol v1 carries only post_save.",
                )
            )
        attrs = options.get("attrs", [])
        if not isinstance(attrs, (list, tuple)) or not all(isinstance(a, str) for a in attrs):
            problems.append(Problem("signal_bridge.E006", f"{where}['attrs'] must be a list of names."))
            attrs = []
        fields = options.get("fields")
        if fields == ALL_FIELDS:
            selected = None
        elif fields is None:
            selected = ()
        elif isinstance(fields, (list, tuple)) and all(isinstance(f, str) for f in fields):
            selected = tuple(fields)
        else:
            problems.append(
                Problem("signal_bridge.E006", f"{where}['fields'] must be None, a list of names or {ALL_FIELDS!r}.")
            )
            selected = ()
        key = label.lower()
        senders[key] = SenderConfig(label=key, signals=tuple(signals), attrs=tuple(attrs), fields=selected)
    return senders


_cache: BridgeConfig | None = None


def get() -> BridgeConfig:
    """The validated settings; raises ``ImproperlyConfigured`` listing every problem."""
    global _cache
    config = _cache
    if config is None:
        config, problems = validate(raw_settings())
        if config is None:
            raise ImproperlyConfigured(
                "SIGNAL_BRIDGE is invalid (run manage.py check):\n"
                + "\n".join(f"  {p.id}: {p.msg}" for p in problems)
            )
        _cache = config
    return config


def reset() -> None:
    """Forget the cached settings (called on ``setting_changed``)."""
    global _cache
    _cache = None

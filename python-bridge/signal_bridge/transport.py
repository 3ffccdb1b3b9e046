"""ZeroMQ client for signal-worker: Lazy Pirate requests and pipelined batches.

Rules this module keeps (the ZeroMQ guide's Lazy Pirate pattern, pyzmq docs):

- One ``zmq.Context`` per process, created lazily; after ``os.fork()`` the
  child forgets the parent's context and sockets (never closes them: they
  belong to the parent) and makes new ones on first use.
- One DEALER socket per endpoint per thread (``threading.local``), created
  on first use: ZeroMQ sockets are not thread-safe. DEALER rather than REQ:
  no send/receive lock-step, so a timed-out request cannot leave the socket
  stuck (EFSM) and several requests can be in flight; replies are matched
  by ``id`` (docs/PROTOCOL.md, "Transport").
- ``LINGER 0`` on every socket: closing never waits for unsent messages,
  so neither a timeout nor interpreter exit can hang.
- ``IMMEDIATE 1``: messages queue only to a completed connection; with the
  endpoint not connected, ``send`` fails after ``SNDTIMEO`` (= the timeout).
- Lazy Pirate, per endpoint: after a timeout that endpoint's socket is
  closed and a fresh one is made for the next attempt, which resends the
  same message (same ``id``: the worker dedupes, so a retry never applies
  twice). Replies to earlier attempts that arrive late are dropped by id.

Several endpoints (``ENDPOINT`` is a list: workers started with ``serve
--bind``, no broker in between): every message goes to the endpoint chosen
by rendezvous hashing of its ordering key (sender label + instance pk, see
:func:`ordering_key` and :func:`endpoint_for`). All messages of one user
therefore travel through one socket to one worker, in the order they were
sent, and every process that has the same endpoints (in any order) picks the
same worker for a user. A message is never sent to another endpoint when its
own is unreachable (that could overtake an older message still queued at
the first worker): it fails like a message to a single dead worker and the
outbox keeps it for the relay. For fail-over use ``signal-worker broker``
(docs/DEPLOYMENT.md). With one endpoint there is no routing at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time

import zmq

from . import conf, envelope, state
from .exceptions import WorkerError, WorkerUnreachable
from .redaction import redact

logger = logging.getLogger("signal_bridge")

# pyzmq's getsockopt builds an enum per call (about 1.5 µs, more than a recv): replies are
# read with a non-blocking recv (zmq.Again when none is queued) and Frame.more.
_NOBLOCK = int(zmq.NOBLOCK)
# A pipeline reads the replies already queued after every TAKE_EVERY sends (and at the end).
TAKE_EVERY = 64

_lock = threading.Lock()
_context: zmq.Context | None = None
_local = threading.local()
_unreachable_until = 0.0  # monotonic seconds; the cool-down "breaker"
_probe_lock = threading.Lock()  # held by the one send probing the worker during a cool-down
# Objects inherited over fork: kept referenced so their destructors never
# run in the child (they belong to the parent process).
_inherited: list = []


def context() -> zmq.Context:
    """This process's ZeroMQ context (created on first use)."""
    global _context
    ctx = _context
    if ctx is None:
        with _lock:
            if _context is None:
                _context = zmq.Context()
            ctx = _context
    return ctx


def _after_fork_in_child() -> None:
    global _context, _local, _unreachable_until, _lock, _probe_lock
    _inherited.append((_context, _local))
    _context = None
    _local = threading.local()
    _lock = threading.Lock()
    _probe_lock = threading.Lock()
    _unreachable_until = 0.0
    _features.clear()  # learned per process (learn_features)


os.register_at_fork(after_in_child=_after_fork_in_child)


def shutdown() -> None:
    """Close this thread's sockets and terminate the context (tests, exit)."""
    global _context
    close_socket()
    with _lock:
        if _context is not None:
            _context.destroy(linger=0)
            _context = None


# --- cool-down after the worker was found unreachable -------------------------
#
# A half-open breaker: after a send found the worker unreachable, sends skip
# the network for UNREACHABLE_COOLDOWN_MS (``trip``), except one at a time,
# process-wide, that first pings the worker with a short timeout
# (``may_send``). A pong ends the cool-down for the whole process and that send
# goes on as usual; no pong keeps the cool-down as it was, and the probing send
# is deferred like the others. So a worker that is back is used by the first
# send after it answers, and a dead one costs at most one short probe at a
# time instead of TIMEOUT_MS * (RETRIES + 1) per send.

# Longest wait for the probe's pong (TIMEOUT_MS if that is shorter): a ping is
# answered without touching the store, in well under a millisecond locally.
PROBE_TIMEOUT_MS = 250


def cooling_down() -> bool:
    """True while the cool-down runs (see ``UNREACHABLE_COOLDOWN_MS``); :func:`may_send` may end it."""
    return time.monotonic() < _unreachable_until


def may_send(*, endpoints: tuple[str, ...], timeout_ms: int) -> bool:
    """Whether a send may use the network now; during a cool-down, probe first.

    Outside a cool-down: ``True`` at once. During one: if no other thread is
    probing, ping every endpoint with ``min(timeout_ms, PROBE_TIMEOUT_MS)``;
    all answered: the cool-down ends (for every thread) and ``True``; one did
    not: the cool-down stays as it was and ``False``. While another thread
    probes: ``False`` at once (the caller defers, as during the cool-down).
    """
    if not cooling_down():
        return True
    if not _probe_lock.acquire(blocking=False):
        return False
    try:
        if not cooling_down():
            return True  # ended meanwhile (another probe, an ack)
        state.count("probes")
        try:
            ping(endpoints=endpoints, timeout_ms=max(1, min(timeout_ms, PROBE_TIMEOUT_MS)))
        except WorkerError as error:
            logger.debug("signal_bridge: probe during the cool-down failed: %s", error)
            return False
        reset_cooldown()
        state.count("recovered")
        logger.info("signal_bridge: the worker answers again; cool-down ended early")
        return True
    finally:
        _probe_lock.release()


def trip(cooldown_ms: int) -> None:
    """Start the cool-down; the workers' features are asked again afterwards (a replaced worker may differ)."""
    global _unreachable_until
    if cooldown_ms > 0:
        _unreachable_until = time.monotonic() + cooldown_ms / 1000.0
    forget_features()


def reset_cooldown() -> None:
    global _unreachable_until
    _unreachable_until = 0.0


# --- what the workers can do: the features of their pong ---------------------
#
# A worker announces optional protocol features in its pong (docs/PROTOCOL.md,
# "Outbox check"). A sync send asks once per process and endpoint tuple, the
# first time it would rely on one, and keeps the answer until the cool-down
# trips (``trip``): a worker that was unreachable may have been replaced by one
# that answers differently.

OUTBOX_CHECK = "outbox_check"  # the worker checks the outbox before applying (publisher.deliver_sync)

_features: dict[tuple[str, ...], frozenset[str]] = {}


def known_features(endpoints: tuple[str, ...]) -> frozenset[str] | None:
    """The features every worker of ``endpoints`` announced, or None when not asked yet."""
    return _features.get(endpoints)


def learn_features(*, endpoints: tuple[str, ...], timeout_ms: int) -> frozenset[str] | None:
    """Ping every endpoint once and keep the features all of them announce; None if one did not answer.

    Waits at most ``min(timeout_ms, PROBE_TIMEOUT_MS)`` per endpoint, one
    attempt: an endpoint that does not answer is left to the send that
    follows (its retries, the cool-down), and nothing is kept, so the next
    send asks again. A reply that is not a pong, or a pong without
    ``features`` (an older release), is kept as "no features".
    """
    common: frozenset[str] | None = None
    wait_ms = max(1, min(timeout_ms, PROBE_TIMEOUT_MS))
    for endpoint in endpoints:
        message_id = envelope.uuid7()
        try:
            reply = _request_to(endpoint, envelope.ping(message_id), message_id, endpoints, wait_ms, retries=0)
        except WorkerUnreachable as error:
            logger.debug("signal_bridge: no pong to learn the features of %s: %s", redact(endpoint), error)
            return None
        announced = _pong_features(reply)
        common = announced if common is None else common & announced
    common = common if common is not None else frozenset()
    _features[endpoints] = common
    state.count("features_learned")
    return common


def _pong_features(reply: dict) -> frozenset[str]:
    result = reply.get("result") if reply.get("status") == "ok" else None
    if not isinstance(result, dict) or result.get("action") != "pong":
        return frozenset()
    announced = result.get("features")
    if not isinstance(announced, list):
        return frozenset()
    return frozenset(name for name in announced if isinstance(name, str))


def forget_features() -> None:
    """Ask the workers again on the next send that needs to know (``trip``; tests)."""
    _features.clear()


def drop_feature(endpoints: tuple[str, ...], name: str) -> None:
    """Stop relying on ``name`` for ``endpoints``: a worker refused it although its pong announced it.

    Kept so until the cool-down trips (``trip`` forgets every answer): asking
    again at once would get the same pong and the same refusal.
    """
    known = _features.get(endpoints)
    if known is not None:
        _features[endpoints] = known - {name}


# --- routing over several endpoints -------------------------------------------


def ordering_key(frame: bytes) -> str | None:
    """The key that orders ``frame`` among other messages: ``"<sender>|<instance pk>"``.

    Messages with the same key must reach the same worker in the order they
    were sent (docs/PROTOCOL.md, "Exactly once and ordering"). ``None`` for a
    frame without both (a ping, something malformed): any endpoint will do.
    Only called with several endpoints; the frame is parsed once, which costs
    microseconds next to the ``save()`` that produced it.
    """
    try:
        message = json.loads(frame)
        sender = message["sender"]
        pk = message["instance"]["pk"]
    except (ValueError, UnicodeDecodeError, TypeError, KeyError):
        return None
    if not isinstance(sender, str) or pk is None or isinstance(pk, (dict, list)):
        return None
    return f"{sender}|{pk}"


def _score(endpoint: str, key: str) -> int:
    digest = hashlib.blake2b(f"{endpoint}\n{key}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def endpoint_for(key: str, endpoints: tuple[str, ...] | list[str]) -> str:
    """The endpoint that serves ``key``: rendezvous (highest random weight) hashing.

    Each endpoint scores ``blake2b(endpoint + "\\n" + key)`` and the highest
    wins. Stable across processes and Python versions (no ``hash()``), and
    independent of the order of ``endpoints``. Adding an endpoint to N moves
    only the keys it now wins (about 1/(N+1) of them); removing one moves
    only that endpoint's keys.
    """
    if len(endpoints) == 1:
        return endpoints[0]
    return max(endpoints, key=lambda endpoint: (_score(endpoint, key), endpoint))


def route(frame: bytes, message_id: str, endpoints: tuple[str, ...]) -> str:
    """The endpoint for ``frame``: by its ordering key, else by its id (pings)."""
    if len(endpoints) == 1:
        return endpoints[0]
    key = ordering_key(frame)
    return endpoint_for(key if key is not None else f"id|{message_id}", endpoints)


# --- sockets -----------------------------------------------------------------


def _socket(endpoint: str, endpoints: tuple[str, ...], timeout_ms: int) -> zmq.Socket:
    """This thread's DEALER for ``endpoint`` (made on first use), its ``SNDTIMEO`` ``timeout_ms``.

    ``endpoints`` is the whole configured list: when it (or the CURVE keys)
    changed since the sockets were made, they are all closed and made anew.
    Options are set only when they change (each is a call into libzmq, and
    this runs for every sync message).
    """
    keys = conf.get().curve  # CURVE (or not) for every socket of the bridge
    sockets = getattr(_local, "sockets", None)
    if sockets is None or _local.config != (endpoints, keys):
        close_socket()
        sockets = _local.sockets = {}
        _local.timeouts = {}
        _local.config = (endpoints, keys)
    sock = sockets.get(endpoint)
    if sock is not None:
        if _local.timeouts[sock][0] != timeout_ms:
            _local.ready = None  # quick_request expects the timeouts it was left with
            sock.setsockopt(zmq.SNDTIMEO, timeout_ms)
            _local.timeouts[sock][0] = timeout_ms
        return sock
    sock = context().socket(zmq.DEALER)
    if keys is not None:
        keys.apply(sock)  # before connect: the handshake uses them
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IMMEDIATE, 1)
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.setsockopt(zmq.SNDTIMEO, timeout_ms)
    sock.connect(endpoint)
    sockets[endpoint] = sock
    _local.timeouts[sock] = [timeout_ms, -1]  # [SNDTIMEO, RCVTIMEO] as set on the socket
    return sock


def _receive_timeout(sock: zmq.Socket, timeout_ms: int) -> None:
    """Set ``RCVTIMEO`` of this thread's ``sock`` unless it already has that value."""
    current = _local.timeouts[sock]
    if current[1] != timeout_ms:
        _local.ready = None  # quick_request expects the timeouts it was left with
        sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
        current[1] = timeout_ms


def _close(endpoint: str) -> None:
    """Close this thread's socket for ``endpoint`` (Lazy Pirate: the next use makes a new one)."""
    _local.ready = None
    sockets = getattr(_local, "sockets", None)
    if sockets:
        sock = sockets.pop(endpoint, None)
        if sock is not None:
            _local.timeouts.pop(sock, None)
            sock.close(linger=0)


def close_socket() -> None:
    """Close this thread's sockets (LINGER 0: never blocks)."""
    _local.ready = None
    sockets = getattr(_local, "sockets", None)
    if sockets:
        _local.sockets = {}
        _local.timeouts = {}
        for sock in sockets.values():
            sock.close(linger=0)


# --- requests ----------------------------------------------------------------


def _await_reply(sock: zmq.Socket, message_id: str, timeout_ms: int) -> dict | None:
    """The reply whose id is ``message_id``, or None after ``timeout_ms``.

    A blocking ``recv`` bounded by ``RCVTIMEO``: one call into libzmq, where
    ``Socket.poll`` would build a ``zmq.Poller`` per wait. (pyzmq releases
    the GIL while it blocks and raises what a signal handler raises.)
    """
    started = time.monotonic()
    wait_ms = timeout_ms
    while True:
        _receive_timeout(sock, wait_ms)
        try:
            frame = _receive(sock, 0)
        except zmq.Again:
            return None
        reply = envelope.parse_reply(frame)
        if reply is not None and reply.get("id") == message_id:
            return reply
        _log_dropped(frame, reply)
        wait_ms = int((started + timeout_ms / 1000.0 - time.monotonic()) * 1000)
        if wait_ms <= 0:
            return None


def _log_dropped(frame: bytes, reply: dict | None) -> None:
    """Say why a received frame is not the awaited reply: malformed, or late (another message's id)."""
    if reply is None:
        logger.warning("signal_bridge: dropped a malformed reply frame: %r", frame[:200])
    else:
        logger.debug("signal_bridge: dropped a late reply for %s", reply.get("id"))


def request(
    frame: bytes,
    message_id: str,
    *,
    endpoints: tuple[str, ...],
    timeout_ms: int,
    retries: int,
    on_timeout=None,
    first_attempt: int = 1,
) -> dict:
    """Send one request and return its reply (Lazy Pirate).

    The request goes to :func:`route`'s endpoint (the only one, or the one
    its ordering key hashes to). Up to ``retries + 1`` attempts of
    ``timeout_ms`` each, each on a fresh socket after the first timed out.
    Raises ``WorkerUnreachable`` when every attempt timed out. Error replies
    are returned, not raised: the caller decides (retry
    ``store_unavailable``, raise, dead-letter). ``on_timeout()``, if given,
    is called after every attempt that got no reply. ``first_attempt`` > 1:
    the attempts before it were made already (by :func:`quick_request`).
    """
    return _request_to(
        route(frame, message_id, endpoints), frame, message_id, endpoints, timeout_ms, retries, on_timeout,
        first_attempt,
    )


def _request_to(
    endpoint: str,
    frame: bytes,
    message_id: str,
    endpoints: tuple[str, ...],
    timeout_ms: int,
    retries: int,
    on_timeout=None,
    first_attempt: int = 1,
) -> dict:
    """``request`` to a given ``endpoint`` (one of ``endpoints``, the configured list)."""
    attempts = retries + 1
    for attempt in range(first_attempt, attempts + 1):
        sock = _socket(endpoint, endpoints, timeout_ms)
        try:
            sock.send(frame)
        except zmq.Again:
            logger.info(
                "signal_bridge: no connection to %s within %d ms (attempt %d/%d, message %s)",
                redact(endpoint), timeout_ms, attempt, attempts, message_id,
            )
            _close(endpoint)
            if on_timeout is not None:
                on_timeout()
            continue
        reply = _await_reply(sock, message_id, timeout_ms)
        if reply is not None:
            if len(endpoints) == 1:
                _keep_ready(sock, endpoints, timeout_ms)
            return reply
        logger.info(
            "signal_bridge: no reply from %s within %d ms (attempt %d/%d, message %s)",
            redact(endpoint), timeout_ms, attempt, attempts, message_id,
        )
        _close(endpoint)  # Lazy Pirate: a fresh socket for the next attempt
        if on_timeout is not None:
            on_timeout()
    raise WorkerUnreachable(
        f"no reply after {attempts} attempt(s) of {timeout_ms} ms",
        message_id=message_id,
        endpoints=(endpoint,),
    )


# --- the usual sync request, in one short path --------------------------------
#
# A sync save() usually sends one message to one endpoint, outside a cool-down,
# on the socket an earlier request of its thread left with the right timeouts,
# and gets ``ok`` at once. ``quick_request`` does just that: one send, one
# blocking recv, and a byte comparison instead of a JSON parse for a plain ok
# reply. Whatever else happens hands over to ``request``'s code (see its
# return values), so every rule above still holds.


def _keep_ready(sock: zmq.Socket, endpoints: tuple[str, ...], timeout_ms: int) -> None:
    """Remember ``sock`` for :func:`quick_request` when both its timeouts are ``timeout_ms``.

    (``_await_reply`` shortens ``RCVTIMEO`` after a dropped late reply; such a
    socket waits for the next ``request`` to set it back.) Forgotten whenever
    a socket of this thread is closed.
    """
    if _local.timeouts[sock] == [timeout_ms, timeout_ms]:
        _local.ready = (endpoints, timeout_ms, _local.config[1], sock)


def quick_request(frame: bytes, message_id: str, *, endpoints: tuple[str, ...], timeout_ms: int, keys):
    """The first attempt of :func:`request` in the usual case, without its layers.

    Applies when this thread's socket for the only endpoint of ``endpoints``
    was left ready by an answered request with the same ``endpoints`` object,
    ``timeout_ms`` and CURVE ``keys`` (the configuration's), and no cool-down
    runs. Returns:

    - ``None``: it did not apply; nothing was sent;
    - a ``str``: the action of a plain ``ok`` reply to ``message_id``;
    - a ``dict``: any other reply to ``message_id`` (parsed);
    - ``False``: the attempt got no reply (or could not send) within
      ``timeout_ms``; its socket is closed, as ``request`` does, and the
      caller goes on with ``request(first_attempt=2)``.
    """
    ready = getattr(_local, "ready", None)
    if (
        ready is None
        or ready[0] is not endpoints
        or ready[1] != timeout_ms
        or ready[2] is not keys
        or time.monotonic() < _unreachable_until
    ):
        return None
    sock = ready[3]
    try:
        sock.send(frame)
        reply = _receive(sock, 0)
    except zmq.Again:
        logger.info(
            "signal_bridge: no connection to or no reply from %s within %d ms (attempt 1, message %s)",
            redact(endpoints[0]), timeout_ms, message_id,
        )
        _close(endpoints[0])
        return False
    head = b'{"v":1,"id":"' + message_id.encode() + b'","status":"ok","result":{"action":"'
    if reply.startswith(head) and reply.endswith(b'"}}'):
        action = reply[len(head) : -3]
        if b'"' not in action and b"\\" not in action:
            return action.decode()
    parsed = envelope.parse_reply(reply)
    if parsed is not None and parsed.get("id") == message_id:
        return parsed
    # A late reply to an earlier request, or garbage: wait on, as _await_reply does (up to
    # timeout_ms again: this path does not read the clock before its recv).
    _log_dropped(reply, parsed)
    parsed = _await_reply(sock, message_id, timeout_ms)
    if parsed is None:
        _close(endpoints[0])
        return False
    return parsed


def pipeline(
    frames: list[tuple[str, bytes]],
    *,
    endpoints: tuple[str, ...],
    timeout_ms: int,
) -> dict[str, dict]:
    """Send every ``(id, frame)`` at once and collect replies by id.

    With several endpoints the frames are grouped by :func:`route`'s
    endpoint, each group keeping the order of ``frames``, and every group
    goes over its own socket. An endpoint is given up when it sent no reply
    for ``timeout_ms``: its socket is replaced (Lazy Pirate) and its
    unanswered ids are simply missing from the result; the other endpoints'
    replies still count. One attempt only: the caller (async sender, relay)
    decides when to try again.
    """
    if not frames:
        return {}
    if len(endpoints) == 1:
        return _pipeline_one(endpoints[0], frames, endpoints, timeout_ms)
    groups: dict[str, list[tuple[str, bytes]]] = {}
    for message_id, frame in frames:
        groups.setdefault(route(frame, message_id, endpoints), []).append((message_id, frame))
    if len(groups) == 1:
        ((endpoint, group),) = groups.items()
        return _pipeline_one(endpoint, group, endpoints, timeout_ms)
    return _pipeline_many(groups, endpoints, timeout_ms)


def _pipeline_one(
    endpoint: str, frames: list[tuple[str, bytes]], endpoints: tuple[str, ...], timeout_ms: int
) -> dict[str, dict]:
    replies: dict[str, dict] = {}
    sock = _socket(endpoint, endpoints, timeout_ms)
    wanted = set()
    for sent, (message_id, frame) in enumerate(frames, 1):
        try:
            sock.send(frame)
        except zmq.Again:
            break
        wanted.add(message_id)
        if sent % TAKE_EVERY == 0:
            # Read replies that are already here so neither side's queue grows.
            _take_ready(sock, wanted, replies)
    poller = None
    while len(replies) < len(wanted):
        if _take_ready(sock, wanted, replies):
            continue
        if poller is None:
            poller = zmq.Poller()  # one per pipeline, not per wait
            poller.register(sock, zmq.POLLIN)
        if not poller.poll(timeout_ms):
            _close(endpoint)
            break
    if len(wanted) < len(frames) and len(replies) == len(wanted):
        _close(endpoint)  # a send timed out: start over on a fresh socket
    return replies


def _pipeline_many(
    groups: dict[str, list[tuple[str, bytes]]], endpoints: tuple[str, ...], timeout_ms: int
) -> dict[str, dict]:
    """``pipeline`` over several endpoints: send each group, then read all sockets at once."""
    replies: dict[str, dict] = {}
    wanted: dict[str, set] = {}  # endpoint -> ids sent there
    gave_up: set[str] = set()  # endpoints whose socket must be replaced
    sockets: dict[str, zmq.Socket] = {}
    for endpoint, group in groups.items():
        sock = sockets[endpoint] = _socket(endpoint, endpoints, timeout_ms)
        ids = wanted[endpoint] = set()
        for message_id, frame in group:
            try:
                sock.send(frame)
            except zmq.Again:
                gave_up.add(endpoint)  # not connected within timeout_ms: its rest stays unsent
                break
            ids.add(message_id)
            _take_ready(sock, ids, replies)
    poller = zmq.Poller()
    last_reply: dict[str, float] = {}
    now = time.monotonic()
    for endpoint, sock in sockets.items():
        if wanted[endpoint] and not wanted[endpoint] <= replies.keys():
            poller.register(sock, zmq.POLLIN)
            last_reply[endpoint] = now
    by_socket = {sock: endpoint for endpoint, sock in sockets.items()}
    while last_reply:
        deadline = min(last_reply.values()) + timeout_ms / 1000.0
        ready = dict(poller.poll(max(1, int((deadline - time.monotonic()) * 1000))))
        now = time.monotonic()
        for sock in ready:
            endpoint = by_socket[sock]
            _take_ready(sock, wanted[endpoint], replies)
            last_reply[endpoint] = now
            if wanted[endpoint] <= replies.keys():
                poller.unregister(sock)
                del last_reply[endpoint]
        for endpoint, seen in list(last_reply.items()):
            if now - seen >= timeout_ms / 1000.0:
                logger.info(
                    "signal_bridge: no reply from %s within %d ms (%d of %d messages unanswered)",
                    redact(endpoint), timeout_ms, len(wanted[endpoint] - replies.keys()), len(groups[endpoint]),
                )
                poller.unregister(sockets[endpoint])
                del last_reply[endpoint]
                gave_up.add(endpoint)
    for endpoint in gave_up:
        _close(endpoint)
    return replies


def _receive(sock: zmq.Socket, flags: int) -> bytes:
    """One reply's frame (``recv`` with ``flags``); of a multipart message, the last frame."""
    frame = sock.recv(flags, copy=False)
    while frame.more:  # a reply is one frame; the rest of a message is already here
        frame = sock.recv(copy=False)
    return frame.bytes


def _take_ready(sock: zmq.Socket, wanted: set, replies: dict) -> int:
    """Take every reply already queued on ``sock`` without waiting; how many.

    A non-blocking ``recv`` until ``zmq.Again`` rather than ``poll(0)`` (pyzmq
    builds a poller per ``Socket.poll``) or ``ZMQ_EVENTS`` (an enum per
    ``getsockopt``): this runs after each of a pipeline's sends.
    """
    taken = 0
    while True:
        try:
            frame = _receive(sock, _NOBLOCK)
        except zmq.Again:
            return taken
        _take(frame, wanted, replies)
        taken += 1


def _take(frame: bytes, wanted: set, replies: dict) -> None:
    reply = envelope.parse_reply(frame)
    if reply is None:
        logger.warning("signal_bridge: dropped a malformed reply frame: %r", frame[:200])
        return
    message_id = reply.get("id")
    if message_id in wanted:
        replies[message_id] = reply


def ping(*, endpoints: tuple[str, ...], timeout_ms: int) -> float:
    """Round-trip time of a ping in seconds; raises ``WorkerUnreachable``.

    With several endpoints every one is pinged (each serves its own users)
    and the slowest round trip is returned; the first that does not answer
    raises, naming it.
    """
    slowest = 0.0
    for endpoint in endpoints:
        message_id = envelope.uuid7()
        started = time.perf_counter()
        reply = _request_to(endpoint, envelope.ping(message_id), message_id, endpoints, timeout_ms, retries=0)
        elapsed = time.perf_counter() - started
        if reply.get("status") != "ok":
            raise WorkerError.from_reply(reply, message_id)
        if (reply.get("result") or {}).get("action") != "pong":
            raise WorkerError(
                "bad_reply", f"unexpected answer to ping from {redact(endpoint)}: {reply!r}", message_id=message_id
            )
        slowest = max(slowest, elapsed)
    return slowest

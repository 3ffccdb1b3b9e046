"""ZeroMQ client for signal-worker: Lazy Pirate requests and pipelined batches.

Rules this module keeps (``/work/shared/ZEROMQ.md``, pyzmq docs):

- One ``zmq.Context`` per process, created lazily; after ``os.fork()`` the
  child forgets the parent's context and sockets (never closes them: they
  belong to the parent) and makes new ones on first use.
- One DEALER socket per thread (``threading.local``): ZeroMQ sockets are not
  thread-safe. DEALER rather than REQ: no send/receive lock-step, so a
  timed-out request cannot leave the socket stuck (EFSM) and several
  requests can be in flight; replies are matched by ``id``
  (docs/PROTOCOL.md, "Transport").
- ``LINGER 0`` on every socket: closing never waits for unsent messages,
  so neither a timeout nor interpreter exit can hang.
- ``IMMEDIATE 1``: messages queue only to completed connections, so with
  several endpoints nothing waits in the pipe of a dead one; with none
  connected, ``send`` fails after ``SNDTIMEO`` (= the timeout).
- Lazy Pirate: after a timeout the socket is closed and a fresh one is made
  for the next attempt, which resends the same message (same ``id``: the
  worker dedupes, so a retry never applies twice). Replies to earlier
  attempts that arrive late are dropped by id.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import zmq

from . import envelope
from .exceptions import WorkerError, WorkerUnreachable

logger = logging.getLogger("signal_bridge")

_lock = threading.Lock()
_context: zmq.Context | None = None
_local = threading.local()
_unreachable_until = 0.0  # monotonic seconds; the cool-down "breaker"
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
    global _context, _local, _unreachable_until, _lock
    _inherited.append((_context, _local))
    _context = None
    _local = threading.local()
    _lock = threading.Lock()
    _unreachable_until = 0.0


os.register_at_fork(after_in_child=_after_fork_in_child)


def shutdown() -> None:
    """Close this thread's socket and terminate the context (tests, exit)."""
    global _context
    close_socket()
    with _lock:
        if _context is not None:
            _context.destroy(linger=0)
            _context = None


# --- cool-down after the worker was found unreachable -------------------------


def cooling_down() -> bool:
    """True while sends should skip the network (see ``UNREACHABLE_COOLDOWN_MS``)."""
    return time.monotonic() < _unreachable_until


def trip(cooldown_ms: int) -> None:
    global _unreachable_until
    if cooldown_ms > 0:
        _unreachable_until = time.monotonic() + cooldown_ms / 1000.0


def reset_cooldown() -> None:
    global _unreachable_until
    _unreachable_until = 0.0


# --- sockets -----------------------------------------------------------------


def _socket(endpoints: tuple[str, ...], timeout_ms: int) -> zmq.Socket:
    from . import conf

    keys = conf.get().curve  # CURVE (or not) for every socket of the bridge
    sock = getattr(_local, "socket", None)
    if sock is not None and getattr(_local, "endpoints", None) == (endpoints, keys):
        sock.setsockopt(zmq.SNDTIMEO, timeout_ms)
        return sock
    close_socket()
    sock = context().socket(zmq.DEALER)
    if keys is not None:
        keys.apply(sock)  # before connect: the handshake uses them
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.IMMEDIATE, 1)
    sock.setsockopt(zmq.SNDHWM, 100_000)
    sock.setsockopt(zmq.RCVHWM, 100_000)
    sock.setsockopt(zmq.SNDTIMEO, timeout_ms)
    for endpoint in endpoints:
        sock.connect(endpoint)
    _local.socket = sock
    _local.endpoints = (endpoints, keys)
    return sock


def close_socket() -> None:
    """Close this thread's socket (LINGER 0: never blocks)."""
    sock = getattr(_local, "socket", None)
    if sock is not None:
        _local.socket = None
        sock.close(linger=0)


# --- requests ----------------------------------------------------------------


def _await_reply(sock: zmq.Socket, message_id: str, timeout_ms: int) -> dict | None:
    """The reply whose id is ``message_id``, or None after ``timeout_ms``."""
    deadline = time.monotonic() + timeout_ms / 1000.0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        if not sock.poll(max(1, int(remaining * 1000)), zmq.POLLIN):
            return None
        frames = sock.recv_multipart()
        reply = envelope.parse_reply(frames[-1])
        if reply is None:
            logger.warning("signal_bridge: dropped a malformed reply frame: %r", frames[-1][:200])
            continue
        if reply.get("id") == message_id:
            return reply
        logger.debug("signal_bridge: dropped a late reply for %s", reply.get("id"))


def request(
    frame: bytes,
    message_id: str,
    *,
    endpoints: tuple[str, ...],
    timeout_ms: int,
    retries: int,
) -> dict:
    """Send one request and return its reply (Lazy Pirate).

    Up to ``retries + 1`` attempts of ``timeout_ms`` each, each on a fresh
    socket after the first timed out. Raises ``WorkerUnreachable`` when
    every attempt timed out. Error replies are returned, not raised: the
    caller decides (retry ``store_unavailable``, raise, dead-letter).
    """
    attempts = retries + 1
    for attempt in range(1, attempts + 1):
        sock = _socket(endpoints, timeout_ms)
        try:
            sock.send(frame)
        except zmq.Again:
            logger.info(
                "signal_bridge: no connection to %s within %d ms (attempt %d/%d, message %s)",
                ", ".join(endpoints), timeout_ms, attempt, attempts, message_id,
            )
            close_socket()
            continue
        reply = _await_reply(sock, message_id, timeout_ms)
        if reply is not None:
            return reply
        logger.info(
            "signal_bridge: no reply from %s within %d ms (attempt %d/%d, message %s)",
            ", ".join(endpoints), timeout_ms, attempt, attempts, message_id,
        )
        close_socket()  # Lazy Pirate: a fresh socket for the next attempt
    raise WorkerUnreachable(
        f"no reply after {attempts} attempt(s) of {timeout_ms} ms",
        message_id=message_id,
        endpoints=endpoints,
    )


def pipeline(
    frames: list[tuple[str, bytes]],
    *,
    endpoints: tuple[str, ...],
    timeout_ms: int,
) -> dict[str, dict]:
    """Send every ``(id, frame)`` at once and collect replies by id.

    Waits until every request is answered or no reply came for
    ``timeout_ms``; then the socket is replaced (Lazy Pirate) and the
    unanswered ids are simply missing from the result. One attempt only:
    the caller (async sender, relay) decides when to try again.
    """
    replies: dict[str, dict] = {}
    if not frames:
        return replies
    sock = _socket(endpoints, timeout_ms)
    wanted = set()
    for message_id, frame in frames:
        try:
            sock.send(frame)
        except zmq.Again:
            break
        wanted.add(message_id)
        # Read replies that are already here so neither side's queue grows.
        while sock.poll(0, zmq.POLLIN):
            _take(sock, wanted, replies)
    while len(replies) < len(wanted):
        if not sock.poll(timeout_ms, zmq.POLLIN):
            close_socket()
            break
        _take(sock, wanted, replies)
    if len(wanted) < len(frames) and len(replies) == len(wanted):
        close_socket()  # a send timed out: start over on a fresh socket
    return replies


def _take(sock: zmq.Socket, wanted: set, replies: dict) -> None:
    frames = sock.recv_multipart()
    reply = envelope.parse_reply(frames[-1])
    if reply is None:
        logger.warning("signal_bridge: dropped a malformed reply frame: %r", frames[-1][:200])
        return
    message_id = reply.get("id")
    if message_id in wanted:
        replies[message_id] = reply


def ping(*, endpoints: tuple[str, ...], timeout_ms: int) -> float:
    """Round-trip time of a ping in seconds; raises ``WorkerUnreachable``."""
    message_id = envelope.uuid7()
    started = time.perf_counter()
    reply = request(envelope.ping(message_id), message_id, endpoints=endpoints, timeout_ms=timeout_ms, retries=0)
    elapsed = time.perf_counter() - started
    if reply.get("status") != "ok":
        raise WorkerError.from_reply(reply, message_id)
    if (reply.get("result") or {}).get("action") != "pong":
        raise WorkerError("bad_reply", f"unexpected answer to ping: {reply!r}", message_id=message_id)
    return elapsed

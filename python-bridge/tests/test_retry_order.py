"""Nothing lost when SQLite stays locked past the worker's busy timeout (issue 18).

A second connection holds SQLite's write lock (``BEGIN IMMEDIATE``) for longer than
the worker waits for it, so the worker answers ``store_unavailable``. The user is
saved twice, ``sex`` then ``birthdate``; once the lock is gone, both must be in the
profile (as the in-process receiver would have stored them) and nothing in the dead
letters.

The dangerous moment is a round that sends the first message again together with
the second: if the first fails once more while the second gets through, the first
is answered ``stale`` ever after and its change is lost. The tests make that moment
happen: the lock is taken again before that round and released as soon as the worker
has refused the first message (read from the worker's log), while the second one
still waits for the lock. The worker's own retry holds are off (``--retry-hold-ms 0``,
one request per batch), so only the bridge's rule keeps the order: after a retryable
failure it sends that message alone and nothing later of its object until it is
acked.

SQLite only: on PostgreSQL nothing waits for a busy timeout.
"""

from __future__ import annotations

import sqlite3
import subprocess
import threading

import pytest
from django.db import connection, connections, transaction

import signal_bridge
from accounts.models import UserProfile
from bridge_helpers import make_user, wait_for
from conftest import Worker, store_url, worker_binary
from signal_bridge import failures, relay
from signal_bridge.models import DeadLetter, OutboxMessage

pytestmark = pytest.mark.django_db(transaction=True)

DEADLINE_S = 120.0  # generous: every wait below ends on a condition, long before this


@pytest.fixture(autouse=True)
def sqlite_only():
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's write lock and the worker's busy timeout exist on SQLite only")
    failures.clear()
    yield
    failures.clear()


def _serve_options(binary) -> str:
    return subprocess.run([str(binary), "serve", "--help"], capture_output=True, text=True, timeout=30).stdout


@pytest.fixture
def locked_worker(worker, tmp_path):
    """A worker on the test database that gives up on SQLite's lock after ``busy_s`` seconds.

    Its retry holds are off and it applies one request per batch, so only the bridge
    keeps a retried message from being overtaken. (With the worker's holds on, its
    default, these tests pass even without the bridge's rule: they would not show it.)
    """
    binary = worker_binary()
    options = _serve_options(binary)
    args = ["--max-batch", "1"]
    busy_s = 5.0  # the worker's default busy timeout
    if "--sqlite-busy-timeout-ms" in options:
        busy_s = 3.0
        args += ["--sqlite-busy-timeout-ms", str(int(busy_s * 1000))]
    if "--retry-hold-ms" in options:
        args += ["--retry-hold-ms", "0"]
    w = Worker(binary, store_url(connection.settings_dict), tmp_path / "locked-worker.log", extra_args=tuple(args))
    w.start()
    w.busy_s = busy_s
    yield w
    w.stop()


class WriteLock:
    """SQLite's write lock, held by a connection of its own."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, timeout=DEADLINE_S, check_same_thread=False)

    def take(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.db.execute("ROLLBACK")

    def close(self) -> None:
        if self.db.in_transaction:
            self.release()
        self.db.close()


@pytest.fixture
def write_lock():
    lock = WriteLock(connection.settings_dict["NAME"])
    yield lock
    lock.close()


def refusals(worker: Worker, message_id: str) -> int:
    """How often the worker answered ``message_id`` with ``store_unavailable`` (its log)."""
    return sum(
        1 for line in worker.log_path.read_text(errors="replace").splitlines()
        if message_id in line and "store_unavailable" in line
    )


def release_after_refusal(lock: WriteLock, worker: Worker, message_id: str, count: int) -> None:
    """Release the lock once the worker has refused ``message_id`` ``count`` times."""
    wait_for(lambda: refusals(worker, message_id) >= count, timeout=DEADLINE_S)
    lock.release()


def assert_both_changes_applied(user) -> None:
    profile = UserProfile.objects.get(user=user)
    assert (profile.sex, str(profile.birthdate)) == ("F", "1990-01-02"), (
        "a change was lost; dead letters: "
        + repr(list(DeadLetter.objects.values_list("code", "message")))
    )
    assert not DeadLetter.objects.exists()


def test_async_a_retried_message_is_never_overtaken(bridge, locked_worker, write_lock):
    bridge(ENDPOINT=locked_worker.endpoint, MODE="async", TIMEOUT_MS=int(locked_worker.busy_s * 4000))
    user = make_user("lock-async", profile_type="business")
    wait_for(lambda: UserProfile.objects.filter(user=user).exists(), timeout=DEADLINE_S)
    assert signal_bridge.flush(DEADLINE_S)

    # First save: the lock is taken right after its commit, before its message goes out
    # (on_commit callbacks run in the order they were registered).
    with transaction.atomic():
        transaction.on_commit(write_lock.take)
        user._profile_data = {"sex": "F"}
        user.save()
    first = OutboxMessage.objects.get().message_id
    release_after_refusal(write_lock, locked_worker, first, 1)

    def lock_again_once_the_failure_is_recorded():
        # The sender writes the failure to the row (it needed the lock for that), then the
        # lock is taken again before the second message is queued.
        wait_for(lambda: OutboxMessage.objects.filter(message_id=first, attempts__gte=1).exists(), timeout=DEADLINE_S)
        write_lock.take()

    with transaction.atomic():
        transaction.on_commit(lock_again_once_the_failure_is_recorded)
        user._profile_data = {"birthdate": "1990-01-02"}
        user.save()
    release_after_refusal(write_lock, locked_worker, first, 2)

    wait_for(lambda: not OutboxMessage.objects.exists(), timeout=DEADLINE_S)
    assert signal_bridge.flush(DEADLINE_S)
    assert_both_changes_applied(user)


def test_relay_a_retried_row_is_never_overtaken(bridge, locked_worker, write_lock):
    bridge(
        ENDPOINT=locked_worker.endpoint, MODE="outbox", TIMEOUT_MS=int(locked_worker.busy_s * 4000),
        RELAY_BACKOFF_MS=50,
    )
    user = make_user("lock-relay", profile_type="business")
    assert relay.run(once=True).remaining == 0
    user._profile_data = {"sex": "F"}
    user.save()
    first = OutboxMessage.objects.get().message_id

    def relay_once_while_locked(refused: int) -> relay.RelayResult:
        """One ``relay --once`` in a thread of its own while the lock is held; the lock is
        released once the worker has refused the first row ``refused`` times."""
        outcome = {}

        def run():
            try:
                outcome["result"] = relay.run(once=True)
            finally:
                connections.close_all()

        write_lock.take()
        thread = threading.Thread(target=run)
        thread.start()
        release_after_refusal(write_lock, locked_worker, first, refused)
        thread.join(DEADLINE_S)
        assert not thread.is_alive()
        return outcome["result"]

    assert relay_once_while_locked(1).remaining == 1, "store_unavailable: the row stays"
    user._profile_data = {"birthdate": "1990-01-02"}
    user.save()
    # Both rows are due now. Without the bridge's rule the round sends both, the first is
    # refused again and the second gets through as soon as the lock is released.
    relay_once_while_locked(2)

    assert relay.run(once=True).remaining == 0
    assert not OutboxMessage.objects.exists()
    assert_both_changes_applied(user)

"""Crash safety: the worker killed with SIGKILL again and again while Django keeps saving
and ``manage.py signal_bridge relay --forever`` keeps delivering.

At the end every message is applied exactly once (each outbox message id is in the
worker's dedupe table, the profiles equal the state the saves describe), the outbox and
the dead letters are empty, the relay never gave up and exits 0 on SIGTERM, and no
"database is locked" reached Django, the relay or the worker (SQLite: three processes
write one file). On PostgreSQL the server is also restarted once mid-stream when
``SIGNAL_WORKER_TEST_POSTGRES_DIR`` names the throwaway cluster (scripts/test sets it):
every connection breaks, Django's producer retries its transaction, the relay and the
worker reconnect by themselves.

Size: ``SIGNAL_BRIDGE_CRASH_USERS`` users (default 10,000: 20,000 messages, a create and
an update each; about 30 s on SQLite and 70 s on PostgreSQL here), ``SIGNAL_BRIDGE_CRASH_KILLS``
SIGKILLs (default 5).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import DatabaseError, connection, transaction

from bridge_helpers import wait_for
from conftest import REPO, store_url

USERS = int(os.environ.get("SIGNAL_BRIDGE_CRASH_USERS", "10000"))
KILLS = int(os.environ.get("SIGNAL_BRIDGE_CRASH_KILLS", "5"))
PER_TRANSACTION = 25
# Between two transactions the producer pauses as a web app's requests do. A loop that
# re-takes SQLite's write lock the instant it commits starves every other writer (the
# busy handler polls, it does not queue), Django's own other processes included.
PAUSE_S = 0.005


def relay_process(tmp_path: Path, endpoint: str) -> subprocess.Popen:
    """``manage.py signal_bridge relay --forever`` on the test database, backing off at most 0.5 s."""
    settings_module = tmp_path / "crash_settings.py"
    settings_module.write_text(
        "from exampleproject.settings import *  # noqa: F401,F403\n"
        "SIGNAL_BRIDGE = {**SIGNAL_BRIDGE, 'MODE': 'outbox', 'TIMEOUT_MS': 2000, 'RETRIES': 0,\n"
        "                 'RELAY_BACKOFF_MS': 50, 'RELAY_BACKOFF_MAX_MS': 500, 'RELAY_POLL_MS': 50}\n"
    )
    env = {
        **os.environ,
        "DJANGO_DATABASE_URL": store_url(connection.settings_dict),
        "DJANGO_SETTINGS_MODULE": "crash_settings",
        "SIGNAL_BRIDGE_ENDPOINT": endpoint,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO / "python-bridge" / "example")]),
        # A relay that ignores SIGTERM is sent SIGABRT: its threads' stacks go to the log.
        "PYTHONFAULTHANDLER": "1",
    }
    log = open(tmp_path / "relay.log", "wb")
    process = subprocess.Popen(
        [sys.executable, str(REPO / "python-bridge" / "example" / "manage.py"), "signal_bridge", "relay", "--forever"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    return process


def outbox_depth() -> int:
    return retrying(lambda: _count("signal_bridge_outbox"))


def _count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        return cursor.fetchone()[0]


def retrying(work, attempts: int = 50):
    """Run ``work``; after a database restart broke the connection, reconnect and run it again."""
    for attempt in range(attempts):
        try:
            return work()
        except DatabaseError:
            if attempt == attempts - 1 or connection.in_atomic_block:
                raise
            connection.close()
            time.sleep(0.2)


def restart_postgres() -> bool:
    """Restart the throwaway PostgreSQL the tests run on; False when there is none to restart."""
    cluster = os.environ.get("SIGNAL_WORKER_TEST_POSTGRES_DIR")
    if connection.vendor != "postgresql" or not cluster:
        return False
    subprocess.run([str(REPO / "scripts" / "postgres-throwaway"), "restart", cluster], check=True, timeout=120)
    return True


@pytest.mark.django_db(transaction=True)
def test_sigkilled_worker_loses_nothing_and_applies_everything_once(bridge, worker, tmp_path):
    from django.contrib.auth import get_user_model

    from accounts.models import UserProfile

    bridge(MODE="outbox")
    user_model = get_user_model()
    # The dedupe table is not a Django model: pytest-django does not empty it between tests.
    applied_before = retrying(lambda: _count("signal_worker_applied"))
    relay = relay_process(tmp_path, worker.endpoint)
    kill_points = sorted(random.Random(20261125).sample(range(1, 2 * USERS), KILLS))
    depth_at_kills = []
    restarted = []
    started = time.monotonic()
    try:
        users = []
        saved = 0

        def maybe_kill():
            if not restarted and saved >= USERS and restart_postgres():
                restarted.append(saved)
            if kill_points and saved >= kill_points[0]:
                kill_points.pop(0)
                depth_at_kills.append(outbox_depth())
                worker.process.send_signal(signal.SIGKILL)
                worker.process.wait(timeout=10)
                worker.process = None
                worker.start()  # same endpoint; the relay reconnects on its own

        # Creates, then updates of the same users, PER_TRANSACTION saves per atomic() block
        # (outbox rows in the saves' transactions), while the relay sends and the worker dies.
        def create_block(start):
            with transaction.atomic():
                block = []
                for index in range(start, min(start + PER_TRANSACTION, USERS)):
                    user = user_model(username=f"crash-{index}")
                    user._profile_data = {"profile_type": "business", "birthdate": "1990-01-02"}
                    user.save()
                    block.append(user)
            return block

        def update_block(block):
            with transaction.atomic():
                for user in block:
                    user._profile_data = {"sex": "F" if user.pk % 2 else "M"}
                    user.save()

        for start in range(0, USERS, PER_TRANSACTION):
            block = retrying(lambda: create_block(start))
            users.extend(block)
            saved += len(block)
            maybe_kill()
            time.sleep(PAUSE_S)
        for start in range(0, USERS, PER_TRANSACTION):
            block = users[start : start + PER_TRANSACTION]
            retrying(lambda: update_block(block))
            saved += len(block)
            maybe_kill()
            time.sleep(PAUSE_S)
        produced = time.monotonic() - started

        wait_for(lambda: outbox_depth() == 0 or relay.poll() is not None, timeout=300, interval=0.2)
        assert relay.poll() is None, "the relay gave up: " + (tmp_path / "relay.log").read_text(errors="replace")[-2000:]
    finally:
        relay.send_signal(signal.SIGTERM)
        try:
            relay_status = relay.wait(timeout=30)
        except subprocess.TimeoutExpired:
            relay.send_signal(signal.SIGABRT)  # faulthandler writes every thread's stack to relay.log
            try:
                relay.wait(timeout=10)
            except subprocess.TimeoutExpired:
                relay.kill()
                relay.wait()
            relay_status = "no exit within 30 s of SIGTERM (SIGABRT sent: the stacks are in the log)"
    drained = time.monotonic() - started
    relay_log = (tmp_path / "relay.log").read_text(errors="replace")

    assert relay_status == 0, f"relay exit status {relay_status}; log tail:\n{relay_log[-6000:]}"
    assert len(depth_at_kills) == KILLS
    assert sum(1 for depth in depth_at_kills if depth > 0) >= KILLS - 1, (
        f"the kills must hit a stream in flight (outbox depth at each kill: {depth_at_kills})"
    )
    assert retrying(lambda: _count("signal_bridge_deadletter")) == 0
    applied = retrying(lambda: _count("signal_worker_applied")) - applied_before
    assert applied == 2 * USERS, f"{applied} messages applied, {2 * USERS} sent"
    profiles = {p.user_id: p for p in UserProfile.objects.filter(user__username__startswith="crash-")}
    assert len(profiles) == USERS
    wrong = [
        pk
        for pk, profile in profiles.items()
        if (profile.profile_type, profile.sex, str(profile.birthdate)) != ("business", "F" if pk % 2 else "M", "1990-01-02")
    ]
    assert not wrong, f"{len(wrong)} profiles differ from their last save, e.g. user {wrong[:5]}"
    locked = [
        line
        for text in (relay_log, worker.log_tail(10_000))
        for line in text.splitlines()
        # Not the system check that warns of it (signal_bridge.W002, Django < 5.1).
        if "database is locked" in line and "signal_bridge.W002" not in line and "HINT:" not in line
    ]
    assert not locked, f"a 'database is locked' error reached the relay or the worker: {locked[:3]}"
    if connection.vendor == "postgresql" and os.environ.get("SIGNAL_WORKER_TEST_POSTGRES_DIR"):
        assert restarted, "PostgreSQL was to be restarted mid-stream"
    print(
        f"\ncrash test: {2 * USERS} messages, {KILLS} SIGKILLs (outbox depth at each: {depth_at_kills}), "
        f"PostgreSQL restarted after {restarted or 'no'} saves, "
        f"produced in {produced:.1f} s, all applied once after {drained:.1f} s"
    )

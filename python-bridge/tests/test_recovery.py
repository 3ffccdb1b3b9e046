"""Recovery without waiting: the cool-down after an outage is half-open.

While ``UNREACHABLE_COOLDOWN_MS`` runs, one send at a time pings the worker with
a short timeout; a pong ends the cool-down for the process. The cool-down here
is a minute, so a profile that appears within seconds of the restart did not
wait it out.
"""

from __future__ import annotations

import threading
import time

import pytest

import signal_bridge
from accounts.models import UserProfile
from bridge_helpers import make_user, wait_for
from signal_bridge import WorkerUnreachable, sender, transport
from signal_bridge.models import OutboxMessage

COOLDOWN_MS = 60_000


@pytest.fixture
def killed_worker(worker):
    """SIGKILL the worker for the test; started again (same endpoint) if the test did not."""
    worker.process.kill()
    worker.process.wait()
    worker.process = None
    yield worker
    if worker.process is None:
        worker.start()


@pytest.fixture(autouse=True)
def no_cooldown_left():
    """No cool-down and no sender thread left by earlier tests (its drain would probe too)."""
    sender.shutdown(timeout=5)
    transport.reset_cooldown()
    yield
    transport.reset_cooldown()


@pytest.mark.django_db(transaction=True)
def test_sync_the_first_save_after_the_worker_answers_has_its_profile_at_once(bridge, killed_worker):
    bridge(ON_UNREACHABLE="defer", TIMEOUT_MS=1000, RETRIES=0, UNREACHABLE_COOLDOWN_MS=COOLDOWN_MS)
    down = make_user("rec-down", sex="F")  # no reply within TIMEOUT_MS: deferred, cool-down tripped
    assert transport.cooling_down()
    started = time.monotonic()
    during = make_user("rec-during", sex="F")  # the probe gets no pong either: deferred at once
    assert time.monotonic() - started < 0.8, "a probe waits at most PROBE_TIMEOUT_MS, not TIMEOUT_MS"
    assert transport.cooling_down(), "a failed probe keeps the cool-down"
    assert OutboxMessage.objects.filter(object_pk__in=[str(down.pk), str(during.pk)]).count() == 2

    killed_worker.start()  # returns once `signal-worker ping` gets its pong
    back = make_user("rec-back", sex="M")

    assert UserProfile.objects.get(user=back).sex == "M", "applied before save() returned"
    assert not transport.cooling_down()
    stats = signal_bridge.stats()
    assert (stats["probes"], stats["recovered"]) == (2, 1)
    assert not OutboxMessage.objects.filter(object_pk=str(back.pk)).exists()


@pytest.mark.django_db(transaction=True)
def test_async_delivers_and_drains_once_the_worker_answers_without_waiting_out_the_cooldown(bridge, killed_worker):
    bridge(MODE="async", TIMEOUT_MS=300, UNREACHABLE_COOLDOWN_MS=COOLDOWN_MS)
    down = make_user("rec-async-down", sex="F")
    assert signal_bridge.flush(5)
    assert transport.cooling_down() and OutboxMessage.objects.filter(object_pk=str(down.pk)).exists()

    killed_worker.start()
    back = make_user("rec-async-back", sex="M")
    assert signal_bridge.flush(5)

    assert UserProfile.objects.get(user=back).sex == "M"
    # The deferred row: the idle sender drains it (it no longer waits for the cool-down to pass).
    wait_for(lambda: UserProfile.objects.filter(user=down).exists(), timeout=5)
    wait_for(lambda: not OutboxMessage.objects.exists(), timeout=5)


def test_one_probe_at_a_time_and_a_pong_ends_the_cooldown_for_every_thread(monkeypatch):
    release, pinged = threading.Event(), threading.Event()
    calls = []

    def slow_pong(*, endpoints, timeout_ms):
        calls.append(timeout_ms)
        pinged.set()
        assert release.wait(5)
        return 0.001

    monkeypatch.setattr(transport, "ping", slow_pong)
    transport.trip(COOLDOWN_MS)
    outcome = []
    prober = threading.Thread(target=lambda: outcome.append(transport.may_send(endpoints=("tcp://x:1",), timeout_ms=2000)))
    prober.start()
    assert pinged.wait(5)

    started = time.monotonic()
    assert transport.may_send(endpoints=("tcp://x:1",), timeout_ms=2000) is False, "another thread probes: defer"
    assert time.monotonic() - started < 0.1, "without waiting for that probe"
    assert transport.cooling_down()

    release.set()
    prober.join(5)
    assert outcome == [True] and calls == [transport.PROBE_TIMEOUT_MS]
    assert not transport.cooling_down()
    assert transport.may_send(endpoints=("tcp://x:1",), timeout_ms=2000) is True and len(calls) == 1, "no probe needed"


def test_a_failed_probe_keeps_the_cooldown_as_it_was(monkeypatch):
    def no_pong(*, endpoints, timeout_ms):
        raise WorkerUnreachable("no reply", message_id="ping", endpoints=endpoints)

    monkeypatch.setattr(transport, "ping", no_pong)
    transport.trip(COOLDOWN_MS)
    until = transport._unreachable_until
    assert transport.may_send(endpoints=("tcp://x:1",), timeout_ms=100) is False
    assert transport.cooling_down() and transport._unreachable_until == until

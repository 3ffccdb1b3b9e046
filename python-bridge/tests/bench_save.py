"""Quick save() throughput comparison (not a test; the lead runs the full benchmark).

    cd python-bridge
    DJANGO_DATABASE_URL=sqlite:////tmp/bench.sqlite3 SIGNAL_WORKER_BINARY=... \
        ../.venv/bin/python tests/bench_save.py [N]

Migrates the database named by DJANGO_DATABASE_URL (use a scratch one: it
is written), starts signal-worker on it and times N ``User.save()`` calls
(creates with ``_profile_data``) per variant: no receiver, the in-process
Python receiver, and the bridge in sync/async mode, in autocommit and with
each save in its own ``atomic()``, with both ``DELETE_ACKED`` strategies.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent), str(HERE.parent / "example")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exampleproject.settings")
os.environ["ACCOUNTS_RECEIVER"] = "none"

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models.signals import post_save  # noqa: E402
from django.test import override_settings  # noqa: E402

import signal_bridge  # noqa: E402
from conftest import Worker, bridge_settings, store_url, worker_binary  # noqa: E402
from signal_bridge import sender  # noqa: E402
from signal_bridge.models import OutboxMessage  # noqa: E402


def run(label: str, n: int, atomic: bool) -> float:
    prefix = f"{label}-{time.time_ns()}"
    started = time.perf_counter()
    for i in range(n):
        user = User(username=f"{prefix}-{i}")
        user._profile_data = {"profile_type": "business", "sex": "F", "birthdate": "1990-01-02"}
        if atomic:
            with transaction.atomic():
                user.save()
        else:
            user.save()
    elapsed = time.perf_counter() - started
    return n / elapsed


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    call_command("migrate", verbosity=0)
    worker = Worker(worker_binary(), store_url(connection.settings_dict), Path("/tmp/bench-signal-worker.log"))
    worker.start()
    rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
    variants = [
        ("no receiver", None, ""),
        ("in-process receiver", "inproc", ""),
        ("bridge sync, DELETE_ACKED=inline", "sync", "inline"),
        ("bridge sync, DELETE_ACKED=batch", "sync", "batch"),
        ("bridge async", "async", "batch"),
    ]
    rates: dict = {}
    notes: dict = {}
    from accounts.receivers import create_or_update_user_profile

    try:
        for _ in range(rounds):  # interleaved rounds: the disk's speed drifts
            for name, mode, delete in variants:
                for atomic in (False, True):
                    overrides = {"ENABLED": False} if mode in (None, "inproc") else {"MODE": mode, "DELETE_ACKED": delete}
                    with override_settings(SIGNAL_BRIDGE=bridge_settings(worker.endpoint, **overrides)):
                        if mode == "inproc":
                            post_save.connect(create_or_update_user_profile, sender=User, dispatch_uid="bench")
                        signal_bridge.reset_stats()
                        rate = run(name.split()[0], n, atomic)
                        post_save.disconnect(sender=User, dispatch_uid="bench")
                        drained_at = time.perf_counter()
                        assert signal_bridge.flush(60)
                        drain = time.perf_counter() - drained_at
                        if mode not in (None, "inproc"):
                            stats = signal_bridge.stats()
                            notes[name, atomic] = f"acked {stats.get('acked', 0)}, drain after loop {drain * 1000:.0f} ms"
                    rates.setdefault((name, atomic), []).append(rate)
        left = OutboxMessage.objects.count()
    finally:
        sender.shutdown()
        worker.stop()
    results = [
        (name, atomic, sorted(rates[name, atomic])[len(rates[name, atomic]) // 2], notes.get((name, atomic), ""))
        for name, _, _ in variants
        for atomic in (False, True)
    ]
    print(f"{connection.vendor}, N={n} creates per cell, median of {rounds} interleaved rounds")
    print(f"{'variant':40} {'save() in':12} {'saves/s':>9}  notes")
    for name, atomic, rate, note in results:
        print(f"{name:40} {'atomic()' if atomic else 'autocommit':12} {rate:9.0f}  {note}")
    print(f"outbox rows left: {left}")


if __name__ == "__main__":
    main()

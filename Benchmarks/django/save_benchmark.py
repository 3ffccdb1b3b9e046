#!/usr/bin/env python3
"""User.save() throughput of the example Django project with and without the bridge.

Run it through ``Benchmarks/django/run`` (which prepares the venv, the worker
binary and a throwaway PostgreSQL). Python stdlib + Django only.

For each database (a SQLite WAL file in a temp dir; PostgreSQL when
``--postgres-url`` is given) and each configuration (no receiver, the Python
receiver in process, the bridge in sync / async / outbox mode, each with plain
autocommit saves and with one ``transaction.atomic()`` per save, plus the
outbox-row deletion variants), one child process of this script:

1. starts Django on a fresh copy of a migrated database (settings are read at
   start-up, so every configuration gets its own process), and warms up off
   the clock (one create and one update of another user, delivered);
2. times N ``User(...).save()`` creates with ``_profile_data`` set, as a
   sign-up view does; only the loop of saves is on the clock;
3. waits (bounded) for the delivery to finish: async polls until the last
   profile is visible (the end-to-end time, from the first save), outbox runs
   ``manage.py signal_bridge relay --once`` (in process, timed separately);
   then checks every row;
4. does the same for N updates of the same users (fresh instances loaded
   before the clock, ``_profile_data = {"sex": "M"}``);
5. checks that every user has exactly one profile with the final values
   (business, M, 1990-01-02), that the outbox is empty, that nothing was
   dead-lettered and that the worker answered created/updated exactly N
   times each; prints one JSON line (timings, the bridge's counters, the
   time spent inside the post_save handler, the async sender's rounds).

The "acked rows not deleted by Django" variants replace the bridge's delete
of acked outbox rows, in the child process only, by a no-op that records the
rows (deleted off the clock between the phases): see ``_keep_acked``.
Optional extra runs (profile runs) time the bridge's functions and every thread's CPU, and count
SQL statements per save.

The parent starts a fresh ``signal-worker serve`` (own port, same database,
``--metrics-bind`` for its transaction count and request time) for each
bridge configuration and stops it with SIGTERM afterwards. Rounds
are interleaved (round 1 of every configuration, then round 2, ...), the
order rotated every round; the report gives the median and the best round.

    save_benchmark.py [--n N] [--rounds R] [--quick] [--postgres-url URL]
                      [--output PATH] [--raw PATH] [--only KEY[,KEY...]] [--no-profile]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from signal_bench import (  # noqa: E402  (the benchmarks' shared harness)
    ANY_LOOPBACK_PORT, ANY_PORT, CREATE_DATA, EXAMPLE, RELEASE_WORKER, ROOT, UPDATE_DATA, close_databases, django_env, fmt, git, git_at, log, machine,
    open_databases, pin_preexec, pinning_possible, postgres_durability, process_cpu, quartiles, rate, shown_path, start_worker,
    worker_metrics, worker_version, write_report,
)

WORKER = RELEASE_WORKER

WAIT_TIMEOUT_S = 60.0  # bound on every wait for delivery


# --------------------------------------------------------------------------------------------
# Configurations


@dataclasses.dataclass(frozen=True)
class Config:
    key: str
    receiver: str  # none | in_process | bridge
    mode: str | None  # sync | async | outbox (bridge only)
    atomic: bool  # one transaction.atomic() per save (ATOMIC_REQUESTS-like)
    bridge: tuple = ()  # extra SIGNAL_BRIDGE keys, as (key, value) pairs
    keep_acked: bool = False  # Django does not delete acked rows (see _keep_acked)
    label: str = ""
    default: bool = True  # part of a run without --only
    baseline: bool = False  # runs the bridge of --baseline DIR (the code before a change)
    # A busy loop on the worker's and PostgreSQL's CPU while the configuration runs: what Django's
    # CPU per save does when that CPU has other work (the worker's batches, under async) and no bridge.
    busy_server_cpu: bool = False

    @property
    def pattern(self) -> str:
        return "atomic" if self.atomic else "autocommit"

    @property
    def name(self) -> str:
        name = self.label or (self.mode if self.receiver == "bridge" else self.receiver)
        return f"{name} (baseline)" if self.baseline else name

    def as_baseline(self) -> "Config":
        return dataclasses.replace(self, key=self.key + "@baseline", baseline=True)


CONFIGS = [
    Config("none", "none", None, False),
    Config("in_process", "in_process", None, False),
    Config("sync", "bridge", "sync", False),
    Config("async", "bridge", "async", False),
    Config("outbox", "bridge", "outbox", False),
    Config("none+atomic", "none", None, True),
    Config("in_process+atomic", "in_process", None, True),
    Config("sync+atomic", "bridge", "sync", True),
    Config("async+atomic", "bridge", "async", True),
    Config("outbox+atomic", "bridge", "outbox", True),
    # The outbox-row deletion question (see the report's section).
    Config("sync+atomic/inline-delete", "bridge", "sync", True, (("DELETE_ACKED", "inline"),),
           label="sync, DELETE_ACKED=inline"),
    Config("async+atomic/keep-acked", "bridge", "async", True, keep_acked=True,
           label="async, acked rows not deleted by Django"),
    Config("sync+atomic/keep-acked", "bridge", "sync", True, keep_acked=True,
           label="sync, acked rows not deleted by Django", default=False),
    # No receiver while the server's CPU is kept busy (docs/PERFORMANCE.md, the async floor).
    Config("none/busy-server-cpu", "none", None, False, busy_server_cpu=True,
           label="none, CPU 1 kept busy", default=False),
]
CONFIG_BY_KEY = {c.key: c for c in CONFIGS}


# --------------------------------------------------------------------------------------------
# The child: one configuration, one process


def child_main(spec: dict) -> None:
    n = spec["n"]
    if spec.get("cpu") is not None:
        # Before Django, pyzmq or the bridge start a thread: every thread of the
        # process (the async sender, libzmq's I/O thread) inherits the mask.
        os.sched_setaffinity(0, {spec["cpu"]})
    sys.path.insert(0, str(EXAMPLE))
    os.environ["DJANGO_SETTINGS_MODULE"] = "exampleproject.settings"
    # Extra SIGNAL_BRIDGE keys the example settings do not read from the
    # environment (DELETE_ACKED): the settings module is imported here first,
    # so Django's own import gets this same module object.
    import exampleproject.settings as project_settings

    project_settings.SIGNAL_BRIDGE.update(spec["bridge"])

    import django

    django.setup()

    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection
    from django.db.models.signals import post_save

    from accounts.models import UserProfile

    result: dict = {"problems": [], "phases": {}}
    problems = result["problems"]
    receiver = settings.ACCOUNTS_RECEIVER
    bridge = receiver == "bridge"
    mode = settings.SIGNAL_BRIDGE["MODE"] if bridge else None
    if receiver != spec["receiver"] or (bridge and mode != spec["mode"]):
        problems.append(f"settings say receiver={receiver} mode={mode}, expected {spec['receiver']}/{spec['mode']}")

    # Time spent inside the post_save receiver (and, for sync inside atomic(),
    # in the on_commit delivery), measured by wrapping the connected function.
    receiver_time = [0.0]
    commit_time = [0.0]

    def timed(fn, bucket):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                bucket[0] += time.perf_counter() - t

        wrapper.__name__ = fn.__name__
        return wrapper

    # Profile runs: exclusive CPU time of the bridge's (or the receiver's) functions, per
    # thread, and the CPU of every thread of the process (see Sections).
    profiler = Sections() if spec.get("profile") else None
    if spec.get("syscalls"):
        profiler = Syscalls()  # the same hooks, counting system calls instead of timing functions

    def profiled(fn):
        return fn if profiler is None else profiler.wrap(fn, "receiver")

    rounds = {"rounds": 0, "messages": 0}
    if bridge:
        import signal_bridge
        from signal_bridge import outbox, publisher, sender, state

        result["bridge_path"] = str(Path(signal_bridge.__file__).resolve().parent)
        from signal_bridge.models import DeadLetter, OutboxMessage

        # Count the background sender's rounds (each: a commit for the rows it
        # writes ahead, a pipelined send, a commit for the deletes).
        original_round = sender.Sender._round

        def counted_round(self, batch, deletes):
            if batch:
                rounds["rounds"] += 1
                rounds["messages"] += len(batch)
            return original_round(self, batch, deletes)

        sender.Sender._round = counted_round
        if profiler is not None:
            profiler.instrument()
        handler = publisher.on_post_save
        publisher.on_post_save = timed(handler, receiver_time)
        publisher.deliver_sync = timed(publisher.deliver_sync, commit_time)
        publisher.connect_receivers()  # reconnects the wrapped receiver
        if spec["keep_acked"]:
            _keep_acked(outbox, result)
    elif receiver == "in_process":
        from accounts import in_process
        from accounts.receivers import create_or_update_user_profile

        # The example project connects its in-process receivers through one dispatcher
        # (accounts.in_process, ACCOUNTS_RECEIVERS); the benchmark times the profile receiver alone.
        if not in_process.disconnect():
            problems.append("the in-process receiver was not connected")
        handler = profiled(create_or_update_user_profile)
        post_save.connect(
            timed(handler, receiver_time), sender=User, dispatch_uid=in_process.DISPATCH_UID, weak=False)

    per_save: list[float] = []  # the last save_all()'s durations, one per save
    cpu_marks: dict = {}  # CPU clocks of the last save_all() (see process_cpu)

    def save_all(users):
        if profiler is not None:
            profiler.window_start()
        cpu_marks["process"], cpu_marks["thread"] = process_cpu(), time.thread_time()
        start, end, per_save[:] = time_saves(users, spec["atomic"])
        cpu_marks["thread_loop"] = time.thread_time() - cpu_marks["thread"]
        cpu_marks["process_loop"] = process_cpu() - cpu_marks["process"]
        return start, end

    def cpu_numbers(delivered_at: float) -> dict:
        """Seconds of CPU of the last save_all(): the process from the loop's start until its
        messages were delivered (``delivered_at``, a process_cpu() reading), the process
        during the loop only, and save()'s thread during the loop."""
        if profiler is not None:
            profiler.window_end()
        return {"cpu_s": delivered_at - cpu_marks["process"], "loop_cpu_s": cpu_marks["process_loop"],
                "thread_cpu_s": cpu_marks["thread_loop"]}

    def spread(phase):
        """Per-save percentiles (µs) of the last loop: where a slowdown is spread or spiky."""
        ranked = sorted(per_save)
        pick = lambda q: round(ranked[min(len(ranked) - 1, int(q * len(ranked)))] * 1e6)
        phase.update(p50_us=pick(0.5), p90_us=pick(0.9), p99_us=pick(0.99), max_us=pick(1.0))

    bench = User.objects.filter(username__startswith="bench")
    bench_profiles = UserProfile.objects.filter(user__username__startswith="bench")

    def count_done(phase):
        qs = bench_profiles
        if phase == "update":
            qs = qs.filter(sex="M")
        return qs.count()

    def deliver(phase, start, expected):
        """Wait for delivery after the timed loop; returns the phase's extra numbers.

        ``cpu_s`` ends when this process has done its part of the delivery: at once without
        the bridge, after the background sender drained (async rounds, sync's batched
        deletes) with it, and before the relay in outbox mode (the relay runs in another
        process in production). Waiting costs no CPU: ``flush`` blocks on a condition.
        """
        out = {}
        if not bridge:
            out.update(cpu_numbers(process_cpu()))
            return out
        if mode == "outbox":
            out.update(cpu_numbers(process_cpu()))
            from django.core.management import CommandError, call_command

            t = time.perf_counter()
            try:
                call_command("signal_bridge", "relay", "--once", stdout=_Null(), stderr=_Null())
            except CommandError as error:
                problems.append(f"{phase}: relay --once: {error}")
            out["relay_s"] = time.perf_counter() - t
        # Background work (async rounds, batched deletes of sync acks) finishes
        # before the next phase so it does not bill that phase.
        if not sender.flush(WAIT_TIMEOUT_S):
            problems.append(f"{phase}: the background sender did not drain within {WAIT_TIMEOUT_S:.0f} s")
        if mode != "outbox":
            out.update(cpu_numbers(process_cpu()))
        if mode == "async":
            # The sender drained once every message was acknowledged, i.e. committed by the
            # worker: the end to end time. Then the profiles must be visible.
            out["e2e_s"] = time.perf_counter() - start
            deadline = time.perf_counter() + WAIT_TIMEOUT_S
            while count_done(phase) < expected:
                if time.perf_counter() > deadline:
                    problems.append(f"{phase}: profiles not all visible after {WAIT_TIMEOUT_S:.0f} s")
                    break
                time.sleep(0.005)
        if spec["keep_acked"]:
            result["_purge"]()
        return out

    def check(phase, expected_sex):
        users = bench.count()
        if users != n:
            problems.append(f"{phase}: {users} users, expected {n}")
        profiles = bench_profiles.count()
        if receiver == "none":
            if UserProfile.objects.exists():
                problems.append(f"{phase}: {UserProfile.objects.count()} profiles without a receiver")
            return
        good = bench_profiles.filter(
            profile_type="business", sex=expected_sex, birthdate=datetime.date(1990, 1, 2)
        ).count()
        missing = User.objects.filter(profile__isnull=True).count()
        if profiles != n or good != n or missing:
            problems.append(
                f"{phase}: {profiles} profiles, {good} with the expected values, {missing} users without one (N={n})"
            )

    # --- warm-up, off the clock: one create and one update of another user,
    # delivered, so that one-time costs (the first connection, Django's
    # serializer registry imports, the sender thread's start) stay out of it.
    warm = User(username="warmup", email="warmup@example.com", password="!")
    warm._profile_data = dict(CREATE_DATA)
    save_all([warm])
    deliver("warm-up", time.perf_counter(), 0)
    warm = User.objects.get(username="warmup")
    warm._profile_data = dict(UPDATE_DATA)
    save_all([warm])
    deliver("warm-up", time.perf_counter(), 0)
    if mode == "async":  # wait for the warm-up's profile (count_done() ignores it)
        deadline = time.perf_counter() + WAIT_TIMEOUT_S
        while not UserProfile.objects.filter(user=warm, sex="M").exists() and time.perf_counter() < deadline:
            time.sleep(0.005)
        sender.flush(WAIT_TIMEOUT_S)
    if profiler is not None:
        statements = _count_statements(connection) if isinstance(profiler, Sections) else None
        profiler.start()
    rounds.update(rounds=0, messages=0)
    if bridge:
        state.reset_stats()
        result["kept_rows"] = 0

    # --- creates
    users = []
    for i in range(n):
        user = User(username=f"bench{i:07d}", email=f"bench{i}@example.com", password="!",
                    first_name="Ann", last_name="Bench")
        user._profile_data = dict(CREATE_DATA)
        users.append(user)
    receiver_time[0] = commit_time[0] = 0.0
    start, end = save_all(users)
    phase = {"save_s": end - start, "receiver_s": receiver_time[0], "on_commit_s": commit_time[0]}
    spread(phase)
    phase.update(deliver("create", start, n))
    phase.update(sender_rounds=rounds["rounds"], sender_messages=rounds["messages"])
    rounds.update(rounds=0, messages=0)
    check("create", "F")
    result["phases"]["create"] = phase

    # --- updates: fresh instances, as a view that loads the user would have
    users = list(bench.order_by("pk"))
    for user in users:
        user._profile_data = dict(UPDATE_DATA)
    receiver_time[0] = commit_time[0] = 0.0
    start, end = save_all(users)
    phase = {"save_s": end - start, "receiver_s": receiver_time[0], "on_commit_s": commit_time[0]}
    spread(phase)
    phase.update(deliver("update", start, n))
    phase.update(sender_rounds=rounds["rounds"], sender_messages=rounds["messages"])
    check("update", "M")
    result["phases"]["update"] = phase

    if bridge:
        stats = state.stats()
        result["stats"] = stats
        for action in ("created", "updated"):
            got = stats.get(f"acked.{action}", 0)
            if got != n:
                problems.append(f"worker answered {action} {got} times, expected {n}")
        odd = {k: v for k, v in stats.items()
               if k.startswith("errors") or k in ("queue_full", "deferred", "unreachable", "dead_lettered")
               or k in ("acked.duplicate", "acked.stale", "acked.skipped")}
        if odd:
            problems.append(f"bridge counters: {odd}")
        rows = OutboxMessage.objects.count()
        dead = DeadLetter.objects.count()
        if dead:
            problems.append(f"{dead} dead letters")
        result.pop("_acked", None)
        result.pop("_purge", None)
        if rows:
            problems.append(f"outbox not empty: {rows} rows")
    if profiler is not None:
        result["profile"] = profiler.summary(2 * n)
        if statements is not None:
            # The delivery checks above ran queries too: count only the two timed loops.
            result["profile"]["statements"] = {k: v / (2 * n) for k, v in statements["loops"].items()}
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA synchronous")
            result["sqlite_synchronous"] = cursor.fetchone()[0]
    print(json.dumps(result), flush=True)


def _count_statements(connection) -> dict:
    """Count the SQL statements save()'s thread sends on ``connection`` (profile runs only).

    Counted below Django, on the DB-API connection, so statements the bridge runs without
    Django's cursor count too. SQLite: every statement, ``BEGIN``/``COMMIT`` apart
    (``transaction``); PostgreSQL: statements through psycopg cursors (psycopg's own
    ``BEGIN``/``COMMIT`` are not seen). ``counts["loops"]`` holds only what ran inside
    ``time_saves`` (the caller's checks between the phases query too).
    """
    counts = {"statements": 0, "transaction": 0, "loops": {"statements": 0, "transaction": 0}}
    connection.ensure_connection()
    raw = connection.connection
    active = [False]

    def add(key):
        if active[0]:
            counts["loops"][key] += 1
        counts[key] += 1

    if connection.vendor == "sqlite":
        def trace(sql):
            word = sql.split(None, 1)[0].upper() if sql.strip() else ""
            add("transaction" if word in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE") else "statements")

        raw.set_trace_callback(trace)
    elif connection.vendor == "postgresql":
        base = raw.cursor_factory

        class Counting(base):
            def execute(self, query, params=None, **kwargs):
                add("statements")
                return super().execute(query, params, **kwargs)

        raw.cursor_factory = Counting
    global _statement_switch
    _statement_switch = active
    return counts


_statement_switch: list | None = None  # [bool]: whether _count_statements counts into "loops"


def time_saves(users, atomic: bool, clock=time.perf_counter) -> tuple[float, float, list[float]]:
    """Save ``users`` one after another, each in its own ``atomic()`` when ``atomic``.

    Returns the clock at the start and at the end, and each save's duration in seconds.
    """
    from django.db import transaction

    durations = []
    if _statement_switch is not None:
        _statement_switch[0] = True
    start = before = clock()
    for user in users:
        if atomic:
            with transaction.atomic():
                user.save()
        else:
            user.save()
        after = clock()
        durations.append(after - before)
        before = after
    if _statement_switch is not None:
        _statement_switch[0] = False
    return start, before, durations


# The functions a profile run times (module, attribute, label). Missing ones are skipped, so the
# list can name functions of several versions of the bridge.
SECTIONS = [
    ("signal_bridge.publisher", "on_post_save", "handler (rest)"),
    ("signal_bridge.publisher", "deliver_sync", "deliver (rest)"),
    ("signal_bridge.publisher", "_send_one", "send one (rest)"),
    ("signal_bridge.envelope", "uuid7", "message id"),
    ("signal_bridge.envelope", "capture", "capture"),
    ("signal_bridge.envelope:Draft", "render", "render JSON"),
    ("signal_bridge.envelope:Draft", "frame", "render JSON"),
    ("signal_bridge.outbox", "insert", "outbox INSERT"),
    ("signal_bridge.outbox", "has_backlog", "backlog check"),
    ("signal_bridge.outbox", "backlog", "backlog rows"),
    ("signal_bridge.outbox", "delete", "DELETE acked rows"),
    ("signal_bridge.outbox", "classify", "reply handling"),
    ("signal_bridge.outbox", "settle", "settle replies"),
    ("signal_bridge.outbox", "frames", "frames"),
    ("signal_bridge.outbox", "insert_many", "rows for undelivered"),
    ("signal_bridge.transport", "request", "request: send, wait, read"),
    ("signal_bridge.transport", "pipeline", "pipeline: send, read"),
    ("signal_bridge.sender:Sender", "enqueue", "enqueue"),
    ("signal_bridge.sender:Sender", "delete_later", "hand acked seq to sender"),
    ("signal_bridge.sender:Sender", "_round", "sender round (rest)"),
    ("signal_bridge.sender:Sender", "_gather", "sender gathering (rest)"),
    ("signal_bridge.sender:Sender", "_run", "sender loop (rest)"),
]


SENDER_THREADS = "other threads (the bridge's sender)"


class Sections:
    """Exclusive CPU time (``time.thread_time``) of chosen functions, per thread, and the CPU
    of every thread of the process (``/proc/self/task/*/schedstat``), in profile runs.

    A function's own time excludes the timed functions it calls. Timing costs about a
    microsecond per call, so a profile run's numbers are a little above the timed runs'.
    Only the timed windows count: from the first save of a phase until its delivery work
    was done (as ``cpu_s``).
    """

    def __init__(self) -> None:
        import collections
        import threading

        self.threading = threading
        self.local = threading.local()
        self.lock = threading.Lock()
        self.main = threading.get_ident()
        self.totals = collections.defaultdict(float)  # (thread, label) -> seconds
        self.threads = collections.defaultdict(float)  # thread kind -> seconds
        self.on = False
        self.marks: dict = {}
        self.overhead = 0.0  # CPU seconds a timed call costs its caller beyond the callee (calibrate)

    def wrap(self, fn, label):
        import functools

        def wrapper(*args, **kwargs):
            if not self.on:
                return fn(*args, **kwargs)
            stack = getattr(self.local, "stack", None)
            if stack is None:
                stack = self.local.stack = []
            stack.append(0.0)
            started = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.thread_time() - started
                children = stack.pop()
                if stack:
                    # The caller's own time excludes this call and what timing it cost.
                    stack[-1] += elapsed + self.overhead
                where = "main" if self.threading.get_ident() == self.main else "background"
                with self.lock:
                    self.totals[(where, label)] += elapsed - children

        return functools.update_wrapper(wrapper, fn)

    def calibrate(self, calls: int = 20000) -> None:
        """Measure ``overhead``: the caller's time per timed call of a function that does nothing."""
        inner = self.wrap(lambda: None, "_calibration inner")

        def loop():
            for _ in range(calls):
                inner()

        outer = self.wrap(loop, "_calibration outer")
        self.on = True
        outer()
        self.on = False
        self.overhead = max(0.0, self.totals.pop(("main", "_calibration outer"), 0.0) / calls)
        self.totals.pop(("main", "_calibration inner"), None)

    def instrument(self) -> None:
        import importlib

        for where, name, label in SECTIONS:
            module_name, _, class_name = where.partition(":")
            owner = importlib.import_module(module_name)
            if class_name:
                owner = getattr(owner, class_name, None)
            fn = getattr(owner, name, None) if owner is not None else None
            if callable(fn):
                setattr(owner, name, self.wrap(fn, label))

    def start(self) -> None:
        self.calibrate()
        self.on = True

    @staticmethod
    def _thread_cpu() -> dict:
        """Nanoseconds on CPU of every thread now: {(tid, name): ns}."""
        out = {}
        for tid in os.listdir("/proc/self/task"):
            try:
                ns = int(Path(f"/proc/self/task/{tid}/schedstat").read_text().split()[0])
                name = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
            except (OSError, ValueError, IndexError):
                continue
            out[(int(tid), name)] = ns
        return out

    def window_start(self) -> None:
        if self.on:
            self.marks = self._thread_cpu()

    def window_end(self) -> None:
        if not self.on:
            return
        main = self.threading.get_native_id()
        for (tid, name), ns in self._thread_cpu().items():
            spent = (ns - self.marks.get((tid, name), 0)) / 1e9
            kind = ("save()'s thread" if tid == main else "libzmq I/O thread" if name.startswith("ZMQbg")
                    else SENDER_THREADS)
            self.threads[kind] += spent

    def summary(self, saves: int) -> dict:
        sections = {f"{where}:{label}": 1e6 * seconds / saves for (where, label), seconds in self.totals.items()}
        threads = {kind: 1e6 * seconds / saves for kind, seconds in self.threads.items()}
        return {"sections": sections, "threads": threads, "overhead_us": 1e6 * self.overhead}


class Syscalls:
    """System calls of every thread of the process during the timed windows (``--syscalls`` runs).

    ``strace -c -f`` is attached to the process (every thread) at the start of a window (a phase's saves
    until its delivery work was done) and stopped at its end; the counts of both phases
    are added up. strace slows every call down, so these runs give counts, not times.
    """

    def __init__(self) -> None:
        import collections

        self.counts = collections.Counter()
        self.on = False
        self.tracer = None
        self.output = None

    def wrap(self, fn, label):
        return fn

    def instrument(self) -> None:
        pass

    def start(self) -> None:
        self.on = True

    def window_start(self) -> None:
        if not self.on:
            return
        self.output = tempfile.NamedTemporaryFile(prefix="syscalls-", suffix=".txt", delete=False).name
        # -p of the process with -f: every thread it has now ("attached with N threads") and
        # every thread it starts.
        self.tracer = subprocess.Popen(["strace", "-c", "-f", "-o", self.output, "-p", str(os.getpid())],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while True:  # strace says so before it counts anything
            line = self.tracer.stderr.readline()
            if not line or b"attached" in line:
                break

    def window_end(self) -> None:
        if self.tracer is None:
            return
        self.tracer.send_signal(signal.SIGINT)
        self.tracer.wait(timeout=30)
        self.tracer = None
        for line in Path(self.output).read_text().splitlines():
            match = STRACE_LINE.match(line)
            if match and match.group(3) != "total":
                self.counts[match.group(3)] += int(match.group(1))
        os.unlink(self.output)

    def summary(self, saves: int) -> dict:
        return {"syscalls": {name: calls / saves for name, calls in self.counts.most_common()}}


# A row of `strace -c`: % time, seconds, usecs/call, calls, [errors,] syscall.
STRACE_LINE = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\S+)\s*$")


def _keep_acked(outbox, result: dict) -> None:
    """Django does not delete acked rows while saves run: the upper bound of moving the delete into the worker.

    If the worker deleted each row in its apply transaction, Django would
    never run its ``DELETE`` (nor commit it). Emulated here: ``outbox.delete``
    only remembers the acked seqs; between the phases, off the clock, the
    benchmark deletes them (as the worker would have), so that the backlog
    lookups of the next phase see the same table as with Django deleting.
    Every object is saved once per phase, so within a phase no lookup can
    meet a kept row of its own object. The worker's extra work (and, on
    SQLite, its slightly longer write transaction) is not counted.
    """
    acked: list = []
    result["_acked"] = acked
    original_delete = outbox.delete

    def delete(using, seqs):
        seqs = [s for s in seqs if s is not None]
        acked.extend((using, s) for s in seqs)
        return len(seqs)

    def purge():
        by_db: dict = {}
        for using, seq in acked:
            by_db.setdefault(using, []).append(seq)
        for using, seqs in by_db.items():
            original_delete(using, seqs)
        result["kept_rows"] = result.get("kept_rows", 0) + len(acked)
        acked.clear()

    outbox.delete = delete
    result["_purge"] = purge


class _Null:
    def write(self, *_):
        pass

    def flush(self):
        pass


# --------------------------------------------------------------------------------------------
# The parent: databases, workers, rounds, report


# Pinning (--pin, the default on ≥ 2 cores): Django's process on DJANGO_CPU, the worker and
# PostgreSQL on SERVER_CPU, as a deployment where the worker has a core of its own.
DJANGO_CPU: int | None = None
SERVER_CPU: int | None = None
# --baseline DIR: a checkout whose python-bridge/ is the code to compare with (e.g. `git worktree add DIR main`).
BASELINE: Path | None = None

# Extra `signal-worker serve` options (--worker-arg), the same for every configuration.
WORKER_EXTRA_ARGS: list[str] = []
BRIDGE_EXTRA_SETTINGS: dict = {}  # --bridge-setting KEY=JSON, for every bridge configuration


def serve_worker(store_url: str, tmp: Path, label: str):
    """A fresh ``signal-worker serve`` for one configuration (own port, ``--metrics-bind``, pinned to
    SERVER_CPU, the --worker-arg options); ``.bind`` is its endpoint, ``.metrics_port`` its metrics."""
    return start_worker(WORKER, store_url, tmp / f"worker-{label}-{time.monotonic_ns()}.log", bind=ANY_LOOPBACK_PORT,
                        metrics_port=ANY_PORT, cpu=SERVER_CPU, extra_args=WORKER_EXTRA_ARGS)


def run_config(db, config: Config, n: int, tmp: Path, profile: bool = False, syscalls: bool = False) -> dict:
    """One configuration on a fresh database, in a fresh process; the child's result."""
    url, handle = db.fresh()
    worker = busy = None
    try:
        env = django_env(url)
        env["ACCOUNTS_RECEIVER"] = config.receiver
        if config.baseline:
            # The baseline's signal_bridge first on the path (before the venv's editable install).
            env["PYTHONPATH"] = os.pathsep.join([str(BASELINE / "python-bridge"), *filter(None, [env.get("PYTHONPATH")])])
        if config.receiver == "bridge":
            worker = serve_worker(url, tmp, f"{db.name}-{config.key.replace('/', '_')}")
            env["SIGNAL_BRIDGE_MODE"] = config.mode
            env["SIGNAL_BRIDGE_ENDPOINT"] = worker.bind
        spec = {"n": n, "receiver": config.receiver, "mode": config.mode, "atomic": config.atomic,
                "bridge": {**BRIDGE_EXTRA_SETTINGS, **dict(config.bridge)}, "keep_acked": config.keep_acked,
                "profile": profile, "syscalls": syscalls, "cpu": DJANGO_CPU}
        load = os.getloadavg()[0]
        if config.busy_server_cpu:
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=pin_preexec(SERVER_CPU))
        proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env,
                              capture_output=True, text=True, cwd=EXAMPLE, timeout=900 if syscalls else 300)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            err = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            return {"problems": [f"child exited {proc.returncode}: {err}"], "phases": {}}
        result = json.loads(lines[-1])
        result["load"] = (load + os.getloadavg()[0]) / 2  # 1-minute load average, before and after
        if config.receiver == "bridge":
            expected = (BASELINE if config.baseline else ROOT) / "python-bridge" / "signal_bridge"
            if result.get("bridge_path") != str(expected.resolve()):
                result["problems"].append(f"ran the bridge in {result.get('bridge_path')}, expected {expected}")
        if worker is not None:
            try:
                result["worker"] = worker_metrics(worker.metrics_port)
            except OSError as error:
                result["worker"] = {"error": str(error)}
            status, worker_tail = worker.stop(), worker.tail(5, " | ")
            worker = None
            result["worker_exit"] = status
            if status != 0:
                result["problems"].append(f"signal-worker exit status {status} after SIGTERM: {worker_tail}")
        return result
    except Exception as error:  # a broken configuration is reported, not fatal
        return {"problems": [f"{type(error).__name__}: {error}"], "phases": {}}
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
        if worker is not None:
            worker.stop()
        db.drop(handle)


# --------------------------------------------------------------------------------------------
# Report


# --------------------------------------------------------------------------------------------
# Summaries and the report


PHASES = ("create", "update")


def round_metrics(r: dict, n: int) -> dict:
    """The numbers of one round of one configuration."""
    m = {}
    for phase in PHASES:
        p = r.get("phases", {}).get(phase)
        if not p:
            continue
        m[f"{phase}.save"] = rate(n, p.get("save_s"))
        m[f"{phase}.save_us"] = 1e6 * p["save_s"] / n
        m[f"{phase}.e2e"] = rate(n, p.get("e2e_s"))
        m[f"{phase}.relay"] = rate(n, p.get("relay_s"))
        m[f"{phase}.handler_us"] = 1e6 * p.get("receiver_s", 0) / n
        for key in ("cpu", "loop_cpu", "thread_cpu"):
            if f"{key}_s" in p:
                m[f"{phase}.{key}_us"] = 1e6 * p[f"{key}_s"] / n
        for q in ("p50", "p90", "p99", "max"):
            if f"{q}_us" in p:
                m[f"{phase}.{q}_us"] = p[f"{q}_us"]
        m[f"{phase}.deliver_us"] = 1e6 * p.get("on_commit_s", 0) / n if p.get("on_commit_s") else None
        if p.get("sender_rounds"):
            m[f"{phase}.rounds"] = p["sender_rounds"]
            m[f"{phase}.batch"] = p["sender_messages"] / p["sender_rounds"] if p["sender_messages"] else None
    stats = r.get("stats")
    if stats is not None:
        m["written_per_save"] = stats.get("outbox_written", 0) / (2 * n)
        m["deleted_per_save"] = stats.get("outbox_deleted", 0) / (2 * n)  # the off-clock purge included
        m["kept_per_save"] = r.get("kept_rows", 0) / (2 * n)
    if r.get("load") is not None:
        m["load"] = r["load"]
    w = r.get("worker") or {}
    if w.get("requests"):
        m["worker.request_us"] = w.get("request_us")
        m["worker.apply_us"] = w.get("apply_us")
        m["worker.tx_per_msg"] = w["batches"] / w["requests"]
    return {k: v for k, v in m.items() if v is not None}


def summarize(rounds: list[dict], n: int) -> dict:
    """Median and best (highest rate, lowest time) of every metric over the rounds."""
    failed = [p for r in rounds for p in r.get("problems", [])]
    per_round = [round_metrics(r, n) for r in rounds]
    metrics, iqr = {}, {}
    for key in sorted({k for m in per_round for k in m}):
        values = [m[key] for m in per_round if key in m]
        best = min(values) if key.endswith("_us") else max(values)
        metrics[key] = (statistics.median(values), best)
        iqr[key] = quartiles(values)
        if key.endswith(".save") and len(values) > 1:
            metrics[key + "_spread"] = ((max(values) - min(values)) / statistics.median(values), 0)
    return {"failed": failed, "metrics": metrics, "iqr": iqr, "rounds": len(rounds), "per_round": per_round}


def med(summary: dict | None, key: str) -> float | None:
    if summary is None or summary["failed"]:
        return None
    value = summary["metrics"].get(key)
    return value[0] if value else None


def cell(summary: dict, key: str) -> str:
    if summary["failed"]:
        return "FAILED"
    value = summary["metrics"].get(key)
    if value is None:
        return "—"
    return f"{value[0]:,.0f} ({value[1]:,.0f})"


def pair(summary: dict, key: str, digits: int = 0) -> str:
    """``create / update`` medians of ``phase.key``."""
    if summary["failed"]:
        return "FAILED"
    a, b = med(summary, f"create.{key}"), med(summary, f"update.{key}")
    if a is None and b is None:
        return "—"
    return f"{fmt(a, digits)} / {fmt(b, digits)}"


RATIOS = [("async / none", "async", "none", 0.80), ("sync / in_process", "sync", "in_process", 1.0),
          ("outbox / none", "outbox", "none", None), ("async / in_process", "async", "in_process", None)]


def ratio_rows(dbs, results) -> list[dict]:
    rows = []
    for db in dbs:
        for atomic in (False, True):
            suffix = "+atomic" if atomic else ""
            for title, num, den, target in RATIOS:
                a, b = results[db].get(num + suffix), results[db].get(den + suffix)
                if a is None or b is None:
                    continue
                values, paired = [], []
                for phase in PHASES:
                    x, y = med(a, f"{phase}.save"), med(b, f"{phase}.save")
                    values.append(x / y if x and y else None)
                    paired.append(_paired_ratios(a, b, f"{phase}.save"))
                met = None
                if target is not None:
                    met = all(v is not None and v >= target for v in values)
                rows.append({"db": db, "pattern": "atomic" if atomic else "autocommit", "title": title,
                             "num": num + suffix, "den": den + suffix, "values": values, "paired": paired,
                             "target": target, "met": met})
    return rows


def _paired_ratios(a: dict, b: dict, key: str) -> list[float]:
    """Round r of ``a`` over round r of ``b``: the two ran minutes apart at most (rounds are interleaved)."""
    if a["failed"] or b["failed"]:
        return []
    return [x[key] / y[key] for x, y in zip(a["per_round"], b["per_round"]) if x.get(key) and y.get(key)]


def render(meta: dict, dbs: list[str], configs: list[Config], results: dict, raw: dict, n: int,
           rounds: int, profiles: dict, syscalls: dict | None = None) -> str:
    lines = ["# Django save() benchmark", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    lines += [
        f"- load per configuration: {n:,} `User(...).save()` creates with `_profile_data = {json.dumps(CREATE_DATA)}`, "
        f"then {n:,} updates of the same users (instances loaded before the clock, as a view loads them; "
        f"`_profile_data = {json.dumps(UPDATE_DATA)}`); the clock covers only the loop of saves",
        "- autocommit: plain `save()` (a view without ATOMIC_REQUESTS); atomic: `with transaction.atomic(): user.save()` "
        "(one transaction per save, as with ATOMIC_REQUESTS=True)",
        f"- {rounds} round(s), interleaved (round 1 of every configuration, then round 2, ...; the order rotates each "
        "round); each configuration on a fresh database (SQLite: a copy of a migrated file; PostgreSQL: "
        "`CREATE DATABASE ... TEMPLATE`), in a fresh Python process, with a fresh `signal-worker serve` "
        "(own port, default options) for the bridge, stopped with SIGTERM",
        "- checked after each phase, before any number counts: async waits (≤ 60 s) until the last profile is "
        "visible, outbox runs `manage.py signal_bridge relay --once` (in the same process, timed separately); then "
        "one profile per user with business/F/1990-01-02 after the creates and business/M/1990-01-02 after the "
        "updates, an empty outbox, no dead letters, and the worker answered `created` and `updated` N times each. "
        "A configuration with anything wrong in any round is FAILED",
        "",
    ]
    lines += pinned_summary(dbs, configs, results)
    lines += issue22_targets(dbs, results)
    lines += baseline_section(dbs, configs, results)
    lines += ["Cells below: median over the rounds, best round in parentheses; saves per second unless said "
              "otherwise.", ""]
    for db in dbs:
        lines += [f"## {db}", "",
                  "| configuration | pattern | creates/s | updates/s | end to end (async): creates/s "
                  "| updates/s | relay --once: messages/s, creates | updates |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for c in configs:
            s = results[db][c.key]
            lines.append(f"| {c.name} | {c.pattern} | {cell(s, 'create.save')} | {cell(s, 'update.save')} "
                         f"| {cell(s, 'create.e2e')} | {cell(s, 'update.e2e')} | {cell(s, 'create.relay')} "
                         f"| {cell(s, 'update.relay')} |")
        lines.append("")
        for c in configs:
            problems = results[db][c.key]["failed"]
            if problems:
                lines.append(f"- FAILED {c.name} ({c.pattern}): " + "; ".join(dict.fromkeys(problems))[:800])
        lines.append("")

    rows = ratio_rows(dbs, results)
    lines += ["## Ratios against the targets", "",
              "Medians of this run. Targets from the issue: async ≥ 80 % of the no-receiver rate; sync at least as fast as "
              "the in-process receiver (≥ 100 %, issue 22). The other two ratios have no target. *Per round*: the ratio "
              "within each round (the two configurations ran close together), median and range; this machine's "
              "rates move ±15–25 % between rounds, so these show how far one run's ratio can be trusted.", ""]
    lines += ratio_table(rows)
    lines.append("")

    lines += where_time_goes(dbs, configs, results, rows, profiles, n)
    lines += cpu_section(dbs, configs, profiles, results)
    lines += statements_section(dbs, configs, profiles)
    lines += syscalls_section(dbs, configs, syscalls or {})
    lines += per_save_section(dbs, configs, results)
    lines += deletion_section(dbs, results)
    lines += every_round_table(dbs, configs, raw, n)
    return "\n".join(lines)


def iqr_cell(summary: dict, key: str, digits: int = 0) -> str:
    """``median (q1–q3)`` of ``key`` over the rounds."""
    if summary["failed"]:
        return "FAILED"
    value = summary["metrics"].get(key)
    if value is None:
        return "—"
    q1, q3 = summary["iqr"][key]
    return f"{fmt(value[0], digits)} ({fmt(q1, digits)}–{fmt(q3, digits)})"


def pinned_summary(dbs, configs, results) -> list[str]:
    """Rates and CPU per save, median and interquartile range over the rounds."""
    lines = ["## Summary: saves per second and CPU per save", "",
             "Median over the rounds, interquartile range in parentheses. *CPU µs/save*: CPU time (user + "
             "system, `getrusage`) of the whole Django process, every thread (save()'s, the async sender, libzmq's "
             "I/O thread), from the first save of the phase until this process's part of the delivery was done "
             "(async: the sender drained; sync: its batched deletes done; outbox: before the relay), divided by "
             "N. Unlike the rates it hardly moves when other jobs take the cores. *thread*: save()'s own thread "
             "during the loop.", "",
             "| database | configuration | pattern | creates/s | updates/s | CPU µs/save, creates | updates "
             "| thread CPU µs, c / u |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for db in dbs:
        for c in configs:
            s = results[db][c.key]
            lines.append(f"| {db} | {c.name} | {c.pattern} | {iqr_cell(s, 'create.save')} "
                         f"| {iqr_cell(s, 'update.save')} | {iqr_cell(s, 'create.cpu_us')} "
                         f"| {iqr_cell(s, 'update.cpu_us')} | {pair(s, 'thread_cpu_us')} |")
    lines.append("")
    return lines


def baseline_section(dbs, configs, results) -> list[str]:
    """This bridge against the --baseline bridge, configuration by configuration (same run, interleaved)."""
    rows = []
    for db in dbs:
        for c in configs:
            base = results[db].get(c.key + "@baseline")
            if c.baseline or base is None:
                continue
            now = results[db][c.key]
            cells = []
            for key, digits in (("create.save", 0), ("update.save", 0), ("create.cpu_us", 0), ("update.cpu_us", 0)):
                b, a = med(base, key), med(now, key)
                cells.append("—" if a is None or b is None else f"{fmt(b, digits)} → {fmt(a, digits)} "
                                                               f"({100 * (a / b - 1):+.0f} %)")
            rows.append(f"| {db} | {c.name} | {c.pattern} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    return ["## Against the baseline", "",
            "The same configurations with the baseline's bridge (`--baseline`), interleaved in this run: "
            "medians, baseline → this code.", "",
            "| database | configuration | pattern | creates/s | updates/s | CPU µs/save, creates | updates |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: |", *rows, ""]


def issue22_rows(dbs, results) -> list[dict]:
    """The targets of issue 22 (medians of one run): sync's rate ≥ the in-process receiver's,
    sync's CPU per save ≤ the in-process receiver's, async's CPU per save ≤ no receiver's + 60 µs."""
    rows = []
    for db in dbs:
        for suffix, pattern in (("", "autocommit"), ("+atomic", "atomic")):
            r = results[db]
            sync, in_process, async_, none = (r.get(k + suffix) for k in ("sync", "in_process", "async", "none"))
            checks = [
                ("sync saves/s ≥ 1.0 × in-process", sync, in_process, "save", lambda a, b: a / b, lambda v: v >= 1.0,
                 lambda v: f"{v:.2f}×"),
                ("sync CPU/save ≤ in-process", sync, in_process, "cpu_us", lambda a, b: (a, b),
                 lambda v: v[0] <= v[1], lambda v: f"{v[0]:,.0f} vs {v[1]:,.0f} µs"),
                ("async CPU/save ≤ no receiver + 60 µs", async_, none, "cpu_us", lambda a, b: (a, b + 60),
                 lambda v: v[0] <= v[1], lambda v: f"{v[0]:,.0f} vs {v[1]:,.0f} µs"),
            ]
            for title, num, den, metric, combine, ok, show in checks:
                if num is None or den is None:
                    continue
                cells, met = [], True
                for phase in PHASES:
                    a, b = med(num, f"{phase}.{metric}"), med(den, f"{phase}.{metric}")
                    if a is None or b is None:
                        cells.append("FAILED" if num["failed"] or den["failed"] else "—")
                        met = False
                        continue
                    value = combine(a, b)
                    cells.append(show(value))
                    met = met and ok(value)
                rows.append({"db": db, "pattern": pattern, "title": title, "cells": cells, "met": met})
    return rows


def issue22_targets(dbs, results) -> list[str]:
    rows = issue22_rows(dbs, results)
    if not rows:
        return []
    lines = ["## Targets (issue 22)", "",
             "Medians of this run (creates / updates). CPU: the process's CPU µs per save of the summary above.", "",
             "| database | pattern | target | creates | updates | met |", "| --- | --- | --- | ---: | ---: | --- |"]
    for r in rows:
        lines.append(f"| {r['db']} | {r['pattern']} | {r['title']} | {r['cells'][0]} | {r['cells'][1]} "
                     f"| {'yes' if r['met'] else '**NO**'} |")
    lines.append("")
    return lines


def ratio_table(rows: list[dict]) -> list[str]:
    """``ratio_rows`` as a Markdown table: medians, per-round ratios, target and whether it was met."""
    lines = ["| database | pattern | ratio | creates | updates | per round: creates | per round: updates "
             "| target | met |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | --- |"]

    def per_round(ratios: list[float]) -> str:
        if not ratios:
            return "—"
        return (f"{100 * statistics.median(ratios):.0f} % "
                f"({100 * min(ratios):.0f}–{100 * max(ratios):.0f})")

    for r in rows:
        shown = ["FAILED" if v is None else f"{100 * v:.0f} %" for v in r["values"]]
        rounds_shown = [per_round(p) for p in r["paired"]]
        if r["target"] is None:
            goal, met = "—", "—"
        else:
            goal = f"≥ {100 * r['target']:.0f} %"
            met = "yes" if r["met"] else "**NO**"
        lines.append(f"| {r['db']} | {r['pattern']} | {r['title']} | {shown[0]} | {shown[1]} | {rounds_shown[0]} "
                     f"| {rounds_shown[1]} | {goal} | {met} |")
    return lines


def where_time_goes(dbs, configs, results, rows, profiles, n) -> list[str]:
    lines = ["## Where the time goes", "",
             "Medians, µs per save (creates / updates). *save*: the timed loop divided by N. *handler*: time inside "
             "the `post_save` receiver (the bridge's `on_post_save`, or the Python receiver), measured by wrapping it. "
             "*deliver_sync*: sync's send-and-wait (inside the handler for autocommit saves, in `on_commit` inside "
             "`atomic()`). *sender rounds*: the async sender's rounds per phase (messages per round). "
             "*Django outbox rows*: rows written / deleted by Django per save. *worker*: transactions per message, "
             "and mean µs per request between reading it and replying (the worker's `request_duration`, over both "
             "phases).", "",
             "| database | configuration | pattern | save µs | handler µs | deliver_sync µs | sender rounds (msgs/round) "
             "| Django outbox rows written / deleted per save | worker tx/msg, µs/request |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for db in dbs:
        for c in configs:
            s = results[db][c.key]
            if s["failed"]:
                lines.append(f"| {db} | {c.name} | {c.pattern} | FAILED | | | | | |")
                continue
            rounds_cell = "—"
            if med(s, "create.rounds") or med(s, "update.rounds"):
                rounds_cell = (f"{fmt(med(s, 'create.rounds'))} ({fmt(med(s, 'create.batch'), 1)}) / "
                               f"{fmt(med(s, 'update.rounds'))} ({fmt(med(s, 'update.batch'), 1)})")
            rows_cell = "—"
            if med(s, "written_per_save") is not None:
                rows_cell = f"{med(s, 'written_per_save'):.2f} / {med(s, 'deleted_per_save'):.2f}"
                if med(s, "kept_per_save"):
                    rows_cell += " (deleted off the clock)"
            worker_cell = "—"
            if med(s, "worker.tx_per_msg") is not None:
                worker_cell = f"{med(s, 'worker.tx_per_msg'):.2f}, {fmt(med(s, 'worker.request_us'))}"
            lines.append(f"| {db} | {c.name} | {c.pattern} | {pair(s, 'save_us')} | {pair(s, 'handler_us')} "
                         f"| {pair(s, 'deliver_us')} | {rounds_cell} | {rows_cell} | {worker_cell} |")
    lines.append("")

    notes = []
    for r in rows:
        if r["met"] is not False:
            continue
        db, pattern = r["db"], r["pattern"]
        num, den = results[db][r["num"]], results[db][r["den"]]
        if num["failed"] or den["failed"]:
            notes.append(f"- {db}, {pattern}, {r['title']}: FAILED, nothing to explain.")
            continue
        failing = [ph for ph, v in zip(PHASES, r["values"]) if v is None or
                   v < r["target"]]
        us = {ph: (med(num, f"{ph}.save_us"), med(den, f"{ph}.save_us")) for ph in PHASES}
        handler = {ph: med(num, f"{ph}.handler_us") or 0.0 for ph in PHASES}
        if r["title"].startswith("async"):
            extra = {ph: us[ph][0] - us[ph][1] for ph in PHASES}
            outside = {ph: extra[ph] - handler[ph] for ph in PHASES}
            what = " and ".join({"create": "creates", "update": "updates"}[ph] for ph in failing)

            def both(d):
                return " / ".join(f"{d[ph]:.0f}" if d[ph] > 0 else "≈ 0" for ph in failing)

            text = (f"- **{db}, {pattern}, async vs no receiver** ({what}): async adds {both(extra)} µs per save "
                    f"to {both({ph: us[ph][1] for ph in PHASES})} µs. Inside the bridge's handler: "
                    f"{both(handler)} µs")
            prof = profiles.get(db, {}).get("async+atomic" if pattern == "atomic" else "async")
            if prof:
                text += f" ({profile_text(prof)})"
            text += (f"; outside it: {both(outside)} µs, the time save() loses "
                     f"while the sender thread (≈ {fmt(med(num, 'create.rounds'))} rounds per {n:,} saves, "
                     f"{fmt(med(num, 'create.batch'), 1)} messages each) and the worker "
                     f"({med(num, 'worker.tx_per_msg') or 0:.2f} transactions per message) share the two cores and the "
                     "GIL with it")
            if db == "SQLite":
                text += (", and each of their commits holds SQLite's single write lock through an fsync "
                         "(synchronous=FULL) while save() waits for it")
            written = med(num, "written_per_save") or 0
            if written:
                text += (f"; Django also writes {written:.2f} and deletes {med(num, 'deleted_per_save') or 0:.2f} "
                         "outbox rows per save")
            notes.append(text + ".")
        else:
            deliver = {ph: med(num, f"{ph}.deliver_us") or 0.0 for ph in PHASES}
            text = (f"- **{db}, {pattern}, sync vs in-process receiver**: sync spends {deliver['create']:.0f} / "
                    f"{deliver['update']:.0f} µs per save in deliver_sync (backlog check, send, wait for the "
                    f"reply); the worker accounts for ≈ {fmt(med(num, 'worker.request_us'))} µs of each round trip "
                    "between reading the request and replying after its commit. The Python receiver it replaces "
                    f"costs {med(den, 'create.handler_us') or 0:.0f} / {med(den, 'update.handler_us') or 0:.0f} µs "
                    "per save, so waiting for the worker costs more than running the receiver in process")
            prof = profiles.get(db, {}).get("sync") if pattern == "autocommit" else None
            if prof:
                text += f" ({profile_text(prof)})"
            text += ". " + sync_floor_text(num, den, results[db]["none" + r["den"][len("in_process"):]])
            notes.append(text + ".")
    if notes:
        lines += ["Targets missed:", ""] + notes + [""]
    else:
        lines += ["Every target was met.", ""]
    return lines


def sync_floor_text(sync: dict, in_process: dict, none: dict) -> str:
    """What sync would still cost with a worker that took no time, against the receiver it replaces.

    The bridge's cost is sync's save() minus the no-receiver save(); the worker's part of it is its
    mean time per request (reading it to replying, commit included). What is left (capture, backlog
    check, ZeroMQ round trip, reply handling, and inside ``atomic()`` the outbox row) is a floor no
    faster worker can lower.
    """
    worker = med(sync, "worker.request_us") or 0.0
    floor, receiver = {}, {}
    for ph in PHASES:
        floor[ph] = (med(sync, f"{ph}.save_us") or 0.0) - (med(none, f"{ph}.save_us") or 0.0) - worker
        receiver[ph] = (med(in_process, f"{ph}.save_us") or 0.0) - (med(none, f"{ph}.save_us") or 0.0)
    text = (f"With a worker that took no time at all, sync would still add {floor['create']:.0f} / "
            f"{floor['update']:.0f} µs per save (its save() minus no receiver's, minus the worker's "
            f"≈ {worker:.0f} µs per request), against the {receiver['create']:.0f} / {receiver['update']:.0f} µs "
            "the in-process receiver adds")
    verdicts = []
    for ph in PHASES:
        name = {"create": "creates", "update": "updates"}[ph]
        margin = receiver[ph] - floor[ph]
        if margin <= 0:
            verdicts.append(f"{name}: no worker could be fast enough")
        else:
            verdicts.append(f"{name}: the worker would have to answer within {margin:.0f} µs, its commit included")
    return text + " (" + "; ".join(verdicts) + ")"


def profile_text(prof: dict) -> str:
    """The costliest parts of the bridge per save, from the profile run (exclusive CPU µs)."""
    picks = sorted(((us, name) for name, us in prof.get("sections", {}).items() if us >= 1), reverse=True)[:5]
    if not picks:
        return ""
    parts = ", ".join(f"{name.replace('main:', '').replace('background:', 'sender thread: ')} {us:.0f}"
                      for us, name in picks)
    return f"profile run, CPU µs per save: {parts}"


def cpu_section(dbs, configs, profiles, results) -> list[str]:
    """Where the CPU of a save goes, per thread and per function (the profile runs)."""
    rows = []
    overheads = [p.get("overhead_us", 0.0) for db in profiles.values() for p in db.values() if p.get("overhead_us")]
    overhead = f"{statistics.median(overheads):.1f}" if overheads else "1"
    for db in dbs:
        for c in configs:
            prof = profiles.get(db, {}).get(c.key)
            if not prof or "threads" not in prof:
                continue
            threads = prof["threads"]
            main = threads.get("save()'s thread", 0.0)
            sections = prof.get("sections", {})
            mine = {k.split(":", 1)[1]: v for k, v in sections.items() if k.startswith("main:")}
            background = {k.split(":", 1)[1]: v for k, v in sections.items() if k.startswith("background:")}
            django = main - sum(mine.values())

            def listing(parts):
                shown = [f"{name} {us:.0f}" for name, us in sorted(parts.items(), key=lambda kv: -kv[1]) if us >= 0.5]
                return " · ".join(shown) or "—"

            total = sum(threads.values())
            sender_cpu = threads.get(SENDER_THREADS, 0.0)
            rows.append(f"| {db} | {c.name} | {c.pattern} | {total:,.0f} | {django:,.0f} | {listing(mine)} "
                        f"| {sender_cpu:,.0f}: {listing(background)} "
                        f"| {threads.get('libzmq I/O thread', 0):,.0f} |")
    if not rows:
        return []
    return ["## Where the CPU of a save goes", "",
            "One extra run per configuration with timing on, creates and updates together, µs of CPU per save "
            "(`/proc/self/task/*/schedstat` per thread; inside save()'s thread and the sender, the exclusive "
            "`thread_time` of the bridge's functions, or of the in-process receiver). *Django*: save()'s thread "
            "minus the timed functions: Django's own save, its SQL and commit. Timing a call costs its caller "
            f"about {overhead} µs (measured in each run and not charged to the caller's own time); the thread "
            "totals include it, so they are a little above the summary's.", "",
            "| database | configuration | pattern | process | save()'s thread: Django | save()'s thread: receiver "
            "or bridge | sender thread: total: functions | libzmq I/O thread |",
            "| --- | --- | --- | ---: | ---: | --- | --- | ---: |", *rows, ""]


def statements_section(dbs, configs, profiles) -> list[str]:
    """SQL statements per save on save()'s thread's connection, from the profile runs."""
    rows = []
    for db in dbs:
        for c in configs:
            counted = profiles.get(db, {}).get(c.key, {}).get("statements")
            if counted is None:
                continue
            tx = f"{counted['transaction']:.2f}" if db == "SQLite" else "—"
            rows.append(f"| {db} | {c.name} | {c.pattern} | {counted['statements']:.2f} | {tx} |")
    if not rows:
        return []
    return ["## SQL statements per save", "",
            "Counted in the profile runs below Django (SQLite's trace callback; a counting psycopg cursor), on "
            "save()'s thread's connection, creates and updates together; the async sender's and the worker's "
            "statements are not in it. *transaction*: `BEGIN`/`COMMIT` (SQLite only; psycopg sends them itself).", "",
            "| database | configuration | pattern | statements | transaction |", "| --- | --- | --- | ---: | ---: |",
            *rows, ""]


def syscalls_section(dbs, configs, syscalls) -> list[str]:
    """System calls per save, every thread of the Django process (the --syscalls runs)."""
    rows = []
    for db in dbs:
        for c in configs:
            counted = syscalls.get(db, {}).get(c.key)
            if counted is None:
                continue
            top = ", ".join(f"{name} {calls:.1f}" for name, calls in list(counted.items())[:6])
            rows.append(f"| {db} | {c.name} | {c.pattern} | {sum(counted.values()):.1f} | {top} |")
    if not rows:
        return []
    return ["## System calls per save", "",
            "`strace -c -f` attached to every thread of the Django process during the timed windows of one more "
            "run per configuration (`--syscalls`), creates and updates together.", "",
            "| database | configuration | pattern | system calls | the most frequent |",
            "| --- | --- | --- | ---: | --- |", *rows, ""]


def per_save_section(dbs, configs, results) -> list[str]:
    """Percentiles of single saves: a cost spread over every save, or stalls of a few."""
    lines = ["## Single saves", "",
             "µs per `save()` (creates / updates), median over the rounds of each round's percentile. A slowdown "
             "spread over every save moves p50; a few saves stalled (a busy wait for SQLite's write lock, a WAL "
             "checkpoint, the GIL held by another thread) move p99 and max.", "",
             "| database | configuration | pattern | p50 | p90 | p99 | max |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: |"]
    for db in dbs:
        for c in configs:
            s = results[db][c.key]
            if s["failed"] or med(s, "create.p50_us") is None:
                continue
            cells = [f"{fmt(med(s, f'create.{q}_us'))} / {fmt(med(s, f'update.{q}_us'))}"
                     for q in ("p50", "p90", "p99", "max")]
            lines.append(f"| {db} | {c.name} | {c.pattern} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def deletion_section(dbs, results) -> list[str]:
    lines = ["## Who deletes acked outbox rows", "",
             "The worker does not delete outbox rows; Django deletes them after the ack. The bridge's "
             "`DELETE_ACKED` setting chooses how for sync messages that have a row (saves inside `atomic()`): "
             "`batch` (default) hands the seq to the background sender thread, which deletes many rows per "
             "statement; `inline` deletes in `save()`'s thread, one `DELETE` and one commit per message. There is "
             "no setting to turn the deletes off. The \"acked rows not deleted by Django\" rows emulate the "
             "worker deleting them in its own apply transaction: in the benchmark process the bridge's delete only "
             "records the seq, and the benchmark deletes those rows between the phases, off the clock. That is the "
             "most the move could save `save()`; the worker's extra work is not counted. The rows-per-save column "
             "of the table above shows which configurations write rows at all.", "",
             "Spread: half the (max − min) / median of the per-round rates of the two configurations, the larger "
             "one; a change smaller than it is noise on this machine.", "",
             "| database | comparison | creates/s | updates/s | change: creates / updates |",
             "| --- | --- | ---: | ---: | ---: |"]
    pairs = [("sync+atomic", "sync+atomic/inline-delete", "sync, atomic: `DELETE_ACKED` batch (default) → inline"),
             ("sync+atomic", "sync+atomic/keep-acked", "sync, atomic: Django deletes (batch) → no delete by Django"),
             ("async+atomic", "async+atomic/keep-acked", "async, atomic: Django deletes → no delete by Django")]
    for db in dbs:
        for base, variant, title in pairs:
            a, b = results[db].get(base), results[db].get(variant)
            if a is None or b is None:
                continue
            changes = []
            for phase in PHASES:
                x, y = med(a, f"{phase}.save"), med(b, f"{phase}.save")
                change = f"{100 * (y / x - 1):+.0f} %" if x and y else "—"
                spread = max(med(a, f"{phase}.save_spread") or 0, med(b, f"{phase}.save_spread") or 0)
                if x and y and spread:
                    change += f" (rounds spread ±{50 * spread:.0f} %)"
                changes.append(change)
            lines.append(f"| {db} | {title} | {cell(a, 'create.save')} → {cell(b, 'create.save')} "
                         f"| {cell(a, 'update.save')} → {cell(b, 'update.save')} | {changes[0]} / {changes[1]} |")
    lines.append("")
    return lines


def every_round_table(dbs, configs, raw: dict, n: int) -> list[str]:
    lines = ["## Every round", "",
             "| database | configuration | pattern | round | creates/s | updates/s | end to end c / u | relay c / u "
             "| status |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for db in dbs:
        for c in configs:
            for i, r in enumerate(raw[db][c.key], 1):
                p = r.get("phases", {})
                cr, up = p.get("create", {}), p.get("update", {})
                status = "ok" if not r.get("problems") else "FAILED"
                e2e = (f"{fmt(rate(n, cr.get('e2e_s')))} / {fmt(rate(n, up.get('e2e_s')))}"
                       if "e2e_s" in cr else "—")
                rel = (f"{fmt(rate(n, cr.get('relay_s')))} / {fmt(rate(n, up.get('relay_s')))}"
                       if "relay_s" in cr else "—")
                lines.append(f"| {db} | {c.name} | {c.pattern} | {i} | {fmt(rate(n, cr.get('save_s')))} "
                             f"| {fmt(rate(n, up.get('save_s')))} | {e2e} | {rel} | {status} |")
    lines.append("")
    return lines


def parent_main(args) -> int:
    n = args.n or (150 if args.quick else 300)
    rounds = args.rounds or (1 if args.quick else 3)
    configs = [c for c in CONFIGS if c.default]
    if args.only:
        try:
            configs = [CONFIG_BY_KEY[k] for k in args.only.split(",")]
        except KeyError as error:
            log(f"unknown configuration {error}; known: {', '.join(CONFIG_BY_KEY)}")
            return 2
    profile_keys = [] if args.quick or args.no_profile else [
        k for k in ("none", "in_process", "sync", "async", "none+atomic", "in_process+atomic", "sync+atomic",
                    "async+atomic") if k in {c.key for c in configs}]
    global WORKER, DJANGO_CPU, SERVER_CPU, BASELINE
    if args.worker:
        WORKER = Path(args.worker).resolve()
    if args.baseline:
        BASELINE = Path(args.baseline).resolve()
        if not (BASELINE / "python-bridge" / "signal_bridge").is_dir():
            log(f"--baseline {BASELINE}: no python-bridge/signal_bridge there")
            return 2
        # Each configuration also runs with the baseline's bridge, interleaved with it.
        configs = [v for c in configs for v in ((c, c.as_baseline()) if c.receiver == "bridge" else (c,))]
        profile_keys = [v for k in profile_keys
                        for v in ((k, k + "@baseline") if CONFIG_BY_KEY[k].receiver == "bridge" else (k,))]
    if args.pin:
        if not pinning_possible(0, 1):
            log("--pin needs CPUs 0 and 1; running unpinned (--no-pin)")
            args.pin = False
        else:
            DJANGO_CPU, SERVER_CPU = 0, 1
    if not WORKER.exists():
        log(f"missing {WORKER}: swift build -c release --product signal-worker")
        return 2
    if args.syscalls and not shutil.which("strace"):
        log("--syscalls needs strace (apt-get install strace)")
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="django-save-bench-"))
    dbs = []
    started = time.monotonic()
    profiles: dict = {}
    syscalls: dict = {}
    try:
        log(f"migrating the template databases (temp dir {tmp}) ...")
        dbs = open_databases(tmp, args.postgres_url, "django_save_bench", cpu=SERVER_CPU)
        raw = {db.name: {c.key: [] for c in configs} for db in dbs}
        total = rounds * len(dbs) * len(configs) + len(dbs) * len(profile_keys) * (2 if args.syscalls else 1)
        done = 0
        for r in range(rounds):
            shift = r % len(configs)
            order = configs[shift:] + configs[:shift]
            for db in dbs:
                for c in order:
                    result = run_config(db, c, n, tmp)
                    raw[db.name][c.key].append(result)
                    done += 1
                    p = result.get("phases", {})
                    status = "ok" if not result.get("problems") else "FAILED: " + "; ".join(result["problems"])[:300]
                    log(f"[{done}/{total} {time.monotonic() - started:4.0f} s] round {r + 1} {db.name:10} "
                        f"{c.key:26} creates {fmt(rate(n, p.get('create', {}).get('save_s'))):>6}/s "
                        f"updates {fmt(rate(n, p.get('update', {}).get('save_s'))):>6}/s  {status}")
        # One more run of each main configuration with timing on: where its CPU goes.
        by_key = {c.key: c for c in configs}
        for db in dbs:
            for key in profile_keys:
                result = run_config(db, by_key[key], n, tmp, profile=True)
                done += 1
                log(f"[{done}/{total} {time.monotonic() - started:4.0f} s] profile {db.name:10} {key}")
                if not result.get("problems") and result.get("profile"):
                    profiles.setdefault(db.name, {})[key] = result["profile"]
        # And with strace on: system calls per save (--syscalls).
        for db in dbs:
            for key in profile_keys if args.syscalls else ():
                result = run_config(db, by_key[key], n, tmp, syscalls=True)
                done += 1
                log(f"[{done}/{total} {time.monotonic() - started:4.0f} s] syscalls {db.name:10} {key}"
                    + ("" if not result.get("problems") else "  FAILED: " + "; ".join(result["problems"])[:300]))
                if not result.get("problems") and result.get("profile"):
                    syscalls.setdefault(db.name, {})[key] = result["profile"]["syscalls"]
        elapsed = time.monotonic() - started
    finally:
        close_databases(dbs)
        if args.keep_temp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    db_names = [db.name for db in dbs]
    results = {db: {c.key: summarize(raw[db][c.key], n) for c in configs} for db in db_names}
    dirty = git("status", "--porcelain", "--", "python-bridge/signal_bridge", "python-bridge/example",
                "Sources", "Benchmarks/django")
    commit = git("rev-parse", "--short", "HEAD")
    if dirty:
        commit += " + uncommitted changes (python-bridge/, Benchmarks/django/ or Sources/ differ from the commit)"
    import django as _django

    synchronous = {r.get("sqlite_synchronous") for rs in raw.get("SQLite", {}).values() for r in rs} - {None}
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "commit": commit,
        "command": "`" + " ".join(["Benchmarks/django/run", *args.forwarded]) + "`",
        "software": f"Python {platform.python_version()}, Django {_django.get_version()}, {worker_version(WORKER)} "
                    f"(`{shown_path(WORKER)}` built "
                    f"{datetime.datetime.fromtimestamp(WORKER.stat().st_mtime, datetime.timezone.utc):%Y-%m-%dT%H:%M:%SZ})",
        "pinning": ("Django's process (every thread) on CPU 0; `signal-worker` and PostgreSQL (postmaster and "
                    "every backend) on CPU 1 (`sched_setaffinity`, as `taskset`); other jobs on the machine are "
                    "not pinned and use both" if args.pin else "none: Django, the worker and the database share "
                    "the cores"),
        "load": load_text(raw),
        **({"baseline": f"the rows marked (baseline) run `{BASELINE}/python-bridge` "
                        f"({git_at(BASELINE, 'rev-parse', '--short', 'HEAD')}); every other row this checkout's"}
           if BASELINE else {}),
        "SQLite": "WAL file in a temp dir on the local disk; Django: `transaction_mode=IMMEDIATE`, "
                  f"`PRAGMA synchronous` = {', '.join(map(str, sorted(synchronous))) or '?'} "
                  "(2 = FULL, SQLite's default: every commit is fsync'd); worker: `--sqlite-synchronous full` (default)",
        "PostgreSQL": f"`scripts/postgres-throwaway` on the same machine ({postgres_durability(args.postgres_url)})"
                      if args.postgres_url else "not run",
        "duration": f"{elapsed:.0f} s",
    }
    text = render(meta, db_names, configs, results, raw, n, rounds, profiles, syscalls)
    write_report(text, args.output)
    if args.output:
        log(f"wrote {args.output}")
    if args.raw:
        Path(args.raw).write_text(json.dumps({"raw": raw, "profiles": profiles}, indent=1))
    if args.json:
        write_json(args, meta, results, n, rounds)
        log(f"wrote {args.json}")
    failed = any(s["failed"] for db in results.values() for s in db.values())
    return 1 if failed else 0



def write_json(args, meta: dict, results: dict, n: int, rounds: int) -> None:
    """The machine-readable results (``--json``): medians, IQRs, targets and the checked ratios
    (``Benchmarks/harness/results.py``), from which README's and RESULTS.md's tables are generated."""
    import results as results_file  # Benchmarks/harness, on the path above

    plain = {k: v.strip("`") if isinstance(v, str) else v for k, v in meta.items()}
    plain.update(n=n, rounds=rounds, worker=worker_version(WORKER), pinned=bool(args.pin))
    reduced = "" if n >= 500 and rounds >= 5 else (
        f"A reduced run ({n} creates + {n} updates per configuration, {rounds} rounds; the full one is "
        "--n 500 --rounds 5). ")
    about = (reduced + ("Django on CPU 0, the worker and PostgreSQL on CPU 1. " if args.pin else "Unpinned. ")
             + "Rates follow the machine and its load; the checked figures are ratios within this run.")
    summaries = {db: {key: s for key, s in configs.items()
                      if ("@" not in key or key.endswith(results_file.BASELINE_SUFFIX)) and "/" not in key}
                 for db, configs in results.items()}
    bridge = git_at(BASELINE, "rev-parse", "--short", "HEAD") if BASELINE else None
    results_file.write(args.json, results_file.django_save(plain, summaries, about, baseline=bridge))


def load_text(raw: dict) -> str:
    """The 1-minute load average while the configurations ran (other jobs share the machine)."""
    loads = [r["load"] for db in raw.values() for rs in db.values() for r in rs if r.get("load") is not None]
    if not loads:
        return f"load average {os.getloadavg()[0]:.1f} at the end (other jobs share the machine)"
    return (f"1-minute load average during the runs: median {statistics.median(loads):.1f}, "
            f"{min(loads):.1f}–{max(loads):.1f} (2.0 = both cores busy; other jobs share the machine)")


def main() -> int:
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        child_main(json.loads(sys.argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, help="saves per phase (default 300; --quick: 150)")
    parser.add_argument("--rounds", type=int, help="rounds (default 3; --quick: 1)")
    parser.add_argument("--quick", action="store_true", help="a ~1-minute smoke run (no profile runs)")
    parser.add_argument("--postgres-url", help="PostgreSQL server URL (a user that may CREATE DATABASE)")
    parser.add_argument("--output", help="write the Markdown report here too")
    parser.add_argument("--raw", help="write every round's raw results (JSON) here")
    parser.add_argument("--json", help="write the machine-readable results here (medians, IQRs, ratios, targets; "
                                       "Benchmarks/results/django-save.json)")
    parser.add_argument("--only", help="comma-separated configuration keys: " + ", ".join(CONFIG_BY_KEY))
    parser.add_argument("--no-profile", action="store_true", help="skip the extra profile runs")
    parser.add_argument("--syscalls", action="store_true",
                        help="one more run per profiled configuration under `strace -c -f`: system calls per save")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir (worker logs, SQLite files)")
    parser.add_argument("--worker", help=f"the signal-worker binary (default {WORKER.relative_to(ROOT)})")
    parser.add_argument("--baseline", metavar="DIR",
                        help="also run every bridge configuration with DIR/python-bridge's signal_bridge "
                             "(a checkout of the code before a change), interleaved; the report compares them")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                        help="Django on CPU 0, the worker and PostgreSQL on CPU 1 (default; --no-pin: unpinned)")
    parser.add_argument("--worker-arg", action="append", default=[], metavar="ARG",
                        help="pass ARG to every `signal-worker serve` (repeat; e.g. --worker-arg=--max-batch-wait-ms=5)")
    parser.add_argument("--bridge-setting", action="append", default=[], metavar="KEY=JSON",
                        help="set a SIGNAL_BRIDGE key in every bridge configuration (repeat; "
                             "e.g. --bridge-setting ASYNC_INTERVAL_MS=250); a configuration's own keys win")
    args = parser.parse_args()
    WORKER_EXTRA_ARGS.extend(args.worker_arg)
    for item in args.bridge_setting:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--bridge-setting {item!r}: expected KEY=JSON")
        try:
            BRIDGE_EXTRA_SETTINGS[key] = json.loads(value)
        except ValueError:
            BRIDGE_EXTRA_SETTINGS[key] = value  # a bare string
    skip = {"--postgres-url", "--output", "--raw", "--json", "--worker", "--baseline"}
    forwarded, argv = [], sys.argv[1:]
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in skip:
            i += 2
            continue
        if a.split("=", 1)[0] not in skip:
            forwarded.append(a)
        i += 1
    args.forwarded = forwarded
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())

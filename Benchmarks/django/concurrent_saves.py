#!/usr/bin/env python3
"""User.save() throughput of the example project with several Django processes saving at once.

``save_benchmark.py`` times one process saving one user after another: it
shows what each save costs, but a deployed Django runs several processes
(gunicorn's workers) that save at the same time and share the machine's cores
and the database's write lock. This benchmark runs ``--clients`` such
processes side by side, each saving its own users, and reports the saves per
second of all of them together, for: no receiver, the in-process Python
receiver, and the bridge in sync and async mode, with plain autocommit saves
and with one ``transaction.atomic()`` per save, on SQLite (WAL) and
PostgreSQL.

Run it through ``Benchmarks/django/run-concurrent`` (venv, release worker,
throwaway durable PostgreSQL). Per configuration and round:

1. a fresh database (a copy of a migrated template) and, for the bridge, a
   fresh ``signal-worker serve`` with default options;
2. ``--clients`` child processes start Django, warm up off the clock (one
   create and one update of their own warm-up user, delivered) and build
   their ``--n`` unsaved users with ``_profile_data`` set;
3. the parent starts them together; each times its loop of creates (sync:
   every save returns with the profile written; async: the background sender
   is then drained, which is the end-to-end time); the phase's rate is all
   saves over the time from the first client's start to the last client's end;
4. the same for ``--n`` updates per client (instances loaded before the clock);
5. every client checks its users (one profile each with the final values)
   and the bridge's counters (the worker answered created/updated ``--n``
   times each, no error, nothing deferred or dead-lettered); client 0 then
   checks the whole database (every user has exactly one profile, the outbox
   is empty). A configuration with anything wrong in any round is FAILED.

Rounds are interleaved and their order rotates, as in ``save_benchmark.py``,
whose database, worker and report helpers this script reuses.

    concurrent_saves.py [--clients K] [--n N] [--rounds R] [--postgres-url URL]
                        [--only KEY[,KEY...]] [--output PATH]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import save_benchmark as sb  # noqa: E402  (the load, the timed loop, the worker per configuration, the report)
from signal_bench import (  # noqa: E402  (the benchmarks' shared harness; save_benchmark put it on the path)
    EXAMPLE, close_databases, django_env, fmt, git, log, machine, open_databases, postgres_durability, rate, tail,
    worker_metrics, worker_version, write_report,
)

CHILD_TIMEOUT_S = 300.0  # a configuration's processes are killed after this


@dataclasses.dataclass(frozen=True)
class Config:
    key: str
    receiver: str  # none | in_process | bridge
    mode: str | None  # sync | async (bridge only)
    atomic: bool

    @property
    def pattern(self) -> str:
        return "atomic" if self.atomic else "autocommit"

    @property
    def name(self) -> str:
        return self.mode if self.receiver == "bridge" else self.receiver


CONFIGS = [
    Config(f"{name}{'+atomic' if atomic else ''}", receiver, mode, atomic)
    for atomic in (False, True)
    for name, receiver, mode in (("none", "none", None), ("in_process", "in_process", None),
                                 ("sync", "bridge", "sync"), ("async", "bridge", "async"))
]
CONFIG_BY_KEY = {c.key: c for c in CONFIGS}


# --------------------------------------------------------------------------------------------
# The child: one Django process of a configuration


def child_main(spec: dict) -> None:
    client, n, atomic = spec["client"], spec["n"], spec["atomic"]
    sys.path.insert(0, str(EXAMPLE))
    os.environ["DJANGO_SETTINGS_MODULE"] = "exampleproject.settings"
    import django

    django.setup()

    from django.conf import settings
    from django.contrib.auth.models import User

    from accounts.models import UserProfile

    bridge = settings.ACCOUNTS_RECEIVER == "bridge"
    problems: list[str] = []
    if settings.ACCOUNTS_RECEIVER != spec["receiver"]:
        problems.append(f"settings say receiver={settings.ACCOUNTS_RECEIVER}, expected {spec['receiver']}")
    if bridge:
        from signal_bridge import sender, state
        from signal_bridge.models import DeadLetter, OutboxMessage

    def emit(record: dict) -> None:
        print(json.dumps(record), flush=True)

    def wait_for(command: str) -> None:
        line = sys.stdin.readline().strip()
        if line != command:
            raise SystemExit(f"client {client}: expected {command!r} from the parent, got {line!r}")

    def save_all(users) -> dict:
        # CLOCK_MONOTONIC: one clock for every process of the machine.
        start, end, durations = sb.time_saves(users, atomic, clock=time.monotonic)
        if bridge and not sender.flush(sb.WAIT_TIMEOUT_S):  # async: the rest of the delivery
            problems.append(f"the background sender did not drain within {sb.WAIT_TIMEOUT_S:.0f} s")
        return {"start": start, "end": end, "delivered": time.monotonic(),
                "durations_us": [round(d * 1e6) for d in durations]}

    # Warm-up, off the clock: the first connection, imports, the sender thread.
    warm = User(username=f"warmup{client}", password="!")
    warm._profile_data = dict(sb.CREATE_DATA)
    save_all([warm])
    warm = User.objects.get(pk=warm.pk)
    warm._profile_data = dict(sb.UPDATE_DATA)
    save_all([warm])
    if bridge:
        state.reset_stats()

    prefix = f"c{client}u"
    users = []
    for i in range(n):
        user = User(username=f"{prefix}{i:06d}", email=f"{prefix}{i}@example.com", password="!",
                    first_name="Ann", last_name="Bench")
        user._profile_data = dict(sb.CREATE_DATA)
        users.append(user)
    emit({"ready": "create"})
    wait_for("go")
    emit({"phase": "create", **save_all(users)})

    users = list(User.objects.filter(username__startswith=prefix).order_by("pk"))
    for user in users:
        user._profile_data = dict(sb.UPDATE_DATA)
    emit({"ready": "update"})
    wait_for("go")
    emit({"phase": "update", **save_all(users)})

    mine = UserProfile.objects.filter(user__username__startswith=prefix)
    expected = 0 if spec["receiver"] == "none" else n
    good = mine.filter(profile_type="business", sex="M", birthdate=datetime.date(1990, 1, 2)).count()
    if mine.count() != expected or good != expected:
        problems.append(f"client {client}: {mine.count()} profiles, {good} with the final values "
                        f"(expected {expected})")
    stats = {}
    if bridge:
        stats = state.stats()
        for action in ("created", "updated"):
            if stats.get(f"acked.{action}", 0) != n:
                problems.append(f"client {client}: worker answered {action} {stats.get(f'acked.{action}', 0)} "
                                f"times, expected {n}")
        odd = {k: v for k, v in stats.items()
               if k.startswith("errors") or k in ("queue_full", "deferred", "unreachable", "dead_lettered",
                                                    "acked.duplicate", "acked.stale", "acked.skipped")}
        if odd:
            problems.append(f"client {client}: bridge counters {odd}")
    emit({"checked": problems, "stats": stats})

    if client == 0:  # the whole database, once every client is done
        wait_for("final")
        final = []
        users_count, profiles = User.objects.count(), UserProfile.objects.count()
        with_profile = User.objects.filter(profile__isnull=False).count()
        expected_users = spec["clients"] * (n + 1)  # + each client's warm-up user
        expected_profiles = 0 if spec["receiver"] == "none" else expected_users
        if users_count != expected_users or profiles != expected_profiles or with_profile != expected_profiles:
            final.append(f"{users_count} users, {profiles} profiles, {with_profile} users with one "
                         f"(expected {expected_users} users, {expected_profiles} profiles)")
        if bridge:
            rows, dead = OutboxMessage.objects.count(), DeadLetter.objects.count()
            if rows or dead:
                final.append(f"{rows} outbox rows, {dead} dead letters left")
        emit({"final": final})


# --------------------------------------------------------------------------------------------
# The parent: one configuration = one database, one worker, K clients


class _Clients:
    """The child processes of one configuration, read line by line (JSON records)."""

    def __init__(self, env: dict, specs: list[dict], logdir: Path):
        self.procs, self.logs = [], []
        for spec in specs:
            self.logs.append(logdir / f"client-{spec['client']}-{time.monotonic_ns()}.log")
            err = open(self.logs[-1], "wb")
            self.procs.append(subprocess.Popen(
                [sys.executable, __file__, "--child", json.dumps(spec)], env=env, cwd=EXAMPLE,
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True))
            err.close()
        self._watchdog = threading.Timer(CHILD_TIMEOUT_S, self.kill)
        self._watchdog.start()

    def read(self, index: int, key: str) -> dict:
        proc = self.procs[index]
        while True:
            line = proc.stdout.readline()
            if not line:
                proc.wait()
                raise RuntimeError(f"client {index} exited {proc.returncode} before {key!r}: "
                                   f"{tail(self.logs[index], 3)}")
            if line.startswith("{"):
                record = json.loads(line)
                if key in record:
                    return record

    def read_all(self, key: str) -> list[dict]:
        return [self.read(i, key) for i in range(len(self.procs))]

    def tell(self, command: str, indexes=None) -> None:
        for i in indexes if indexes is not None else range(len(self.procs)):
            self.procs[i].stdin.write(command + "\n")
            self.procs[i].stdin.flush()

    def finish(self) -> list[int]:
        self._watchdog.cancel()
        statuses = []
        for proc in self.procs:
            try:
                proc.stdin.close()
                statuses.append(proc.wait(timeout=30))
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                statuses.append(proc.wait())
        return statuses

    def kill(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()


def run_config(db, config: Config, clients: int, n: int, tmp: Path) -> dict:
    """One configuration on a fresh database: its phases' aggregate numbers and any problem."""
    url, handle = db.fresh()
    worker = None
    group = None
    result: dict = {"problems": [], "phases": {}}
    try:
        env = django_env(url)
        env["ACCOUNTS_RECEIVER"] = config.receiver
        if config.receiver == "bridge":
            worker = sb.serve_worker(url, tmp, f"{db.name}-{config.key}")
            env["SIGNAL_BRIDGE_MODE"] = config.mode
            env["SIGNAL_BRIDGE_ENDPOINT"] = worker.bind
        specs = [{"client": i, "clients": clients, "n": n, "receiver": config.receiver, "atomic": config.atomic}
                 for i in range(clients)]
        group = _Clients(env, specs, tmp)
        for phase in sb.PHASES:
            group.read_all("ready")
            group.tell("go")
            records = group.read_all("phase")
            start = min(r["start"] for r in records)
            durations = sorted(d for r in records for d in r["durations_us"])
            pick = lambda q: durations[min(len(durations) - 1, int(q * len(durations)))]
            result["phases"][phase] = {
                "save_s": max(r["end"] for r in records) - start,
                "e2e_s": max(r["delivered"] for r in records) - start if config.mode == "async" else None,
                "p50_us": pick(0.5), "p99_us": pick(0.99),
            }
        for record in group.read_all("checked"):
            result["problems"] += record["checked"]
        group.tell("final", [0])
        result["problems"] += group.read(0, "final")["final"]
        statuses = group.finish()
        if any(statuses):
            result["problems"].append(f"client exit statuses {statuses}")
        if worker is not None:
            result["worker"] = worker_metrics(worker.metrics_port)
            status = worker.stop()
            worker = None
            if status != 0:
                result["problems"].append(f"signal-worker exit status {status} after SIGTERM")
    except Exception as error:  # a broken configuration is reported, not fatal
        result["problems"].append(f"{type(error).__name__}: {error}")
    finally:
        if group is not None:
            group.kill()
            group.finish()
        if worker is not None:
            worker.stop()
        db.drop(handle)
    return result


# --------------------------------------------------------------------------------------------
# Summary and report


def render(meta: dict, dbs: list[str], configs: list[Config], results: dict, clients: int, n: int) -> str:
    out = ["# Django save() with concurrent processes", ""]
    out += [f"- {k}: {v}" for k, v in meta.items()]
    out += ["", "Cells: medians over the rounds; saves per second of all clients together "
                "(all saves of a phase over the time from the first client's start to the last client's end). "
                "*p50 / p99*: one save's time (µs, creates / updates, over every client's saves). "
                "*end to end*: async until the background senders drained (every message acknowledged). "
                "*worker*: messages per transaction (batching of concurrent requests) and µs per request.", ""]
    for db in dbs:
        out += [f"## {db}", "",
                "| configuration | pattern | creates/s | updates/s | end to end (async): creates/s | updates/s "
                "| save p50 µs | save p99 µs | worker msgs/tx, µs/request |",
                "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for c in configs:
            s = results[db][c.key]
            if s["failed"]:
                out.append(f"| {c.name} | {c.pattern} | FAILED | | | | | | |")
                continue
            g = lambda k, d=0: fmt(sb.med(s, k), d)
            tx_per_msg = sb.med(s, "worker.tx_per_msg")
            worker = f"{fmt(1 / tx_per_msg, 1)}, {g('worker.request_us')}" if tx_per_msg else "—"
            out.append(f"| {c.name} | {c.pattern} | {g('create.save')} | {g('update.save')} | {g('create.e2e')} "
                       f"| {g('update.e2e')} | {g('create.p50_us')} / {g('update.p50_us')} "
                       f"| {g('create.p99_us')} / {g('update.p99_us')} | {worker} |")
        out.append("")
    out += ["## Ratios against the targets", "",
            "Medians of this run; *per round*: the ratio within each round (median, range). Targets from issue 5: "
            "async ≥ 80 % of the no-receiver rate; sync faster than the in-process receiver (> 100 %).", ""]
    out += sb.ratio_table(sb.ratio_rows(dbs, results))
    failures = [(db, c, p) for db in dbs for c in configs for p in results[db][c.key]["failed"]]
    if failures:
        out += ["", "## Failed checks", ""] + [f"- {db} {c.key}: {p}" for db, c, p in failures]
    out.append("")
    return "\n".join(out)


def parent_main(args) -> int:
    configs = list(CONFIGS)
    if args.only:
        try:
            configs = [CONFIG_BY_KEY[k] for k in args.only.split(",")]
        except KeyError as error:
            log(f"unknown configuration {error}; known: {', '.join(CONFIG_BY_KEY)}")
            return 2
    if not sb.WORKER.exists():
        log(f"missing {sb.WORKER}: swift build -c release --product signal-worker")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="django-concurrent-bench-"))
    dbs, started = [], time.monotonic()
    total = args.clients * args.n
    try:
        log(f"migrating the template databases (temp dir {tmp}) ...")
        dbs = open_databases(tmp, args.postgres_url, "django_concurrent_bench")
        raw = {db.name: {c.key: [] for c in configs} for db in dbs}
        runs, done = args.rounds * len(dbs) * len(configs), 0
        for r in range(args.rounds):
            shift = r % len(configs)
            for db in dbs:
                for c in configs[shift:] + configs[:shift]:
                    result = run_config(db, c, args.clients, args.n, tmp)
                    raw[db.name][c.key].append(result)
                    done += 1
                    p = result["phases"]
                    status = "ok" if not result["problems"] else "FAILED: " + "; ".join(result["problems"])[:300]
                    log(f"[{done}/{runs} {time.monotonic() - started:4.0f} s] round {r + 1} {db.name:10} "
                           f"{c.key:18} creates {fmt(rate(total, p.get('create', {}).get('save_s'))):>6}/s "
                           f"updates {fmt(rate(total, p.get('update', {}).get('save_s'))):>6}/s  {status}")
        elapsed = time.monotonic() - started
    finally:
        close_databases(dbs)
        shutil.rmtree(tmp, ignore_errors=True)

    names = [db.name for db in dbs]
    results = {db: {c.key: sb.summarize(raw[db][c.key], total) for c in configs} for db in names}
    commit = git("rev-parse", "--short", "HEAD")
    if git("status", "--porcelain", "--", "python-bridge/signal_bridge", "python-bridge/example", "Sources",
              "Benchmarks/django"):
        commit += " + uncommitted changes"
    import django as _django

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine(),
        "commit": commit,
        "command": "`" + " ".join(["Benchmarks/django/run-concurrent", *args.forwarded]) + "`",
        "software": f"Python {platform.python_version()}, Django {_django.get_version()}, {worker_version(sb.WORKER)}",
        "load": f"load average {os.getloadavg()[0]:.1f} at the end (other jobs share the machine)",
        "clients": f"{args.clients} Django processes at once (as gunicorn's workers), each saving its own "
                   f"{args.n} users: {total} creates with `_profile_data = {sb.CREATE_DATA}`, then {total} updates "
                   f"(`{sb.UPDATE_DATA}`) per configuration",
        "SQLite": "WAL, Django `transaction_mode=IMMEDIATE`, busy timeout 20 s, `synchronous` FULL (SQLite's "
                  "default) in Django and the worker",
        "PostgreSQL": (f"`scripts/postgres-throwaway` on the same machine ({postgres_durability(args.postgres_url)})"
                       if args.postgres_url else "not run"),
        "rounds": f"{args.rounds}, interleaved, the order rotated each round; duration {elapsed:.0f} s",
    }
    text = render(meta, names, configs, results, args.clients, args.n)
    write_report(text, args.output)
    if args.output:
        log(f"wrote {args.output}")
    return 1 if any(s["failed"] for db in results.values() for s in db.values()) else 0


def main() -> int:
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        child_main(json.loads(sys.argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=4, help="Django processes saving at once (default 4)")
    parser.add_argument("--n", type=int, default=250, help="saves per client and phase (default 250)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--postgres-url", help="PostgreSQL server URL (a user that may CREATE DATABASE)")
    parser.add_argument("--only", help="comma-separated configuration keys: " + ", ".join(CONFIG_BY_KEY))
    parser.add_argument("--output", help="write the Markdown report here too")
    parser.add_argument("--worker-arg", action="append", default=[], metavar="ARG",
                        help="pass ARG to every `signal-worker serve` (repeat; e.g. --worker-arg=--max-concurrent-batches=1)")
    args = parser.parse_args()
    sb.WORKER_EXTRA_ARGS.extend(args.worker_arg)
    forwarded, argv, i = [], sys.argv[1:], 0
    while i < len(argv):  # the command line as the report shows it: no URL, no output path
        if argv[i] in ("--postgres-url", "--output"):
            i += 2
            continue
        if argv[i].split("=", 1)[0] not in ("--postgres-url", "--output"):
            forwarded.append(argv[i])
        i += 1
    args.forwarded = forwarded
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())

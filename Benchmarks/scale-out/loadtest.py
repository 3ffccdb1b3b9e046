#!/usr/bin/env python3
"""Scale-out load test (issue 9): one broker, 1, 2 and 4 workers on PostgreSQL.

Run it through ``Benchmarks/scale-out/run`` (starts a throwaway durable
PostgreSQL). Phases, each on a fresh database made from a migrated template
(Django's own schema, ``manage.py migrate``):

0. ceilings: pings (answered without store work) to one worker bound directly,
   then through the broker, so the report can tell the driver's own limit and
   the broker hop from the database's;
1. 1 worker, 2. 2 workers, 3. 2 workers with one SIGKILLed mid-run and a new
   one started, 4. 4 workers: ``signal-worker broker`` in front, the workers
   ``serve --connect`` its backend.

The driver is one Python thread with several DEALER sockets to the broker's
frontend. Every user gets a ``created`` then ``--updates`` updates with known
values, one message of a user in flight at a time (a user's next message is
sent after the previous one's reply, as sync-mode ``save()`` does), many users
at once up to ``--window`` messages in flight. Unanswered messages are resent
(same id) after ``--timeout-ms``; ``store_unavailable`` replies are resent
after a short pause. A phase ends after ``--seconds`` or ``--messages``,
whichever comes first, then waits for every message in flight.

After each phase the database is checked: every acknowledged message id in
``signal_worker_applied`` exactly once and no other id, every profile equal to
the state after the user's last acknowledged message, users never sent have
no profile, and no reply other than ``created``/``updated``/``duplicate``
(plus retried ``store_unavailable``). CPU time per process comes from
``/proc/PID/stat``. Exit status 1 if any check failed.

``--via direct`` runs the same phases without the broker: the workers
``serve --bind`` and the driver routes each user with the bridge's
rendezvous hashing (``signal_bridge.transport.endpoint_for``), one DEALER per
worker; the "kill" phase then restarts the killed worker on its endpoint
(a static endpoint list cannot add a new one).
"""

from __future__ import annotations

import argparse
import collections
import datetime
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "harness"))
from signal_bench import (  # noqa: E402  (the benchmarks' shared harness)
    ANY_LOOPBACK_PORT, ANY_PORT, CREATE_DATA, ROOT, PostgresDB, Proc, Raw, cpu_seconds, dealer, free_port, git, log, machine, machine_cpu_seconds, percentile,
    ping as ping_worker, start_worker, uuid7_ids, worker_metrics, write_report,
)

sys.path.insert(0, str(ROOT / "python-bridge"))

# Values per step: step 0 creates (CREATE_DATA), steps 1.. update with every key present, so
# the expected final row is the last acknowledged step's values.


def update_data(step: int) -> dict:
    return {
        "profile_type": ("personal", "business")[step % 2],
        "sex": ("M", "F", "O")[step % 3],
        "birthdate": (datetime.date(1990, 1, 1) + datetime.timedelta(days=step * 37)).isoformat(),
    }


def step_data(step: int) -> dict:
    return CREATE_DATA if step == 0 else update_data(step)


# ------------------------------------------------------------------------------------------
# processes


def find_binary(explicit: str | None) -> Path:
    """The signal-worker to use: ``--binary``, ``$SIGNAL_WORKER_BINARY``, else the first build with ``broker``."""
    candidates = [explicit or os.environ.get("SIGNAL_WORKER_BINARY")] if (explicit or os.environ.get("SIGNAL_WORKER_BINARY")) else [
        str(ROOT / d / c / "signal-worker")
        for c in ("release", "debug")  # any release build first: debug numbers are several times lower
        for d in (".build", ".build-loadtest", ".build-broker")
    ]
    for candidate in filter(None, candidates):
        path = Path(candidate)
        if path.is_file() and os.access(path, os.X_OK):
            if explicit or os.environ.get("SIGNAL_WORKER_BINARY"):
                return path
            # An older binary prints the root help (exit 0) for `broker --help`: look for the option.
            probe = subprocess.run([str(path), "broker", "--help"], capture_output=True, text=True)
            if "--frontend" in probe.stdout:
                return path
    raise SystemExit(
        "loadtest: no signal-worker with a `broker` subcommand in .build{,-loadtest,-broker}/{release,debug}; "
        "build one (swift build -c release --product signal-worker) or pass --binary PATH"
    )


class Cluster:
    """A broker and its workers (``--via broker``), or workers alone (``--via direct``)."""

    def __init__(self, binary: Path, store: str, workdir: Path, via: str, heartbeat_s: float):
        self.binary, self.store, self.workdir, self.via = binary, store, workdir, via
        self.heartbeat_s = heartbeat_s
        self.broker: Proc | None = None
        self.workers: list[Proc] = []
        self.retired: list[Proc] = []
        self.endpoints: list[str] = []  # what the driver connects to
        self.counter = 0
        if via == "broker":
            front, back = free_port(), free_port()
            self.frontend, self.backend = f"tcp://127.0.0.1:{front}", f"tcp://127.0.0.1:{back}"
            self.broker = Proc("broker", [str(binary), "broker", "--frontend", self.frontend, "--backend",
                                          self.backend, "--heartbeat-interval", f"{int(heartbeat_s * 1000)}ms"],
                               workdir / "broker.log")
            self.broker.wait_port(front)
            self.endpoints = [self.frontend]

    def start_worker(self, bind: str | None = None) -> Proc:
        self.counter += 1
        name, logfile = f"worker-{self.counter}", self.workdir / f"worker-{self.counter}.log"
        if self.via == "broker":
            proc = start_worker(self.binary, self.store, logfile, connect=self.backend, heartbeat_s=self.heartbeat_s,
                                metrics_port=ANY_PORT, name=name)
        else:
            proc = start_worker(self.binary, self.store, logfile, bind=bind or ANY_LOOPBACK_PORT, metrics_port=ANY_PORT,
                                name=name)
            bind = proc.bind
        self.workers.append(proc)
        if self.via == "direct" and bind not in self.endpoints:
            self.endpoints.append(bind)
        return proc

    def settle(self) -> None:
        """Wait until every worker serves: the broker logged each one's "worker joined" (or pings answer)."""
        if self.via == "broker":
            self.broker.wait_until(
                lambda: self.broker.logfile.read_text(errors="replace").count("worker joined") >= self.counter,
                f"fewer than {self.counter} workers joined", timeout=10 * self.heartbeat_s + 10)
        else:
            for w in self.workers:
                if not ping_worker(self.binary, w.bind, timeout_ms=2000):
                    raise RuntimeError(f"{w.name} does not answer a ping:\n{w.tail()}")

    def kill_and_replace(self) -> tuple[Proc, Proc]:
        """SIGKILL the first worker and start another (direct: on the killed one's endpoint)."""
        victim = self.workers.pop(0)
        victim.kill()
        self.retired.append(victim)
        return victim, self.start_worker(bind=victim.bind if self.via == "direct" else None)

    def batches(self) -> tuple[int, int]:
        """(transactions, requests) the live workers applied, from their Prometheus endpoints."""
        batches = requests = 0
        for w in self.workers:
            try:
                m = worker_metrics(w.metrics_port)
            except OSError:
                continue
            batches += m["batches"]
            requests += m["requests"]
        return batches, requests

    def cpu(self) -> dict:
        return {"broker": self.broker.cpu() if self.broker else 0.0,
                "workers": sum(w.cpu() for w in self.workers + self.retired)}

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
        if self.broker:
            self.broker.stop()


# ------------------------------------------------------------------------------------------
# the driver


REPLY = re.compile(rb'"id":"([^"]+)".*?"status":"(ok|error)"(?:,"result":\{"action":"(\w+)"|,"error":\{"code":"(\w+)")?')


def message_frame(mid: str, pk: int, step: int) -> bytes:
    data = step_data(step)
    birthdate = "null" if data["birthdate"] is None else f'"{data["birthdate"]}"'
    return (
        f'{{"v":1,"id":"{mid}","seq":{step + 1},"signal":"post_save","sender":"auth.user","db":"default",'
        f'"created":{"true" if step == 0 else "false"},"raw":false,"update_fields":null,'
        f'"sent_at":"2026-11-25T13:00:00.000000Z","instance":{{"model":"auth.user","pk":{pk},'
        f'"fields":{{"username":"bench{pk}"}}}},"attrs":{{"_profile_data":{{"profile_type":"{data["profile_type"]}",'
        f'"sex":"{data["sex"]}","birthdate":{birthdate}}}}}}}'
    ).encode()


class Result:
    def __init__(self):
        self.acked = 0
        self.latencies: list[float] = []
        self.actions: collections.Counter = collections.Counter()
        self.problems: list[str] = []
        self.resends = 0
        self.retried_unavailable = 0
        self.elapsed = 0.0
        self.events: list[str] = []
        self.driver_cpu = 0.0


class IdSource:
    """Time-ordered (UUIDv7 layout) message ids, made in chunks outside the send loop's hot path."""

    def __init__(self, chunk: int = 20_000):
        self.chunk = chunk
        self.ids: list[str] = []
        self.pos = 0

    def next(self) -> str:
        if self.pos >= len(self.ids):
            self.ids, self.pos = uuid7_ids(self.chunk), 0
        self.pos += 1
        return self.ids[self.pos - 1]


def drive(sockets_for, all_sockets, users: list[int], steps: int, *, window: int, seconds: float,
          max_messages: int, timeout_s: float, ping: bool = False, events=(),
          drain_s: float = 120.0) -> tuple[Result, list[int], set]:
    """Run one phase; returns the result, steps acknowledged per user, and acknowledged ids.

    ``sockets_for(i)`` is the DEALER socket of user index ``i`` (one user is
    always sent through the same socket, so the broker sees its messages in
    order). ``events``: ``(fraction of the phase, callable)`` run once each, when
    ``max(elapsed / seconds, sent / max_messages)`` reaches the fraction.
    """
    import zmq

    n_users = len(users)
    ids = IdSource()
    done_steps = [0] * n_users
    ready = collections.deque(range(n_users))
    inflight: dict[str, list] = {}  # id -> [user index, step, first sent, last sent, frame]
    acked_ids: set = set()
    retry_at: collections.deque = collections.deque()  # (time, id) of store_unavailable replies
    res = Result()
    poller = zmq.Poller()
    for s in all_sockets:
        poller.register(s, zmq.POLLIN)
    pending_events = sorted(events, key=lambda e: e[0])
    sent = 0
    cpu0 = cpu_seconds(os.getpid())
    t0 = time.perf_counter()
    t_end = t0 + seconds
    last_scan = t0
    stopping = False
    ping_frame_ids: list[str] = []
    while True:
        now = time.perf_counter()
        while pending_events and not stopping and max((now - t0) / seconds, sent / max_messages) >= pending_events[0][0]:
            res.events.append(f"t={now - t0:.1f} s, {sent:,} sent: " + pending_events.pop(0)[1]())
        if not stopping and (now >= t_end or sent >= max_messages):
            stopping = True
            t_drain = now + drain_s
        if stopping and not inflight:
            break
        if stopping and now > t_drain:
            res.problems.append(f"{len(inflight)} messages still unanswered {drain_s:.0f} s after the phase ended")
            break
        while not stopping and len(inflight) < window and ready and sent < max_messages:
            i = ready.popleft()
            step = done_steps[i]
            mid = ids.next()
            frame = (b'{"v":1,"id":"%s","type":"ping"}' % mid.encode()) if ping else message_frame(mid, users[i], step)
            sockets_for(i).send(frame)
            inflight[mid] = [i, step, now, now, frame]
            sent += 1
        while retry_at and retry_at[0][0] <= now:
            _, mid = retry_at.popleft()
            entry = inflight.get(mid)
            if entry is not None:
                sockets_for(entry[0]).send(entry[4])
                entry[3] = now
        if now - last_scan >= min(0.25, timeout_s / 4):
            last_scan = now
            for mid, entry in inflight.items():
                if now - entry[3] >= timeout_s:
                    sockets_for(entry[0]).send(entry[4])
                    entry[3] = now
                    res.resends += 1
        for sock, _ in poller.poll(20):
            while True:
                try:
                    raw = sock.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                m = REPLY.search(raw)
                if m is None:
                    res.problems.append(f"unparsable reply: {raw[:200]!r}")
                    continue
                mid = m.group(1).decode()
                entry = inflight.get(mid)
                if entry is None:
                    continue  # a reply to a resend that was already answered
                status, action, code = m.group(2), m.group(3), m.group(4)
                if status == b"error" and code == b"store_unavailable":
                    res.retried_unavailable += 1
                    retry_at.append((time.perf_counter() + 0.1, mid))
                    continue
                t = time.perf_counter()
                del inflight[mid]
                i, step = entry[0], entry[1]
                name = (action or code or b"?").decode() if status == b"ok" else f"error:{(code or b'?').decode()}"
                res.actions[name] += 1
                expected = ("pong",) if ping else (("created",) if step == 0 else ("updated",))
                if name in expected or name == "duplicate":
                    res.acked += 1
                    res.latencies.append(t - entry[2])
                    acked_ids.add(mid)
                    done_steps[i] = step + 1
                    if not ping and step + 1 < steps and not stopping:
                        ready.append(i)
                    elif ping and not stopping:
                        ready.append(i)
                else:
                    if len(res.problems) < 10:
                        res.problems.append(f"user {users[i]} step {step}: {raw[:300].decode(errors='replace')}")
                    res.actions["unexpected"] += 1
    res.elapsed = time.perf_counter() - t0  # sending plus the drain of what was in flight
    res.driver_cpu = cpu_seconds(os.getpid()) - cpu0
    return res, done_steps, acked_ids


def verify(raw: Raw, users: list[int], done_steps: list[int], acked_ids: set) -> list[str]:
    """The database after a phase: applied ids and every profile row."""
    problems = []
    applied = raw.q("SELECT message_id, count(*) FROM signal_worker_applied GROUP BY message_id")
    twice = [mid for mid, c in applied if c != 1]
    applied_ids = {mid for mid, _ in applied}
    if twice:
        problems.append(f"{len(twice)} ids in signal_worker_applied more than once")
    missing = acked_ids - applied_ids
    extra = applied_ids - acked_ids
    if missing:
        problems.append(f"{len(missing)} acknowledged ids not in signal_worker_applied (e.g. {sorted(missing)[:2]})")
    if extra:
        problems.append(f"{len(extra)} ids applied but never acknowledged (e.g. {sorted(extra)[:2]})")
    rows = {r[0]: (r[1], r[2], r[3].isoformat() if r[3] else None)
            for r in raw.q("SELECT user_id, profile_type, sex, birthdate FROM accounts_userprofile")}
    wrong = 0
    examples = []
    for pk, done in zip(users, done_steps):
        if done == 0:
            ok = pk not in rows
            want = None
        else:
            d = step_data(done - 1)
            want = (d["profile_type"], d["sex"], d["birthdate"])
            ok = rows.get(pk) == want
        if not ok:
            wrong += 1
            if len(examples) < 3:
                examples.append(f"user {pk}: {rows.get(pk)} != {want}")
    if wrong:
        problems.append(f"{wrong} profiles differ from the expected final state: " + "; ".join(examples))
    return problems


# ------------------------------------------------------------------------------------------
# phases


def run_phase(args, binary, db, workdir: Path, name: str, n_workers: int, kill: bool, postmaster: int) -> dict:
    import zmq

    url, handle = db.fresh()
    raw = Raw(db, url, handle)
    phase_dir = workdir / name.replace(" ", "-")
    phase_dir.mkdir()
    cluster = None
    ctx = zmq.Context.instance()
    socks = []
    try:
        n_users = max(1, min(args.users, args.messages // args.steps + 1))
        log(f"[{name}] creating {n_users} users")
        users = raw.create_users(n_users)
        cluster = Cluster(binary, url, phase_dir, args.via, args.heartbeat_s)
        for _ in range(n_workers):
            cluster.start_worker()
        cluster.settle()

        def connect(endpoint):
            socks.append(dealer(ctx, endpoint))
            return socks[-1]

        if args.via == "broker":
            pool = [connect(cluster.frontend) for _ in range(args.sockets)]
            sockets_for = lambda i: pool[i % len(pool)]  # noqa: E731
        else:
            from signal_bridge.transport import endpoint_for

            by_endpoint = {e: connect(e) for e in cluster.endpoints}
            endpoints = tuple(cluster.endpoints)
            route = [by_endpoint[endpoint_for(f"auth.user|{pk}", endpoints)] for pk in users]
            sockets_for = route.__getitem__
        events = []
        if kill:
            def kill_one():
                victim, new = cluster.kill_and_replace()
                return f"SIGKILL {victim.name}, started {new.name}" + (" on its endpoint" if args.via == "direct" else "")
            events.append((0.4, kill_one))
        cpu0 = {**cluster.cpu(), "postgres": db.server_cpu_seconds(postmaster)}
        machine0 = machine_cpu_seconds()
        log(f"[{name}] driving for up to {args.seconds:.0f} s ({n_workers} worker(s), via {args.via})")
        res, done, acked = drive(sockets_for, socks, users, args.steps, window=args.window, seconds=args.seconds,
                                 max_messages=args.messages, timeout_s=args.timeout_ms / 1000, events=events)
        cpu1 = {**cluster.cpu(), "postgres": db.server_cpu_seconds(postmaster)}
        machine1 = machine_cpu_seconds()
        if kill and cluster.broker:
            res.events += [broker_event(line) for line in cluster.broker.logfile.read_text(errors="replace").splitlines()
                           if "worker left" in line or "worker joined" in line][n_workers:]
        wall = res.elapsed
        batches, requests = cluster.batches()
        problems = list(res.problems)
        if kill and not p_killed(res):
            problems.append("the worker kill never happened (the phase ended first)")
        problems += verify(raw, users, done, acked)
        return {
            "name": name, "workers": n_workers, "kill": kill, "rate": res.acked / wall if wall else 0.0,
            "acked": res.acked, "seconds": wall, "p50": percentile(res.latencies, 50, "nearest"), "p99": percentile(res.latencies, 99, "nearest"),
            "resends": res.resends, "unavailable": res.retried_unavailable, "actions": dict(res.actions),
            "events": res.events, "problems": problems, "killed": sum("SIGKILL" in e for e in res.events),
            "cpu": {"driver": res.driver_cpu / wall * 100,
                    **{k: (cpu1[k] - cpu0[k]) / wall * 100 for k in ("broker", "workers", "postgres")}},
            "machine": {k: (machine1[k] - machine0[k]) / wall * 100 for k in machine0},
            "window": args.window, "mean_batch": requests / batches if batches else None,
            "commits_per_s": batches / wall if wall and not kill else None,
        }
    finally:
        for s in socks:
            s.close(linger=0)
        if cluster:
            cluster.stop()
        raw.close()
        db.drop(handle)


def broker_event(line: str) -> str:
    """A broker log line about membership, short: ``broker: worker left (reason=..., live_workers=2)``."""
    what = "worker joined" if "worker joined" in line else "worker left"
    details = ", ".join(re.findall(r"\b(reason=\S+|live_workers=\d+)", line))
    return f"broker: {what}" + (f" ({details})" if details else "")


def p_killed(res) -> bool:
    return any("SIGKILL" in e for e in res.events)


def run_ceiling(args, binary, workdir: Path, db, via: str) -> dict:
    """Pings (no store work): the driver's own limit against one worker bound directly, or
    through the broker to one worker (the driver plus the broker hop)."""
    import zmq

    url, handle = db.fresh()
    phase_dir = workdir / f"ceiling-{via}"
    phase_dir.mkdir()
    cluster = Cluster(binary, url, phase_dir, via, args.heartbeat_s)
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    try:
        w = cluster.start_worker()
        cluster.settle()
        s.connect(cluster.frontend if via == "broker" else w.bind)
        users = list(range(1, args.window + 1))
        seconds = max(2.0, args.seconds / 3)
        log(f"[ceiling, {via}] pings for {seconds:.0f} s")
        cpu0, own0 = cluster.cpu(), w.cpu()
        res, _, _ = drive(lambda i: s, [s], users, 10**9, window=args.window, seconds=seconds, max_messages=10**9,
                          timeout_s=args.timeout_ms / 1000, ping=True)
        cpu1 = cluster.cpu()
        return {"via": via, "rate": res.acked / res.elapsed, "driver_cpu": res.driver_cpu / res.elapsed * 100,
                "worker_cpu": (w.cpu() - own0) / res.elapsed * 100,
                "broker_cpu": (cpu1["broker"] - cpu0["broker"]) / res.elapsed * 100,
                "p50": percentile(res.latencies, 50, "nearest"), "p99": percentile(res.latencies, 99, "nearest"), "problems": res.problems}
    finally:
        s.close(linger=0)
        cluster.stop()
        db.drop(handle)


# ------------------------------------------------------------------------------------------
# report


def ms(x):
    return "–" if x is None else f"{x * 1000:.1f}"


def per_cpu(p: dict) -> float:
    """Messages per CPU-second of the processes under test (driver, broker, workers, PostgreSQL)."""
    used = sum(p["cpu"].values()) / 100
    return p["rate"] / used if used else 0.0


def representative(phases: list[dict]) -> list[dict]:
    """One row per phase kind (workers, kill): its median-rate round, marked incorrect if any round was."""
    kinds: dict = {}
    for p in phases:
        kinds.setdefault((p["workers"], p["kill"]), []).append(p)
    rows = []
    for group in kinds.values():
        chosen = dict(sorted(group, key=lambda p: p["rate"])[(len(group) - 1) // 2])
        chosen["problems"] = [problem for p in group for problem in p["problems"]]
        chosen["rounds"] = len(group)
        rows.append(chosen)
    return rows


def render(args, binary, phases, ceilings, started, total_s, every_round=None) -> str:
    ceiling = ceilings[0] if ceilings else None
    base = next((p["rate"] for p in phases if p["workers"] == 1 and not p["kill"]), None)
    lines = [
        "# Scale-out load test (issue 9)",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; commit `{git('rev-parse', '--short', 'HEAD')}`"
        + (" (uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""),
        f"- machine: {machine().split(';')[0]}; PostgreSQL, the broker, the workers and the driver all run on it",
        f"- binary: `{binary.relative_to(ROOT) if binary.is_relative_to(ROOT) else binary}`"
        f" ({'release' if '/release/' in str(binary) else 'debug (unoptimized: slower than production)'})",
        f"- command: `{args.command}`; total {total_s:.0f} s",
        f"- load: {args.steps} messages per user (1 create + {args.steps - 1} updates), one in flight per user, "
        f"window {args.window}, {args.sockets if args.via == 'broker' else 'one per worker'} DEALER socket(s), "
        f"via {'`signal-worker broker`' if args.via == 'broker' else 'direct endpoints (shim routing, no broker)'}; "
        f"each phase ≤ {args.seconds:.0f} s or {args.messages:,} messages; durable PostgreSQL (fsync on)",
        "",
        "| workers | msgs/s | vs 1 worker | p50 ms | p99 ms | killed/added | resends | store_unavailable retried | mean batch | msgs per CPU-second | correct |",
        "| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for p in phases:
        ratio = f"{p['rate'] / base:.2f}×" if base else "–"
        batch = "–" if p["mean_batch"] is None else f"{p['mean_batch']:.0f}"
        ka = (f"{p['killed']} / {p['killed']}" + (" (restarted)" if args.via == "direct" else "")) if p["kill"] else "–"
        lines.append(f"| {p['workers']} | {p['rate']:,.0f} | {ratio} | {ms(p['p50'])} | {ms(p['p99'])} | {ka} | "
                     f"{p['resends']} | {p['unavailable']} | {batch} | {per_cpu(p):,.0f} | "
                     f"{'yes' if not p['problems'] else '**NO**'} |")
    lines += ["", "msgs per CPU-second: messages per second of CPU used by the driver, the broker, the workers and "
              "PostgreSQL together (other processes on the machine excluded): what one message costs, whatever "
              "else ran meanwhile."]
    if every_round and args.rounds > 1:
        lines += ["", f"{args.rounds} rounds, phases interleaved; the rows above are each phase's median round (of an even count, the slower middle one). "
                  "Every round:", "", "| round | workers | msgs/s | msgs per CPU-second | other processes | correct |",
                  "| ---: | ---: | ---: | ---: | ---: | --- |"]
        for p in every_round:
            other = max(0.0, p["machine"]["busy"] - sum(p["cpu"].values()))
            lines.append(f"| {p['round']} | {p['workers']}{' (kill)' if p['kill'] else ''} | {p['rate']:,.0f} | "
                         f"{per_cpu(p):,.0f} | {other:.0f}% | {'yes' if not p['problems'] else '**NO**'} |")
    lines += ["", "CPU per process during each phase (% of one core; the machine has "
              f"{os.cpu_count()} cores = {os.cpu_count() * 100}%):", "",
              "| workers | driver | broker | workers (sum) | PostgreSQL | these together | whole machine | other processes | idle | iowait |",
              "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for p in phases:
        c, m = p["cpu"], p["machine"]
        total = sum(c.values())
        lines.append(f"| {p['workers']}{' (kill)' if p['kill'] else ''} | {c['driver']:.0f}% | {c['broker']:.0f}% | "
                     f"{c['workers']:.0f}% | {c['postgres']:.0f}% | {total:.0f}% | {m['busy']:.0f}% | "
                     f"{max(0.0, m['busy'] - total):.0f}% | {m['idle']:.0f}% | {m['iowait']:.0f}% |")
    if ceilings:
        lines += ["", "Ceilings without the database (pings, answered by the worker without touching the store; "
                  f"window {args.window}):", "",
                  "| path | pings/s | driver CPU | broker CPU | worker CPU | p50 ms | p99 ms |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for c in ceilings:
            path = "driver → worker (`--bind`)" if c["via"] == "direct" else "driver → broker → worker (`--connect`)"
            lines.append(f"| {path} | {c['rate']:,.0f} | {c['driver_cpu']:.0f}% | {c['broker_cpu']:.0f}% | "
                         f"{c['worker_cpu']:.0f}% | {ms(c['p50'])} | {ms(c['p99'])} |")
    lines += ["", "## Reading", ""] + conclusions(phases, ceiling, base)
    for p in phases:
        if p["events"]:
            lines.append(f"- {p['workers']} workers with a kill: " + "; ".join(p["events"]) + ".")
        if p["problems"]:
            lines.append(f"- **{p['workers']} workers{' (kill)' if p['kill'] else ''}: FAILED** — " + "; ".join(p["problems"][:5]))
        lines.append(f"- replies, {p['workers']} workers{' (kill)' if p['kill'] else ''}: "
                     + ", ".join(f"{k} {v:,}" for k, v in sorted(p["actions"].items())))
    return "\n".join(lines) + "\n"


def conclusions(phases, ceiling, base) -> list[str]:
    """Plain sentences: the target, and for each phase what limited it (from the CPU figures)."""
    out = []
    cores = os.cpu_count() or 1
    two = next((p for p in phases if p["workers"] == 2 and not p["kill"]), None)
    if base and two:
        ratio = two["rate"] / base
        verdict = "reached" if ratio >= 1.6 else "not reached"
        out.append(f"- Target of issue 9 (2 workers ≥ 1.6× one worker's throughput): **{verdict}** on this "
                   f"machine, measured {ratio:.2f}× ({two['rate']:,.0f} vs {base:,.0f} msgs/s).")
    if ceiling:
        out.append(f"- The driver alone reaches {ceiling['rate']:,.0f} round trips/s (pings, "
                   f"{ceiling['driver_cpu']:.0f}% of a core); the phases below stay under "
                   f"{max(p['rate'] for p in phases) / ceiling['rate'] * 100:.0f}% of that, so the driver is not "
                   "what limits them." if phases and max(p["rate"] for p in phases) < 0.8 * ceiling["rate"] else
                   f"- The driver alone reaches {ceiling['rate']:,.0f} round trips/s; some phases come close to it, "
                   "so the driver may be part of the limit there.")
    for p in phases:
        c, m = p["cpu"], p["machine"]
        label = f"{p['workers']} worker(s){' with a kill' if p['kill'] else ''}"
        top = max(("driver", "broker", "workers", "postgres"), key=lambda k: c[k])
        parts = [f"largest CPU user: {top} ({c[top]:.0f}%)"]
        if m["busy"] >= 0.85 * cores * 100:
            parts.append(f"the machine is saturated ({m['busy']:.0f}% of {cores * 100}%): CPU-bound")
        else:
            in_system = p["window"] / p["rate"] if p["rate"] else 0
            parts.append(f"the machine is not saturated ({m['busy']:.0f}% of {cores * 100}%, iowait "
                         f"{m['iowait']:.0f}%): with {p['window']} messages in flight the rate is bounded by the "
                         f"round trip ({in_system * 1000:.0f} ms per message on average), not by CPU")
        if c["driver"] >= 85:
            parts.append(f"the driver (one Python thread) uses {c['driver']:.0f}% of a core: driver-bound")
        other = m["busy"] - sum(c.values())
        if other >= 15:
            parts.append(f"other processes on the machine used {other:.0f}% of a core meanwhile")
        out.append(f"- {label}: " + "; ".join(parts) + ".")
    batched = [p for p in phases if p["mean_batch"] and not p["kill"]]
    if len(batched) >= 2:
        out.append("- Mean batch (requests per transaction, summed over the live workers): "
                   + ", ".join(f"{p['workers']} worker(s) {p['mean_batch']:.0f}" for p in batched)
                   + ". The same load split over more workers makes smaller batches, so more commits per message; "
                   "msgs per CPU-second: " + ", ".join(f"{p['workers']} worker(s) {per_cpu(p):,.0f}" for p in batched)
                   + ". On a machine whose cores are all busy, throughput follows that cost per message.")
    if cores <= 2:
        out.append(f"- With {cores} cores shared by PostgreSQL, the broker, the workers and the driver, extra workers "
                   "compete for the same cores and the same disk: the measured ratio says what this machine can do, "
                   "not what workers on their own cores (and PostgreSQL on its own host) would do.")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres-url", required=True,
                        help="PostgreSQL server URL (Benchmarks/scale-out/run passes its throwaway server's)")
    parser.add_argument("--binary", help="signal-worker with `broker` (default: the first of .build{,-loadtest,-broker}/"
                                          "release, then .../debug, that has it)")
    parser.add_argument("--quick", action="store_true", help="short phases (CI): ~3 s each")
    parser.add_argument("--seconds", type=float, help="bound on each phase (default 30; --quick 3)")
    parser.add_argument("--messages", type=int, help="most messages per phase (default 750,000; --quick 60,000)")
    parser.add_argument("--users", type=int, help="users per phase (default: messages / steps)")
    parser.add_argument("--steps", type=int, default=5, help="messages per user: 1 create + steps-1 updates (default 5)")
    parser.add_argument("--window", type=int, help="messages in flight (default 2000; --quick 1000)")
    parser.add_argument("--sockets", type=int, default=4, help="DEALER sockets to the broker (default 4)")
    parser.add_argument("--timeout-ms", type=int, help="resend an unanswered message after this (default 3000; --quick 1500)")
    parser.add_argument("--heartbeat-s", type=float, default=1.0, help="broker --heartbeat-interval in seconds (default 1)")
    parser.add_argument("--via", choices=("broker", "direct"), default="broker")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the phases this many times, interleaved; the table shows each phase's median "
                             "round (other load on the machine varies; default 1)")
    parser.add_argument("--workers", default="1,2,2k,4", help="phases: worker counts, 'k' = kill one mid-run (default 1,2,2k,4)")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the driver-ceiling (ping) phase")
    parser.add_argument("--output", default=str(ROOT / "Benchmarks" / "results" / "scale-out.md"))
    parser.add_argument("--command", default="Benchmarks/scale-out/run")
    args = parser.parse_args()
    args.seconds = args.seconds or (3.0 if args.quick else 30.0)
    args.messages = args.messages or (60_000 if args.quick else 750_000)
    args.window = args.window or (1000 if args.quick else 2000)
    args.timeout_ms = args.timeout_ms or (1500 if args.quick else 3000)
    args.users = args.users or max(1, args.messages // args.steps)
    if args.steps < 1 or args.window < 1 or args.sockets < 1:
        parser.error("--steps, --window and --sockets must be >= 1")

    binary = find_binary(args.binary)
    log(f"loadtest: {binary}")
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix="scale-out."))
    log("loadtest: migrating a template database (manage.py migrate)")
    db = PostgresDB(args.postgres_url, "scale_out_bench")
    postmaster = db.postmaster()
    phases = []
    ceiling = None
    ceilings = []
    try:
        if not args.no_ceiling:
            ceilings = [run_ceiling(args, binary, workdir, db, "direct")]
            if args.via == "broker":
                ceilings.append(run_ceiling(args, binary, workdir, db, "broker"))
            ceiling = ceilings[0]
            for c in ceilings:
                log(f"[ceiling, {c['via']}] {c['rate']:,.0f} pings/s, driver {c['driver_cpu']:.0f}%, "
                    f"broker {c['broker_cpu']:.0f}%, worker {c['worker_cpu']:.0f}%")
        for round_no in range(1, args.rounds + 1):
            for spec in args.workers.split(","):
                kill = spec.endswith("k")
                n = int(spec.rstrip("k"))
                name = f"{n} workers{' kill' if kill else ''}" + (f" round {round_no}" if args.rounds > 1 else "")
                p = run_phase(args, binary, db, workdir, name, n, kill, postmaster)
                p["round"] = round_no
                log(f"[{name}] {p['rate']:,.0f} msgs/s, p50 {ms(p['p50'])} ms, p99 {ms(p['p99'])} ms, "
                    f"cpu {', '.join(f'{k} {v:.0f}%' for k, v in p['cpu'].items())}, "
                    f"{'correct' if not p['problems'] else 'FAILED: ' + '; '.join(p['problems'][:3])}")
                phases.append(p)
    finally:
        try:
            db.close()
        except Exception as error:  # noqa: BLE001 - cleanup must not hide the result
            log(f"loadtest: dropping the template failed: {error}")
    report = render(args, binary, representative(phases), ceilings, started, time.monotonic() - t0, phases)
    write_report(report, args.output)
    log(f"loadtest: wrote {args.output}; logs in {workdir}")
    failed = [p for p in phases if p["problems"]] or [c for c in ceilings if c["problems"]]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

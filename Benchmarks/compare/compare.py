#!/usr/bin/env python3
"""Comparison benchmark (issue 7): the Swift worker against what a Django team would pick.

Run it through ``Benchmarks/compare/run`` (installs Redis/Celery/matplotlib,
starts Redis and a throwaway durable PostgreSQL). Sections:

1. worker side: profiles/s end to end for the same N creates on the same
   database, Swift signal-worker vs a Celery worker (prefork, 2 processes,
   Redis broker, the Python receiver through the ORM) vs a plain pyzmq Python
   worker; the same pipelined DEALER client drives the Swift and the pyzmq
   worker;
2. the limit: raw batched database rate (store-benchmark, same server, same run)
   and libzmq (results/zeromq.md);
3. Django side: Benchmarks/django/save_benchmark.py (quick) plus a Celery row
   (on_commit + delay);
4. latency: sync round trip save() -> user.profile readable vs the in-process receiver;
5. memory: peak RSS (VmHWM) of the workers.

Every configuration checks its rows before its number counts; wrong rows: FAILED.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "harness"))
from signal_bench import (  # noqa: E402  (the benchmarks' shared harness)
    ANY_LOOPBACK_PORT, ANY_PORT, CREATE_DATA, RELEASE_WORKER as WORKER, ROOT, Proc, Raw, children, close_databases, dealer, django_env, fmt, free_port, git,
    log, machine, median as med, open_databases, percentile, postgres_durability, rate, start_worker, uuid7_ids,
    vmhwm_kb, worker_version, write_report,
)

PY = sys.executable
CELERY = str(Path(PY).parent / "celery")
STORE_BENCH = ROOT / ".build" / "release" / "store-benchmark"
WAIT_S = 300.0


# ------------------------------------------------------------------------------------------
# database helpers (raw SQL: the orchestrator does not run Django on the benchmark databases)


def verify(raw, n):
    """None if the N profiles are all there with the expected values, else what is wrong."""
    total, good = raw.q(
        "SELECT count(*), coalesce(sum(CASE WHEN profile_type = 'business' AND sex = 'F' "
        "AND birthdate = '1990-01-02' THEN 1 ELSE 0 END), 0) FROM accounts_userprofile")[0]
    missing = raw.q("SELECT count(*) FROM auth_user u WHERE NOT EXISTS "
                    "(SELECT 1 FROM accounts_userprofile p WHERE p.user_id = u.id)")[0][0]
    if total != n or good != n or missing:
        return f"{total} profiles, {good} with the expected values, {missing} users without one (N={n})"
    return None


# ------------------------------------------------------------------------------------------
# processes


def start_celery(url, redis_url, logfile, persistent=False):
    env = django_env(url)
    env.update(ACCOUNTS_RECEIVER="none", COMPARE_REDIS_URL=redis_url, PYTHONPATH=str(HERE))
    if persistent:
        env["COMPARE_CONN_MAX_AGE"] = "none"
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    proc = Proc("celery", [CELERY, "-A", "celery_app", "worker", "--concurrency", "2", "--pool", "prefork",
                           "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                logfile, env=env, cwd=HERE)
    # the two prefork children exist once the worker says ready
    proc.wait_until(lambda: " ready." in logfile.read_text(errors="replace"), "not ready", timeout=60)
    return proc


def celery_rss_kb(proc):
    pids = [proc.pid] + children(proc.pid)
    return sum(vmhwm_kb(p) for p in pids), len(pids)


# ------------------------------------------------------------------------------------------
# the pipelined DEALER client (the Swift worker and the pyzmq worker)


def create_frames(user_ids):
    ids = uuid7_ids(len(user_ids))
    frames = []
    for seq, (mid, uid) in enumerate(zip(ids, user_ids), 1):
        msg = {"v": 1, "id": mid, "seq": seq, "signal": "post_save", "sender": "auth.user", "db": "default",
               "created": True, "raw": False, "update_fields": None, "sent_at": "2026-11-25T13:00:00.123456Z",
               "instance": {"model": "auth.user", "pk": uid,
                            "fields": {"username": f"bench{uid}", "email": f"bench{uid}@example.com",
                                       "first_name": "Ann", "last_name": "Example", "is_active": True}},
               "attrs": {"_profile_data": CREATE_DATA}}
        frames.append(json.dumps(msg, separators=(",", ":")).encode())
    return frames


def drive(endpoint, frames, window=1000, timeout_s=WAIT_S):
    import zmq

    s = dealer(zmq.Context.instance(), endpoint)
    n = len(frames)
    sent = received = 0
    bad = []
    actions = {}
    t0 = time.perf_counter()
    try:
        while received < n:
            while sent < n and sent - received < window:
                s.send(frames[sent])
                sent += 1
            if not s.poll(int(timeout_s * 1000), zmq.POLLIN):
                bad.append(f"no reply within {timeout_s:.0f} s ({received}/{n} received)")
                break
            while True:
                try:
                    r = s.recv(zmq.NOBLOCK)
                except zmq.Again:
                    break
                received += 1
                if b'"status":"ok","result":{"action":"created"}' in r:  # signal-worker's and pyzmq_worker's form
                    actions["created"] = actions.get("created", 0) + 1
                    continue
                reply = json.loads(r)
                if reply.get("status") != "ok":
                    if len(bad) < 3:
                        bad.append(r.decode(errors="replace")[:300])
                    actions["error"] = actions.get("error", 0) + 1
                else:
                    a = reply.get("result", {}).get("action")
                    actions[a] = actions.get(a, 0) + 1
    finally:
        s.close()
    return t0, time.perf_counter(), actions, bad


def wait_rows(raw, n, start, timeout_s=WAIT_S):
    deadline = start + timeout_s
    while True:
        c = raw.count_profiles()
        now = time.perf_counter()
        if c >= n:
            return now
        if now > deadline:
            return None
        time.sleep(0.02)


# ------------------------------------------------------------------------------------------
# 1. worker side


def run_worker_config(db, kind, n, tmp, redis_url):
    url, handle = db.fresh()
    raw = Raw(db, url, handle)
    res = {"kind": kind, "db": db.name, "n": n, "problems": []}
    proc = None
    try:
        user_ids = raw.create_users(n)
        if len(user_ids) != n:
            res["problems"].append(f"{len(user_ids)} users pre-created, expected {n}")
        logfile = tmp / f"{kind}-{db.name}-{time.monotonic_ns()}.log"
        if kind in ("swift", "pyzmq"):
            if kind == "swift":
                proc = start_worker(WORKER, url, logfile, bind=ANY_LOOPBACK_PORT, metrics_port=ANY_PORT)
                endpoint = proc.bind
            else:
                port = free_port()
                endpoint = f"tcp://127.0.0.1:{port}"
                proc = Proc("pyzmq worker", [PY, str(HERE / "pyzmq_worker.py"), "--bind", endpoint], logfile,
                            env=django_env(url))
                proc.wait_port(port)
            frames = create_frames(user_ids)
            t0, t_reply, actions, bad = drive(endpoint, frames)
            res["problems"] += bad
            res["actions"] = actions
            if actions.get("created", 0) != n:
                res["problems"].append(f"replies: {actions}, expected created x {n}")
            t_end = wait_rows(raw, n, t0)
            res["reply_s"] = t_reply - t0
            res["rss_kb"] = vmhwm_kb(proc.pid)
            res["procs"] = 1
        else:
            proc = start_celery(url, redis_url, logfile, persistent=kind == "celery-tuned")
            from celery import Celery

            client = Celery("compare-client", broker=redis_url)
            client.conf.task_ignore_result = True
            t0 = time.perf_counter()
            for uid in user_ids:
                client.send_task("compare.apply_profile", args=[uid, True, CREATE_DATA])
            res["enqueue_s"] = time.perf_counter() - t0
            t_end = wait_rows(raw, n, t0)
            res["rss_kb"], res["procs"] = celery_rss_kb(proc)
        if t_end is None:
            res["problems"].append(f"profiles not all visible within {WAIT_S:.0f} s ({raw.count_profiles()}/{n})")
        else:
            res["e2e_s"] = t_end - t0
            res["rate"] = n / res["e2e_s"]
        rc = proc.stop(timeout=30)
        proc = None
        if kind == "swift" and rc != 0:
            res["problems"].append(f"signal-worker exit status {rc} after SIGTERM")
        time.sleep(0.2)
        problem = verify(raw, n)
        if problem:
            res["problems"].append(problem)
    except Exception as error:  # noqa: BLE001
        res["problems"].append(f"{type(error).__name__}: {error}")
    finally:
        if proc is not None:
            proc.kill()
        raw.close()
        db.drop(handle)
    return res


# ------------------------------------------------------------------------------------------
# 2. the limit


def store_limit(pg_url, n, tmp):
    out = tmp / "store.md"
    cmd = [str(STORE_BENCH), "--count", str(n), "--single-count", "100", "--runs", "1", "--output", str(out)]
    if pg_url:
        cmd += ["--postgres-url", pg_url]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if r.returncode != 0 or not out.exists():
        return {"error": (r.stderr or r.stdout)[-500:]}
    return parse_store(out.read_text())


def worker_bench(pg_url, n, tmp):
    """`.build/release/worker-benchmark` (a Swift DEALER client): creates/s per store, one round."""
    out = {}
    for store in (["sqlite", "postgres"] if pg_url else ["sqlite"]):
        path = tmp / f"worker-{store}.md"
        cmd = [str(ROOT / ".build" / "release" / "worker-benchmark"), "--only", store, "--requests", str(n),
               "--rounds", "1", "--latency-requests", "200", "--output", str(path)]
        if pg_url:
            cmd += ["--postgres-url", pg_url]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        name = "SQLite" if store == "sqlite" else "PostgreSQL"
        if r.returncode != 0 or not path.exists():
            out[name] = {"error": (r.stderr or r.stdout)[-300:]}
            continue
        for line in path.read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) > 2 and cells[0] == name:
                try:
                    out[name] = {"creates": float(cells[1].replace(",", "")),
                                 "updates": float(cells[2].replace(",", ""))}
                except ValueError:
                    continue
                break
    return out


def parse_store(text):
    rates = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 5:
            continue
        store, bench = cells[0], cells[1]
        try:
            rate = float(cells[4].replace(",", ""))
        except ValueError:
            continue
        db = "SQLite" if store.startswith("SQLite (synchronous=FULL)") else "PostgreSQL" if store == "PostgreSQL" else None
        if db is None:
            continue
        if bench.startswith("(a)"):
            rates[(db, "raw")] = rate
        elif bench.startswith("(b)") and "creates" in bench:
            rates[(db, "store")] = rate
    return {f"{k[0]}|{k[1]}": v for k, v in rates.items()}


def zeromq_limit():
    path = ROOT / "Benchmarks" / "results" / "zeromq.md"
    try:
        for line in path.read_text().splitlines():
            if line.startswith("| raw C"):
                cells = [c.strip() for c in line.strip("|").split("|")]
                return float(cells[1].replace(",", "")), float(cells[2].replace(",", ""))
    except OSError:
        pass
    return None


# ------------------------------------------------------------------------------------------
# 3. Django side


DJANGO_KEYS = ["none", "in_process", "sync", "async", "outbox",
               "none+atomic", "in_process+atomic", "sync+atomic", "async+atomic", "outbox+atomic"]


def django_side(pg_url, dj_n, dj_rounds, quick, tmp):
    out, rawp = tmp / "django-save.md", tmp / "django-save.json"
    cmd = [PY, str(ROOT / "Benchmarks" / "django" / "save_benchmark.py"), "--no-profile",
           "--only", ",".join(DJANGO_KEYS), "--output", str(out), "--raw", str(rawp)]
    cmd += ["--quick"] if quick else ["--n", str(dj_n), "--rounds", str(dj_rounds)]
    if pg_url:
        cmd += ["--postgres-url", pg_url]
    log("django side: " + " ".join(cmd[1:]))
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=sys.stderr, timeout=900)
    if not rawp.exists():
        return None, r.returncode
    return json.loads(rawp.read_text())["raw"], r.returncode


def run_child(command, params, env, res):
    """`django_child.py COMMAND PARAMS` in a fresh process: its result (the last stdout line, JSON),
    or `res` with the child's failure added to its problems."""
    r = subprocess.run([PY, str(HERE / "django_child.py"), command, json.dumps(params)],
                       env=env, capture_output=True, text=True, timeout=600, cwd=HERE)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        res["problems"].append(f"child failed: {r.stderr[-800:]}")
        return res


def run_celery_save(db, n, atomic, tmp, redis_url):
    url, handle = db.fresh()
    res = {"problems": []}
    proc = None
    try:
        proc = start_celery(url, redis_url, tmp / f"celery-save-{db.name}-{time.monotonic_ns()}.log")
        env = django_env(url)
        env.update(ACCOUNTS_RECEIVER="none", COMPARE_REDIS_URL=redis_url)
        res = run_child("celery-save", {"n": n, "atomic": atomic}, env, res)
    except Exception as error:  # noqa: BLE001
        res["problems"].append(f"{type(error).__name__}: {error}")
    finally:
        if proc is not None:
            proc.stop(timeout=30)
        db.drop(handle)
    return res


# ------------------------------------------------------------------------------------------
# 4. latency


def run_latency(db, receiver, n, tmp):
    url, handle = db.fresh()
    res = {"problems": []}
    proc = None
    try:
        env = django_env(url)
        env["ACCOUNTS_RECEIVER"] = receiver
        if receiver == "bridge":
            proc = start_worker(WORKER, url, tmp / f"lat-{db.name}.log", bind=ANY_LOOPBACK_PORT, metrics_port=ANY_PORT)
            endpoint = proc.bind
            env.update(SIGNAL_BRIDGE_MODE="sync", SIGNAL_BRIDGE_ENDPOINT=endpoint)
        res = run_child("latency", {"n": n, "receiver": receiver}, env, res)
    except Exception as error:  # noqa: BLE001
        res["problems"].append(f"{type(error).__name__}: {error}")
    finally:
        if proc is not None:
            rc = proc.stop(timeout=30)
            if rc != 0:
                res["problems"].append(f"signal-worker exit status {rc}")
        db.drop(handle)
    return res


# ------------------------------------------------------------------------------------------
# report


def yes(ok):
    return "yes" if ok else "**NO**"


KIND_NAME = {"swift-big": "Swift signal-worker, larger N", "swift": "Swift signal-worker", "celery": "Celery worker (prefork ×2, Redis)",
             "pyzmq": "plain Python pyzmq worker",
             "celery-tuned": "Celery worker, persistent DB connections (CONN_MAX_AGE=None)"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, help="worker side: creates per configuration (default 2000; quick 1000)")
    ap.add_argument("--swift-n", type=int, default=20000, help="an extra Swift-only run with this N (the limit section)")
    ap.add_argument("--rounds", type=int, help="worker side rounds (default 2; quick 1)")
    ap.add_argument("--django-n", type=int, default=150)
    ap.add_argument("--django-rounds", type=int, default=2)
    ap.add_argument("--latency-n", type=int, help="saves per latency configuration (default 1000; quick 300)")
    ap.add_argument("--postgres-url")
    ap.add_argument("--redis-url", required=True)
    ap.add_argument("--output", default=str(ROOT / "Benchmarks" / "RESULTS.md"))
    ap.add_argument("--chart", default=str(ROOT / "Benchmarks" / "results" / "compare-chart.png"))
    ap.add_argument("--command", default="Benchmarks/compare/run")
    ap.add_argument("--json", default=str(ROOT / "Benchmarks" / "results" / "worker-throughput.json"),
                    help="machine-readable worker-side results (\"\" for none)")
    args = ap.parse_args()
    n = args.n or (1000 if args.quick else 2000)
    big_n = args.swift_n
    rounds = args.rounds or (1 if args.quick else 2)
    lat_n = args.latency_n or (300 if args.quick else 1000)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="compare-bench-"))
    dbs = []
    try:
        log(f"migrating template databases in {tmp} ...")
        dbs = open_databases(tmp, args.postgres_url, "compare_bench")

        # 1. worker side, interleaved, order rotated per round
        kinds = ["swift", "pyzmq", "celery", "celery-tuned"]
        worker = {db.name: {k: [] for k in kinds + ["swift-big"]} for db in dbs}
        for r in range(rounds):
            order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
            for db in dbs:
                for kind in order:
                    res = run_worker_config(db, kind, n, tmp, args.redis_url)
                    worker[db.name][kind].append(res)
                    if kind == "swift" and big_n > n:
                        big = run_worker_config(db, "swift", big_n, tmp, args.redis_url)
                        worker[db.name]["swift-big"].append(big)
                        log(f"[{time.monotonic() - started:5.0f} s] worker side round {r + 1} {db.name:10} swift "
                            f"N={big_n} {fmt(big.get('rate'))} profiles/s  "
                            + ("ok" if not big["problems"] else "FAILED: " + "; ".join(big["problems"])[:300]))
                    log(f"[{time.monotonic() - started:5.0f} s] worker side round {r + 1} {db.name:10} {kind:7} "
                        f"{fmt(res.get('rate'))} profiles/s  rss {res.get('rss_kb', 0) / 1024:.1f} MB  "
                        + ("ok" if not res["problems"] else "FAILED: " + "; ".join(res["problems"])[:300]))

        # 2. the limit (same PostgreSQL server, same N)
        log(f"[{time.monotonic() - started:5.0f} s] store-benchmark --count {big_n}")
        limit = store_limit(args.postgres_url, big_n, tmp)
        log(f"store limit: {limit}")
        wb = worker_bench(args.postgres_url, big_n, tmp)
        log(f"[{time.monotonic() - started:5.0f} s] worker-benchmark --requests {big_n}: {wb}")

        # 4. latency (before the Django side, so that a slow Django run cannot squeeze it out)
        latency = {}
        for db in dbs:
            for receiver in ["none", "in_process", "bridge"]:
                res = run_latency(db, receiver, lat_n, tmp)
                latency[(db.name, receiver)] = res
                log(f"[{time.monotonic() - started:5.0f} s] latency {db.name:10} {receiver:10} "
                    f"p50 {fmt(percentile(res.get('total_us', []), 50))} µs "
                    + ("ok" if not res["problems"] else "FAILED: " + "; ".join(res["problems"])[:300]))

        # 3. Django side: the existing benchmark, then the Celery rows
        dj_raw, dj_rc = django_side(args.postgres_url, args.django_n, args.django_rounds, args.quick, tmp)
        dj_n = 150 if args.quick else args.django_n
        dj_rounds = 1 if args.quick else args.django_rounds
        celery_rows = {}
        for r in range(dj_rounds):
            for db in dbs:
                for atomic in (False, True):
                    res = run_celery_save(db, dj_n, atomic, tmp, args.redis_url)
                    celery_rows.setdefault((db.name, atomic), []).append(res)
                    p = res.get("phases", {})
                    log(f"[{time.monotonic() - started:5.0f} s] celery save {db.name:10} atomic={atomic} "
                        f"creates {fmt(rate(dj_n, p.get('create', {}).get('save_s')))}/s "
                        + ("ok" if not res["problems"] else "FAILED: " + "; ".join(res["problems"])[:300]))
        elapsed = time.monotonic() - started
    finally:
        close_databases(dbs)
        shutil.rmtree(tmp, ignore_errors=True)

    text, chart_data = render(args, dbs, worker, n, big_n, rounds, limit, wb, latency, lat_n, dj_raw, dj_rc, dj_n, dj_rounds,
                              celery_rows, elapsed)
    write_report(text, args.output)
    chart(args.chart, chart_data)
    log(f"wrote {args.output} and {args.chart} ({elapsed:.0f} s)")
    if args.json:
        write_json(args, worker, limit, wb, n, rounds, elapsed)
        log(f"wrote {args.json}")


def write_json(args, worker, limit, wb, n, rounds, elapsed):
    """The worker side as machine-readable results (Benchmarks/harness/results.py): profiles/s per worker
    and round (a worker with a failed round left out), the limits, the checked ratios."""
    import results

    rates = {db: {kind: [r["rate"] for r in runs] for kind, runs in kinds.items()
                  if kind != "swift-big" and runs and not any(r["problems"] for r in runs)}
             for db, kinds in worker.items()}
    limits = {}
    for db in worker:
        entry = {"raw": (limit or {}).get(f"{db}|raw"), "store": (limit or {}).get(f"{db}|store"),
                 "worker": (wb or {}).get(db, {}).get("creates")}
        limits[db] = {k: v for k, v in entry.items() if v is not None}
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "commit": git("rev-parse", "--short", "HEAD"), "command": args.command, "n": n, "rounds": rounds,
            "worker": worker_version(WORKER), "duration_s": round(elapsed)}
    about = (f"{n:,} created messages per worker and round, end to end (first send to the last row visible); "
             "limits: store-benchmark's hand-written batched INSERT (raw) and the worker's store alone, and "
             "worker-benchmark's creates/s. Unpinned; the checked figures are ratios within this run.")
    results.write(args.json, results.worker_throughput(meta, rates, limits, about))


def render(args, dbs, worker, n, big_n, rounds, limit, wb, latency, lat_n, dj_raw, dj_rc, dj_n, dj_rounds, celery_rows, elapsed):
    db_names = [db.name for db in dbs]
    lines = ["# Comparison benchmark: the Swift worker against the alternatives", ""]
    commit = git("rev-parse", "--short", "HEAD")
    if git("status", "--porcelain", "--", "Sources", "python-bridge", "Benchmarks/django", "Benchmarks/compare"):
        commit += " + uncommitted changes"
    pg = postgres_durability(args.postgres_url) if args.postgres_url else "not run"
    import celery
    import django

    lines += [
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%M:%SZ}",
        f"- machine: {machine()}",
        f"- commit: {commit}",
        f"- command: `{args.command}`; duration {elapsed:.0f} s; load average {os.getloadavg()[0]:.1f} at the end "
        "(the machine is shared with other jobs)",
        f"- software: Python {sys.version.split()[0]}, Django {django.get_version()}, Celery {celery.__version__}, "
        f"{worker_version(WORKER)}",
        "- SQLite: WAL file on the local disk, `synchronous=FULL` on both sides (SQLite's default; every commit "
        "is fsync'd); Django `transaction_mode=IMMEDIATE`",
        f"- PostgreSQL: `scripts/postgres-throwaway` with `PG_THROWAWAY_DURABLE=1` on the same machine ({pg})",
        "- Redis (Celery broker): `redis-server` on loopback, no persistence", "",
    ]
    chart_data = {"worker": {}, "django": {}}

    # ---- 1
    lines += ["## 1. Worker side: profiles applied per second, end to end", "",
              f"{n:,} `created` messages (one per pre-created user, `_profile_data` = business/F/1990-01-02) on a "
              "fresh migrated database per configuration; the clock runs from the first send (Celery: the first "
              "`send_task`) to the moment the last profile row is visible from another connection. "
              f"{rounds} round(s), interleaved (order rotated each round); median (best) of the rounds. Rows checked "
              "after each run: N profiles, all with the expected values, no user without one; a run with anything "
              "wrong is FAILED.", "",
              "- **Swift signal-worker**: `signal-worker serve` (default options: group commit up to 1,000 "
              "messages per transaction, dedupe + per-user `seq`).",
              "- **plain Python pyzmq worker** (`Benchmarks/compare/pyzmq_worker.py`): ROUTER, decodes the v1 "
              "envelope, runs `accounts.receivers.create_or_update_user_profile` through the ORM in one "
              "`transaction.atomic()` per message, replies like signal-worker. One process (no dedupe, no ordering).",
              "- The Swift and the pyzmq worker are driven by the same Python DEALER client, ≤ 1,000 requests in "
              "flight, every reply checked `ok`/`created`.",
              "- **Celery worker** (`Benchmarks/compare/celery_app.py`): `celery worker --pool prefork "
              "--concurrency 2`, Redis broker, defaults otherwise; task `apply_profile(user_id, created, "
              "profile_data)` loads the user, sets `_profile_data`, calls the same receiver inside "
              "`transaction.atomic()`; N tasks enqueued with `send_task` from the benchmark process while the "
              "worker runs. Django's default `CONN_MAX_AGE = 0` is kept: Celery's Django fix-up closes such "
              "connections after every task, so each task opens a new database connection (as a default "
              "Celery + Django deployment does). The row \"persistent DB connections\" is the same worker with "
              "`CONN_MAX_AGE = None` (set by `celery_app.py` when `COMPARE_CONN_MAX_AGE` is set), the first "
              "thing to tune.", "",
              "| database | worker | profiles/s | end to end s | peak RSS MB (VmHWM) | status |",
              "| --- | --- | ---: | ---: | ---: | --- |"]
    summary = {}
    KIND_NAME["swift-big"] = f"Swift signal-worker, N = {big_n:,} (extra run, not in the ratios)"
    for db in db_names:
        for kind in ["swift", "pyzmq", "celery", "celery-tuned", "swift-big"]:
            runs = worker[db][kind]
            if not runs:
                continue
            failed = any(r["problems"] for r in runs)
            rates = [r.get("rate") for r in runs]
            m = med(rates)
            best = max([x for x in rates if x] or [0])
            e2e = med([r.get("e2e_s") for r in runs])
            rss = max([r.get("rss_kb", 0) for r in runs] or [0]) / 1024
            summary[(db, kind)] = None if failed else m
            summary[(db, kind, "rss")] = rss
            status = "ok" if not failed else "FAILED: " + "; ".join(p for r in runs for p in r["problems"])[:400]
            cell = "FAILED" if failed else f"{fmt(m)} ({fmt(best)})"
            procs = runs[0].get("procs", 1) if runs else 1
            rss_cell = f"{rss:.1f}" + (f" ({procs} processes)" if procs > 1 else "")
            lines.append(f"| {db} | {KIND_NAME[kind]} | {cell} | {fmt(e2e, 2)} | {rss_cell} | {status} |")
            if not failed and kind != "swift-big":
                chart_data["worker"][(db, kind)] = m
    lines += ["", "Ratios (same run, medians) against the targets:", "",
              "| database | ratio | value | target | met |", "| --- | --- | ---: | --- | --- |"]
    missed = []
    for db in db_names:
        s, c, p = summary.get((db, "swift")), summary.get((db, "celery")), summary.get((db, "pyzmq"))
        for other, name, target in ((c, "Celery worker", 20), (p, "pyzmq Python worker", 5)):
            if s and other:
                ratio = s / other
                ok = ratio >= target
                lines.append(f"| {db} | Swift / {name} | {ratio:.1f}× | ≥ {target}× | {yes(ok)} |")
                if not ok:
                    missed.append((db, name, ratio, target))
            else:
                lines.append(f"| {db} | Swift / {name} | — | ≥ {target}× | FAILED run |")
        t = summary.get((db, "celery-tuned"))
        if s and t:
            lines.append(f"| {db} | Swift / Celery worker with persistent DB connections | {s / t:.1f}× | "
                         "(no target; the issue's target is against the default) | — |")
    lines.append("")
    if missed:
        for db, name, ratio, target in missed:
            why = {
                "Celery worker": "Celery applies one message per transaction (one fsync/WAL flush per profile) "
                                 "in 2 processes, and on SQLite the 2 processes serialise on the single write lock; "
                                 "the Swift worker commits up to 1,000 profiles per transaction",
                "pyzmq Python worker": "the Python worker commits one message per transaction, so its rate is "
                                       "bounded by the commit (fsync) latency, not by Python",
            }[name]
            lines.append(f"- {db}, Swift / {name} = {ratio:.1f}× (target ≥ {target}×): {why}; with the "
                         "Swift worker at this rate the Python client that drives it and the database share the "
                         "same 2 cores.")
        lines.append("")

    # ---- 2
    lines += ["## 2. The limit", "",
              "The like-for-like limit, (a') doing the worker's three writes per message, measured apart from this "
              "run and more recently: `Benchmarks/limit/run`, `Benchmarks/results/limit.md`.", "",
              f"`.build/release/store-benchmark --count {big_n} --runs 1` in the same run, against the same "
              "PostgreSQL server (durable) and a SQLite file with `synchronous=FULL`: (a) hand-written batched "
              "INSERT, 1,000 rows per transaction (the raw database rate); (b) the worker's own store, 1,000 "
              "messages per batch, no sockets. libzmq from `Benchmarks/results/zeromq.md` (raw C inproc "
              "PUSH/PULL, 32-byte messages).", "",
              f"The worker's rate: `.build/release/worker-benchmark --only sqlite|postgres --requests {big_n} "
              "--rounds 1` in the same run (its Swift DEALER client, ≤ 2,000 in flight, the worker's own "
              "Django-compatible schema, every reply checked; creates/s), and beside it the run of section 1 "
              f"with N = {big_n:,} driven by the Python client (which shares the 2 cores with the worker and "
              "limits it on SQLite). Target: the worker end to end ≥ 50 % of (a); worker-benchmark's figure counts.", "",
              "| database | raw batched INSERT/s (a) | store apply/s (b) | worker, Swift client/s | worker, Python "
              "client/s | worker / raw | target ≥ 50 % | worker / store |",
              "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
    for db in db_names:
        raw_rate = limit.get(f"{db}|raw") if isinstance(limit, dict) else None
        st = limit.get(f"{db}|store") if isinstance(limit, dict) else None
        py_rate = summary.get((db, "swift-big")) or summary.get((db, "swift"))
        sw = (wb.get(db) or {}).get("creates")
        s = sw or py_rate
        ratio = s / raw_rate if s and raw_rate else None
        lines.append(f"| {db} | {fmt(raw_rate)} | {fmt(st)} | {fmt(sw)} | {fmt(py_rate)} | "
                     f"{'—' if ratio is None else f'{100 * ratio:.1f} %'} | "
                     f"{'—' if ratio is None else yes(ratio >= 0.5)} | "
                     f"{'—' if not (s and st) else f'{100 * s / st:.0f} %'} |")
        if ratio is not None and ratio < 0.5:
            missed.append((db, "raw", ratio, 0.5))
        if (wb.get(db) or {}).get("error"):
            lines.append(f"\nworker-benchmark {db} failed: {wb[db]['error']}")
    if isinstance(limit, dict) and "error" in limit:
        lines.append(f"\nstore-benchmark failed: {limit['error']}")
    zq = zeromq_limit()
    if zq:
        lines.append(f"\nlibzmq alone moves {fmt(zq[0])} (best) / {fmt(zq[1])} (median) messages/s, two orders of "
                     "magnitude above any rate here: the sockets are not the limit, the database is.")
    lines.append("")
    below = [m for m in missed if m[1] == "raw"]
    store_share = {db: f"{100 * limit[f'{db}|store'] / limit[f'{db}|raw']:.0f} %" for db in db_names
                   if isinstance(limit, dict) and limit.get(f"{db}|store") and limit.get(f"{db}|raw")}
    for db, _, ratio, _ in below:
        lines.append(f"- {db}: the worker reaches {100 * ratio:.1f} % of the raw batched INSERT. Each profile costs "
                     "the worker more than a bare INSERT: a dedupe-id insert and a per-user `seq` upsert in the "
                     f"same transaction (the store alone, (b), runs at {store_share.get(db, '?')} of (a) here), plus decoding "
                     "JSON, the socket round trips and the replies (one per message, sent after the commit), while "
                     "the client and the database share the 2 cores with it.")
    lines.append("")
    lines += profile_section(below)

    # ---- 3
    lines += ["## 3. Django side: `User.save()` per second", "",
              f"`Benchmarks/django/save_benchmark.py {'--quick' if args.quick else f'--n {dj_n} --rounds {dj_rounds}'} "
              "--no-profile` (the benchmark behind `Benchmarks/django/run`, run against the same PostgreSQL server; "
              f"its own checks: every row, empty outbox, worker replies): {dj_n} creates then {dj_n} updates per "
              "configuration, fresh database, fresh process, fresh worker; median of the rounds. The Celery rows "
              "(`Benchmarks/compare/django_child.py celery-save`) run right after with the same N: receiver replaced "
              "by `transaction.on_commit(lambda: apply_profile.delay(pk, created, data))`, a Celery worker "
              "running; only the save() loop is on the clock (the broker enqueue is the cost), then the benchmark "
              "waits until the worker applied every task and checks every row.", ""]
    dj = {}
    if dj_raw is None:
        lines.append(f"The Django save() benchmark did not produce results (exit status {dj_rc}).")
    for db in db_names:
        lines += [f"### {db}", "", "| configuration | pattern | creates/s | updates/s | creates: vs none | "
                  "creates: vs in_process | status |", "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
        for atomic in (False, True):
            pattern = "atomic" if atomic else "autocommit"
            suffix = "+atomic" if atomic else ""
            rows = {}
            for key in ["none", "in_process", "sync", "async", "outbox"]:
                runs = (dj_raw or {}).get(db, {}).get(key + suffix, [])
                failed = not runs or any(r.get("problems") for r in runs)
                c = med([rate(dj_n, r.get("phases", {}).get("create", {}).get("save_s")) for r in runs])
                u = med([rate(dj_n, r.get("phases", {}).get("update", {}).get("save_s")) for r in runs])
                rows[key] = (c, u, failed, "; ".join(p for r in runs for p in r.get("problems", []))[:300])
            runs = celery_rows.get((db, atomic), [])
            failed = not runs or any(r.get("problems") for r in runs)
            rows["celery"] = (med([rate(dj_n, r.get("phases", {}).get("create", {}).get("save_s")) for r in runs]),
                              med([rate(dj_n, r.get("phases", {}).get("update", {}).get("save_s")) for r in runs]),
                              failed, "; ".join(p for r in runs for p in r.get("problems", []))[:300])
            none_c = rows["none"][0] if not rows["none"][2] else None
            inp_c = rows["in_process"][0] if not rows["in_process"][2] else None
            for key, (c, u, failed, prob) in rows.items():
                name = "Celery: on_commit + delay()" if key == "celery" else key
                if failed:
                    lines.append(f"| {name} | {pattern} | FAILED | FAILED | — | — | FAILED: {prob or 'no result'} |")
                    continue
                vs_none = f"{100 * c / none_c:.0f} %" if c and none_c else "—"
                vs_inp = f"{c / inp_c:.2f}×" if c and inp_c else "—"
                lines.append(f"| {name} | {pattern} | {fmt(c)} | {fmt(u)} | {vs_none} | {vs_inp} | ok |")
                dj[(db, pattern, key)] = (c, u)
                chart_data["django"][(db, pattern, key)] = c
        lines.append("")
    lines += ["Targets (same run, medians; creates and updates):", "",
              "| database | pattern | configuration | vs none: creates / updates | ≥ 80 % | vs in_process: "
              "creates / updates | ≥ 1.5× |", "| --- | --- | --- | ---: | --- | ---: | --- |"]
    dj_missed = []
    for db in db_names:
        for pattern in ("autocommit", "atomic"):
            none, inp = dj.get((db, pattern, "none")), dj.get((db, pattern, "in_process"))
            for key in ("async", "outbox"):
                row = dj.get((db, pattern, key))
                if not (row and none and inp):
                    lines.append(f"| {db} | {pattern} | {key} | — | FAILED run | — | FAILED run |")
                    continue
                vn = [row[i] / none[i] for i in (0, 1)]
                vi = [row[i] / inp[i] for i in (0, 1)]
                ok1, ok2 = min(vn) >= 0.8, min(vi) >= 1.5
                lines.append(f"| {db} | {pattern} | {key} | {100 * vn[0]:.0f} % / {100 * vn[1]:.0f} % | {yes(ok1)} "
                             f"| {vi[0]:.2f}× / {vi[1]:.2f}× | {yes(ok2)} |")
                if not (ok1 and ok2):
                    dj_missed.append((db, pattern, key))
    lines.append("")
    if dj_missed:
        lines.append(f"Missed: {', '.join(f'{d} {p} {k}' for d, p, k in dj_missed)}. The bridge's handler still "
                     "does some work inside save() (async: capturing the message, about 30 µs alone, the JSON is rendered on the sender thread; "
                     "in outbox mode and inside `atomic()` also the JSON and an outbox INSERT in the save's transaction), and on "
                     "2 cores the sender thread, the worker and the database compete with the saving process "
                     "(see `Benchmarks/results/django-save.md`, \"Where the time goes\"). With N this small one "
                     "round is noisy: compare within a row only.")
        lines.append("")

    # ---- 4
    lines += ["## 4. Latency: `save()` until `user.profile` is readable", "",
              f"{lat_n:,} `User(...).save()` creates (autocommit) per configuration, each timed in the Django process: "
              "`save()`, then `UserProfile.objects.get(user_id=...)` (what `user.profile` runs); 20 warm-up saves "
              "off the clock; fresh database each; every profile checked. Bridge: sync mode, a fresh "
              "`signal-worker serve`. µs.", "",
              "| database | receiver | save + read p50 | p99 | p99.9 | save() p50 | save() mean | added vs none: p50 / mean "
              "| status |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for db in db_names:
        base = latency.get((db, "none"), {})
        b_p50, b_mean = percentile(base.get("save_us", []), 50), (statistics.mean(base["save_us"]) if base.get("save_us") else None)
        for receiver, name in (("none", "none"), ("in_process", "in-process Python receiver"),
                               ("bridge", "bridge, sync (Swift worker)")):
            res = latency.get((db, receiver), {})
            if res.get("problems") or not res.get("save_us"):
                lines.append(f"| {db} | {name} | FAILED | | | | | | FAILED: {'; '.join(res.get('problems', []))[:300]} |")
                continue
            tot, sv = res["total_us"], res["save_us"]
            added = "—"
            if receiver != "none" and b_p50:
                added = f"{percentile(sv, 50) - b_p50:,.0f} / {statistics.mean(sv) - b_mean:,.0f}"
            lines.append(f"| {db} | {name} | {fmt(percentile(tot, 50))} | {fmt(percentile(tot, 99))} | {fmt(percentile(tot, 99.9))} | "
                         f"{fmt(percentile(sv, 50))} | {fmt(statistics.mean(sv))} | {added} | ok |")
    lines += ["", "The sync round trip (save() returns after the worker's commit) is the price of `user.profile` "
              "being readable right after `save()`; the in-process receiver's added cost is its own INSERT in the "
              "same process. No target was set for this section.", ""]

    # ---- 5
    lines += ["## 5. Memory: peak RSS over the worker-side run", "",
              "VmHWM from `/proc/PID/status` right before SIGTERM, the largest over the rounds. Celery: the main "
              "process plus its 2 prefork children, summed.", "",
              "| database | Swift signal-worker MB | plain pyzmq worker MB | Celery worker (3 processes) MB | "
              "Celery, persistent connections MB | Celery / Swift |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for db in db_names:
        s, p, c, t = (summary.get((db, k, "rss")) or 0 for k in ("swift", "pyzmq", "celery", "celery-tuned"))
        lines.append(f"| {db} | {s:.1f} | {p:.1f} | {c:.1f} | {t:.1f} | {c / s:.1f}× |" if s else f"| {db} | — | — | — | — | — |")
    lines += ["", "## Every round (worker side)", "", "| database | worker | round | profiles/s | end to end s | "
              "replies / enqueue s | RSS MB | status |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for db in db_names:
        for kind in ["swift", "pyzmq", "celery", "celery-tuned", "swift-big"]:
            for i, r in enumerate(worker[db][kind], 1):
                aux = r.get("reply_s", r.get("enqueue_s"))
                lines.append(f"| {db} | {KIND_NAME[kind]} | {i} | {fmt(r.get('rate'))} | {fmt(r.get('e2e_s'), 2)} | "
                             f"{fmt(aux, 2)} | {r.get('rss_kb', 0) / 1024:.1f} | "
                             f"{'ok' if not r['problems'] else 'FAILED: ' + '; '.join(r['problems'])[:300]} |")
    lines.append("")
    return "\n".join(lines), chart_data


PROFILE = os.path.join(ROOT, "Benchmarks", "results", "profile.md")


def profile_stage_tables(text):
    """{section title: [table lines]} of the "By stage" tables in profile.md."""
    tables, title, rows, in_table = {}, None, [], False
    for line in text.splitlines():
        if line.startswith("## "):
            title, rows, in_table = line[3:].strip(), [], False
        elif line.startswith("By stage"):
            in_table = True
        elif in_table and line.startswith("|"):
            rows.append(line)
        elif in_table and rows:
            tables[title] = rows
            in_table = False
    if in_table and rows:
        tables[title] = rows
    return tables


def profile_section(below):
    """Why the worker is where it is: the stage tables of Benchmarks/profile/run's report."""
    if not os.path.exists(PROFILE):
        return ["No CPU profile: run `Benchmarks/profile/run` (the full `Benchmarks/run` does) to see where the "
                "worker's time goes.", ""]
    with open(PROFILE, encoding="utf-8") as f:
        text = f.read()
    stamp = next((line[2:] for line in text.splitlines() if line.startswith("- date:")), "date unknown")
    out = [f"Where the worker's CPU goes (`Benchmarks/profile/run`, {stamp}; full report: "
           "`Benchmarks/results/profile.md`): each `perf` sample of the worker process is charged to the nearest "
           "stage on its call stack.", ""]
    database_words = ("SQLite engine", "disk flush", "file I/O", "PostgreSQL client")
    for title, rows in profile_stage_tables(text).items():
        if "NORMAL" in title:
            continue
        out += [f"**{title}**", ""] + rows + [""]
        shares = []
        for row in rows[2:]:
            cells = [c.strip() for c in row.strip("|").split("|")]
            try:
                shares.append((cells[0], float(cells[1].rstrip(" %"))))
            except (IndexError, ValueError):
                continue
        database = sum(share for name, share in shares if name.startswith(database_words))
        own = sum(share for name, share in shares if name.startswith(("decode", "receiver", "worker plumbing", "SQLite store", "PostgreSQL store")))
        out += [f"Database work (engine, disk, client) is {database:.0f} % of the worker's CPU here, the worker's own "
                f"stages (decoding, receiver, statements, plumbing) {own:.0f} %."
                + (" The gap to the raw rate is mostly the worker's per-message work, not the database (decoding "
                   "already runs on the socket thread while the apply loop commits, so both cores are busy): what "
                   "would close it is less CPU per message, above all fewer allocations (the decoder builds a "
                   "dictionary per JSON object; retain/release and malloc lead the flat profile)." if below and own > database else ""), ""]
    return out


def chart(path, data):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    ax = axes[0]
    kinds = [("swift", "Swift signal-worker", "#f05138"), ("pyzmq", "Python pyzmq worker", "#4b8bbe"),
             ("celery", "Celery (prefork ×2)", "#37814a"),
             ("celery-tuned", "Celery, CONN_MAX_AGE=None", "#8fbc8f")]
    dbs = sorted({k[0] for k in data["worker"]}, key=lambda d: d != "SQLite")
    width = 0.8 / len(kinds)
    for i, (kind, label, color) in enumerate(kinds):
        xs = [j + (i - (len(kinds) - 1) / 2) * width for j in range(len(dbs))]
        ys = [data["worker"].get((db, kind), 0) for db in dbs]
        bars = ax.bar(xs, ys, width, label=label, color=color)
        for b, y in zip(bars, ys):
            ax.text(b.get_x() + b.get_width() / 2, max(y, 1), f"{y:,.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(dbs)), dbs)
    ax.set_ylabel("profiles applied per second (log scale)")
    ax.set_title("Worker side: end to end, same N, same database")
    ax.legend(fontsize=8)
    ax = axes[1]
    keys = [("none", "no receiver"), ("in_process", "in-process"), ("sync", "bridge sync"), ("async", "bridge async"),
            ("outbox", "bridge outbox"), ("celery", "Celery on_commit")]
    groups = [(db, "autocommit") for db in dbs] + [(db, "atomic") for db in dbs]
    width = 0.8 / len(keys)
    cmap = plt.get_cmap("tab10")
    for i, (key, label) in enumerate(keys):
        xs = [j + (i - (len(keys) - 1) / 2) * width for j in range(len(groups))]
        ys = [data["django"].get((db, pattern, key)) or 0 for db, pattern in groups]
        ax.bar(xs, ys, width, label=label, color=cmap(i))
    ax.set_xticks(range(len(groups)), [f"{db}\n{pattern}" for db, pattern in groups])
    ax.set_ylabel("User.save() creates per second")
    ax.set_title("Django side: save() throughput")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()

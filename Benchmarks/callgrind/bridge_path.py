#!/usr/bin/env python3
"""Instructions per save of the bridge's path inside ``save()``, counted by callgrind.

The regression guard of issue 20 (§1): CPython runs deterministically enough
under valgrind that an instruction count moves by well under 1 % between runs
while wall-clock rates on this shared machine move by 20 %. ``--check`` fails
when a path costs more than 15 % over the committed count.

What is counted, per save, in the example project's configuration (``sync``
mode, the default; autocommit ``save()``; ``SENDERS["auth.user"]``: the
username and ``_profile_data``): the bridge's ``pre_save`` and ``post_save``
receivers called as Django calls them after the row is written (capture of the
message, rendering its JSON, the outbox bookkeeping, the send on the bridge's
own DEALER socket), and the reply check. No network and no worker: the
endpoint is an ``inproc://`` ROUTER in this process, and the bridge's blocking
receive (``transport._receive``) is replaced by a function that reads the
request from that ROUTER and returns the worker's ``ok`` reply to it (a pong
announcing ``outbox_check`` to a ping; ``BRIDGE_CALLGRIND_FEATURES=none``: a
pong without features). So the bridge's own reply handling runs as with a
worker. With the feature, updates go with ``"outbox_check": true`` and run no
backlog query (the worker checks, issue 22); without it they run the bridge's
backlog query (``outbox.has_backlog``, one ``SELECT`` on a migrated SQLite
file), as before. Creates of a new primary key skip it either way, as in
``save()``. The database's own ``INSERT``/``UPDATE`` is not in the count.

The same two loops run once more in ``async`` mode (paths ``async-create`` and
``async-update``), counting what ``save()``'s own thread does: the receivers
copy the instance's values (``envelope.snapshot``) and queue them for the
background sender. The sender thread is started but does nothing there (its
rounds run on a timer, so their share of a loop would not be deterministic); what it does
per message (render, send, the reply) is the sync path's work above, batched.

How: the child runs under ``valgrind --tool=callgrind --instr-atstart=no``;
Django starts and every path is warmed up uninstrumented; a two-function C
shim (compiled on the fly with ``cc`` against valgrind's ``callgrind.h``)
turns instrumentation on and zeroes the counters right before the measured
loop, and dumps (named after the path) and turns it off right after it. The
hash seed is fixed and the garbage collector run before each loop.

    Benchmarks/callgrind/run [--n 200] [--json PATH]   # default: Benchmarks/results/bridge-callgrind.json
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "harness"))
from signal_bench import CREATE_DATA, UPDATE_DATA  # noqa: E402  (the benchmarks' shared harness)

ENDPOINT = "inproc://callgrind-sink"
WARMUP = 50
# Path names: the sync ones keep their first names (the committed checks use them).
MODES = {"sync": ("create", "update"), "async": ("async-create", "async-update")}
PATHS = MODES["sync"] + MODES["async"]
# Whether the fake worker's pong announces outbox_check (the bridge then skips the backlog query
# of updates; BRIDGE_CALLGRIND_FEATURES=none: a worker without it, as before issue 22).
FEATURES = os.environ.get("BRIDGE_CALLGRIND_FEATURES", "outbox_check") != "none"

SHIM = r"""
#include <valgrind/callgrind.h>
void bench_begin(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_ZERO_STATS; }
void bench_end(const char *name) { CALLGRIND_DUMP_STATS_AT(name); CALLGRIND_STOP_INSTRUMENTATION; }
"""


# ------------------------------------------------------------------------------------------
# the child: runs under valgrind


def child(shim: str, n: int, mode: str) -> None:
    import ctypes
    import gc
    import json

    lib = ctypes.CDLL(shim)
    lib.bench_end.argtypes = [ctypes.c_char_p]
    sys.path.insert(0, str(Path(os.environ["EXAMPLE_DIR"])))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exampleproject.settings")
    import django

    django.setup()
    import zmq
    from django.contrib.auth import get_user_model

    from signal_bridge import conf, envelope, publisher, transport
    from signal_bridge import sender as background

    config = conf.get()
    assert config.mode == mode and config.endpoints == (ENDPOINT,), (config.mode, config.endpoints)
    if mode == "async":
        # save()'s thread only: the sender thread starts as in a process but only sleeps, so queued
        # messages stay queued (ASYNC_QUEUE_SIZE holds them all) and enqueue()'s own checks are counted.
        background.Sender._run = lambda self: time.sleep(3600)
        assert config.async_queue_size >= WARMUP + n, config.async_queue_size
    sink = transport.context().socket(zmq.ROUTER)  # the "worker": read by the bridge's own receive
    sink.setsockopt(zmq.RCVHWM, 0)
    sink.bind(ENDPOINT)
    pong = (b'"status":"ok","result":{"action":"pong","features":["outbox_check"]}}' if FEATURES
            else b'"status":"ok","result":{"action":"pong"}}')

    def answer(sock, flags):
        """The worker's reply, without a worker: the request is already in the inproc sink (no I/O
        thread), so read it there and answer ok (a pong to a ping) with its id."""
        sink.recv()  # the DEALER's routing id
        request = sink.recv()
        if request.startswith(b'{"v": 1, "id": '):  # a ping (json.dumps' spacing): warm-up only
            return b'{"v":1,"id":"' + json.loads(request)["id"].encode() + b'",' + pong
        start = request.index(b'"id":"') + 6
        head = b'{"v":1,"id":"' + request[start : start + 36] + b'",'
        return head + (b'"status":"ok","result":{"action":"created"}}' if b'"created":true' in request
                       else b'"status":"ok","result":{"action":"updated"}}')

    transport._receive = answer  # every blocking receive of the sync path
    User = get_user_model()
    users = []

    fresh = [User(username=f"callgrind{i}", email=f"callgrind{i}@example.com") for i in range(WARMUP + n)]

    def create(i):
        user = fresh[i]  # built before the clock, as save() gets it from the caller
        publisher.on_pre_save(sender=User, instance=user, raw=False, using="default", update_fields=None)
        user.pk = 1_000_000 + i  # what the INSERT gives it
        user._profile_data = dict(CREATE_DATA)
        publisher.on_post_save(sender=User, instance=user, created=True, raw=False, using="default",
                               update_fields=None)
        users.append(user)

    def update(i):
        user = users[i]
        user._profile_data = dict(UPDATE_DATA)
        publisher.on_pre_save(sender=User, instance=user, raw=False, using="default", update_fields=None)
        publisher.on_post_save(sender=User, instance=user, created=False, raw=False, using="default",
                               update_fields=None)

    for i in range(WARMUP):  # every code path, import and cache warm, uninstrumented
        create(i)
    for i in range(WARMUP):
        update(i)
    start = len(users)
    gc.collect()
    create_path, update_path = MODES[mode]
    lib.bench_begin()
    for i in range(start, start + n):
        create(i)
    lib.bench_end(create_path.encode())
    gc.collect()
    lib.bench_begin()
    for i in range(start, start + n):
        update(i)
    lib.bench_end(update_path.encode())
    print("child-ok", len(users), flush=True)
    sink.close(linger=0)
    if mode == "async":
        os._exit(0)  # not the atexit flush: the unsent messages would go to the outbox, uncounted anyway


# ------------------------------------------------------------------------------------------
# the parent: builds the shim, migrates the database, runs the child under valgrind


def dumps(folder: Path) -> dict[str, int]:
    """{dump name: instructions (Ir)} of the callgrind dumps in ``folder``."""
    out = {}
    for path in folder.glob("callgrind.out.*"):
        text = path.read_text(errors="replace")
        desc = re.search(r"^desc: Trigger: Client Request: (\S+)", text, re.M)
        total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        if desc and total:
            out[desc.group(1)] = int(total.group(1))
    return out


def parent(args) -> int:
    from signal_bench import EXAMPLE, ROOT, django_env, git, log

    import results

    valgrind, cc = shutil.which("valgrind"), shutil.which("cc") or shutil.which("gcc")
    header = Path("/usr/include/valgrind/callgrind.h")
    if not valgrind or not header.exists():
        log("needs valgrind (apt-get install valgrind)")
        return 2
    if not cc:
        log("needs a C compiler (cc) for the 3-line callgrind shim")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bridge-callgrind-"))
    try:
        (tmp / "shim.c").write_text(SHIM)
        subprocess.run([cc, "-O1", "-shared", "-fPIC", "-o", str(tmp / "shim.so"), str(tmp / "shim.c")], check=True)
        url = f"sqlite:///{tmp / 'db.sqlite3'}"
        env = django_env(url)
        env.update(ACCOUNTS_RECEIVER="bridge", SIGNAL_BRIDGE_ENDPOINT=ENDPOINT, PYTHONHASHSEED="0",
                   EXAMPLE_DIR=str(EXAMPLE))
        subprocess.run([sys.executable, str(EXAMPLE / "manage.py"), "migrate", "--verbosity", "0"], env=env,
                       cwd=EXAMPLE, check=True)
        out_dir = tmp / "out"
        out_dir.mkdir()
        for mode, paths in MODES.items():
            cmd = [valgrind, "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_dir}/callgrind.out.%p",
                   sys.executable, str(Path(__file__).resolve()), "--child", str(tmp / "shim.so"), str(args.n), mode]
            log(f"callgrind, {mode}: {args.n} saves per path (+{WARMUP} warm-up), this takes a minute ...")
            r = subprocess.run(cmd, env={**env, "SIGNAL_BRIDGE_MODE": mode}, cwd=EXAMPLE, capture_output=True,
                               text=True, timeout=900)
            counts = dumps(out_dir)
            if r.returncode != 0 or "child-ok" not in r.stdout or not set(paths) <= set(counts):
                log(f"callgrind run failed ({mode}: exit {r.returncode}, dumps {sorted(counts)}):\n{r.stderr[-2000:]}")
                return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    import django
    import zmq

    per_save = {p: counts[p] / args.n for p in PATHS}
    for p in PATHS:
        log(f"{p}: {per_save[p]:,.0f} instructions per save ({counts[p]:,} for {args.n})")
    commit = git("rev-parse", "--short", "HEAD")
    if git("status", "--porcelain", "--", "python-bridge/signal_bridge", "Benchmarks/callgrind"):
        commit += " + uncommitted changes"
    valgrind_version = subprocess.run([valgrind, "--version"], capture_output=True, text=True).stdout.strip()
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "commit": commit,
            "command": "Benchmarks/callgrind/run" + (f" --n {args.n}" if args.n != 200 else ""),
            "software": f"Python {platform.python_version()}, Django {django.get_version()}, pyzmq {zmq.__version__} "
                        f"(libzmq {zmq.zmq_version()}), {valgrind_version}",
            "saves_per_path": args.n, "warmup_saves": WARMUP}
    about = ("Instructions (callgrind Ir, every thread) per save of the bridge's path in save(), autocommit, the "
             "example project's SENDERS. create/update: sync mode; pre_save + post_save receivers (capture, render, "
             "outbox bookkeeping, send on the bridge's DEALER to an inproc ROUTER) and the handling of the ok reply "
             "read back from it; updates carry outbox_check (the fake worker's pong announces it), so no backlog "
             "SELECT. async-create/async-update: async mode, save()'s thread only (the receivers copy the values and "
             "queue them; the sender thread only sleeps). Not counted: Django's own INSERT/UPDATE, the worker. "
             "Deterministic to well under 1 % between runs; checked at +15 %.")
    data = {"schema": results.SCHEMA, "benchmark": "bridge-callgrind", "about": about, "meta": meta,
            "paths": {p: {"instructions_per_save": round(per_save[p]), "instructions": counts[p], "saves": args.n}
                      for p in PATHS},
            "checks": {check_name(p): {"value": round(per_save[p]), "better": "lower"} for p in PATHS}}
    results.write(args.json, data)
    log(f"wrote {args.json}")
    return 0


def check_name(path: str) -> str:
    """The name of a path's figure in ``checks`` (the sync ones as first committed)."""
    import results

    mode, saves = results.callgrind_path(path)
    thread = " (save()'s thread)" if mode == "async" else ""
    return f"{mode} save() path{thread}, {saves}: instructions per save"


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return 0
    from signal_bench import ROOT

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="measured saves per path (default 200)")
    parser.add_argument("--json", default=str(ROOT / "Benchmarks" / "results" / "bridge-callgrind.json"),
                        help="where to write the results (default Benchmarks/results/bridge-callgrind.json)")
    return parent(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())

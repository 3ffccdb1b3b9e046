#!/usr/bin/env python3
"""The async sender's CPU per message, one round at a time, against a real worker.

What ``MODE = "async"`` costs Django's process beyond ``save()``'s own thread
(issue 22's async floor): the background sender renders each queued save into
its request, sends the round pipelined over the bridge's DEALER, reads the
replies and settles them. This driver runs exactly that code (``Sender._take``
then ``Sender._round``) on its own thread, in rounds of ``--batch`` messages,
and reads the thread's CPU time (``time.thread_time``) around each part:

- *render*: ``_take``: the queued tuple made into a message (its id, head,
  serialized fields, JSON text);
- *send + replies*: ``_round``: the frames, the pipelined sends, every reply
  read and parsed, the acks counted (no database statement for creates; updates
  also run the backlog check, one ``SELECT`` per round).

libzmq's I/O thread is not in these figures (its CPU is in the process's, as
in ``save_benchmark.py``'s *CPU µs/save*). The saves that fill the queue run
before the clock with the sender thread parked, so nothing else competes.
Every round is checked: each message acknowledged, and the profiles in the
database as the messages say. Django on CPU 0, the worker on CPU 1 (``--no-pin``:
unpinned); SQLite in WAL, the worker with its defaults.

    Benchmarks/django/sender_round.py [--batch 500] [--rounds 5] [--output PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
from signal_bench import (  # noqa: E402  (the benchmarks' shared harness)
    ANY_LOOPBACK_PORT, CREATE_DATA, EXAMPLE, RELEASE_WORKER, UPDATE_DATA, SQLiteDB, django_env, fmt, git, log, median,
    pin_preexec, pinning_possible, quartiles, start_worker, worker_version, write_report,
)


def child(rounds: int, batch: int) -> None:
    """Runs in a Django process of the example project (async mode); prints one JSON line."""
    sys.path.insert(0, os.environ["EXAMPLE_DIR"])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exampleproject.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from accounts.models import UserProfile
    from signal_bridge import sender as background
    from signal_bridge import state

    # The thread that would run rounds on its own timer is parked: this process runs them itself.
    background.Sender._run = lambda self: time.sleep(3600)
    User = get_user_model()
    sender = background.get()
    figures: dict[str, list[tuple[float, float]]] = {"create": [], "update": []}

    def one_round(kind: str, users: list) -> None:
        for user in users:
            user._profile_data = dict(CREATE_DATA if kind == "create" else UPDATE_DATA)
            user.save()
        if sender.queue.qsize() != len(users):
            raise SystemExit(f"{kind}: {sender.queue.qsize()} queued, {len(users)} saved")
        acked = state.stats().get("acked", 0)
        started = time.thread_time()
        messages: list = []
        sender._take(messages, len(users) + 1)
        rendered = time.thread_time()
        sender._round(messages, [])
        ended = time.thread_time()
        sender._done(len(messages))
        if state.stats().get("acked", 0) - acked != len(users) or sender.deferred_to:
            raise SystemExit(f"{kind}: not every message was acknowledged (deferred to {sender.deferred_to})")
        sex = "F" if kind == "create" else "M"
        stored = UserProfile.objects.filter(user__in=users, profile_type="business", sex=sex).count()
        if stored != len(users):
            raise SystemExit(f"{kind}: {stored} of {len(users)} profiles as the messages say")
        n = len(messages)
        figures[kind].append(((rendered - started) / n * 1e6, (ended - rendered) / n * 1e6))

    for r in range(rounds + 1):  # round 0 warms every path up and is not counted
        users = [User(username=f"round{r}-{i}") for i in range(batch)]
        one_round("create", users)
        one_round("update", users)
        if r == 0:
            figures = {"create": [], "update": []}
    print(json.dumps(figures), flush=True)


def report(figures: dict, args, meta: str) -> str:
    lines = [
        "# The async sender's CPU per message",
        "",
        f"- command: `Benchmarks/django/sender_round.py --batch {args.batch} --rounds {args.rounds}"
        + (" --no-pin" if not args.pin else "") + "`",
        f"- {meta}",
        f"- {args.rounds} rounds of {args.batch} creates, then the same users updated; median (interquartile range)"
        " of the sender thread's CPU µs per message",
        "",
        "| messages | render | send + replies | sender thread in all |",
        "| --- | ---: | ---: | ---: |",
    ]
    for kind in ("create", "update"):
        rows = figures[kind]
        cells = []
        for values in ([r for r, _ in rows], [s for _, s in rows], [r + s for r, s in rows]):
            q1, q3 = quartiles(values)
            cells.append(f"{fmt(median(values), 1)} ({fmt(q1, 1)}–{fmt(q3, 1)})")
        lines.append(f"| {kind}s | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parent(args) -> int:
    worker = Path(args.worker)
    if not worker.exists():
        log(f"{worker} missing: swift build -c release --product signal-worker")
        return 2
    pin = args.pin and pinning_possible(0, 1)
    with tempfile.TemporaryDirectory(prefix="sender-round-") as tmp:
        db = SQLiteDB(Path(tmp))
        url, path = db.fresh()
        proc = start_worker(worker, url, Path(tmp) / "worker.log", bind=ANY_LOOPBACK_PORT, cpu=1 if pin else None)
        endpoint = proc.bind
        try:
            env = django_env(url)
            env.update(ACCOUNTS_RECEIVER="bridge", SIGNAL_BRIDGE_MODE="async", SIGNAL_BRIDGE_ENDPOINT=endpoint,
                       EXAMPLE_DIR=str(EXAMPLE))
            run = subprocess.run([sys.executable, __file__, "--child", str(args.rounds), str(args.batch)], env=env,
                                 cwd=EXAMPLE, capture_output=True, text=True, preexec_fn=pin_preexec(0 if pin else None))
        finally:
            proc.stop()
        if run.returncode != 0:
            log(f"the Django process failed (exit {run.returncode}):\n{run.stdout[-1000:]}{run.stderr[-2000:]}")
            return 1
    figures = json.loads(run.stdout.strip().splitlines()[-1])
    meta = (f"commit {git('rev-parse', '--short', 'HEAD')}; {worker_version(worker)}; "
            + ("Django on CPU 0, the worker on CPU 1" if pin else "unpinned"))
    write_report(report(figures, args, meta), args.output)
    return 0


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=500, help="messages per round (default 500)")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (default 5; one more warms up)")
    parser.add_argument("--worker", default=str(RELEASE_WORKER), help="the signal-worker binary (release build)")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                        help="Django on CPU 0, the worker on CPU 1 (default)")
    parser.add_argument("--output", help="also write the Markdown report here")
    return parent(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())

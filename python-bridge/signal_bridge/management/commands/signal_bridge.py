"""``manage.py signal_bridge relay|ping|status|deadletters``: operations.

- ``relay [--once|--forever] [--batch N] [--database ALIAS]``: send the rows
  left in the outbox (see ``signal_bridge.relay``). ``--once`` (default)
  exits 1 if rows remain; ``--forever`` runs until SIGTERM/SIGINT, finishing
  the round in flight.
- ``ping``: exit 0 and print the round-trip time if the worker answers, 1 if not.
- ``status``: outbox depth, age of the oldest row, dead letters.
- ``deadletters [--limit N]``: list the dead letters, newest last.
"""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Min
from django.utils import timezone

from signal_bridge import conf, relay, transport
from signal_bridge.exceptions import WorkerError
from signal_bridge.redaction import redact


def stop_on_signal(stop: threading.Event):
    """A signal handler that sets ``stop`` without ever blocking the main thread.

    Python runs a signal handler in the main thread between two bytecodes,
    possibly while that thread is inside ``stop.wait()`` holding the Event's
    internal lock, which is not reentrant: a handler calling ``stop.set()``
    there waits for itself forever (the relay then ignores SIGTERM until it is
    killed). A short-lived thread takes the lock once the main thread lets go.
    """

    def handler(signum, frame):
        threading.Thread(target=stop.set, name="signal-bridge-stop", daemon=True).start()

    return handler


class Command(BaseCommand):
    help = "Operate the signal bridge: relay the outbox, ping the worker, show status and dead letters."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True, metavar="{relay,ping,status,deadletters}")
        relay_parser = sub.add_parser("relay", help="Send the rows left in the outbox, in seq order.")
        how = relay_parser.add_mutually_exclusive_group()
        how.add_argument("--once", action="store_true", help="Send what is there now; exit 1 if rows remain (default).")
        how.add_argument("--forever", action="store_true", help="Keep relaying until SIGTERM/SIGINT; never give up.")
        relay_parser.add_argument("--batch", type=int, default=None, help="Rows per round (default RELAY_BATCH).")
        relay_parser.add_argument("--database", default="default", help="Database alias of the outbox.")
        sub.add_parser("ping", help="Ping the worker; exit 1 if it does not answer.")
        status_parser = sub.add_parser("status", help="Outbox depth, oldest row age, dead letters.")
        status_parser.add_argument("--database", default="default")
        dead_parser = sub.add_parser("deadletters", help="List the messages the worker refused.")
        dead_parser.add_argument("--database", default="default")
        dead_parser.add_argument("--limit", type=int, default=50)

    def handle(self, *args, action, **options):
        return getattr(self, f"handle_{action}")(**options)

    def handle_relay(self, *, once, forever, batch, database, **options):
        if batch is not None and batch < 1:
            raise CommandError("--batch must be >= 1")
        stop = threading.Event()
        if forever:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, stop_on_signal(stop))
        result = relay.run(
            using=database,
            once=not forever,
            batch=batch,
            stop=stop,
            log=lambda line: self.stderr.write(line),
        )
        transport.close_socket()
        self.stdout.write(
            f"relay: sent {result.sent}, acked {result.acked}, dead-lettered {result.dead_lettered}, "
            f"remaining {result.remaining}"
        )
        if not forever and result.remaining:
            raise CommandError(f"{result.remaining} rows remain in the outbox", returncode=1)

    def handle_ping(self, **options):
        config = conf.get()
        try:
            rtt = transport.ping(endpoints=config.endpoints, timeout_ms=config.timeout_ms)
        except WorkerError as exc:
            raise CommandError(str(exc), returncode=1)
        finally:
            transport.close_socket()
        self.stdout.write(f"pong from {redact(', '.join(config.endpoints))} in {rtt * 1000:.2f} ms")

    def handle_status(self, *, database, **options):
        from signal_bridge.models import DeadLetter, OutboxMessage

        rows = OutboxMessage.objects.using(database)
        depth = rows.count()
        oldest = rows.aggregate(oldest=Min("created_at"))["oldest"]
        age = f"{(timezone.now() - oldest).total_seconds():.1f} s" if oldest else "-"
        dead = DeadLetter.objects.using(database).count()
        self.stdout.write(f"outbox: {depth} rows, oldest {age}\ndead letters: {dead}")

    def handle_deadletters(self, *, database, limit, **options):
        from signal_bridge.models import DeadLetter

        letters = list(DeadLetter.objects.using(database).order_by("-id")[:limit])
        if not letters:
            self.stdout.write("no dead letters")
            return
        for d in reversed(letters):
            field = f" field={d.field}" if d.field else ""
            self.stdout.write(
                f"{d.failed_at.isoformat()} seq={d.seq} id={d.message_id} {d.sender}:{d.object_pk} "
                f"code={d.code}{field} attempts={d.attempts}: {d.message}"
            )

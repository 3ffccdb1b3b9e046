"""``manage.py signal_bridge relay|ping|status|deadletters``: operations.

- ``relay [--once|--forever] [--batch N] [--database ALIAS]``: send the rows
  left in the outbox (see ``signal_bridge.relay``). ``--once`` (default)
  exits 1 if rows remain; ``--forever`` runs until SIGTERM/SIGINT, finishing
  the round in flight.
- ``ping``: exit 0 and print the round-trip time if the worker answers, 1 if not.
- ``status``: outbox depth, age of the oldest row, dead letters.
- ``deadletters [--limit N]``: list the dead letters, newest last, each
  with its id (``#12``).
- ``deadletters requeue (ID... | --all) [--reason TEXT]``: put dead letters
  back into the outbox with their message id and seq, after the cause was
  fixed (``signal_bridge.deadletters.requeue``).
- ``deadletters purge --older-than DURATION [--dry-run]``: delete dead
  letters that failed more than DURATION ago (``7d``, ``12h``).
"""

from __future__ import annotations

import argparse
import signal
import threading

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Min
from django.utils import timezone

from signal_bridge import conf, deadletters, relay, transport
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
        dead_parser = sub.add_parser(
            "deadletters",
            help="List the messages the worker refused (newest last); requeue or purge them.",
            description="Without a subcommand: list the dead letters, newest last, each with its id (#ID).",
        )
        dead_parser.add_argument("--database", default="default", help="Database alias of the outbox.")
        dead_parser.add_argument("--limit", type=int, default=50, help="Most dead letters listed (default 50).")
        dead_sub = dead_parser.add_subparsers(dest="deadletters_action", metavar="{requeue,purge}")
        # SUPPRESS: "--database" may also come after the subcommand without resetting the value given before it.
        database_option = {"default": argparse.SUPPRESS, "help": "Database alias of the outbox (default: default)."}
        requeue_parser = dead_sub.add_parser(
            "requeue",
            help="Put dead letters back into the outbox, with their message id and seq, once the cause is fixed.",
            description=(
                "Put dead letters back into the outbox and remove them from the dead letters, in one transaction. "
                "Each keeps its message id (the worker's dedupe still applies) and its seq: the relay sends it "
                "before every newer row of its object. If a newer message of its object was applied since it "
                "failed, the worker answers stale and it returns to the dead letters as 'overtaken by seq N'. "
                "A dead letter without a seq (an autocommit save) gets a new seq: it is sent after every row now "
                "in the outbox and applied as the newest message of its object, over whatever was saved since. "
                "Dead letters with code stale are never requeued (the worker remembers their id and would "
                "answer duplicate without applying them). The relay (or the next save of the object) sends them."
            ),
        )
        which = requeue_parser.add_mutually_exclusive_group(required=True)
        which.add_argument("ids", nargs="*", type=int, default=[], metavar="ID",
                           help="Dead letter ids, as `deadletters` lists them (#ID).")
        which.add_argument("--all", dest="all_letters", action="store_true", help="Every dead letter (narrow it with --reason).")
        requeue_parser.add_argument(
            "--reason", metavar="TEXT", default=None,
            help="Only dead letters whose code is exactly TEXT (e.g. conflict, invalid_value) or whose message "
                 "contains TEXT as a case-sensitive substring (e.g. 'a profile already exists'). Applies to the "
                 "listed ids as well as to --all.",
        )
        requeue_parser.add_argument("--database", **database_option)
        purge_parser = dead_sub.add_parser(
            "purge",
            help="Delete dead letters that failed more than DURATION ago.",
            description="Delete the dead letters whose failed_at is older than DURATION and print how many.",
        )
        purge_parser.add_argument(
            "--older-than", required=True, metavar="DURATION",
            help="A whole number and a unit: s (seconds), m (minutes), h (hours), d (days) or w (weeks), "
                 "e.g. 7d, 12h, 90m. Dead letters whose failed_at is before now minus DURATION are deleted.",
        )
        purge_parser.add_argument("--dry-run", action="store_true", help="Only print how many would be deleted.")
        purge_parser.add_argument("--database", **database_option)

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

    def handle_deadletters(self, *, database, limit, deadletters_action=None, **options):
        from signal_bridge.models import DeadLetter

        if deadletters_action == "requeue":
            return self.requeue(database=database, **options)
        if deadletters_action == "purge":
            return self.purge(database=database, **options)

        letters = list(DeadLetter.objects.using(database).order_by("-id")[:limit])
        if not letters:
            self.stdout.write("no dead letters")
            return
        for d in reversed(letters):
            field = f" field={d.field}" if d.field else ""
            self.stdout.write(
                f"#{d.id} {d.failed_at.isoformat()} seq={d.seq} message_id={d.message_id} {d.sender}:{d.object_pk} "
                f"code={d.code}{field} attempts={d.attempts}: {d.message}"
            )

    def requeue(self, *, database, ids, all_letters, reason, **options):
        try:
            result = deadletters.requeue(database, ids=None if all_letters else ids, reason=reason)
        except LookupError as error:
            raise CommandError(f"{error}; nothing requeued") from None
        for item in result.requeued:
            how = "a new seq: it had none" if item.new_seq else "its seq"
            self.stdout.write(f"requeued #{item.letter_id} as outbox seq {item.seq} ({how}), message {item.message_id}")
        for letter_id, why in result.skipped:
            self.stderr.write(f"not requeued #{letter_id}: {why}")
        self.stdout.write(
            f"requeued {len(result.requeued)}, not requeued {len(result.skipped)}"
            + ("; the relay sends them (manage.py signal_bridge relay)" if result.requeued else "")
        )
        if result.skipped and not all_letters:
            raise CommandError(f"{len(result.skipped)} of the dead letters named could not be requeued", returncode=1)

    def purge(self, *, database, older_than, dry_run, **options):
        try:
            age = deadletters.parse_duration(older_than)
        except ValueError as error:
            raise CommandError(f"--older-than: {error}") from None
        count, cutoff = deadletters.purge(database, older_than=age, dry_run=dry_run)
        verb = "would purge" if dry_run else "purged"
        self.stdout.write(f"{verb} {count} dead letters that failed before {cutoff.isoformat()}")

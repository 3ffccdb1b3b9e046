"""Acting on dead letters: requeue them after the cause is fixed, purge old ones.

Used by ``manage.py signal_bridge deadletters requeue|purge`` and by the
admin action on the dead-letter page; python-bridge/README.md, "Dead
letters", is the operator's description.

**Requeue** puts a dead letter back into the outbox and deletes it from the
dead letters, in one transaction, with its original message id (the
worker's dedupe still recognises it) and its original ``seq`` (the relay
sends rows in seq order, so it goes before every newer row of its object
still in the outbox, and the worker's ordering check still compares it with
what it applied since). The row gets ``attempts`` of at least 1: the
durable mark, read by every process (``failures.seen_failing``), that makes
a ``stale`` answer to it a dead letter again ("overtaken by seq N") rather
than an acknowledgement. A letter that never had a row (an autocommit
message; ``seq`` null) gets a new seq, the newest in the outbox: it is sent
after every row there and applied as the newest message of its object.

Not requeued (reported as skipped): letters with code ``stale``, because the
worker recorded their id when it answered ``stale`` (docs/PROTOCOL.md,
"Exactly once and ordering") and would answer the same id ``duplicate`` without applying
anything; and letters whose message id (or seq) is already in the outbox.

**Purge** deletes the dead letters that failed more than a given time ago.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import re

from django.db import transaction
from django.utils import timezone

logger = logging.getLogger("signal_bridge")

#: Why a ``stale`` dead letter is never requeued (shown by the command and the admin).
STALE_NOT_REQUEUED = (
    "answered stale: the worker remembers its id and would answer it duplicate without applying it; "
    "save the object again to apply its change"
)

_DURATION = re.compile(r"(\d+)([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclasses.dataclass(frozen=True)
class Requeued:
    """One dead letter put back: its former id, its message id and the outbox seq it got."""

    letter_id: int
    message_id: str
    seq: int
    new_seq: bool  # the letter had no seq: ``seq`` is a new one


@dataclasses.dataclass
class RequeueResult:
    requeued: list[Requeued] = dataclasses.field(default_factory=list)
    skipped: list[tuple[int, str]] = dataclasses.field(default_factory=list)  # (letter id, why)


def matches_reason(letter, reason: str | None) -> bool:
    """``--reason``: the letter's code is ``reason`` exactly, or its message contains it (case-sensitive)."""
    return reason is None or letter.code == reason or reason in (letter.message or "")


def requeue(using: str = "default", *, ids=None, reason: str | None = None) -> RequeueResult:
    """Put dead letters back into the outbox (see the module docstring); one transaction.

    ``ids``: the dead letters' primary keys, or ``None`` for every dead
    letter; ``reason``: keep only those :func:`matches_reason` accepts.
    Letters are taken in id order; those without a seq get new seqs in the
    order they were made (``created_at``), so an object's saves keep their
    order among themselves. Raises ``LookupError`` naming the ids that do
    not exist (nothing is requeued then).
    """
    from .models import DeadLetter, OutboxMessage

    result = RequeueResult()
    with transaction.atomic(using=using):
        letters = DeadLetter.objects.using(using).select_for_update().order_by("id")
        if ids is not None:
            wanted = sorted({int(i) for i in ids})
            letters = list(letters.filter(id__in=wanted))
            missing = sorted(set(wanted) - {letter.id for letter in letters})
            if missing:
                raise LookupError(f"no dead letter with id {', '.join(map(str, missing))} in database {using!r}")
        letters = [letter for letter in letters if matches_reason(letter, reason)]
        rows = OutboxMessage.objects.using(using)
        taken_ids = set(rows.filter(message_id__in=[d.message_id for d in letters]).values_list("message_id", flat=True))
        taken_seqs = set(rows.filter(seq__in=[d.seq for d in letters if d.seq is not None]).values_list("seq", flat=True))
        keep: list = []
        for letter in letters:
            if letter.code == "stale":
                result.skipped.append((letter.id, STALE_NOT_REQUEUED))
            elif letter.message_id in taken_ids:
                result.skipped.append((letter.id, f"message {letter.message_id} is already in the outbox"))
            elif letter.seq is not None and letter.seq in taken_seqs:
                result.skipped.append((letter.id, f"seq {letter.seq} is taken by another outbox row"))
            else:
                keep.append(letter)
                taken_ids.add(letter.message_id)  # a second letter of the same message is skipped
        # Letters with their seq first (their place is fixed), then the others in the order they were made.
        keep.sort(key=lambda d: (d.seq is None, d.created_at if d.seq is None else 0, d.id))
        for letter in keep:
            row = rows.create(
                seq=letter.seq,  # None: the next seq
                message_id=letter.message_id,
                sender=letter.sender,
                object_pk=letter.object_pk,
                payload=letter.payload,
                created_at=letter.created_at,
                attempts=max(letter.attempts, 1),
                last_error=f"requeued from dead letter #{letter.id} ({letter.code}: {letter.message})"[:2000],
            )
            result.requeued.append(Requeued(letter.id, letter.message_id, row.seq, letter.seq is None))
        DeadLetter.objects.using(using).filter(id__in=[d.id for d in keep]).delete()
    for item in result.requeued:
        logger.info(
            "signal_bridge: dead letter #%d (message %s) requeued as outbox seq %d%s",
            item.letter_id, item.message_id, item.seq, " (new seq)" if item.new_seq else "",
        )
    return result


def parse_duration(text: str) -> datetime.timedelta:
    """``--older-than``: a whole number and one unit, ``s``, ``m``, ``h``, ``d`` or ``w`` (``90m``, ``12h``, ``7d``)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"{text!r} is not a duration: a whole number followed by s, m, h, d or w (seconds, minutes, hours, "
            "days, weeks), e.g. 7d or 12h"
        )
    return datetime.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def purge(using: str = "default", *, older_than: datetime.timedelta, dry_run: bool = False) -> tuple[int, datetime.datetime]:
    """Delete the dead letters whose ``failed_at`` is before now minus ``older_than``.

    Returns ``(count, cutoff)``; with ``dry_run`` nothing is deleted and
    ``count`` is how many would be.
    """
    from .models import DeadLetter

    cutoff = timezone.now() - older_than
    letters = DeadLetter.objects.using(using).filter(failed_at__lt=cutoff)
    if dry_run:
        return letters.count(), cutoff
    count, _ = letters.delete()
    logger.info("signal_bridge: purged %d dead letters that failed before %s", count, cutoff.isoformat())
    return count, cutoff

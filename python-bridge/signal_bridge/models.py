"""The outbox and the dead-letter table, in the database that saved the sender.

``OutboxMessage.seq`` is the message's ``seq`` on the wire (docs/PROTOCOL.md,
"Exactly once and ordering"): for one object, sequence order is commit order when the
row is written in the save's transaction. ``payload`` is the request without
``seq`` (``envelope.wire`` adds it).
"""

from django.db import models
from django.utils import timezone


class OutboxMessage(models.Model):
    """A message not yet acknowledged by the worker."""

    seq = models.BigAutoField(primary_key=True)
    message_id = models.CharField(max_length=64, unique=True)
    sender = models.CharField(max_length=100, help_text="Model label, lower case.")
    object_pk = models.CharField(max_length=255, help_text="The instance's pk, as text.")
    payload = models.TextField(help_text="The request as JSON, without seq.")
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        db_table = "signal_bridge_outbox"
        ordering = ["seq"]
        indexes = [
            # Backlog check before a live send: older rows of the same object.
            models.Index(fields=["sender", "object_pk", "seq"], name="signal_bridge_outbox_obj"),
        ]

    def __str__(self) -> str:
        return f"outbox #{self.seq} {self.sender}:{self.object_pk} {self.message_id}"


class DeadLetter(models.Model):
    """A message the worker refused with a final error; kept for people to look at."""

    id = models.BigAutoField(primary_key=True)
    seq = models.BigIntegerField(null=True, help_text="The outbox seq it had (null if it never had a row).")
    message_id = models.CharField(max_length=64, db_index=True)
    sender = models.CharField(max_length=100)
    object_pk = models.CharField(max_length=255)
    payload = models.TextField()
    created_at = models.DateTimeField(help_text="When the message was made.")
    failed_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    code = models.CharField(max_length=64)
    message = models.TextField(blank=True, default="")
    field = models.CharField(max_length=255, null=True, blank=True)

    class Meta:
        db_table = "signal_bridge_deadletter"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"dead letter {self.message_id} {self.code}"

"""Django admin pages for the outbox and the dead letters.

Loaded only where ``django.contrib.admin`` is installed (its autodiscovery
imports this module). Both tables are the bridge's: nobody adds or edits a
row by hand. Outbox rows cannot be deleted here either: a row is a message
not yet delivered, and deleting it loses the message (the relay delivers it,
or moves it to the dead letters on a final error). Dead letters are kept for
people to read; delete them once dealt with, or, once their cause is fixed,
requeue them (the action "Requeue ...", for users who may delete dead
letters: it does what ``manage.py signal_bridge deadletters requeue ID...``
does, see ``signal_bridge.deadletters``).
"""

from django.contrib import admin, messages

from . import deadletters
from .models import DeadLetter, OutboxMessage


class _WrittenByTheBridge(admin.ModelAdmin):
    """Viewable, never added or changed by hand."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(OutboxMessage)
class OutboxMessageAdmin(_WrittenByTheBridge):
    list_display = ("seq", "sender", "object_pk", "message_id", "created_at", "attempts", "last_error")
    list_filter = ("sender",)
    search_fields = ("message_id", "object_pk")

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DeadLetter)
class DeadLetterAdmin(_WrittenByTheBridge):
    list_display = ("id", "failed_at", "code", "field", "message", "sender", "object_pk", "message_id")
    list_filter = ("code", "sender")
    search_fields = ("message_id", "object_pk")
    actions = ["requeue"]

    @admin.action(
        description="Requeue selected dead letters (their cause is fixed): back into the outbox, same id and seq",
        permissions=["delete"],
    )
    def requeue(self, request, queryset):
        try:
            result = deadletters.requeue(queryset.db, ids=list(queryset.values_list("id", flat=True)))
        except LookupError as error:  # deleted or requeued by someone else meanwhile
            self.message_user(request, f"{error}; nothing requeued", messages.ERROR)
            return
        if result.requeued:
            self.message_user(
                request,
                f"Requeued {len(result.requeued)} dead letters into the outbox "
                f"({', '.join(f'#{r.letter_id} as seq {r.seq}' for r in result.requeued)}); the relay sends them.",
                messages.SUCCESS,
            )
        for letter_id, why in result.skipped:
            self.message_user(request, f"Not requeued #{letter_id}: {why}", messages.WARNING)

"""Django admin pages for the outbox and the dead letters.

Loaded only where ``django.contrib.admin`` is installed (its autodiscovery
imports this module). Both tables are the bridge's: nobody adds or edits a
row by hand. Outbox rows cannot be deleted here either: a row is a message
not yet delivered, and deleting it loses the message (the relay delivers it,
or moves it to the dead letters on a final error). Dead letters are kept for
people to read; delete them once dealt with.
"""

from django.contrib import admin

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

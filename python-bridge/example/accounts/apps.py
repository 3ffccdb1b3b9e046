import django
from django.apps import AppConfig
from django.conf import settings
from django.db.backends.signals import connection_created


def use_wal(sender, connection, **kwargs):
    """Django < 5.1 has no SQLite ``init_command``: switch the file to WAL here.

    The worker writes the same file; WAL lets Django read while it does. The
    mode is stored in the file, so this only matters for a new database.
    """
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self):
        if django.VERSION < (5, 1):
            connection_created.connect(use_wal, dispatch_uid="accounts.use_wal")
        # Only registration here. The receiver runs in process only when asked
        # (ACCOUNTS_RECEIVER=in_process); with "bridge" the Swift worker plays it.
        if getattr(settings, "ACCOUNTS_RECEIVER", "none") == "in_process":
            from django.contrib.auth import get_user_model
            from django.db.models.signals import post_save

            from .receivers import create_or_update_user_profile

            post_save.connect(
                create_or_update_user_profile,
                sender=get_user_model(),
                dispatch_uid="accounts.create_or_update_user_profile",
            )

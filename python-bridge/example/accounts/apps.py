import django
from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.db.backends.signals import connection_created


def use_wal(sender, connection, **kwargs):
    """Django < 5.1 has no SQLite ``init_command``: switch the file to WAL here.

    The worker writes the same file; WAL lets Django read while it does. The
    mode is stored in the file, so this only matters for a new database.
    """
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode=WAL")


def check_receivers(app_configs, **kwargs):
    """``ACCOUNTS_RECEIVERS`` names known receivers once each; drf-token has its table."""
    from django.apps import apps

    from . import in_process

    try:
        names = in_process.enabled()
    except ValueError as exc:
        return [
            checks.Error(
                f"ACCOUNTS_RECEIVERS = {getattr(settings, 'ACCOUNTS_RECEIVERS', None)!r}: {exc}.",
                hint=f"Name receivers of {', '.join(in_process.RECEIVERS)}, in the worker's --receivers order.",
                id="accounts.E001",
            )
        ]
    if "drf-token" in names and not apps.is_installed("rest_framework.authtoken"):
        return [
            checks.Error(
                "ACCOUNTS_RECEIVERS names drf-token but rest_framework.authtoken is not in INSTALLED_APPS.",
                hint="Add 'rest_framework.authtoken' to INSTALLED_APPS and migrate (table authtoken_token).",
                id="accounts.E002",
            )
        ]
    return []


class AccountsConfig(AppConfig):
    name = "accounts"

    def ready(self):
        checks.register(check_receivers)
        if django.VERSION < (5, 1):
            connection_created.connect(use_wal, dispatch_uid="accounts.use_wal")
        # Only registration here. The receivers run in process only when asked
        # (ACCOUNTS_RECEIVER=in_process); with "bridge" the Swift worker plays them.
        if getattr(settings, "ACCOUNTS_RECEIVER", "none") == "in_process":
            from . import in_process

            in_process.connect()

"""System checks (``manage.py check``); ids are listed in python-bridge/README.md.

Errors come from the same validation ``conf.get()`` runs (``signal_bridge.E0xx``),
plus what needs the app registry: model labels and importable local
receivers. Warnings cover SQLite set up so that the worker, which writes the
same file, would make Django's writes fail with "database is locked"
(docs/OPERATIONS.md, "SQLite shared with Django"). The worker's reachability is a ``deploy`` check only: it
talks to the network, so it never runs at import time or in a plain
``check``.
"""

from __future__ import annotations

import re

import django
from django.core import checks
from django.db import connections
from django.utils.module_loading import import_string

from . import conf


@checks.register()
def check_settings(app_configs=None, **kwargs):
    from django.apps import apps

    config, problems = conf.validate(conf.raw_settings())
    errors = [checks.Error(p.msg, hint=p.hint, id=p.id) for p in problems]
    raw = conf.raw_settings()
    senders = raw.get("SENDERS", {}) if isinstance(raw, dict) else {}
    if isinstance(senders, dict):
        for label in senders:
            if not isinstance(label, str) or label.count(".") != 1:
                continue  # reported by validate()
            try:
                apps.get_model(label)
            except LookupError:
                errors.append(
                    checks.Error(
                        f"SIGNAL_BRIDGE['SENDERS'] names {label!r}, which is not an installed model.",
                        hint="Use the model label 'app_label.modelname' (e.g. 'auth.user').",
                        id="signal_bridge.E006",
                    )
                )
    local = raw.get("LOCAL_RECEIVERS", {}) if isinstance(raw, dict) else {}
    if isinstance(local, dict):
        for label, path in local.items():
            if not isinstance(path, str):
                continue
            try:
                receiver = import_string(path)
            except ImportError as exc:
                errors.append(
                    checks.Error(
                        f"SIGNAL_BRIDGE['LOCAL_RECEIVERS'][{label!r}] = {path!r} cannot be imported: {exc}",
                        id="signal_bridge.E008",
                    )
                )
                continue
            if not callable(receiver):
                errors.append(
                    checks.Error(
                        f"SIGNAL_BRIDGE['LOCAL_RECEIVERS'][{label!r}] = {path!r} is not callable.",
                        id="signal_bridge.E008",
                    )
                )
    errors += _secret_field_warnings(raw)
    if config is not None and config.enabled and not config.senders:
        errors.append(
            checks.Warning(
                "SIGNAL_BRIDGE is enabled but SENDERS is empty: nothing will be published.",
                hint='Add e.g. "SENDERS": {"auth.user": {"signals": ["post_save"], "attrs": ["_profile_data"]}}.',
                id="signal_bridge.W003",
            )
        )
    return errors


# Field names that look like secrets (matched case-insensitively): any name containing
# password, passwd, secret, token, credential, api_key/apikey, private_key or salt, and
# names that are or end in key, hash, pin or otp ("_key", "_hash", ...). A field that only
# looks secret (say "content_hash") can be kept with SILENCED_SYSTEM_CHECKS.
SECRET_FIELD_NAME = re.compile(
    r"password|passwd|secret|token|credential|api_?key|private_?key|salt|(?:^|_)(?:key|hash|pin|otp)$",
    re.IGNORECASE,
)


def _secret_field_warnings(raw) -> list:
    """``signal_bridge.W004``: a sender sends fields that look secret (a password hash, a token).

    Every field a sender lists travels in every message and stays in the
    outbox and dead-letter rows (and the admin pages showing them).
    """
    from django.apps import apps

    senders = raw.get("SENDERS") if isinstance(raw, dict) else None
    if not isinstance(senders, dict):
        return []
    parsed = conf._validate_senders(senders, [])  # problems are reported by validate() above
    warnings = []
    for label, sender in sorted(parsed.items()):
        names = sender.fields
        if names is None:  # "__all__": the model's concrete fields
            try:
                model = apps.get_model(label)
            except (LookupError, ValueError):
                continue  # reported as E006
            names = tuple(f.name for f in model._meta.concrete_fields if not f.primary_key)
        secret = [name for name in names if SECRET_FIELD_NAME.search(name)]
        if secret:
            warnings.append(
                checks.Warning(
                    f"SIGNAL_BRIDGE['SENDERS'][{label!r}] sends {', '.join(map(repr, secret))}, which look like "
                    "secrets: every message carries them, and outbox and dead-letter rows (and the admin) keep them.",
                    hint="List in 'fields' only what the worker's receiver reads, or leave 'fields' out "
                    "(the primary key only).",
                    id="signal_bridge.W004",
                )
            )
    return warnings


@checks.register()
def check_sqlite(app_configs=None, databases=None, **kwargs):
    """SQLite shared with the worker needs WAL and IMMEDIATE transactions."""
    warnings = []
    for alias in connections:
        settings_dict = connections[alias].settings_dict
        if settings_dict.get("ENGINE") != "django.db.backends.sqlite3":
            continue
        options = settings_dict.get("OPTIONS") or {}
        if not _wal_configured(alias, options, databases):
            warnings.append(
                checks.Warning(
                    f"Database {alias!r} is SQLite without WAL: the worker writes the same file, "
                    "and in rollback-journal mode its writes block Django's readers.",
                    hint=(
                        'Set DATABASES[...]["OPTIONS"]["init_command"] = "PRAGMA journal_mode=WAL;".'
                        if _HAS_SQLITE_OPTIONS
                        else 'Django < 5.1: run "PRAGMA journal_mode=WAL;" once on the file (the mode is '
                        "stored in it), e.g. from a connection_created receiver."
                    ),
                    id="signal_bridge.W001",
                )
            )
        if str(options.get("transaction_mode") or "").upper() != "IMMEDIATE":
            warnings.append(
                checks.Warning(
                    f"Database {alias!r} is SQLite without IMMEDIATE transactions: a transaction that "
                    "reads and then writes while the worker writes fails with 'database is locked' "
                    'instead of waiting (docs/OPERATIONS.md, "SQLite shared with Django").',
                    hint=(
                        'Set DATABASES[...]["OPTIONS"]["transaction_mode"] = "IMMEDIATE".'
                        if _HAS_SQLITE_OPTIONS
                        else "Django < 5.1 cannot set it: upgrade to 5.1 or later, or retry transactions "
                        "that fail with 'database is locked'."
                    ),
                    id="signal_bridge.W002",
                )
            )
    return warnings


# Django 5.1 added the SQLite OPTIONS "init_command" and "transaction_mode".
_HAS_SQLITE_OPTIONS = django.VERSION >= (5, 1)


def _wal_configured(alias: str, options: dict, databases) -> bool:
    """Whether ``alias`` runs in WAL mode, as far as the check may tell.

    ``init_command`` says so without a connection. Otherwise the file is asked
    (``PRAGMA journal_mode``) only when the check may use the database
    (``databases`` names it: ``migrate``, ``check --database``); without that,
    Django < 5.1 (where WAL can only be set on the file or by a
    ``connection_created`` receiver) gets the benefit of the doubt.
    """
    init = str(options.get("init_command") or "").replace(" ", "").lower()
    if "journal_mode=wal" in init:
        return True
    if databases and alias in databases:
        with connections[alias].cursor() as cursor:
            cursor.execute("PRAGMA journal_mode")
            return str(cursor.fetchone()[0]).lower() == "wal"
    return not _HAS_SQLITE_OPTIONS


@checks.register(deploy=True)
def check_worker_reachable(app_configs=None, **kwargs):
    """``manage.py check --deploy``: the worker answers a ping."""
    from . import transport
    from .exceptions import WorkerError

    config, _ = conf.validate(conf.raw_settings())
    if config is None or not config.enabled:
        return []
    try:
        transport.ping(endpoints=config.endpoints, timeout_ms=config.timeout_ms)
    except WorkerError as exc:
        return [
            checks.Warning(
                f"signal-worker does not answer a ping: {exc}",
                hint="Start it (signal-worker serve --bind ...) or fix SIGNAL_BRIDGE['ENDPOINT'].",
                id="signal_bridge.W010",
            )
        ]
    finally:
        transport.close_socket()
    return []

"""The receivers that run in process, in the worker's names and order.

``settings.ACCOUNTS_RECEIVERS`` lists them as the worker's ``--receivers``
does (``["profile"]``, ``["profile", "drf-token"]``): the same names, and the
list order is the order Django connected them in, so the order they run in.
:func:`run_receivers` is the one ``post_save`` receiver that runs them. With
more than one it runs them inside one ``transaction.atomic()``, as the worker
applies a message's receivers in one transaction: when a later receiver
raises, what the earlier ones wrote for that save is rolled back (in
autocommit, Django's own dispatch would have committed it already, see
docs/PROTOCOL.md, "Differences from the in-process receiver"). With one
receiver it calls it directly, as the project did before there were two.

The setting is read on every call, so ``override_settings`` and pytest-django's
``settings`` fixture change it for a test; what a value parses to and the
functions it names are cached (the lookup costs a save about a microsecond).
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.db import transaction

#: ``post_save`` dispatch uid of :func:`run_receivers` on the user model.
DISPATCH_UID = "accounts.in_process_receivers"

#: Receiver name (the worker's ``--receivers`` names) -> dotted path of the Python receiver.
RECEIVERS = {
    "profile": "accounts.receivers.create_or_update_user_profile",
    "drf-token": "accounts.drf_token.create_auth_token",
}

DEFAULT = ("profile",)


def parse(value) -> tuple[str, ...]:
    """``"profile,drf-token"`` or a list of names -> a tuple of known names; ``ValueError`` otherwise."""
    names = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(name).strip().lower() for name in names)
    names = tuple(name for name in names if name)
    unknown = [name for name in names if name not in RECEIVERS]
    if unknown:
        raise ValueError(f"unknown receiver {unknown[0]!r} (known: {', '.join(RECEIVERS)})")
    if not names:
        raise ValueError("no receiver named")
    if len(set(names)) != len(names):
        raise ValueError(f"a receiver is named twice in {', '.join(names)}")
    return names


@functools.lru_cache(maxsize=16)
def _parsed(value) -> tuple[str, ...]:
    return parse(value)


@functools.lru_cache(maxsize=16)
def _functions(names: tuple[str, ...]) -> tuple:
    return tuple(receiver(name) for name in names)


def enabled() -> tuple[str, ...]:
    """The names in ``settings.ACCOUNTS_RECEIVERS`` (default ``("profile",)``), in order."""
    value = getattr(settings, "ACCOUNTS_RECEIVERS", DEFAULT)
    return _parsed(value if isinstance(value, str) else tuple(value))


def receiver(name: str):
    """The Python receiver function named ``name``."""
    from django.utils.module_loading import import_string

    return import_string(RECEIVERS[name])


def run_receivers(sender, instance, created, **kwargs):
    """``post_save`` receiver: the enabled receivers, in order, all or nothing per save."""
    functions = _functions(enabled())
    if len(functions) == 1:
        functions[0](sender=sender, instance=instance, created=created, **kwargs)
        return
    with transaction.atomic(using=kwargs.get("using")):
        for function in functions:
            function(sender=sender, instance=instance, created=created, **kwargs)


def connect() -> None:
    """Connect :func:`run_receivers` to the user model's ``post_save``."""
    from django.contrib.auth import get_user_model
    from django.db.models.signals import post_save

    post_save.connect(run_receivers, sender=get_user_model(), dispatch_uid=DISPATCH_UID)


def disconnect() -> bool:
    """Disconnect it; whether it was connected."""
    from django.contrib.auth import get_user_model
    from django.db.models.signals import post_save

    return post_save.disconnect(sender=get_user_model(), dispatch_uid=DISPATCH_UID)

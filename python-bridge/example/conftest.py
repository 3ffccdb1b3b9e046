"""pytest-django configuration for the reference Django project.

The database is chosen by DJANGO_DATABASE_URL (see exampleproject/settings.py);
pytest-django creates the test database from it (``test_<name>`` on
PostgreSQL, ``<file>.pytest`` beside the SQLite file).
"""

import pytest


@pytest.fixture
def receiver_disconnected():
    """Make sure nothing reacts to the user model's post_save.

    Contract vectors create their initial users without the receiver and
    then call it explicitly, step by step. The in-process receiver is
    disconnected (and reconnected afterwards when ACCOUNTS_RECEIVER=in_process
    had connected it), and the bridge is suspended (ACCOUNTS_RECEIVER=bridge
    would otherwise publish every save to the worker).
    """
    from django.contrib.auth import get_user_model
    from django.db.models.signals import post_save

    import signal_bridge
    from accounts.receivers import create_or_update_user_profile

    user_model = get_user_model()
    uid = "accounts.create_or_update_user_profile"
    was_connected = post_save.disconnect(sender=user_model, dispatch_uid=uid)
    with signal_bridge.suspended():
        yield
    if was_connected:
        post_save.connect(create_or_update_user_profile, sender=user_model, dispatch_uid=uid)


@pytest.fixture
def store_kind(django_db_setup):
    """``"postgres"`` or ``"sqlite"``: which database the tests run on."""
    from django.db import connection

    return {"postgresql": "postgres", "sqlite": "sqlite"}[connection.vendor]


@pytest.fixture
def in_process_receiver(settings):
    """The Python receiver on ``post_save``, the bridge off."""
    from django.contrib.auth import get_user_model
    from django.db.models.signals import post_save

    from accounts.receivers import create_or_update_user_profile

    settings.ACCOUNTS_RECEIVER = "in_process"
    settings.SIGNAL_BRIDGE = {**getattr(settings, "SIGNAL_BRIDGE", {}), "ENABLED": False}
    user_model = get_user_model()
    uid = "accounts.create_or_update_user_profile"
    was_connected = post_save.disconnect(sender=user_model, dispatch_uid=uid)
    post_save.connect(create_or_update_user_profile, sender=user_model, dispatch_uid=uid)
    yield
    if not was_connected:
        post_save.disconnect(sender=user_model, dispatch_uid=uid)

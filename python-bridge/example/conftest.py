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
    then call it explicitly, step by step. The in-process receivers are
    disconnected (and reconnected afterwards when ACCOUNTS_RECEIVER=in_process
    had connected them), and the bridge is suspended (ACCOUNTS_RECEIVER=bridge
    would otherwise publish every save to the worker).
    """
    import signal_bridge
    from accounts import in_process

    was_connected = in_process.disconnect()
    with signal_bridge.suspended():
        yield
    if was_connected:
        in_process.connect()


@pytest.fixture
def store_kind(django_db_setup):
    """``"postgres"`` or ``"sqlite"``: which database the tests run on."""
    from django.db import connection

    return {"postgresql": "postgres", "sqlite": "sqlite"}[connection.vendor]


@pytest.fixture
def in_process_receiver(settings):
    """The Python receivers (``ACCOUNTS_RECEIVERS``) on ``post_save``, the bridge off."""
    from accounts import in_process

    settings.ACCOUNTS_RECEIVER = "in_process"
    settings.SIGNAL_BRIDGE = {**getattr(settings, "SIGNAL_BRIDGE", {}), "ENABLED": False}
    was_connected = in_process.disconnect()
    in_process.connect()
    yield
    if not was_connected:
        in_process.disconnect()

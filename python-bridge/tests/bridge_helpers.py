"""Helpers the tests import (``conftest`` holds the fixtures)."""

from __future__ import annotations

import time

import pytest


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.02):
    """Bounded polling: the value of ``predicate()`` once truthy, else fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s: {getattr(predicate, '__name__', predicate)}")
        time.sleep(interval)


def applied_count(message_ids) -> int:
    """How many of ``message_ids`` the worker recorded as applied."""
    from django.db import connection

    ids = list(message_ids)
    if not ids:
        return 0
    with connection.cursor() as cursor:
        placeholders = ", ".join(["%s"] * len(ids))
        cursor.execute(f"SELECT COUNT(*) FROM signal_worker_applied WHERE message_id IN ({placeholders})", ids)
        return cursor.fetchone()[0]


def make_user(username, **profile_data):
    """Save a new user with ``_profile_data`` (publishes its post_save)."""
    from django.contrib.auth.models import User

    user = User(username=username)
    user._profile_data = profile_data
    user.save()
    return user

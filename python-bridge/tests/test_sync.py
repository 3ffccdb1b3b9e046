"""Sync mode against the real worker: the profile exists when save() returns."""

import datetime

import pytest
from django.contrib.auth.models import User
from django.db import transaction

import signal_bridge
from accounts.models import UserProfile
from bridge_helpers import make_user
from signal_bridge.models import DeadLetter, OutboxMessage

pytestmark = pytest.mark.django_db(transaction=True)


def test_create_then_update_in_autocommit(bridge):
    user = User.objects.create_user("ann")  # no _profile_data: defaults
    assert User.objects.get(pk=user.pk).profile.profile_type == "personal"

    user._profile_data = {"profile_type": "business", "sex": "F", "birthdate": datetime.date(1990, 1, 2)}
    user.save()
    profile = UserProfile.objects.get(user=user)
    assert (profile.profile_type, profile.sex, profile.birthdate) == ("business", "F", datetime.date(1990, 1, 2))

    user._profile_data = {"sex": None}  # present with null: written as NULL, the rest kept
    user.save()
    profile.refresh_from_db()
    assert (profile.profile_type, profile.sex, profile.birthdate) == ("business", None, datetime.date(1990, 1, 2))
    assert OutboxMessage.objects.count() == 0, "autocommit sync writes no row when delivered"
    assert signal_bridge.stats()["acked"] == 3


def test_create_user_with_profile_data(bridge):
    user = User(username="bob")
    user._profile_data = {"profile_type": "business", "sex": "M", "birthdate": "1985-05-06"}
    user.save()
    assert User.objects.get(pk=user.pk).profile.birthdate == datetime.date(1985, 5, 6)


def test_atomic_sends_only_after_commit(bridge):
    with transaction.atomic():
        user = make_user("carol", sex="F")
        assert OutboxMessage.objects.filter(object_pk=str(user.pk)).count() == 1
        assert signal_bridge.stats().get("sent", 0) == 0, "nothing may be sent before commit"
    # The on_commit callback delivered it before atomic() returned.
    assert UserProfile.objects.get(user_id=user.pk).sex == "F"
    assert OutboxMessage.objects.count() == 0


def test_atomic_rollback_sends_nothing(bridge):
    with pytest.raises(RuntimeError):
        with transaction.atomic():
            make_user("dave", sex="M")
            raise RuntimeError("roll back")
    assert not User.objects.filter(username="dave").exists()
    assert OutboxMessage.objects.count() == 0
    assert signal_bridge.stats().get("sent", 0) == 0


def test_batch_delete_strategy_removes_row_on_sender_thread(bridge):
    bridge(DELETE_ACKED="batch")
    with transaction.atomic():
        user = make_user("erin", sex="F")
    assert UserProfile.objects.filter(user_id=user.pk).exists()
    assert signal_bridge.flush(5)
    assert OutboxMessage.objects.count() == 0


def test_invalid_birthdate_raises_worker_error_and_writes_nothing(bridge):
    user = User(username="frank")
    user._profile_data = {"birthdate": "2021-02-29"}
    with pytest.raises(signal_bridge.WorkerError) as info:
        user.save()
    error = info.value
    assert (error.code, error.field, error.retryable) == ("invalid_value", "birthdate", False)
    assert error.message_id and not isinstance(error, signal_bridge.WorkerUnreachable)
    assert not UserProfile.objects.filter(user_id=user.pk).exists()
    letter = DeadLetter.objects.get(message_id=error.message_id)
    assert (letter.code, letter.field) == ("invalid_value", "birthdate")


def test_error_in_atomic_propagates_from_atomic_exit_after_commit(bridge):
    with pytest.raises(signal_bridge.WorkerError) as info:
        with transaction.atomic():
            user = make_user("gina", birthdate="not a date")
    assert info.value.code == "invalid_value"
    # The user's transaction had committed: the error comes from on_commit.
    assert User.objects.filter(username="gina").exists()
    assert OutboxMessage.objects.count() == 0, "the final error moved the row to the dead letters"
    assert DeadLetter.objects.filter(object_pk=str(user.pk), code="invalid_value").count() == 1


def test_conflict_is_a_worker_error(bridge):
    user = make_user("hank")
    # A second "created" for the same user: the worker refuses (profile exists).
    from signal_bridge import publisher

    with pytest.raises(signal_bridge.WorkerError) as info:
        publisher.on_post_save(User, user, created=True, using="default")
    assert info.value.code == "conflict"


def test_suspended_publishes_nothing(bridge):
    with signal_bridge.suspended():
        user = make_user("ivy", sex="F")
    assert not UserProfile.objects.filter(user_id=user.pk).exists()
    assert OutboxMessage.objects.count() == 0
    assert signal_bridge.stats().get("published", 0) == 0


def test_disabled_publishes_nothing(bridge):
    bridge(ENABLED=False)
    user = make_user("jack")
    assert not UserProfile.objects.filter(user_id=user.pk).exists()
    assert OutboxMessage.objects.count() == 0


def test_outbox_mode_only_writes_rows(bridge):
    bridge(MODE="outbox")
    user = make_user("kim", sex="F")
    assert OutboxMessage.objects.filter(object_pk=str(user.pk)).count() == 1
    assert signal_bridge.stats().get("sent", 0) == 0


def test_backlog_of_the_same_user_goes_first(bridge):
    """A live update must not overtake the user's deferred 'created' message."""
    bridge(MODE="outbox")
    user = make_user("lena", sex="F", birthdate="2000-01-01")  # left in the outbox
    bridge(MODE="sync")
    user._profile_data = {"sex": "O"}
    user.save()  # without the backlog check the worker would answer 'skipped'
    profile = UserProfile.objects.get(user_id=user.pk)
    assert (profile.sex, profile.birthdate) == ("O", datetime.date(2000, 1, 1))
    assert OutboxMessage.objects.count() == 0


def test_backlog_of_the_same_user_goes_first_inside_atomic(bridge):
    """Inside atomic() too (on SQLite the row's INSERT finds the older row, elsewhere a query)."""
    bridge(MODE="outbox")
    user = make_user("lina", sex="F", birthdate="2000-01-01")  # left in the outbox
    bridge(MODE="sync")
    with transaction.atomic():
        user._profile_data = {"sex": "O"}
        user.save()
    profile = UserProfile.objects.get(user_id=user.pk)
    assert (profile.sex, profile.birthdate) == ("O", datetime.date(2000, 1, 1))
    assert signal_bridge.stats()["acked.created"] == 1 and signal_bridge.stats()["acked.updated"] == 1
    signal_bridge.flush(5)
    assert OutboxMessage.objects.count() == 0


def _backlog_queries(captured) -> int:
    return sum('SELECT 1 FROM "signal_bridge_outbox"' in q["sql"] for q in captured.captured_queries)


def test_a_new_objects_message_skips_the_backlog_query_an_update_does_not(bridge, monkeypatch):
    """No earlier message can exist for a key the database just generated (publisher.on_pre_save).

    With a worker whose pong does not announce ``outbox_check`` (an older
    release; tests/test_outbox_check.py has the worker that checks).
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from signal_bridge import transport

    transport.forget_features()
    monkeypatch.setattr(transport, "learn_features", lambda **_: frozenset())
    with CaptureQueriesContext(connection) as created:
        user = make_user("nina", sex="F")
    with CaptureQueriesContext(connection) as updated:
        user._profile_data = {"sex": "M"}
        user.save()
    with CaptureQueriesContext(connection) as given_key:
        explicit = User(pk=user.pk + 1000, username="oona")
        explicit._profile_data = {"sex": "F"}
        explicit.save()  # a key chosen by the caller could be an old object's: checked
    assert (_backlog_queries(created), _backlog_queries(updated), _backlog_queries(given_key)) == (0, 1, 1)
    assert UserProfile.objects.get(user_id=user.pk).sex == "M"
    assert UserProfile.objects.get(user_id=explicit.pk).sex == "F"

"""Live differential test: the bridge + Swift worker against the in-process receiver.

Hypothesis generates short sequences of user operations
(``differential_support.operations``): create a user with random
``_profile_data`` (keys absent, present, ``None``; dates in every form
PROTOCOL.md lists, nonexistent dates, garbage, values outside ``choices``,
text over the column length, NUL, emoji; ``_profile_data`` absent or not a
dict), update a user (also one whose profile was deleted, or whose create
was rolled back), delete a profile, plain, ``raw=True`` and
``update_fields`` saves, and ``atomic()`` blocks of up to three saves that
commit or roll back. Each sequence runs twice on emptied tables:

1. the reference receivers connected to ``post_save`` in process, the bridge
   suspended;
2. the bridge in ``sync`` mode with the real ``signal-worker``, the
   in-process receivers disconnected.

The property runs once per receiver set (``RECEIVER_SETS``): the profile
receiver alone (the worker's default), and the profile receiver then Django
REST framework's token receiver (``ACCOUNTS_RECEIVERS`` in process, one
``atomic()`` per save; a worker started with ``--receivers
profile,drf-token``). After every operation the two runs must agree on the
tables (users by username, ``accounts_userprofile`` rows as stored,
``authtoken_token`` by owner, each key 40 lowercase hex characters) and on
the operation's outcome (when the worker names the receiver that refused a
message, it must be the one that raised in process). An in-process exception is mapped to the ``WorkerError`` the bridge
must raise (``differential_support.expected_error``)::

    ValidationError (birthdate: bad format / no such date)  -> invalid_value, birthdate
    IntegrityError NOT NULL profile_type                    -> invalid_value, profile_type
    IntegrityError unique user_id / foreign key             -> conflict, instance.pk
    DataError (PostgreSQL: over varchar(n), NUL)            -> invalid_value, that field
    TypeError (birthdate not a string or date)              -> bad_request, birthdate
    AttributeError (_profile_data not a dict)               -> bad_request, attrs._profile_data

Autocommit: both sides commit the user row first, then fail (the error
comes from ``save()`` on both sides, the user row stays). Inside
``atomic()`` the two cannot behave the same; the in-process run asserts what
Django does (the whole block rolls back) and expects the documented bridge
behaviour instead (the block commits, the messages apply one by one after
commit, the first error is raised from the block's exit, the later messages
stay in the outbox and the relay delivers them). The tests after the
property pin that and the other documented differences down with both
sides' concrete behaviour.

``SIGNAL_BRIDGE_DIFF_EXAMPLES`` (default 200) sets the number of examples;
the seed is fixed (``derandomize``).
"""

from __future__ import annotations

import datetime
import os

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from hypothesis import HealthCheck, event, given, settings

import signal_bridge
from accounts.models import UserProfile
from conftest import Worker, store_url, worker_binary
from differential_support import (
    BridgeRun,
    InProcessRun,
    clean_tables,
    operations,
    outcome_matches,
    plan,
    receiver_connected,
    receiver_disconnected,
    snapshot,
)
from signal_bridge import relay
from signal_bridge.models import DeadLetter, OutboxMessage

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("SIGNAL_BRIDGE_DIFF_EXAMPLES", "200"))

# The worker's --receivers, in connection order; the same names in ACCOUNTS_RECEIVERS.
RECEIVER_SETS = [("profile",), ("profile", "drf-token")]


@pytest.fixture(scope="module")
def token_worker(django_db_setup, django_db_blocker, tmp_path_factory):
    """A second ``signal-worker serve`` on the test database with ``--receivers profile,drf-token``.

    Started only when a test asks for it. A worker that does not know the
    option exits at start: the test fails with its log, it is not skipped.
    """
    from django.db import connection as db

    with django_db_blocker.unblock():
        store = store_url(db.settings_dict)
    w = Worker(
        worker_binary(),
        store,
        tmp_path_factory.mktemp("token-worker") / "signal-worker.log",
        extra_args=("--receivers", "profile,drf-token"),
    )
    w.start()
    yield w
    w.stop()


@pytest.fixture(params=RECEIVER_SETS, ids="+".join)
def receivers(request, bridge, settings):
    """The receiver set of this run: in process (``ACCOUNTS_RECEIVERS``) and in the worker the bridge talks to."""
    names = request.param
    settings.ACCOUNTS_RECEIVERS = list(names)
    if names != ("profile",):
        bridge(ENDPOINT=request.getfixturevalue("token_worker").endpoint)
    return names


@settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_bridge_matches_in_process_receiver(bridge, receivers, ops):
    steps = plan(ops)
    clean_tables()
    try:
        reference = InProcessRun(connection.vendor).run(steps)
        clean_tables()
        actual = BridgeRun().run(steps)
    finally:
        clean_tables()

    for index, step in enumerate(steps):
        expected_outcome, actual_outcome = reference.outcomes[index], actual.outcomes[index]
        same_outcome = outcome_matches(expected_outcome, actual_outcome)
        same_tables = reference.snapshots[index] == actual.snapshots[index]
        event(f"{step.kind}{'/' + step.how if step.how != 'save' else ''} -> {_describe(actual_outcome)}")
        if step.kind == "update" and index and reference.snapshots[index] != reference.snapshots[index - 1]:
            event("update changed a profile")
        if getattr(actual_outcome, "later", ()):
            event("block error with later dead letters")
        if reference.snapshots[index].tokens != (reference.snapshots[index - 1].tokens if index else ()):
            event("tokens changed")
        if not (same_outcome and same_tables):
            raise AssertionError(
                f"the bridge differs from the in-process receiver at step {index}: {step!r}\n"
                f"  expected outcome {expected_outcome!r}\n"
                f"  bridge outcome   {actual_outcome!r}\n"
                f"  in-process tables {reference.snapshots[index]!r}\n"
                f"  bridge tables     {actual.snapshots[index]!r}\n"
                "in process:\n" + "\n".join(reference.lines(steps)) + "\n  notes: " + "; ".join(reference.notes) + "\n"
                "bridge:\n" + "\n".join(actual.lines(steps)) + "\n  notes: " + "; ".join(actual.notes)
            )


def _describe(outcome) -> str:
    """A coarse label of an outcome for ``--hypothesis-show-statistics``."""
    if hasattr(outcome, "first"):
        return f"block error {outcome.first.code}"
    if hasattr(outcome, "code"):
        return f"error {outcome.code} {''.join(sorted(map(str, outcome.fields)))}"
    return type(outcome).__name__


# ---------------------------------------------------------------------------
# Documented differences: each test runs both sides and asserts what each does.


def _user(username, **profile_data):
    user = User(username=username)
    user._profile_data = profile_data
    return user


def _profiles():
    return {row[0]: row[1:] for row in snapshot().profiles}


def _in_process():
    """The reference receiver connected, the bridge suspended (a context manager)."""
    import contextlib

    stack = contextlib.ExitStack()
    stack.enter_context(signal_bridge.suspended())
    stack.enter_context(receiver_connected())
    return stack


def test_error_inside_atomic_rolls_back_in_process_but_commits_with_the_bridge(bridge):
    block = [("ann", {"sex": "F"}), ("bob", {"birthdate": "2021-02-29"}), ("cy", {"sex": "M"})]

    clean_tables()
    with _in_process():
        with pytest.raises(ValidationError):
            with transaction.atomic():
                for name, data in block:
                    _user(name, **data).save()  # raises at bob: cy is never saved
    assert snapshot().users == () and _profiles() == {}, "in process: the whole block rolled back"

    clean_tables()
    with receiver_disconnected():
        with pytest.raises(signal_bridge.WorkerError) as info:
            with transaction.atomic():
                for name, data in block:
                    _user(name, **data).save()  # no error inside the block: only outbox rows
        assert (info.value.code, info.value.field) == ("invalid_value", "birthdate")
        # The block committed; ann's message applied, bob's dead-lettered, cy's callback never ran.
        assert snapshot().users == ("ann", "bob", "cy")
        assert set(_profiles()) == {"ann"}
        assert OutboxMessage.objects.count() == 1
        assert relay.run(once=True).remaining == 0
        assert set(_profiles()) == {"ann", "cy"}
        assert list(DeadLetter.objects.values_list("code", flat=True)) == ["invalid_value"]
    clean_tables()


def test_profile_is_written_after_commit_so_same_block_writes_come_first(bridge):
    """Inside atomic() the profile does not exist until commit; a direct profile
    write in the same block is ordered before the block's messages."""

    def run():
        with transaction.atomic():
            user = _user("dee", sex="F")
            user.save()
            seen = UserProfile.objects.filter(user__username="dee").exists()
            UserProfile.objects.filter(user__username="dee").delete()
        return seen, _profiles()

    clean_tables()
    with _in_process():
        assert run() == (True, {}), "in process: created in save(), deleted by the block"
    clean_tables()
    with receiver_disconnected():
        seen, profiles = run()
        assert not seen, "bridge: no profile before commit"
        assert list(profiles) == ["dee"], "bridge: the delete ran first, the message created it after commit"
    clean_tables()


def test_user_deleted_in_the_same_block_is_a_conflict_with_the_bridge(bridge):
    def run():
        with transaction.atomic():
            user = _user("eve", sex="F")
            user.save()
            user.delete()

    clean_tables()
    with _in_process():
        run()  # profile created, then deleted by the cascade
        assert snapshot().users == () and _profiles() == {}
    clean_tables()
    with receiver_disconnected():
        with pytest.raises(signal_bridge.WorkerError) as info:
            run()
        assert info.value.code == "conflict", "the message's user no longer exists when it is applied"
        assert snapshot().users == () and _profiles() == {}
    clean_tables()


def test_non_string_text_is_str_in_process_and_bad_request_with_the_bridge(bridge):
    clean_tables()
    with _in_process():
        _user("fay", sex=5).save()
        assert _profiles() == {"fay": ("personal", "5", None)}, "in process: Django stores str(5)"
    clean_tables()
    with receiver_disconnected():
        with pytest.raises(signal_bridge.WorkerError) as info:
            _user("fay", sex=5).save()
        assert (info.value.code, info.value.field) == ("bad_request", "sex")
        assert snapshot().users == ("fay",) and _profiles() == {}
    clean_tables()


def test_datetime_birthdate_is_a_date_in_process_and_invalid_with_the_bridge(bridge):
    moment = datetime.datetime(2020, 1, 2, 10, 30)
    clean_tables()
    with _in_process():
        _user("gus", birthdate=moment).save()
        assert UserProfile.objects.get(user__username="gus").birthdate == datetime.date(2020, 1, 2)
    clean_tables()
    with receiver_disconnected():
        with pytest.raises(signal_bridge.WorkerError) as info:
            _user("gus", birthdate=moment).save()  # sent as "2020-01-02T10:30:00"
        assert (info.value.code, info.value.field) == ("invalid_value", "birthdate")
        assert _profiles() == {}
    clean_tables()


def test_reused_instance_cached_profile_in_process_database_with_the_bridge(bridge):
    """The in-process receiver reads ``instance.profile``, which Django caches on the
    instance; the worker reads the table. Re-saving the instance that created a
    profile after the profile row was deleted recreates it in process."""

    def run():
        user = _user("hal", sex="M")
        user.save()
        UserProfile.objects.filter(user__username="hal").delete()
        user._profile_data = {"birthdate": "2000-01-02"}
        user.save()
        return _profiles()

    clean_tables()
    with _in_process():
        recreated = run()
    assert recreated == {"hal": ("personal", "M", "2000-01-02")}, "in process: the cached profile is saved again (INSERT)"
    clean_tables()
    with receiver_disconnected():
        assert run() == {}, "bridge: no profile row, the update is skipped"
    clean_tables()

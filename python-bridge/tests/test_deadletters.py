"""Dead letters you can act on: ``deadletters requeue`` and ``deadletters purge``.

The first tests build dead letters by hand (``outbox.dead_letter``) and check
what requeue and purge do to the tables; the last ones go through the real
worker: a dead letter whose cause was fixed is applied after a requeue, and one
whose object got a newer message meanwhile comes back as "overtaken by seq N",
also when the relay that sends it runs in another process.
"""

from __future__ import annotations

import datetime
import io
import os
import subprocess
import sys

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.models.query import QuerySet
from django.utils import timezone

from accounts.models import UserProfile
from bridge_helpers import applied_count
from conftest import REPO, store_url
from signal_bridge import WorkerError, deadletters, envelope, failures, outbox, relay
from signal_bridge.models import DeadLetter, OutboxMessage


@pytest.fixture(autouse=True)
def fresh_record():
    failures.clear()
    yield
    failures.clear()


def dead(pk="7", code="conflict", text="a profile already exists for user 7", *, with_row=True, created_at=None):
    """A dead letter as the bridge makes it: from an outbox row (``with_row``) or from a message that had none."""
    message_id = envelope.uuid7()
    message = outbox.Message(
        message_id=message_id, using="default", label="auth.user", object_pk=pk,
        body=f'{{"v":1,"id":"{message_id}"}}', created_at=created_at or timezone.now(),
    )
    if with_row:
        outbox.insert(message)
    outbox.dead_letter(message, WorkerError(code, text, message_id=message_id))
    return DeadLetter.objects.get(message_id=message_id)


def command(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("signal_bridge", "deadletters", *map(str, args), stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# --- requeue ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_requeue_puts_the_message_back_with_its_id_seq_and_payload_and_removes_the_letter():
    letter = dead()
    listed, _ = command()
    assert f"#{letter.id} " in listed and f"seq={letter.seq} message_id={letter.message_id}" in listed

    out, _ = command("requeue", letter.id)

    assert f"requeued #{letter.id} as outbox seq {letter.seq} (its seq)" in out
    assert not DeadLetter.objects.exists()
    row = OutboxMessage.objects.get()
    assert (row.seq, row.message_id, row.sender, row.object_pk, row.payload, row.created_at) == (
        letter.seq, letter.message_id, letter.sender, letter.object_pk, letter.payload, letter.created_at
    )
    assert row.attempts >= 1, "the durable mark that makes a stale answer a dead letter again"
    assert row.last_error == f"requeued from dead letter #{letter.id} (conflict: a profile already exists for user 7)"


@pytest.mark.django_db
def test_a_requeued_row_goes_before_the_newer_rows_of_its_object():
    letter = dead(pk="7")
    newer = outbox.Message(message_id=envelope.uuid7(), using="default", label="auth.user", object_pk="7", body="{}")
    outbox.insert(newer)
    command("requeue", letter.id)
    assert [m.message_id for m in outbox.oldest("default", 10)] == [letter.message_id, newer.message_id]
    live = outbox.Message(message_id=envelope.uuid7(), using="default", label="auth.user", object_pk="7", body="{}")
    assert [m.message_id for m in outbox.backlog("default", [live])][0] == letter.message_id


@pytest.mark.django_db
def test_letters_without_a_seq_get_new_seqs_after_every_row_in_the_order_they_were_made():
    earlier = timezone.now() - datetime.timedelta(minutes=5)
    second = dead(pk="8", with_row=False)  # dead-lettered first, saved second
    first = dead(pk="8", with_row=False, created_at=earlier)
    assert first.seq is None and second.seq is None
    waiting = outbox.Message(message_id=envelope.uuid7(), using="default", label="auth.user", object_pk="9", body="{}")
    outbox.insert(waiting)

    out, _ = command("requeue", "--all")

    assert "(a new seq: it had none)" in out
    rows = list(OutboxMessage.objects.order_by("seq").values_list("message_id", "seq", "attempts"))
    assert [r[0] for r in rows] == [waiting.message_id, first.message_id, second.message_id]
    assert all(attempts >= 1 for _, _, attempts in rows[1:])


@pytest.mark.django_db
def test_reason_selects_by_exact_code_or_a_case_sensitive_substring_of_the_message():
    conflict = dead(pk="1", code="conflict", text="a profile already exists for user 1")
    missing = dead(pk="2", code="conflict", text="user 2 does not exist in the user table")
    bad_date = dead(pk="3", code="invalid_value", text='birthdate "1990-02-30" is an invalid date')

    command("requeue", "--all", "--reason", "conf")  # neither a code nor in a message: nothing
    command("requeue", "--all", "--reason", "Does not exist")  # case-sensitive: nothing
    assert DeadLetter.objects.count() == 3
    command("requeue", "--all", "--reason", "does not exist")
    assert set(OutboxMessage.objects.values_list("message_id", flat=True)) == {missing.message_id}
    command("requeue", conflict.id, bad_date.id, "--reason", "invalid_value")  # ids and reason: both must hold
    assert set(DeadLetter.objects.values_list("id", flat=True)) == {conflict.id}
    command("requeue", "--all", "--reason", "conflict")
    assert not DeadLetter.objects.exists() and OutboxMessage.objects.count() == 3


@pytest.mark.django_db
def test_stale_letters_and_messages_already_in_the_outbox_are_not_requeued():
    overtaken = dead(pk="1", code="stale", text="overtaken by seq 99")
    twice = dead(pk="2")
    OutboxMessage.objects.create(message_id=twice.message_id, sender="auth.user", object_pk="2", payload="{}")
    good = dead(pk="3")

    with pytest.raises(CommandError) as info:
        command("requeue", overtaken.id)
    assert info.value.returncode == 1
    out, err = command("requeue", "--all")  # --all reports what it left and succeeds

    assert f"not requeued #{overtaken.id}: {deadletters.STALE_NOT_REQUEUED}" in err
    assert f"not requeued #{twice.id}: message {twice.message_id} is already in the outbox" in err
    assert "requeued 1, not requeued 2" in out
    assert set(DeadLetter.objects.values_list("id", flat=True)) == {overtaken.id, twice.id}
    assert OutboxMessage.objects.filter(message_id=good.message_id, seq=good.seq).exists()


@pytest.mark.django_db
def test_an_unknown_id_requeues_nothing():
    letter = dead()
    with pytest.raises(CommandError, match=f"no dead letter with id {letter.id + 100}"):
        command("requeue", letter.id, letter.id + 100)
    assert DeadLetter.objects.filter(id=letter.id).exists() and not OutboxMessage.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_requeue_is_one_transaction(monkeypatch):
    first, second = dead(pk="1"), dead(pk="2")
    create = QuerySet.create
    calls = []

    def failing_second_insert(self, **kwargs):
        calls.append(kwargs["message_id"])
        if len(calls) == 2:
            raise RuntimeError("the database went away")
        return create(self, **kwargs)

    monkeypatch.setattr(QuerySet, "create", failing_second_insert)
    with pytest.raises(RuntimeError):
        command("requeue", "--all")
    monkeypatch.undo()
    assert calls == [first.message_id, second.message_id]
    assert not OutboxMessage.objects.exists(), "the first insert was rolled back"
    assert set(DeadLetter.objects.values_list("id", flat=True)) == {first.id, second.id}


# --- purge --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [("7d", datetime.timedelta(days=7)), ("12h", datetime.timedelta(hours=12)), ("90m", datetime.timedelta(minutes=90)),
     ("30s", datetime.timedelta(seconds=30)), ("2w", datetime.timedelta(weeks=2)), ("0d", datetime.timedelta(0))],
)
def test_durations(text, expected):
    assert deadletters.parse_duration(text) == expected


@pytest.mark.parametrize("text", ["7", "d", "1.5h", "7 d", "7D", "1h30m", "-1d", "7days", ""])
def test_durations_refused(text):
    with pytest.raises(ValueError, match="whole number followed by s, m, h, d or w"):
        deadletters.parse_duration(text)


@pytest.mark.django_db
def test_purge_older_than_deletes_by_failure_time_and_dry_run_only_counts():
    now = timezone.now()
    ages = {"old": datetime.timedelta(days=10), "mid": datetime.timedelta(days=2), "new": datetime.timedelta(hours=1)}
    letters = {}
    for name, age in ages.items():
        letters[name] = dead(pk=name)
        DeadLetter.objects.filter(id=letters[name].id).update(failed_at=now - age)

    out, _ = command("purge", "--older-than", "7d", "--dry-run")
    assert out.startswith("would purge 1 dead letters that failed before ")
    assert DeadLetter.objects.count() == 3
    out, _ = command("purge", "--older-than", "1d")
    assert out.startswith("purged 2 dead letters that failed before ")
    assert list(DeadLetter.objects.values_list("id", flat=True)) == [letters["new"].id]
    with pytest.raises(CommandError, match="--older-than: '1 week' is not a duration"):
        command("purge", "--older-than", "1 week")


# --- against the worker ---------------------------------------------------------------------------


def conflict_letter(username: str, **profile_data) -> tuple[User, DeadLetter]:
    """A user saved in ``atomic()`` while a stray profile exists: the worker answers ``conflict``, a dead letter
    with the row's seq. Deleting the stray profile fixes the cause."""
    with pytest.raises(WorkerError) as info:
        with transaction.atomic():
            user = User(username=username)
            user._profile_data = profile_data
            user.save()
            UserProfile.objects.create(user=user, profile_type="personal")
    assert info.value.code == "conflict"
    letter = DeadLetter.objects.get(object_pk=str(user.pk))
    assert letter.seq is not None and not OutboxMessage.objects.exists()
    return user, letter


def newer_update(user: User, **profile_data) -> int:
    """Save ``user`` again in ``atomic()`` (sync: applied before this returns); its seq."""
    with transaction.atomic():
        user._profile_data = profile_data
        user.save()
        seq = OutboxMessage.objects.get(object_pk=str(user.pk)).seq
    assert not OutboxMessage.objects.exists(), "applied and deleted"
    return seq


def relay_in_another_process(endpoint: str) -> str:
    """``manage.py signal_bridge relay --once`` as its own process: it never saw the messages fail."""
    env = {
        **os.environ,
        "DJANGO_DATABASE_URL": store_url(connection.settings_dict),
        "SIGNAL_BRIDGE_ENDPOINT": endpoint,
    }
    result = subprocess.run(
        [sys.executable, str(REPO / "python-bridge" / "example" / "manage.py"), "signal_bridge", "relay", "--once"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.django_db(transaction=True)
def test_requeued_after_the_cause_is_fixed_it_is_applied_and_leaves_both_tables(bridge):
    user, letter = conflict_letter("dl-fixed", sex="F", birthdate="1990-01-02")
    UserProfile.objects.filter(user=user).delete()  # the operator fixes the cause

    command("requeue", letter.id)
    assert "acked 1" in relay_in_another_process(conf_endpoint())

    profile = UserProfile.objects.get(user=user)
    assert (profile.sex, str(profile.birthdate)) == ("F", "1990-01-02")
    assert not OutboxMessage.objects.exists() and not DeadLetter.objects.exists()
    assert applied_count([letter.message_id]) == 1


@pytest.mark.django_db(transaction=True)
def test_requeued_but_overtaken_since_it_returns_to_the_dead_letters_from_another_process(bridge):
    user, letter = conflict_letter("dl-overtaken", sex="F")
    newer = newer_update(user, birthdate="2000-03-04")  # applied over the stray profile: last_seq = newer
    UserProfile.objects.filter(user=user).update(sex=None)

    command("requeue", letter.id)
    out = relay_in_another_process(conf_endpoint())

    assert "dead-lettered 1" in out
    again = DeadLetter.objects.get()
    assert (again.message_id, again.seq, again.code, again.message) == (
        letter.message_id, letter.seq, "stale", f"overtaken by seq {newer}"
    )
    assert not OutboxMessage.objects.exists()
    assert UserProfile.objects.get(user=user).sex is None, "its change was not applied"
    with pytest.raises(CommandError):
        command("requeue", again.id)  # stale: the worker would answer duplicate


@pytest.mark.django_db(transaction=True)
def test_a_sync_save_sends_the_requeued_row_first_and_dead_letters_it_when_overtaken(bridge):
    user, letter = conflict_letter("dl-sync", sex="F")
    newer = newer_update(user, birthdate="2000-03-04")
    command("requeue", letter.id)

    user._profile_data = {"profile_type": "business"}
    user.save()  # autocommit, sync: the requeued row of the user goes first, then this message

    again = DeadLetter.objects.get()
    assert (again.message_id, again.code, again.message) == (letter.message_id, "stale", f"overtaken by seq {newer}")
    assert not OutboxMessage.objects.exists()
    assert UserProfile.objects.get(user=user).profile_type == "business", "the live save was applied"


@pytest.mark.django_db(transaction=True)
def test_the_in_process_relay_treats_a_requeued_row_like_a_failed_one(bridge):
    user, letter = conflict_letter("dl-relay", sex="F")
    newer = newer_update(user, birthdate="2000-03-04")
    command("requeue", letter.id)
    assert not failures.failed(letter.message_id), "nothing in memory: only the row says it failed"

    result = relay.run(once=True)

    assert (result.acked, result.dead_lettered, result.remaining) == (0, 1, 0)
    assert DeadLetter.objects.get().message == f"overtaken by seq {newer}"


def conf_endpoint() -> str:
    from signal_bridge import conf

    return conf.get().endpoints[0]

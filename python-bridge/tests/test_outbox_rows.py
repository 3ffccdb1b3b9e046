"""The outbox row written by ``outbox.insert`` (raw SQL) is the row the ORM would write."""

import datetime
import json

import pytest
from django.db import transaction
from django.utils import timezone

from signal_bridge import envelope, outbox
from signal_bridge.models import OutboxMessage

pytestmark = pytest.mark.django_db(transaction=True)


def make_message(**overrides) -> outbox.Message:
    message_id = envelope.uuid7()
    fields = dict(
        message_id=message_id,
        using="default",
        label="auth.user",
        object_pk="42",
        body=json.dumps({"v": 1, "text": "été 😀", "quote": "' ; DROP TABLE x; --"}),
    )
    fields.update(overrides)
    return outbox.Message(**fields)


def test_raw_insert_reads_back_like_an_orm_row():
    created_at = timezone.now().replace(microsecond=123456)
    raw = make_message(created_at=created_at, attempts=2)
    orm = make_message(created_at=created_at, attempts=2)
    with transaction.atomic():
        seq = outbox.insert(raw)
        orm_row = orm.row()
        orm_row.save(force_insert=True)
    assert seq == raw.seq and seq is not None
    stored = OutboxMessage.objects.get(seq=seq)
    reference = OutboxMessage.objects.get(seq=orm_row.seq)
    for field in ("sender", "object_pk", "payload", "created_at", "attempts", "last_error"):
        assert getattr(stored, field) == getattr(reference, field), field
    assert stored.message_id == raw.message_id
    assert stored.created_at == created_at
    assert stored.created_at.tzinfo is not None and stored.created_at.utcoffset() == datetime.timedelta(0)


def test_seqs_are_increasing_and_the_row_rolls_back_with_the_transaction():
    first, second = make_message(), make_message()
    with transaction.atomic():
        outbox.insert(first)
        outbox.insert(second)
    assert second.seq > first.seq
    lost = make_message()
    with transaction.atomic():
        outbox.insert(lost)
        transaction.set_rollback(True)
    assert lost.seq is not None
    assert not OutboxMessage.objects.filter(message_id=lost.message_id).exists()
    assert list(OutboxMessage.objects.values_list("seq", flat=True)) == [first.seq, second.seq]


def test_a_duplicate_message_id_is_refused_like_the_orm_refuses_it():
    from django.db import IntegrityError

    message = make_message()
    outbox.insert(message)
    with pytest.raises(IntegrityError):
        with transaction.atomic():
            outbox.insert(make_message(message_id=message.message_id))


def test_without_fields_a_sender_sends_the_primary_key_only(bridge):
    """``fields`` left out: no model field travels, so no password hash reaches the outbox
    (nor the wire, the dead letters, the admin); ``"__all__"`` opts in to every field."""
    from django.contrib.auth.models import User

    bridge(MODE="outbox")  # the tests' SENDERS name no fields
    user = User.objects.create_user("pk-only", password="s3cret-pass")
    user._profile_data = {"sex": "F"}
    user.save()
    payloads = list(OutboxMessage.objects.order_by("seq").values_list("payload", flat=True))
    assert len(payloads) == 2
    for payload in payloads:
        message = json.loads(payload)
        assert message["instance"] == {"model": "auth.user", "pk": user.pk, "fields": {}}
        assert user.password not in payload
    assert json.loads(payloads[1])["attrs"] == {"_profile_data": {"sex": "F"}}

    bridge(MODE="outbox", SENDERS={"auth.user": {"attrs": ["_profile_data"], "fields": "__all__"}})
    user.save()
    everything = json.loads(OutboxMessage.objects.order_by("seq").last().payload)["instance"]["fields"]
    assert everything["password"] == user.password and everything["username"] == "pk-only"


def test_the_insert_of_a_sync_row_tells_whether_older_rows_of_its_object_wait():
    """On SQLite the INSERT answers the backlog question itself; elsewhere it is asked at send time."""
    from django.db import connection

    first, other, second = make_message(object_pk="7"), make_message(object_pk="8"), make_message(object_pk="7")
    with transaction.atomic():
        outbox.insert(first, older=True)
        outbox.insert(other, older=True)
        outbox.insert(second, older=True)
    if connection.vendor == "sqlite":
        assert (first.older, other.older, second.older) == (False, False, True)
    else:
        assert (first.older, other.older, second.older) == (None, None, None)
    assert outbox.has_backlog("default", [second]) and not outbox.has_backlog("default", [first])
    assert second.seq > other.seq > first.seq


def test_statements_go_through_djangos_cursor_when_queries_are_watched():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    message = make_message(object_pk="9")
    with CaptureQueriesContext(connection) as captured:
        with transaction.atomic():
            outbox.insert(message)
        assert not outbox.has_backlog("default", [message])
        outbox.delete("default", [message.seq])
    sql = " ".join(q["sql"] for q in captured.captured_queries)
    assert "INSERT INTO" in sql and "SELECT 1 FROM" in sql and "DELETE FROM" in sql


def test_a_database_error_of_a_raw_statement_is_djangos():
    from django.db import IntegrityError

    message = make_message(object_pk="10")
    with transaction.atomic():
        outbox.insert(message)
    duplicate = make_message(message_id=message.message_id, object_pk="10")
    with pytest.raises(IntegrityError):  # django.db.IntegrityError, not the driver's
        with transaction.atomic():
            outbox.insert(duplicate)


def test_the_inserts_older_row_lookup_searches_the_objects_index():
    """A correlated reference to the new row made SQLite scan the whole outbox on every INSERT."""
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("the INSERT answers the backlog question on SQLite only")
    sql = outbox._insert_and_older_statement(connection).replace("%s", "?")
    with connection.cursor() as cursor:
        plan = cursor.connection.execute("EXPLAIN QUERY PLAN " + sql, ("m", "auth.user", "1", "{}", "", 0, "",
                                                                        "auth.user", "1")).fetchall()
    assert any("INDEX signal_bridge_outbox_obj" in row[-1] for row in plan), plan

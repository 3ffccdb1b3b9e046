"""The message format (docs/PROTOCOL.md, "Request") without a worker."""

import datetime
import decimal
import json
import re
import time
import uuid

import pytest
from django.contrib.auth.models import User
from django.core.serializers.json import DjangoJSONEncoder

from signal_bridge import envelope


def test_uuid7_layout_and_order():
    before_ms = time.time_ns() // 1_000_000
    ids = [envelope.uuid7() for _ in range(2000)]
    after_ms = time.time_ns() // 1_000_000
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
    stamps = [u.int >> 80 for u in parsed]
    assert before_ms <= stamps[0] and stamps[-1] <= after_ms + 1
    assert ids == sorted(ids), "ids of one process must increase (time-ordered dedupe index)"
    assert len(set(ids)) == len(ids)


def test_uuid7_random_bits_are_not_shared_with_a_forked_child():
    """The random pool is emptied in a forked child (gunicorn forks after imports): a parent and
    its child that both make ids next must not draw the same bytes."""
    import os

    envelope.uuid7()  # the parent's pool now holds bytes for hundreds of ids
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids' random bits, to the parent
        try:
            os.write(write_end, ",".join(envelope.uuid7()[19:] for _ in range(5)).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child_bits = set(pipe.read().split(","))
    os.waitpid(pid, 0)
    parent_bits = {envelope.uuid7()[19:] for _ in range(5)}
    assert len(child_bits) == 5
    assert not child_bits & parent_bits


def build(user, **kwargs):
    options = dict(
        message_id="0193a5e0-7c00-7000-8000-00000000002a",
        signal="post_save",
        label="auth.user",
        using="default",
        created=True,
        raw=False,
        update_fields=None,
        instance=user,
        attrs=("_profile_data", "_other"),
        fields=None,
    )
    options.update(kwargs)
    return json.loads(envelope.build(**options))


def test_request_fields_and_attrs_absent_vs_null():
    user = User(id=42, username="ann")
    user._profile_data = {"sex": None, "birthdate": datetime.date(1990, 1, 2), "n": decimal.Decimal("1.50")}
    message = build(user, update_fields=frozenset({"username", "email"}))
    assert message["v"] == 1 and message["signal"] == "post_save" and message["sender"] == "auth.user"
    assert message["db"] == "default" and message["created"] is True and message["raw"] is False
    assert message["update_fields"] == ["email", "username"]
    assert message["instance"]["model"] == "auth.user" and message["instance"]["pk"] == 42
    assert message["instance"]["fields"]["username"] == "ann"
    assert "groups" not in message["instance"]["fields"], "many-to-many fields cost a query each"
    # Present-with-null survives; absent attributes stay absent.
    assert message["attrs"] == {"_profile_data": {"sex": None, "birthdate": "1990-01-02", "n": "1.50"}}
    assert "seq" not in message
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", message["sent_at"]), message["sent_at"]


def test_attribute_that_is_none_travels_as_null():
    user = User(id=1, username="x")
    user._profile_data = None
    assert build(user)["attrs"] == {"_profile_data": None}
    assert build(User(id=2, username="y"))["attrs"] == {}


def test_fields_option_limits_instance_fields():
    message = build(User(id=3, username="z", password="secret-hash"), fields=("username",))
    assert message["instance"]["fields"] == {"username": "z"}


@pytest.mark.parametrize("seq", [None, 0, 1041])
def test_wire_adds_seq_without_reparsing(seq):
    payload = envelope.build(
        message_id="m", signal="post_save", label="auth.user", using="default", created=False,
        raw=False, update_fields=None, instance=User(id=5, username="q"), attrs=(), fields=None,
    )
    decoded = json.loads(envelope.wire(payload, seq))
    if seq is None:
        assert "seq" not in decoded
    else:
        assert decoded["seq"] == seq
    assert decoded["id"] == "m"


@pytest.mark.parametrize(
    "seq, durable, expected",
    [(None, True, None), (None, False, False), (7, True, False), (7, False, False)],
)
def test_wire_marks_messages_the_disk_need_not_wait_for(seq, durable, expected):
    """``durable: false`` (docs/PROTOCOL.md) for an outbox row's message or when asked (async);
    a sync message without a row leaves it out (the worker's default: durable)."""
    payload = envelope.build(
        message_id="m", signal="post_save", label="auth.user", using="default", created=True,
        raw=False, update_fields=None, instance=User(id=5, username="q"), attrs=(), fields=None,
    )
    decoded = json.loads(envelope.wire(payload, seq, durable=durable))
    assert decoded.get("durable") is expected
    assert ("durable" in decoded) == (expected is not None)
    assert decoded.get("seq") == seq
    assert {k: v for k, v in decoded.items() if k not in ("seq", "durable")} == json.loads(payload)


def _django_serializer(instance, fields):
    from django.core import serializers

    return serializers.serialize("python", [instance], fields=fields)[0]


def _concrete_names(instance):
    return tuple(f.name for f in instance._meta.concrete_fields if not f.primary_key)


@pytest.mark.parametrize(
    "make",
    [
        lambda: User(id=7, username="ann", email="a@example.com", first_name="Ann Ö", is_staff=True),
        lambda: User(
            id=8, username="bob", last_login=datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.timezone.utc),
            date_joined=datetime.datetime(2025, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc), password="x" * 80,
        ),
        lambda: User(id=None, username=""),
    ],
)
@pytest.mark.parametrize("fields", [None, ("username",), ("username", "last_login", "is_active"), ()])
def test_serialize_instance_equals_djangos_serializer_for_users(make, fields):
    user = make()
    expected = _django_serializer(user, fields if fields is not None else _concrete_names(user))
    assert envelope.serialize_instance(user, fields) == expected
    # The cached plan gives the same answer the second time, for another instance too.
    other = make()
    other.username = "changed"
    assert envelope.serialize_instance(other, fields) == _django_serializer(
        other, fields if fields is not None else _concrete_names(other)
    )


@pytest.mark.parametrize("birthdate", [None, datetime.date(1990, 1, 2)])
@pytest.mark.parametrize("fields", [None, ("user", "birthdate"), ("sex",)])
def test_serialize_instance_equals_djangos_serializer_for_a_foreign_key_and_dates(birthdate, fields):
    from accounts.models import UserProfile

    profile = UserProfile(id=3, user_id=42, profile_type="business", sex=None, birthdate=birthdate)
    expected = _django_serializer(profile, fields if fields is not None else _concrete_names(profile))
    assert envelope.serialize_instance(profile, fields) == expected
    if fields is None or "user" in fields:
        assert expected["fields"]["user"] == 42, "a foreign key travels as its raw id"


@pytest.mark.django_db
def test_a_selected_many_to_many_field_is_left_to_djangos_serializer():
    from django.contrib.auth.models import Group

    from signal_bridge import state

    with state.suspended():  # no worker here: this test is about the serializer only
        user = User.objects.create(username="m2m")
        group = Group.objects.create(name="staff")
        user.groups.add(group)
    serialized = envelope.serialize_instance(user, ("username", "groups"))
    assert serialized == _django_serializer(user, ("username", "groups"))
    assert serialized["fields"]["groups"] == [group.pk]


def test_capture_detaches_from_later_changes_to_the_instance():
    # Async messages without an outbox row are rendered later, on the sender thread: what the
    # caller does to the instance after save() must not reach the message.
    user = User(id=11, username="before", last_login=datetime.datetime(2026, 1, 2, tzinfo=datetime.timezone.utc))
    user.first_name = ["a", "list"]  # a mutable value: copied, not shared
    user._profile_data = {"sex": "F"}
    draft = envelope.capture(
        message_id="m", signal="post_save", label="auth.user", using="default", created=True, raw=False,
        update_fields=None, instance=user, attrs=("_profile_data",), fields=None,
    )
    expected = json.loads(json.dumps(_django_serializer(user, _concrete_names(user)), cls=DjangoJSONEncoder))
    user.username = "after"
    user.first_name.append("changed")
    user.last_login = None
    user._profile_data["sex"] = "M"
    user.id = 12
    message = json.loads(draft.render())
    assert message["instance"] == expected
    assert message["instance"]["fields"]["username"] == "before"
    assert message["instance"]["pk"] == 11
    assert message["attrs"] == {"_profile_data": {"sex": "F"}}


def test_capture_and_render_equal_build():
    user = User(id=13, username="same", email="s@example.com")
    user._profile_data = {"birthdate": datetime.date(1990, 1, 2)}
    options = dict(
        message_id="m", signal="post_save", label="auth.user", using="default", created=False, raw=False,
        update_fields={"email"}, instance=user, attrs=("_profile_data", "_absent"), fields=None,
    )
    built, rendered = json.loads(envelope.build(**options)), json.loads(envelope.capture(**options).render())
    built.pop("sent_at"), rendered.pop("sent_at")
    assert built == rendered
    assert list(rendered) == ["v", "id", "signal", "sender", "db", "created", "raw", "update_fields", "instance",
                              "attrs"]


def test_an_unencodable_attribute_fails_in_capture_not_later():
    user = User(id=14, username="bad")
    user._profile_data = {"when": object()}
    with pytest.raises(TypeError):
        envelope.capture(
            message_id="m", signal="post_save", label="auth.user", using="default", created=True, raw=False,
            update_fields=None, instance=user, attrs=("_profile_data",), fields=None,
        )


@pytest.mark.django_db
def test_a_deferred_field_is_serialized_at_capture():
    from signal_bridge import state

    with state.suspended():
        User.objects.create(username="deferred", email="d@example.com")
    user = User.objects.only("username").get(username="deferred")
    draft = envelope.capture(
        message_id="m", signal="post_save", label="auth.user", using="default", created=False, raw=False,
        update_fields=None, instance=user, attrs=(), fields=None,
    )
    assert isinstance(draft.instance, dict), "loading the deferred field must not be left to the sender thread"
    assert draft.instance["fields"]["email"] == "d@example.com"

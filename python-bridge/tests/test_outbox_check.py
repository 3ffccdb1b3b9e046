"""The worker checks the outbox instead of ``save()`` (pong feature ``outbox_check``, docs/PROTOCOL.md).

A sync update whose backlog is unknown skips the bridge's backlog query when
the worker's pong announced ``outbox_check``: it goes with
``"outbox_check": true``, and the worker answers ``behind`` when an older row
of the object waits in the outbox. The bridge then sends those rows and the
message again, without the flag. A worker without the feature (an older
release) gets today's path: the query, then the send.

The tests against the session's worker need one that announces the feature;
the others talk to a scripted worker in this process (``ScriptedWorker``), so
that a worker without the feature, or one that refuses it, is tested with
any binary.
"""

from __future__ import annotations

import datetime
import json
import threading

import pytest
import zmq
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

import signal_bridge
from accounts.models import UserProfile
from bridge_helpers import make_user
from conftest import bridge_settings
from signal_bridge import envelope, transport
from signal_bridge.models import DeadLetter, OutboxMessage

pytestmark = pytest.mark.django_db(transaction=True)


def _backlog_queries(captured) -> int:
    return sum('SELECT 1 FROM "signal_bridge_outbox"' in q["sql"] for q in captured.captured_queries)


@pytest.fixture
def pings(monkeypatch):
    """The ping frames the bridge builds (one per ping it sends)."""
    sent = []
    real = envelope.ping

    def counting(message_id):
        sent.append(message_id)
        return real(message_id)

    monkeypatch.setattr(envelope, "ping", counting)
    return sent


@pytest.fixture(autouse=True)
def unknown_features():
    """Every test starts with nothing learned and no cool-down (both are per process)."""
    transport.forget_features()
    transport.reset_cooldown()
    yield
    transport.forget_features()
    transport.reset_cooldown()
    transport.close_socket()


# --- against the session's worker (it must announce the feature) ----------------------------


def test_the_worker_announces_outbox_check_and_the_bridge_asks_once(bridge, pings):
    user = make_user("oc-once", sex="F")  # a new key: no backlog to know about, no ping
    assert pings == []
    with CaptureQueriesContext(connection) as captured:
        for sex in ("M", "O", "F"):
            user._profile_data = {"sex": sex}
            user.save()
    assert len(pings) == 1, "one ping per process and endpoints, not one per save"
    assert transport.OUTBOX_CHECK in transport.known_features(signal_bridge.conf.get().endpoints)
    assert _backlog_queries(captured) == 0, "the worker checks the outbox, save() does not"
    assert UserProfile.objects.get(user=user).sex == "F"
    assert signal_bridge.stats()["acked.updated"] == 3


def test_an_update_is_applied_after_the_older_row_deferred_while_the_worker_was_down(bridge, worker_down, pings):
    bridge(ON_UNREACHABLE="defer", TIMEOUT_MS=300, RETRIES=0, UNREACHABLE_COOLDOWN_MS=0)
    user = make_user("oc-behind", profile_type="business", birthdate="2001-02-03")  # no reply: deferred
    assert OutboxMessage.objects.filter(object_pk=str(user.pk)).count() == 1
    worker_down.start()

    user._profile_data = {"sex": "O"}
    user.save()  # outbox_check: the worker answers behind, the row goes first, then the update again

    stats = signal_bridge.stats()
    assert transport.OUTBOX_CHECK in transport.known_features(signal_bridge.conf.get().endpoints)
    assert stats.get("outbox_check.behind") == 1, stats
    assert (stats["acked.created"], stats["acked.updated"]) == (1, 1), "the row first, then the update"
    profile = UserProfile.objects.get(user=user)
    assert (profile.profile_type, profile.sex, profile.birthdate) == ("business", "O", datetime.date(2001, 2, 3))
    assert not OutboxMessage.objects.exists()
    assert not DeadLetter.objects.exists(), "behind is no failure of the message"
    assert "errors" not in stats


def test_an_update_inside_atomic_is_checked_by_seq(bridge, pings):
    """A row of its own (seq) and an older deferred row: the worker looks only below its seq.

    On PostgreSQL, where the row's INSERT cannot tell whether older rows
    wait; on SQLite the INSERT answers and nothing is asked of the worker.
    """
    bridge(MODE="outbox")
    user = make_user("oc-atomic", sex="F", birthdate="1999-09-09")  # left in the outbox
    bridge(MODE="sync")
    from django.db import transaction

    with transaction.atomic():
        user._profile_data = {"sex": "M"}
        user.save()
    profile = UserProfile.objects.get(user=user)
    assert (profile.sex, profile.birthdate) == ("M", datetime.date(1999, 9, 9))
    stats = signal_bridge.stats()
    assert (stats["acked.created"], stats["acked.updated"]) == (1, 1)
    assert stats.get("outbox_check.behind") == (1 if connection.vendor == "postgresql" else None), stats
    signal_bridge.flush(5)
    assert not OutboxMessage.objects.exists()


# --- a scripted worker in this process ------------------------------------------------------


class ScriptedWorker:
    """A ROUTER that answers like a worker: pings with ``features``, messages with ``answer(request)``."""

    def __init__(self, features, answer):
        self.features = features
        self.answer = answer
        self.requests: list[dict] = []
        self.frames: list[bytes] = []
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.bind("tcp://127.0.0.1:*")
        self.endpoint = self.socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        poller = zmq.Poller()
        poller.register(self.socket, zmq.POLLIN)
        while not self.stopping.is_set():
            if not poller.poll(50):
                continue
            identity, frame = self.socket.recv_multipart()
            self.frames.append(frame)
            request = json.loads(frame)
            self.requests.append(request)
            if request.get("type") == "ping":
                result = {"action": "pong"}
                if self.features is not None:
                    result["features"] = self.features
                reply = {"v": 1, "id": request["id"], "status": "ok", "result": result}
            else:
                reply = {"v": 1, "id": request["id"], **self.answer(request)}
            self.socket.send_multipart([identity, json.dumps(reply).encode()])

    def messages(self) -> list[dict]:
        return [r for r in self.requests if r.get("type") != "ping"]

    def stop(self):
        self.stopping.set()
        self.thread.join(5)
        self.socket.close(0)
        self.context.term()


def applied(request):
    return {"status": "ok", "result": {"action": "created" if request["created"] else "updated"}}


def refusing_the_check(request):
    """A worker whose pong says outbox_check but that lost its outbox table."""
    if request.get("outbox_check"):
        return {"status": "error", "error": {"code": "unsupported", "message": "no outbox table",
                                             "field": "outbox_check", "retryable": False}}
    return applied(request)


@pytest.fixture
def scripted(settings):
    """``scripted(features, answer)``: a ScriptedWorker the bridge is configured for."""
    started = []

    def start(features, answer=applied):
        worker = ScriptedWorker(features, answer)
        started.append(worker)
        settings.SIGNAL_BRIDGE = bridge_settings(worker.endpoint)
        signal_bridge.reset_stats()
        return worker

    yield start
    transport.close_socket()
    for worker in started:
        worker.stop()


def _saved_user(username) -> User:
    """A user saved without post_save (no message): what the updates below update."""
    User.objects.bulk_create([User(username=username)])
    return User.objects.get(username=username)


def test_a_worker_without_the_feature_gets_the_backlog_query_and_no_flag(scripted, pings):
    worker = scripted(features=None)  # an older release: a pong without features
    user = _saved_user("oc-old")
    with CaptureQueriesContext(connection) as captured:
        for sex in ("M", "F"):
            user._profile_data = {"sex": sex}
            user.save()
    assert len(pings) == 1, "asked once; the answer (no features) is kept"
    assert _backlog_queries(captured) == 2, "today's path: the query before every update"
    assert [("outbox_check" in m) for m in worker.messages()] == [False, False]
    assert signal_bridge.stats()["acked.updated"] == 2


def test_with_the_feature_updates_carry_the_flag_and_skip_the_query(scripted, pings):
    worker = scripted(features=["outbox_check", "something_later"])
    user = _saved_user("oc-new")
    with CaptureQueriesContext(connection) as captured:
        for sex in ("M", "F"):
            user._profile_data = {"sex": sex}
            user.save()
    assert len(pings) == 1
    assert _backlog_queries(captured) == 0
    assert [m.get("outbox_check") for m in worker.messages()] == [True, True]


def test_a_new_objects_message_carries_no_flag(scripted, pings):
    worker = scripted(features=["outbox_check"])
    make_user("oc-fresh", sex="F")  # its key was just generated: no older message can exist
    assert pings == [] and "outbox_check" not in worker.messages()[0]


def test_unsupported_falls_back_to_the_query_and_stops_relying_on_the_feature(scripted, pings):
    worker = scripted(features=["outbox_check"], answer=refusing_the_check)
    user = _saved_user("oc-lost-table")
    user._profile_data = {"sex": "M"}
    user.save()  # flagged, refused, then sent again without the flag: applied, nothing dead-lettered
    with CaptureQueriesContext(connection) as captured:
        user._profile_data = {"sex": "F"}
        user.save()  # today's path at once: no second refusal, no new ping
    sent = worker.messages()
    assert [m.get("outbox_check", False) for m in sent] == [True, False, False]
    assert sent[0]["id"] == sent[1]["id"], "the same message, sent again"
    assert len(pings) == 1 and _backlog_queries(captured) == 1
    stats = signal_bridge.stats()
    assert stats["outbox_check.unsupported"] == 1 and stats["acked.updated"] == 2
    assert "errors" not in stats and not DeadLetter.objects.exists() and not OutboxMessage.objects.exists()


def test_a_message_that_fits_only_without_the_flag_is_sent_without_it_after_the_query(scripted, settings, pings):
    worker = scripted(features=["outbox_check"])
    user = _saved_user("oc-tight")
    user._profile_data = {"sex": "M"}
    user.save()
    flagged = len(worker.frames[-1])
    assert worker.messages()[-1].get("outbox_check") is True
    # One byte short of the flagged frame: the same message fits only without the flag.
    settings.SIGNAL_BRIDGE = bridge_settings(worker.endpoint, MAX_MESSAGE_BYTES=flagged - 1)
    with CaptureQueriesContext(connection) as captured:
        user._profile_data = {"sex": "F"}
        user.save()
    last = worker.messages()[-1]
    assert "outbox_check" not in last and last["attrs"]["_profile_data"] == {"sex": "F"}
    assert len(worker.frames[-1]) == flagged - len(b'"outbox_check":true,')
    asked = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SELECT") and '"signal_bridge_outbox"' in q["sql"]]
    assert len(asked) == 1, f"the database is asked instead of the worker: {asked}"
    assert not DeadLetter.objects.exists() and "errors" not in signal_bridge.stats()


def test_behind_sends_the_older_row_first_and_the_message_again_without_the_flag(scripted):
    rows = []
    waiting = [True]  # the older row is in the outbox until the worker applied it

    def behind_while_a_row_waits(request):
        if request.get("outbox_check") and waiting[0]:
            return {"status": "error", "error": {"code": "behind", "message": "older row", "field": "outbox_check",
                                                 "retryable": True}}
        if request.get("seq") is not None:
            waiting[0] = False
        rows.append(request.get("seq"))
        return applied(request)

    worker = scripted(features=["outbox_check"], answer=behind_while_a_row_waits)
    user = _saved_user("oc-behind-scripted")
    older = envelope.build(message_id=envelope.uuid7(), signal="post_save", label="auth.user", using="default",
                           created=True, raw=False, update_fields=None, instance=user, attrs=(), fields=None)
    OutboxMessage.objects.create(message_id=json.loads(older)["id"], sender="auth.user", object_pk=str(user.pk),
                                 payload=older)
    user._profile_data = {"sex": "M"}
    user.save()
    sent = worker.messages()
    assert [(m["created"], m.get("outbox_check", False)) for m in sent] == [(False, True), (True, False), (False, False)]
    assert sent[0]["id"] == sent[2]["id"]
    assert rows[0] is not None and rows[1] is None, "the row (with its seq), then the live message"
    stats = signal_bridge.stats()
    assert stats["outbox_check.behind"] == 1 and "errors" not in stats
    assert not OutboxMessage.objects.exists() and not DeadLetter.objects.exists()


def test_a_worker_that_does_not_answer_the_ping_leaves_nothing_learned(settings, pings):
    silent = zmq.Context.instance().socket(zmq.ROUTER)  # connected, never answers
    silent.bind("tcp://127.0.0.1:*")
    try:
        endpoint = silent.getsockopt_string(zmq.LAST_ENDPOINT)
        settings.SIGNAL_BRIDGE = bridge_settings(endpoint, TIMEOUT_MS=100, RETRIES=0, ON_UNREACHABLE="defer")
        user = _saved_user("oc-silent")
        user._profile_data = {"sex": "M"}
        user.save()  # the ping gets no pong: today's path; the send gets no reply either: deferred
        assert len(pings) == 1
        assert transport.known_features(signal_bridge.conf.get().endpoints) is None
        assert OutboxMessage.objects.filter(object_pk=str(user.pk)).count() == 1
    finally:
        transport.close_socket()
        silent.close(0)


def test_the_cooldown_forgets_what_the_workers_announced():
    endpoints = ("tcp://127.0.0.1:1",)
    transport._features[endpoints] = frozenset({transport.OUTBOX_CHECK})
    transport.trip(1000)
    assert transport.known_features(endpoints) is None

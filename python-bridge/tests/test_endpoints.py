"""Several endpoints: every user's messages go to one worker, in order.

``ENDPOINT`` as a list of workers (``serve --bind``, no broker): the shim
picks the endpoint by rendezvous hashing of the message's ordering key
(sender label + instance pk). The first tests check the mapping itself; the
last ones run two real workers on the test database and check, through each
worker's Prometheus counters, that every message reached the worker its user
maps to, and through the tables that pipelined messages of one user ended in
the right state (no ``skipped``, no ``stale``: nothing overtook anything).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from collections import Counter

import pytest
from conftest import Worker, bridge_settings, free_port, store_url, worker_binary

from bridge_helpers import applied_count
from signal_bridge import envelope, transport

ENDPOINTS = ("tcp://10.0.0.1:5557", "tcp://10.0.0.2:5557", "tcp://10.0.0.3:5557")


def keys(n: int) -> list[str]:
    return [f"auth.user|{pk}" for pk in range(1, n + 1)]


def frame(pk, *, sender="auth.user", seq=None, created=False, data=None) -> bytes:
    message = {
        "v": 1, "id": envelope.uuid7(), "signal": "post_save", "sender": sender, "db": "default",
        "created": created, "raw": False, "update_fields": None, "sent_at": "2026-11-25T13:00:00.000000Z",
        "instance": {"model": sender, "pk": pk, "fields": {"username": f"u{pk}"}},
        "attrs": {"_profile_data": data or {}},
    }
    return envelope.wire(json.dumps(message, separators=(",", ":")), seq)


# --- the mapping --------------------------------------------------------------


def test_the_same_user_always_maps_to_the_same_endpoint():
    for pk in range(1, 200):
        frames = [frame(pk, created=True, data={"sex": "F"}), frame(pk, seq=7, data={"sex": "M"}), frame(pk)]
        chosen = {transport.route(f, "id", ENDPOINTS) for f in frames}
        assert len(chosen) == 1, f"user {pk} spread over {chosen}"
        # The order of the configured list does not matter (every process agrees).
        assert transport.route(frames[0], "id", tuple(reversed(ENDPOINTS))) in chosen


def test_the_mapping_is_the_same_in_another_process():
    """No ``hash()`` (randomized per process): a fresh interpreter picks the same endpoints."""
    sample = keys(50)
    here = [transport.endpoint_for(k, ENDPOINTS) for k in sample]
    code = (
        "import json, sys; from signal_bridge import transport; "
        "print(json.dumps([transport.endpoint_for(k, tuple(sys.argv[2:])) for k in json.loads(sys.argv[1])]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(sample), *ENDPOINTS], capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"},
    )
    assert json.loads(out.stdout) == here


def test_users_spread_evenly_over_the_endpoints():
    counts = Counter(transport.endpoint_for(k, ENDPOINTS) for k in keys(30_000))
    assert set(counts) == set(ENDPOINTS)
    for endpoint, n in counts.items():
        assert abs(n - 10_000) < 600, f"{endpoint} got {n} of 30,000 users"


def test_adding_an_endpoint_moves_about_one_user_in_n_and_only_to_it():
    sample = keys(20_000)
    new = "tcp://10.0.0.4:5557"
    before = {k: transport.endpoint_for(k, ENDPOINTS) for k in sample}
    after = {k: transport.endpoint_for(k, ENDPOINTS + (new,)) for k in sample}
    moved = [k for k in sample if before[k] != after[k]]
    assert all(after[k] == new for k in moved), "a user moved between two old endpoints"
    assert 0.22 < len(moved) / len(sample) < 0.28, f"{len(moved)} of {len(sample)} users moved (expected ~1/4)"


def test_removing_an_endpoint_moves_only_its_users():
    sample = keys(20_000)
    before = {k: transport.endpoint_for(k, ENDPOINTS) for k in sample}
    after = {k: transport.endpoint_for(k, ENDPOINTS[:2]) for k in sample}
    moved = {k for k in sample if before[k] != after[k]}
    assert moved == {k for k in sample if before[k] == ENDPOINTS[2]}


def test_messages_without_an_ordering_key_are_routed_by_id():
    ping = envelope.ping("0193a5e0-7c00-7000-8000-000000000001")
    assert transport.ordering_key(ping) is None
    assert transport.ordering_key(b"not json") is None
    assert transport.route(ping, "x", ENDPOINTS) == transport.route(ping, "x", ENDPOINTS)
    assert transport.ordering_key(frame(42)) == "auth.user|42"
    assert transport.ordering_key(frame("ab-c", sender="shop.item")) == "shop.item|ab-c"


def test_one_endpoint_is_used_without_parsing_the_frame():
    assert transport.route(b"anything at all", "id", ("tcp://127.0.0.1:1",)) == "tcp://127.0.0.1:1"


# --- two real workers ---------------------------------------------------------

REQUESTS = re.compile(r'^signal_worker_requests_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$', re.M)


class MeteredWorker(Worker):
    """A worker with ``--metrics-bind``: its counters say which messages it applied."""

    def __init__(self, binary, store, log_path):
        self.metrics_port = free_port()
        super().__init__(binary, store, log_path, ("--metrics-bind", f"127.0.0.1:{self.metrics_port}"))

    def actions(self) -> Counter:
        """``ok`` replies per action (``created``, ``updated``, ...), pings excluded."""
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).read().decode()
        counts: Counter = Counter()
        for m in REQUESTS.finditer(text):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group("labels")))
            if labels.get("status") == "ok" and labels.get("action") != "pong":
                counts[labels["action"]] += int(float(m.group("value")))
            elif labels.get("status") == "error":
                counts["error:" + labels.get("code", "?")] += int(float(m.group("value")))
        return counts


@pytest.fixture(scope="module")
def two_workers(worker, django_db_blocker, tmp_path_factory):
    """Two more workers on the test database (beside the session's ``worker``)."""
    from django.db import connection

    with django_db_blocker.unblock():
        store = store_url(connection.settings_dict)
    directory = tmp_path_factory.mktemp("two-workers")
    workers = [MeteredWorker(worker_binary(), store, directory / f"worker-{i}.log") for i in (1, 2)]
    for w in workers:
        w.start()
    yield workers
    transport.close_socket()
    for w in workers:
        w.stop()


@pytest.fixture
def two_worker_bridge(two_workers, settings):
    import signal_bridge

    endpoints = [w.endpoint for w in two_workers]
    settings.SIGNAL_BRIDGE = bridge_settings(endpoints)
    signal_bridge.reset_stats()
    yield two_workers
    transport.close_socket()


def new_users(prefix: str, n: int):
    """``n`` users saved without post_save (``bulk_create``): no profile yet."""
    from django.contrib.auth.models import User

    User.objects.bulk_create([User(username=f"{prefix}{i}") for i in range(n)])
    return list(User.objects.filter(username__startswith=prefix).order_by("pk"))


UPDATES = [
    {"profile_type": "business", "sex": "M", "birthdate": "1991-02-03"},
    {"sex": "O"},
    {"profile_type": "personal", "birthdate": None},
    {"sex": "F", "birthdate": "1999-12-31"},
]
FINAL = {"profile_type": "personal", "sex": "F", "birthdate": "1999-12-31"}


@pytest.mark.django_db(transaction=True)
def test_a_pipeline_with_several_messages_per_user_keeps_each_user_on_one_worker(two_worker_bridge):
    from accounts.models import UserProfile

    workers = two_worker_bridge
    endpoints = tuple(w.endpoint for w in workers)
    users = new_users("pipe", 60)
    before = [w.actions() for w in workers]

    # Round-robin over users, so each user's 5 messages are spread through the batch:
    # create, then 4 updates, every one with a higher seq.
    frames, seq = [], 1000
    expected = Counter()
    for step in range(1 + len(UPDATES)):
        for user in users:
            seq += 1
            user._profile_data = {"profile_type": "personal", "sex": "F"} if step == 0 else UPDATES[step - 1]
            payload = envelope.build(
                message_id=envelope.uuid7(), signal="post_save", label="auth.user", using="default",
                created=step == 0, raw=False, update_fields=None, instance=user, attrs=("_profile_data",),
                fields=("username",),
            )
            f = envelope.wire(payload, seq)
            frames.append((json.loads(payload)["id"], f))
            expected[transport.endpoint_for(f"auth.user|{user.pk}", endpoints)] += 1

    replies = transport.pipeline(frames, endpoints=endpoints, timeout_ms=10_000)

    assert len(replies) == len(frames)
    actions = Counter(r.get("result", {}).get("action") if r["status"] == "ok" else r["error"]["code"]
                      for r in replies.values())
    assert actions == {"created": len(users), "updated": len(users) * len(UPDATES)}, actions
    assert applied_count(mid for mid, _ in frames) == len(frames)
    for user in users:
        profile = UserProfile.objects.get(user_id=user.pk)
        birthdate = profile.birthdate.isoformat() if profile.birthdate else None
        assert (profile.profile_type, profile.sex, birthdate) == tuple(FINAL.values()), user.username
    # Each worker applied exactly the messages of the users that hash to it.
    for w, old in zip(workers, before):
        got = w.actions()
        done = sum(got[a] - old[a] for a in ("created", "updated", "skipped", "stale", "duplicate"))
        assert done == expected[w.endpoint], f"{w.endpoint}: applied {done}, routed {expected[w.endpoint]}"
        assert done > 0, "the sample should give both workers some users"


@pytest.mark.django_db(transaction=True)
def test_sync_saves_of_one_user_all_reach_the_same_worker(two_worker_bridge):
    from django.contrib.auth.models import User

    from accounts.models import UserProfile

    workers = two_worker_bridge
    endpoints = tuple(w.endpoint for w in workers)
    before = [w.actions() for w in workers]
    expected = Counter()
    for i in range(20):
        user = User(username=f"sync-multi{i}")
        user._profile_data = {"sex": "F"}
        user.save()
        for sex in ("M", "O", "F", "M"):
            user._profile_data = {"sex": sex}
            user.save()
        expected[transport.endpoint_for(f"auth.user|{user.pk}", endpoints)] += 5
        assert UserProfile.objects.get(user_id=user.pk).sex == "M"
    for w, old in zip(workers, before):
        got = w.actions()
        assert got["created"] - old["created"] + got["updated"] - old["updated"] == expected[w.endpoint]
        assert got["skipped"] == old["skipped"] and got["stale"] == old["stale"]


@pytest.mark.django_db(transaction=True)
def test_a_dead_endpoint_delays_only_its_own_users(two_worker_bridge):
    workers = two_worker_bridge
    endpoints = tuple(w.endpoint for w in workers)
    users = new_users("half", 40)
    live, dead = workers
    frames = {}
    for user in users:
        f = frame(user.pk, created=True, data={"sex": "F"})
        frames[json.loads(f)["id"]] = (user, f)
    dead.stop()
    try:
        replies = transport.pipeline([(mid, f) for mid, (_, f) in frames.items()], endpoints=endpoints, timeout_ms=500)
    finally:
        dead.start()
    for mid, (user, _) in frames.items():
        home = transport.endpoint_for(f"auth.user|{user.pk}", endpoints)
        if home == live.endpoint:
            assert replies[mid]["result"]["action"] == "created"
        else:
            assert mid not in replies, "a message for the stopped worker's user was answered by another worker"
    # After the restart the same pipeline completes (the live worker answers duplicate).
    again = transport.pipeline([(mid, f) for mid, (_, f) in frames.items()], endpoints=endpoints, timeout_ms=5_000)
    assert len(again) == len(frames)
    assert {r["result"]["action"] for r in again.values()} <= {"created", "duplicate"}

"""Run the contract vectors through the real Python receivers.

The same files (``Tests/Contract/vectors/*.json``, format in
``Tests/Contract/README.md``) are read by ``swift test``, so the Swift port
and this reference cannot drift. ``test_vector_coverage.py`` checks that
every reply the Swift side can give has a vector.

A vector's ``receivers`` (default ``["profile"]``) are the worker's
``--receivers``: the Python receivers of those names
(``accounts.in_process.RECEIVERS``: the profile receiver, DRF's
``create_auth_token``) run in that order.

Mapping of a step:
- skipped: steps with a ``python`` key and errors ``bad_request``/
  ``unsupported``;
- replies ``duplicate``/``stale`` (dedupe and ordering are protocol-only):
  not run, but checked against the protocol's rules (:class:`Ordering`):
  ``duplicate`` only for an id answered ``ok`` before, ``stale`` only when
  the message's ``seq`` is not newer than the last one applied for its
  object, and ``result.last_seq``, when the vector gives it, is that one;
- otherwise: load the user, set ``_profile_data`` if the message's ``attrs``
  has that key, and call the receivers in order inside one
  ``transaction.atomic()`` (the worker applies a message's receivers in one
  transaction). An expected ``ok`` must not raise, its action must be what
  the first receiver did, and ``result.receivers``, when given, must list
  what each receiver did, in order; an expected ``conflict``/``invalid_value``
  error must raise and roll back every receiver's writes, and
  ``error.receiver``, when given, must name the receiver that raised.
``applied`` and ``sequences`` of the initial state only feed :class:`Ordering`.
On PostgreSQL ``reply_postgres`` and ``expected_postgres`` override
``reply`` and ``expected`` when present.
"""

import datetime
import json
import os
import re
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from rest_framework.authtoken.models import Token

from accounts import in_process
from accounts.models import UserProfile

PROJECT_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = PROJECT_DIR.parent.parent
CONTRACT_DIR = REPO_DIR / "Tests" / "Contract" / "vectors"

PROTOCOL_ONLY_ACTIONS = {"duplicate", "stale"}
PROTOCOL_ONLY_ERRORS = {"bad_request", "unsupported"}
RECEIVER_ERRORS = {"conflict", "invalid_value"}
RECEIVER_ACTIONS = {"created", "updated", "skipped"}
DEFAULT_RECEIVERS = ["profile"]
TOKEN_KEY = re.compile(r"[0-9a-f]{40}")


def vector_files():
    """The contract vectors; ``CONTRACT_VECTORS_DIR`` overrides the folder (for trying new ones)."""
    folder = Path(os.environ.get("CONTRACT_VECTORS_DIR") or CONTRACT_DIR)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise RuntimeError(f"{folder} has no *.json contract vectors")
    return files


def parse_date(value):
    return None if value is None else datetime.date.fromisoformat(value)


def profile_rows():
    """The table as the vectors spell it: dicts sorted by user_id."""
    rows = UserProfile.objects.order_by("user_id").values(
        "user_id", "profile_type", "sex", "birthdate"
    )
    return [
        {
            "user_id": row["user_id"],
            "profile_type": row["profile_type"],
            "sex": row["sex"],
            "birthdate": row["birthdate"].isoformat() if row["birthdate"] is not None else None,
        }
        for row in rows
    ]


def token_rows():
    """``authtoken_token`` as ``{user_id: key}``."""
    return dict(Token.objects.order_by("user_id").values_list("user_id", "key"))


def normalize_expected(profiles):
    return sorted(
        (
            {
                "user_id": p["user_id"],
                "profile_type": p["profile_type"],
                "sex": p["sex"],
                "birthdate": p["birthdate"],
            }
            for p in profiles
        ),
        key=lambda p: p["user_id"],
    )


def token_mismatch(expected, actual):
    """Why ``actual`` (``{user_id: key}``) is not ``expected`` (``[{"user_id", "key"?}]``), or None.

    The users owning a token must be exactly the expected ones; an expected
    ``key`` must be that key (a token kept), any other key 40 lowercase hex
    characters (a new one: ``secrets.token_hex(20)``).
    """
    users = [t["user_id"] for t in expected]
    if len(set(users)) != len(users):
        return f"expected tokens name a user twice: {users}"
    if sorted(users) != sorted(actual):
        return f"tokens are owned by users {sorted(actual)}, expected {sorted(users)}"
    for token in expected:
        key = actual[token["user_id"]]
        if "key" in token and key != token["key"]:
            return f"user {token['user_id']}'s token is {key!r}, expected the kept {token['key']!r}"
        if not TOKEN_KEY.fullmatch(key):
            return f"user {token['user_id']}'s token {key!r} is not 40 lowercase hex characters"
    return None


def load_initial_state(initial):
    user_model = get_user_model()
    for user_id in initial.get("users", []):
        user_model.objects.create(id=user_id, username=f"user{user_id}")
    for profile in initial.get("profiles", []):
        UserProfile.objects.create(
            user_id=profile["user_id"],
            profile_type=profile["profile_type"],
            sex=profile["sex"],
            birthdate=parse_date(profile["birthdate"]),
        )
    for token in initial.get("tokens", []):
        assert TOKEN_KEY.fullmatch(token["key"]), f"initial token key {token['key']!r} is not 40 lowercase hex"
        Token.objects.create(user_id=token["user_id"], key=token["key"])


class Ordering:
    """The worker's dedupe and ordering state, as the vector's replies build it.

    PROTOCOL.md, "Exactly once and ordering": every ``ok`` outcome but
    ``duplicate`` records the id (``stale`` included); a message whose
    ``seq`` is not newer than the last applied one of its object
    (``sender``, ``instance.pk``) is ``stale``; only ``created`` and
    ``updated`` advance that ``seq``. Fed by each step's expected reply
    (whether or not Python runs the step); checks the ``duplicate`` and
    ``stale`` claims, which Python cannot produce.
    """

    def __init__(self, initial):
        self.applied = set(initial.get("applied") or [])
        self.last_seq = {("auth.user", str(pk)): seq for pk, seq in (initial.get("sequences") or {}).items()}

    @staticmethod
    def _signal(message):
        if not isinstance(message, dict) or message.get("type", "signal") != "signal":
            return None
        instance = message.get("instance")
        if not isinstance(message.get("id"), str) or not isinstance(instance, dict):
            return None
        return message["id"], (message.get("sender"), str(instance.get("pk")))

    def check(self, where, message, reply):
        """Assert a ``duplicate``/``stale`` reply follows from the state; return a log line."""
        action = reply["result"]["action"]
        signal = self._signal(message)
        assert signal is not None, f"{where}: {action!r} for a message that is not a signal with an id"
        message_id, key = signal
        if action == "duplicate":
            assert message_id in self.applied, f"{where}: 'duplicate' but id {message_id} was not applied before"
            return f"{where}: duplicate (id applied before)"
        assert message_id not in self.applied, f"{where}: 'stale' but id {message_id} was applied: 'duplicate'"
        seq, last = message.get("seq"), self.last_seq.get(key)
        assert isinstance(seq, int) and last is not None and seq <= last, (
            f"{where}: 'stale' but seq {seq!r} is not at or below the last applied seq {last!r} of {key}"
        )
        if "last_seq" in reply["result"]:
            assert reply["result"]["last_seq"] == last, (
                f"{where}: last_seq {reply['result']['last_seq']!r}, but the last applied seq of {key} is {last}"
            )
        return f"{where}: stale (seq {seq} <= last_seq {last})"

    def record(self, where, message, reply):
        signal = self._signal(message)
        if signal is None or reply.get("status") != "ok":
            return
        message_id, key = signal
        action = reply["result"]["action"]
        if action in RECEIVER_ACTIONS:
            assert message_id not in self.applied, f"{where}: {action!r} for id {message_id} applied before"
            seq, last = message.get("seq"), self.last_seq.get(key)
            assert not (isinstance(seq, int) and last is not None and seq <= last), (
                f"{where}: {action!r} but seq {seq} is not newer than {last}: 'stale'"
            )
        if action in RECEIVER_ACTIONS | {"stale"}:
            self.applied.add(message_id)
        if action in {"created", "updated"} and isinstance(message.get("seq"), int):
            self.last_seq[key] = message["seq"]


def skip_reason(step, reply):
    """Why a step has no Python-receiver equivalent, or None."""
    if "python" in step:
        return str(step["python"])
    if reply.get("status") == "error" and reply.get("error", {}).get("code") in PROTOCOL_ONLY_ERRORS:
        return f"protocol-only error {reply['error']['code']!r}"
    return None


def receiver_action(name, user, created):
    """What receiver ``name`` will do for this save (before it runs)."""
    if name == "profile":
        if created:
            return "created"
        return "updated" if UserProfile.objects.filter(user_id=user.pk).exists() else "skipped"
    if name == "drf-token":
        return "created" if created else "skipped"
    raise AssertionError(f"no action rule for receiver {name!r}")


def run_step(index, step, reply, receivers):
    """Apply one message with the Python receivers; return a log line."""
    message = step["message"]
    where = f"step {index}"
    assert isinstance(message, dict), (
        f"{where}: message is a raw string but the step has no 'python: skip'"
    )
    status = reply.get("status")
    assert status in {"ok", "error"}, f"{where}: reply status {status!r} is neither ok nor error"
    if status == "ok":
        expected_action = reply.get("result", {}).get("action")
        assert expected_action in RECEIVER_ACTIONS, (
            f"{where}: action {expected_action!r} cannot be checked in Python; add 'python: skip'"
        )
    else:
        code = reply.get("error", {}).get("code")
        assert code in RECEIVER_ERRORS, (
            f"{where}: error code {code!r} cannot be produced by the Python receivers; "
            "add 'python: skip'"
        )

    user_model = get_user_model()
    user = user_model.objects.get(pk=message["instance"]["pk"])
    attrs = message.get("attrs") or {}
    if "_profile_data" in attrs:
        user._profile_data = attrs["_profile_data"]
    created = message["created"]

    before = (profile_rows(), token_rows())
    actions = {}
    running = None
    error = None
    try:
        with transaction.atomic():  # one transaction per message, as the worker
            for name in receivers:
                running = name
                actions[name] = receiver_action(name, user, created)
                in_process.receiver(name)(sender=user_model, instance=user, created=created)
            running = None
    except Exception as exc:  # noqa: BLE001 - any exception is a receiver's error
        error = exc

    if status == "error":
        assert error is not None, (
            f"{where}: expected error {reply['error']['code']!r} but the receivers succeeded "
            f"({actions}); tables are now {profile_rows()}, tokens {token_rows()}"
        )
        assert (profile_rows(), token_rows()) == before, f"{where}: atomic block did not roll back"
        expected_receiver = reply["error"].get("receiver")
        assert expected_receiver is None or expected_receiver == running, (
            f"{where}: reply names receiver {expected_receiver!r} but {running!r} raised "
            f"{type(error).__name__}: {error}"
        )
        return (
            f"{where}: {reply['error']['code']} from {running} <- "
            f"{type(error).__module__}.{type(error).__name__}: {error}"
        )

    assert error is None, (
        f"{where}: expected ok/{expected_action} but receiver {running} raised "
        f"{type(error).__name__}: {error}"
    )
    first = actions[receivers[0]]
    assert first == expected_action, (
        f"{where}: reply says {expected_action!r} but the first receiver ({receivers[0]}) {first}"
    )
    expected_receivers = reply["result"].get("receivers")
    if expected_receivers is not None:
        assert list(expected_receivers.items()) == list(actions.items()), (
            f"{where}: reply says receivers {expected_receivers} but they did {actions} (in this order)"
        )
    if actions.get("profile") == "skipped":
        assert profile_rows() == before[0], f"{where}: profile skipped but the table changed"
    if actions.get("drf-token") == "skipped":
        assert token_rows() == before[1], f"{where}: token skipped but the table changed"
    if actions.get("drf-token") == "created":
        assert user.pk in token_rows() and user.pk not in before[1], f"{where}: no new token for user {user.pk}"
    return f"{where}: ok {actions}"


REQUIRED_KEYS = {"name", "initial", "steps", "expected"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("vector_path", vector_files(), ids=lambda p: p.name)
def test_contract_vector(vector_path, store_kind, receiver_disconnected, record_property):
    vector = json.loads(vector_path.read_text(encoding="utf-8"))
    missing = REQUIRED_KEYS - vector.keys()
    assert not missing, f"{vector_path.name}: missing keys {sorted(missing)}"
    receivers = vector.get("receivers", DEFAULT_RECEIVERS)
    assert list(in_process.parse(receivers)) == receivers, f"{vector_path.name}: receivers {receivers!r}"
    on_postgres = store_kind == "postgres"

    load_initial_state(vector["initial"])
    ordering = Ordering(vector["initial"])

    log = []
    for index, step in enumerate(vector["steps"]):
        reply = step["reply"]
        if on_postgres and "reply_postgres" in step:
            reply = step["reply_postgres"]
        where = f"step {index}"
        reason = skip_reason(step, reply)
        if reason is not None:
            log.append(f"{where}: skipped ({reason})")
        elif reply.get("status") == "ok" and reply.get("result", {}).get("action") in PROTOCOL_ONLY_ACTIONS:
            log.append(ordering.check(where, step["message"], reply))
        else:
            log.append(run_step(index, step, reply, receivers))
        ordering.record(where, step["message"], reply)

    record_property("store", store_kind)
    record_property("steps", log)
    print(f"[{store_kind}] {vector_path.name} (receivers {', '.join(receivers)})")
    for line in log:
        print("  " + line)

    expected = vector["expected"]
    if on_postgres and "expected_postgres" in vector:
        expected = vector["expected_postgres"]
    assert profile_rows() == normalize_expected(expected["profiles"]), (
        f"{vector_path.name} ({store_kind}): final table differs; steps:\n" + "\n".join(log)
    )
    # Absent: the initial tokens, kept as they were (none when there were none).
    expected_tokens = expected.get("tokens", vector["initial"].get("tokens", []))
    mismatch = token_mismatch(expected_tokens, token_rows())
    assert mismatch is None, f"{vector_path.name} ({store_kind}): {mismatch}; steps:\n" + "\n".join(log)

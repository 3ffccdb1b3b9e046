"""Run the contract vectors through the real Python receiver.

The same files (``Tests/Contract/vectors/*.json``) are read by ``swift test``,
so the Swift port and this reference cannot drift. ``test_vector_coverage.py``
checks that every reply the Swift side can give has a vector.

Mapping of a step (see the vector format in the lead's contract docs):
- skipped: steps with a ``python`` key, replies ``duplicate``/``stale``
  (dedupe and ordering are protocol-only) and errors ``bad_request``/
  ``unsupported``;
- otherwise: load the user, set ``_profile_data`` if the message's ``attrs``
  has that key, and call the receiver inside ``transaction.atomic()``.
  An expected ``ok`` must not raise, and its action (created/updated/skipped)
  must be what the receiver did; an expected ``conflict``/``invalid_value``
  error must raise and roll back.
``applied`` and ``sequences`` of the initial state are ignored here.
On PostgreSQL ``reply_postgres`` and ``expected_postgres`` override
``reply`` and ``expected`` when present.
"""

import datetime
import json
import os
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction

from accounts.models import UserProfile
from accounts.receivers import create_or_update_user_profile

PROJECT_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = PROJECT_DIR.parent.parent
CONTRACT_DIR = REPO_DIR / "Tests" / "Contract" / "vectors"

PROTOCOL_ONLY_ACTIONS = {"duplicate", "stale"}
PROTOCOL_ONLY_ERRORS = {"bad_request", "unsupported"}
RECEIVER_ERRORS = {"conflict", "invalid_value"}
RECEIVER_ACTIONS = {"created", "updated", "skipped"}


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


def skip_reason(step, reply):
    """Why a step has no Python-receiver equivalent, or None."""
    if "python" in step:
        return str(step["python"])
    if reply.get("status") == "ok" and reply.get("result", {}).get("action") in PROTOCOL_ONLY_ACTIONS:
        return f"protocol-only action {reply['result']['action']!r}"
    if reply.get("status") == "error" and reply.get("error", {}).get("code") in PROTOCOL_ONLY_ERRORS:
        return f"protocol-only error {reply['error']['code']!r}"
    return None


def run_step(index, step, reply):
    """Apply one message with the Python receiver; return a log line."""
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
            f"{where}: error code {code!r} cannot be produced by the Python receiver; "
            "add 'python: skip'"
        )

    user_model = get_user_model()
    user = user_model.objects.get(pk=message["instance"]["pk"])
    attrs = message.get("attrs") or {}
    if "_profile_data" in attrs:
        user._profile_data = attrs["_profile_data"]
    created = message["created"]

    before = profile_rows()
    had_profile = UserProfile.objects.filter(user_id=user.pk).exists()
    error = None
    try:
        with transaction.atomic():
            create_or_update_user_profile(sender=user_model, instance=user, created=created)
    except Exception as exc:  # noqa: BLE001 - any exception is the receiver's error
        error = exc

    if status == "error":
        assert error is not None, (
            f"{where}: expected error {reply['error']['code']!r} but the receiver succeeded; "
            f"table is now {profile_rows()}"
        )
        assert profile_rows() == before, f"{where}: atomic block did not roll back"
        return f"{where}: {reply['error']['code']} <- {type(error).__module__}.{type(error).__name__}: {error}"

    assert error is None, (
        f"{where}: expected ok/{expected_action} but the receiver raised "
        f"{type(error).__name__}: {error}"
    )
    if created:
        actual_action = "created"
    else:
        actual_action = "updated" if had_profile else "skipped"
    assert actual_action == expected_action, (
        f"{where}: reply says {expected_action!r} but the receiver {actual_action}"
    )
    if actual_action == "skipped":
        assert profile_rows() == before, f"{where}: skipped but the table changed"
    return f"{where}: ok {actual_action}"


REQUIRED_KEYS = {"name", "initial", "steps", "expected"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("vector_path", vector_files(), ids=lambda p: p.name)
def test_contract_vector(vector_path, store_kind, receiver_disconnected, record_property):
    vector = json.loads(vector_path.read_text(encoding="utf-8"))
    missing = REQUIRED_KEYS - vector.keys()
    assert not missing, f"{vector_path.name}: missing keys {sorted(missing)}"
    on_postgres = store_kind == "postgres"

    load_initial_state(vector["initial"])

    log = []
    for index, step in enumerate(vector["steps"]):
        reply = step["reply"]
        if on_postgres and "reply_postgres" in step:
            reply = step["reply_postgres"]
        reason = skip_reason(step, reply)
        if reason is not None:
            log.append(f"step {index}: skipped ({reason})")
            continue
        log.append(run_step(index, step, reply))

    record_property("store", store_kind)
    record_property("steps", log)
    print(f"[{store_kind}] {vector_path.name}")
    for line in log:
        print("  " + line)

    expected = vector["expected"]
    if on_postgres and "expected_postgres" in vector:
        expected = vector["expected_postgres"]
    assert profile_rows() == normalize_expected(expected["profiles"]), (
        f"{vector_path.name} ({store_kind}): final table differs; steps:\n" + "\n".join(log)
    )

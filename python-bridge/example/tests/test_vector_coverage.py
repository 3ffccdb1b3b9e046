"""Every reply the Swift worker can give has a contract vector, and every branch
of the Python receiver is exercised by one.

The reply actions and error codes are read from the Swift source
(``Sources/SignalProtocol/Reply.swift``), the literal error fields from
``Sources/ProfileReceiver``; a new case there without a vector fails this test
(and so CI) until a vector, run by both suites, shows what it means. These
tests need no database.
"""

import json
import re
from pathlib import Path

import pytest

REPO_DIR = Path(__file__).resolve().parents[3]
VECTORS_DIR = REPO_DIR / "Tests" / "Contract" / "vectors"
REPLY_SWIFT = REPO_DIR / "Sources" / "SignalProtocol" / "Reply.swift"
RECEIVER_SWIFT_DIR = REPO_DIR / "Sources" / "ProfileReceiver"
PROTOCOL_MD = REPO_DIR / "docs" / "PROTOCOL.md"

# Replies a vector cannot produce, with where they are tested instead.
NOT_IN_VECTORS = {
    "store_unavailable": "needs an unreachable database: ProfileStoreTests (PostgreSQL down, "
    "SQLite locked past the busy timeout) and the bridge's tests",
    "behind": "needs the shim's outbox table, which vectors do not model (the inbox's rule, not a "
    "receiver's): ProfileStoreTests' OutboxCheckTests on both databases, SignalWorkerTests' "
    "OutboxCheckEndToEndTests and the bridge's tests",
}

# Branches of the reference receiver (what the Python side can check).
PYTHON_BRANCHES = {"created", "updated", "skipped", "conflict", "invalid_value"}

# Each receiver's outcomes as replies name them: an action in ``result.receivers``, an
# error code with ``error.receiver`` (docs/PROTOCOL.md, "Several receivers").
RECEIVER_OUTCOMES = {
    ("profile", "created"), ("profile", "updated"), ("profile", "skipped"),
    ("profile", "conflict"), ("profile", "invalid_value"),
    ("drf-token", "created"), ("drf-token", "skipped"), ("drf-token", "conflict"),
}


def swift_actions():
    """``case name`` lines of ``enum ReplyAction``."""
    text = REPLY_SWIFT.read_text(encoding="utf-8")
    body = re.search(r"enum ReplyAction\b[^{]*\{(.*?)\n\}", text, re.S)
    assert body, f"enum ReplyAction not found in {REPLY_SWIFT}"
    return set(re.findall(r"^\s*case (\w+)\s*$", body.group(1), re.M))


def swift_error_codes():
    """``ReplyErrorCode(rawValue: "...")`` constants."""
    text = REPLY_SWIFT.read_text(encoding="utf-8")
    codes = set(re.findall(r'ReplyErrorCode\(rawValue: "(\w+)"\)', text))
    assert codes, f"no ReplyErrorCode constants found in {REPLY_SWIFT}"
    return codes


def swift_literal_fields():
    """Error fields the receiver names literally (``field: "..."``)."""
    fields = set()
    for path in RECEIVER_SWIFT_DIR.glob("*.swift"):
        fields |= set(re.findall(r'field: "([\w.]+)"', path.read_text(encoding="utf-8")))
    assert fields, f"no literal error fields found in {RECEIVER_SWIFT_DIR}"
    return fields


def vector_replies():
    """Every expected reply of every vector (both databases' variants), with its step."""
    replies = []
    for path in sorted(VECTORS_DIR.glob("*.json")):
        vector = json.loads(path.read_text(encoding="utf-8"))
        for step in vector["steps"]:
            for key in ("reply", "reply_postgres"):
                if key in step:
                    replies.append((path.name, step, step[key]))
    assert replies, f"no vectors in {VECTORS_DIR}"
    return replies


def outcome(reply):
    if reply.get("status") == "ok":
        return reply["result"]["action"]
    return reply["error"]["code"]


def test_swift_enums_parse_to_known_sets():
    # Guards the regexes: if they silently matched nothing, the checks below would pass.
    assert {"created", "updated", "skipped", "duplicate", "stale", "pong"} <= swift_actions()
    assert {"bad_request", "unsupported", "conflict", "invalid_value", "store_unavailable"} <= swift_error_codes()


@pytest.mark.parametrize("name", sorted(swift_actions() | swift_error_codes()))
def test_every_swift_reply_has_a_vector_and_a_protocol_entry(name):
    assert f"`{name}`" in PROTOCOL_MD.read_text(encoding="utf-8"), (
        f"reply {name!r} exists in Swift but docs/PROTOCOL.md does not describe it"
    )
    if name in NOT_IN_VECTORS:
        pytest.skip(NOT_IN_VECTORS[name])
    covering = [file for file, _, reply in vector_replies() if outcome(reply) == name]
    assert covering, (
        f"reply {name!r} exists in Swift ({REPLY_SWIFT.name}) but no vector in "
        f"{VECTORS_DIR.relative_to(REPO_DIR)} expects it: add one"
    )


@pytest.mark.parametrize("field", sorted(swift_literal_fields()))
def test_every_literal_error_field_has_a_vector(field):
    covering = [
        file
        for file, _, reply in vector_replies()
        if reply.get("status") == "error" and reply["error"].get("field") == field
    ]
    assert covering, f"the receiver names error field {field!r} but no vector expects it"


@pytest.mark.parametrize("branch", sorted(PYTHON_BRANCHES))
def test_every_receiver_branch_runs_in_python(branch):
    # A step the Python suite runs: no "python" skip marker and a receiver outcome.
    runnable = [file for file, step, reply in vector_replies() if "python" not in step and outcome(reply) == branch]
    assert runnable, f"no vector runs the Python receiver's {branch!r} branch"


def vector_receivers(file):
    """A vector's ``receivers`` (the worker's ``--receivers``), default ``["profile"]``."""
    return json.loads((VECTORS_DIR / file).read_text(encoding="utf-8")).get("receivers", ["profile"])


def receiver_outcomes(file, reply):
    """``(receiver, action or error code)`` pairs a reply names (one receiver: its action is the reply's)."""
    if reply.get("status") == "ok":
        receivers = vector_receivers(file)
        if len(receivers) == 1 and reply["result"]["action"] in {"created", "updated", "skipped"}:
            return {(receivers[0], reply["result"]["action"])}
        return set((reply["result"].get("receivers") or {}).items())
    receiver = reply["error"].get("receiver")
    return {(receiver, reply["error"]["code"])} if receiver else set()


@pytest.mark.parametrize("pair", sorted(RECEIVER_OUTCOMES), ids="/".join)
def test_every_receiver_outcome_has_a_vector(pair):
    covering = [file for file, step, reply in vector_replies() if pair in receiver_outcomes(file, reply)]
    assert covering, f"no vector names receiver outcome {pair} (result.receivers, a one-receiver action, error.receiver)"
    if pair[1] in {"created", "updated", "skipped"}:
        runnable = [
            file
            for file, step, reply in vector_replies()
            if "python" not in step and pair in receiver_outcomes(file, reply)
        ]
        assert runnable, f"no vector runs {pair} in Python"


def test_vectors_name_known_receivers_once_each():
    for path in sorted(VECTORS_DIR.glob("*.json")):
        receivers = json.loads(path.read_text(encoding="utf-8")).get("receivers", ["profile"])
        assert receivers and len(set(receivers)) == len(receivers), f"{path.name}: receivers {receivers}"
        assert set(receivers) <= {"profile", "drf-token"}, f"{path.name}: unknown receiver in {receivers}"


def test_result_receivers_is_on_replies_of_several_receivers_only():
    # docs/PROTOCOL.md, "Several receivers": a one-receiver worker's reply is {"action": ...} alone.
    for file, _, reply in vector_replies():
        if reply.get("status") != "ok" or reply["result"]["action"] not in {"created", "updated", "skipped"}:
            assert "receivers" not in (reply.get("result") or {}), f"{file}: receivers on {reply}"
            continue
        receivers = vector_receivers(file)
        listed = reply["result"].get("receivers")
        if len(receivers) == 1:
            assert listed is None, f"{file}: one receiver, yet the reply lists receivers {listed}"
        else:
            assert listed is not None and list(listed) == receivers, f"{file}: receivers {listed} vs {receivers}"

"""Replies of a worker running several receivers (docs/PROTOCOL.md, "Reply").

``result.receivers`` lists each enabled receiver's action; the top-level
``action`` stays the first receiver's, which is what the bridge acts on.
``error.receiver`` names the receiver whose rule refused a message and ends
up on ``WorkerError.receiver``. No database, no worker: reply dicts only.
"""

from signal_bridge import outbox
from signal_bridge.exceptions import WorkerError

TOKEN_CONFLICT = {
    "v": 1,
    "id": "m1",
    "status": "error",
    "error": {
        "code": "conflict",
        "message": "a token already exists for user 1",
        "field": "instance.pk",
        "retryable": False,
        "receiver": "drf-token",
    },
}


def test_error_receiver_is_on_the_worker_error_and_in_its_text():
    error = WorkerError.from_reply(TOKEN_CONFLICT, "m1")
    assert (error.code, error.field, error.receiver, error.retryable) == ("conflict", "instance.pk", "drf-token", False)
    assert str(error) == (
        "signal-worker replied conflict (receiver drf-token, field instance.pk) to message m1: "
        "a token already exists for user 1"
    )


def test_a_reply_without_error_receiver_has_none():
    reply = {**TOKEN_CONFLICT, "error": {k: v for k, v in TOKEN_CONFLICT["error"].items() if k != "receiver"}}
    error = WorkerError.from_reply(reply, "m1")
    assert error.receiver is None
    assert "(field instance.pk)" in str(error) and "receiver" not in str(error)


def test_a_receiver_that_is_not_a_string_is_ignored():
    reply = {**TOKEN_CONFLICT, "error": {**TOKEN_CONFLICT["error"], "receiver": ["drf-token"]}}
    assert WorkerError.from_reply(reply, "m1").receiver is None


def test_an_ok_reply_with_receivers_is_acked_with_the_first_receivers_action():
    reply = {
        "v": 1,
        "id": "m2",
        "status": "ok",
        "result": {"action": "updated", "receivers": {"profile": "updated", "drf-token": "skipped"}},
    }
    assert outbox.classify(reply, "m2") == ("ack", "updated")


def test_a_conflict_with_a_receiver_is_final():
    kind, error = outbox.classify(TOKEN_CONFLICT, "m1")
    assert kind == "final" and error.receiver == "drf-token"

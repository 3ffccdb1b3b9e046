"""Settings validation and system checks (signal_bridge.checks)."""

import sqlite3

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteDatabaseWrapper
from django.db import connections
from django.db.backends.signals import connection_created
from django.test import override_settings

from signal_bridge import checks, conf


def ids(messages):
    return sorted({m.id for m in messages})


def test_valid_example_settings_have_no_errors(bridge):
    assert [m for m in checks.check_settings() if m.level >= 40] == []


@pytest.mark.parametrize(
    "overrides, expected_id",
    [
        ({"MODE": "fast"}, "signal_bridge.E003"),
        ({"ON_UNREACHABLE": "ignore"}, "signal_bridge.E004"),
        ({"ENDPOINT": "127.0.0.1:5557"}, "signal_bridge.E005"),
        ({"SENDERS": {"auth.nosuchmodel": {}}}, "signal_bridge.E006"),
        ({"SENDERS": {"auth.user": {"signals": ["pre_save"]}}}, "signal_bridge.E007"),
        ({"ON_UNREACHABLE": "local", "LOCAL_RECEIVERS": {"auth.user": "accounts.nope.receiver"}}, "signal_bridge.E008"),
        ({"ON_UNREACHABLE": "local"}, "signal_bridge.E008"),
        ({"TIMEOUT_MS": 0}, "signal_bridge.E009"),
        ({"TIMEOUTMS": 10}, "signal_bridge.E002"),
    ],
)
def test_bad_setting_reports_documented_id(bridge, overrides, expected_id):
    bridge(**overrides)
    assert expected_id in ids(checks.check_settings())


def test_a_renamed_key_says_what_it_is_called_now(bridge):
    bridge(ASYNC_BATCH_WAIT_MS=5)
    (problem,) = [m for m in checks.check_settings() if m.id == "signal_bridge.E002"]
    assert "'ASYNC_BATCH_WAIT_MS' is now 'ASYNC_INTERVAL_MS'" in problem.hint


def test_invalid_settings_raise_improperly_configured_when_used(bridge):
    bridge(MODE="fast")
    with pytest.raises(ImproperlyConfigured, match="signal_bridge.E003"):
        conf.get()


def test_not_a_dict():
    with override_settings(SIGNAL_BRIDGE=["x"]):
        assert ids(checks.check_settings()) == ["signal_bridge.E001"]


def test_empty_senders_warns(bridge):
    bridge(SENDERS={})
    assert "signal_bridge.W003" in ids(checks.check_settings())


def test_sqlite_without_wal_and_immediate_warns(monkeypatch):
    connection = connections["default"]
    if connection.vendor != "sqlite":
        # Pretend: the check reads settings only.
        monkeypatch.setitem(connection.settings_dict, "ENGINE", "django.db.backends.sqlite3")
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", {})
    if checks._HAS_SQLITE_OPTIONS:
        assert ids(checks.check_sqlite()) == ["signal_bridge.W001", "signal_bridge.W002"]
    else:
        # Django < 5.1: WAL may be set on the file, which the check asks only
        # when it may use the database; IMMEDIATE cannot be had at all.
        (warning,) = checks.check_sqlite()
        assert warning.id == "signal_bridge.W002"
        assert "Django < 5.1 cannot set it" in warning.hint
    monkeypatch.setitem(
        connection.settings_dict,
        "OPTIONS",
        {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"},
    )
    assert checks.check_sqlite() == []


@pytest.mark.django_db  # unblocks connections; this one is to a file of its own
def test_sqlite_wal_is_read_from_the_file_when_the_check_may_use_the_database(tmp_path, monkeypatch):
    # A real SQLite file of its own (rollback journal, SQLite's default),
    # behind a connection configured without init_command.
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (x)")
    settings_dict = {
        **connections["default"].settings_dict,
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {"transaction_mode": "IMMEDIATE"} if checks._HAS_SQLITE_OPTIONS else {},
    }
    other = SQLiteDatabaseWrapper(settings_dict, alias="other")
    monkeypatch.setattr(checks, "connections", {"other": other})
    # The example project switches every SQLite connection to WAL on Django < 5.1.
    wal_receiver = connection_created.disconnect(dispatch_uid="accounts.use_wal")
    no_immediate = [] if checks._HAS_SQLITE_OPTIONS else ["signal_bridge.W002"]
    try:
        assert ids(checks.check_sqlite(databases=["other"])) == ["signal_bridge.W001", *no_immediate]
        other.close()  # an open connection keeps the mode it opened with
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
        assert ids(checks.check_sqlite(databases=["other"])) == no_immediate
        # Not asked: the settings decide (Django < 5.1: the benefit of the doubt).
        not_asked = ids(checks.check_sqlite(databases=["default"]))
        assert ("signal_bridge.W001" in not_asked) == checks._HAS_SQLITE_OPTIONS
    finally:
        other.close()
        if wal_receiver:
            from accounts.apps import use_wal

            connection_created.connect(use_wal, dispatch_uid="accounts.use_wal")


def test_deploy_check_reports_unreachable_worker(bridge, worker):
    assert checks.check_worker_reachable() == []
    bridge(ENDPOINT="tcp://127.0.0.1:1", TIMEOUT_MS=200)
    assert ids(checks.check_worker_reachable()) == ["signal_bridge.W010"]


def test_deploy_check_is_tagged_deploy_only():
    from django.core.checks.registry import registry

    assert checks.check_worker_reachable in registry.get_checks(include_deployment_checks=True)
    assert checks.check_worker_reachable not in registry.get_checks(include_deployment_checks=False)


@pytest.mark.parametrize(
    "fields, flagged",
    [
        (["username", "password"], ["password"]),
        (["api_key", "stripe_key", "key", "password_hash", "salt", "otp", "pin"],
         ["api_key", "stripe_key", "key", "password_hash", "salt", "otp", "pin"]),
        (["secret_answer", "auth_token", "credentials", "ApiKey", "private_key"],
         ["secret_answer", "auth_token", "credentials", "ApiKey", "private_key"]),
        (["username", "email", "monkey", "keyboard", "hashtag", "spin"], []),
        ("__all__", ["password"]),  # every concrete field of auth.user
        (None, []),
    ],
)
def test_secret_looking_fields_are_a_warning(bridge, fields, flagged):
    sender = {"signals": ["post_save"], "attrs": ["_profile_data"]}
    if fields is not None:
        sender["fields"] = fields
    bridge(SENDERS={"auth.user": sender})
    warnings = [m for m in checks.check_settings() if m.id == "signal_bridge.W004"]
    if not flagged:
        assert warnings == []
        return
    (warning,) = warnings
    assert warning.msg.startswith(
        f"SIGNAL_BRIDGE['SENDERS']['auth.user'] sends {', '.join(map(repr, flagged))}, which look like secrets"
    )
    assert [m for m in checks.check_settings() if m.level >= 40] == []


def test_a_password_in_an_endpoint_url_is_never_echoed(bridge):
    bridge(ENDPOINT=["postgres://app:s3cret@db.internal/prod", None])  # a database URL pasted by mistake
    (problem,) = [m for m in checks.check_settings() if m.id == "signal_bridge.E005"]
    assert "s3cret" not in problem.msg and "postgres://app:***@db.internal/prod" in problem.msg
    with pytest.raises(ImproperlyConfigured) as info:
        conf.get()
    assert "s3cret" not in str(info.value)


def test_redact_hides_every_password_in_a_text():
    from signal_bridge.exceptions import WorkerUnreachable
    from signal_bridge.redaction import redact

    text = "failed: postgres://ann:pa@ss@db:5432/x and 'postgresql://bob:pw@h/y', tcp://127.0.0.1:5557"
    assert redact(text) == "failed: postgres://ann:***@db:5432/x and 'postgresql://bob:***@h/y', tcp://127.0.0.1:5557"
    assert redact("postgres://ann@db/x") == "postgres://ann@db/x"
    error = WorkerUnreachable("no reply", message_id="m", endpoints=("tcp://u:secret@host:5557",))
    assert "secret" not in str(error)


def test_the_example_settings_never_echo_a_database_password():
    from exampleproject.settings import database_from_url

    for url in ("postgres://app:s3cret@db:5432/", "mysql://app:s3cret@db/prod", "sqlite://app:s3cret@host/x"):
        with pytest.raises(ImproperlyConfigured) as info:
            database_from_url(url)
        assert "s3cret" not in str(info.value) and "app:***@" in str(info.value)

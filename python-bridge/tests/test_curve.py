"""The bridge against a worker started with CURVE: listed keys get in, others do not."""

from __future__ import annotations

import os
import subprocess

import pytest
from django.contrib.auth.models import User
from django.db import connection

import signal_bridge
from accounts.models import UserProfile
from conftest import Worker, bridge_settings, store_url, worker_binary


def keygen(binary, name, directory):
    subprocess.run([str(binary), "keygen", "--name", name, "--directory", str(directory)], check=True, capture_output=True)


@pytest.fixture
def curve_worker(worker, tmp_path):
    """A second worker on the same database that admits only `clients/django.pub`."""
    binary = worker_binary()
    clients = tmp_path / "clients"
    clients.mkdir()
    keygen(binary, "worker", tmp_path)
    keygen(binary, "django", clients)
    keygen(binary, "stranger", tmp_path)
    secured = Worker(
        binary, store_url(connection.settings_dict), tmp_path / "curve-worker.log",
        extra_args=("--curve-secret-key-file", str(tmp_path / "worker.key"), "--curve-allowed-clients", str(clients)),
    )
    secured.ping_args = ("--curve-secret-key-file", str(clients / "django.key"),
                         "--curve-server-key-file", str(tmp_path / "worker.pub"))
    secured.start()
    yield secured, tmp_path
    secured.stop()


@pytest.mark.django_db(transaction=True)
def test_sync_save_through_curve(curve_worker, settings):
    secured, keys = curve_worker
    settings.SIGNAL_BRIDGE = bridge_settings(
        secured.endpoint,
        CURVE={"SERVER_PUBLIC_KEY_FILE": str(keys / "worker.pub"), "SECRET_KEY_FILE": str(keys / "clients" / "django.key")},
    )
    user = User(username="curve-ann")
    user._profile_data = {"profile_type": "business", "sex": "F"}
    user.save()
    profile = UserProfile.objects.get(user=user)
    assert (profile.profile_type, profile.sex) == ("business", "F")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("client", ["stranger", "plaintext"])
def test_unknown_key_or_plaintext_is_refused_and_nothing_written(curve_worker, settings, client):
    secured, keys = curve_worker
    curve = None
    if client == "stranger":
        curve = {"SERVER_PUBLIC_KEY_FILE": str(keys / "worker.pub"), "SECRET_KEY_FILE": str(keys / "stranger.key")}
    settings.SIGNAL_BRIDGE = bridge_settings(
        secured.endpoint, CURVE=curve, TIMEOUT_MS=300, RETRIES=0, UNREACHABLE_COOLDOWN_MS=0
    )
    user = User(username=f"curve-{client}")
    user._profile_data = {"profile_type": "business"}
    with pytest.raises(signal_bridge.WorkerUnreachable):
        user.save()
    assert not UserProfile.objects.filter(user__username=f"curve-{client}").exists()


def test_open_secret_key_file_is_a_check_error(tmp_path):
    from signal_bridge import conf

    binary = worker_binary()
    keygen(binary, "worker", tmp_path)
    keygen(binary, "django", tmp_path)
    os.chmod(tmp_path / "django.key", 0o644)
    config, problems = conf.validate(
        {"CURVE": {"SERVER_PUBLIC_KEY_FILE": str(tmp_path / "worker.pub"), "SECRET_KEY_FILE": str(tmp_path / "django.key")}}
    )
    assert config is None
    assert [p.id for p in problems] == ["signal_bridge.E010"]
    assert "chmod 600" in problems[0].msg
    _, broken = conf.validate({"CURVE": {"SERVER_PUBLIC_KEY_FILE": str(tmp_path / "missing.pub"), "SECRET_KEY_FILE": "x"}})
    assert [p.id for p in broken] == ["signal_bridge.E010"]


def test_repr_of_the_keys_never_shows_the_secret_key(tmp_path):
    from signal_bridge import conf

    binary = worker_binary()
    keygen(binary, "worker", tmp_path)
    keygen(binary, "django", tmp_path)
    config, problems = conf.validate(
        {"CURVE": {"SERVER_PUBLIC_KEY_FILE": str(tmp_path / "worker.pub"), "SECRET_KEY_FILE": str(tmp_path / "django.key")}}
    )
    assert problems == []
    keys = config.curve
    assert keys.secret and keys.secret.decode() in (tmp_path / "django.key").read_text()
    for text in (repr(keys), str(keys), repr(config)):
        assert keys.secret.decode() not in text
        assert "secret=<redacted>" in text and keys.public.decode() in text


def test_a_worker_public_key_file_others_may_change_is_a_check_error(tmp_path):
    """The worker's public key is what the bridge trusts (as the worker trusts its allowed-clients
    directory): a file group or others may write could be swapped for an impostor's key."""
    from signal_bridge import conf

    binary = worker_binary()
    keygen(binary, "worker", tmp_path)
    keygen(binary, "django", tmp_path)
    curve = {"SERVER_PUBLIC_KEY_FILE": str(tmp_path / "worker.pub"), "SECRET_KEY_FILE": str(tmp_path / "django.key")}
    assert conf.validate({"CURVE": curve})[1] == [], "keygen's 0644 is fine"
    for mode in (0o664, 0o646):
        os.chmod(tmp_path / "worker.pub", mode)
        config, problems = conf.validate({"CURVE": curve})
        assert config is None and [p.id for p in problems] == ["signal_bridge.E010"]
        assert "must not be writable by group or others" in problems[0].msg

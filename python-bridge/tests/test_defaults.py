"""What a project gets without tuning: a dead worker costs one short stall and loses nothing.

Only ``ENDPOINT`` and ``SENDERS`` are set here; every other key is the
default of ``signal_bridge.conf``. (The other tests configure the timeouts and
policies they need, so they would not notice a change of default.)
"""

import io
import time

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command

import signal_bridge
from accounts.models import UserProfile
from bridge_helpers import applied_count
from signal_bridge import conf
from signal_bridge.models import OutboxMessage

pytestmark = pytest.mark.django_db(transaction=True)

# Generous: the defaults stall 0.6 s (conf.py says why); the old ones took 6 s and then raised.
STALL_LIMIT_S = 2.0


def defaults_only(endpoint: str) -> dict:
    return {
        "ENDPOINT": endpoint,
        "SENDERS": {"auth.user": {"signals": ["post_save"], "attrs": ["_profile_data"], "fields": ["username"]}},
    }


def test_the_defaults_are_sync_and_defer():
    config, problems = conf.validate(defaults_only("tcp://127.0.0.1:5557"))
    assert problems == []
    assert (config.mode, config.on_unreachable) == ("sync", "defer")
    assert config.timeout_ms * (config.retries + 1) < 1000, "a dead worker must stall a save well under a second"


def test_worker_down_sync_save_returns_fast_keeps_the_message_and_the_relay_delivers_it(worker_down, settings):
    settings.SIGNAL_BRIDGE = defaults_only(worker_down.endpoint)
    signal_bridge.reset_stats()
    user = User(username="d-default")
    user._profile_data = {"profile_type": "business", "sex": "F"}

    started = time.monotonic()
    user.save()  # autocommit, sync mode: must neither raise nor hang
    elapsed = time.monotonic() - started

    assert elapsed < STALL_LIMIT_S, f"save() took {elapsed:.2f} s with the worker down"
    assert User.objects.filter(pk=user.pk).exists()
    rows = list(OutboxMessage.objects.filter(object_pk=str(user.pk)).values_list("message_id", flat=True))
    assert len(rows) == 1, "the undelivered message must wait in the outbox"
    assert signal_bridge.stats()["deferred"] == 1
    assert not UserProfile.objects.filter(user=user).exists()

    # The cool-down: the next save does not try the network at all.
    sent = signal_bridge.stats()["sent"]
    User.objects.create(username="d-default-2")
    assert signal_bridge.stats()["sent"] == sent, "no send attempt during UNREACHABLE_COOLDOWN_MS"
    assert OutboxMessage.objects.count() == 2

    worker_down.start()
    out = io.StringIO()
    call_command("signal_bridge", "relay", "--once", stdout=out)
    assert "remaining 0" in out.getvalue()
    assert OutboxMessage.objects.count() == 0
    assert applied_count(rows) == 1
    profile = UserProfile.objects.get(user=user)
    assert (profile.profile_type, profile.sex) == ("business", "F")

"""``accounts.in_process``: the receivers in process, in the worker's names and order.

Several receivers of one save run in one ``transaction.atomic()``, all or
nothing, as the worker applies a message (docs/PROTOCOL.md, "Differences
from the in-process receiver"); Django's own dispatch of separately
connected receivers in autocommit keeps what the earlier one wrote.
"""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import IntegrityError
from django.db.models.signals import post_save
from rest_framework.authtoken.models import Token

from accounts import in_process
from accounts.drf_token import create_auth_token
from accounts.models import UserProfile
from accounts.receivers import create_or_update_user_profile

BOTH = ["profile", "drf-token"]


def test_parse_takes_the_workers_spelling():
    assert in_process.parse("profile,drf-token") == ("profile", "drf-token")
    assert in_process.parse([" Profile ", "drf-token", ""]) == ("profile", "drf-token")
    assert in_process.parse("drf-token") == ("drf-token",)
    for bad in ("profile,token", "", "profile,profile"):
        with pytest.raises(ValueError):
            in_process.parse(bad)


def test_a_bad_receiver_list_fails_the_system_check(settings):
    settings.ACCOUNTS_RECEIVERS = ["profile", "tokens"]
    with pytest.raises(SystemCheckError, match="accounts.E001"):
        call_command("check")


@pytest.mark.django_db
def test_both_receivers_create_a_profile_and_a_token(in_process_receiver, settings):
    settings.ACCOUNTS_RECEIVERS = BOTH
    user = get_user_model()(username="ann")
    user._profile_data = {"sex": "F"}
    user.save()
    assert UserProfile.objects.get(user=user).sex == "F"
    key = Token.objects.get(user=user).key
    assert len(key) == 40 and set(key) <= set("0123456789abcdef")
    user.save()  # created=False: the profile is updated, the token kept
    assert Token.objects.get(user=user).key == key


@pytest.mark.django_db
def test_the_default_runs_the_profile_receiver_only(in_process_receiver):
    user = get_user_model().objects.create(username="bob")
    assert UserProfile.objects.filter(user=user).exists()
    assert not Token.objects.filter(user=user).exists()


@pytest.mark.django_db(transaction=True)
def test_a_token_conflict_rolls_back_the_profile_of_that_save(receiver_disconnected, settings):
    settings.ACCOUNTS_RECEIVERS = BOTH
    user = get_user_model().objects.create(username="cy")
    Token.objects.create(user=user)
    with pytest.raises(IntegrityError):  # autocommit: no transaction around the call but its own
        in_process.run_receivers(sender=get_user_model(), instance=user, created=True, using="default")
    assert not UserProfile.objects.filter(user=user).exists(), "all or nothing per save"


@pytest.mark.django_db(transaction=True)
def test_djangos_own_dispatch_in_autocommit_keeps_the_earlier_receivers_write(receiver_disconnected):
    """What the worker and run_receivers do not do: two receivers connected as DRF's docs connect them."""
    user_model = get_user_model()
    user = user_model.objects.create(username="dee")
    Token.objects.create(user=user)
    post_save.connect(create_or_update_user_profile, sender=user_model, dispatch_uid="tests.profile")
    post_save.connect(create_auth_token, sender=user_model, dispatch_uid="tests.token")
    try:
        with pytest.raises(IntegrityError):
            post_save.send(sender=user_model, instance=user, created=True, raw=False, using="default",
                           update_fields=None)
    finally:
        post_save.disconnect(sender=user_model, dispatch_uid="tests.profile")
        post_save.disconnect(sender=user_model, dispatch_uid="tests.token")
    assert UserProfile.objects.filter(user=user).exists(), "autocommit: the profile committed before the token failed"

"""The demo's pages with the Python receiver in process.

The views only set ``user._profile_data`` and call ``user.save()``; whoever
receives ``post_save`` writes the profile. Here that is the reference
receiver (accounts/receivers.py), so these tests check the view logic: which
keys the views send, and that the pages show what the receiver wrote. The
same pages against the Swift worker are exercised by ``scripts/demo --check``.
"""

import datetime
import json
import re
import socket
import time

import pytest
from django.contrib.auth import get_user_model
from django.db.models.signals import post_save
from django.urls import reverse
from django.utils import timezone

from accounts.models import UserProfile

NOT_SET = object()


@pytest.fixture
def sent(in_process_receiver):
    """Every (created, _profile_data) that a user's post_save carried."""
    calls = []

    def spy(sender, instance, created, **kwargs):
        data = getattr(instance, "_profile_data", NOT_SET)
        calls.append((created, dict(data) if isinstance(data, dict) else data))

    post_save.connect(spy, sender=get_user_model(), dispatch_uid="tests.spy", weak=False)
    yield calls
    post_save.disconnect(sender=get_user_model(), dispatch_uid="tests.spy")


def signup(client, **fields):
    data = {"username": "ann", "password": "s3cret-pass", "profile_type": "business"}
    data.update(fields)
    return client.post(reverse("accounts:signup"), data)


def profile_row(username):
    return UserProfile.objects.values("profile_type", "sex", "birthdate").get(
        user__username=username
    )


pytestmark = pytest.mark.django_db


def test_signup_page_renders_the_form(client, in_process_receiver):
    response = client.get(reverse("accounts:signup"))
    assert response.status_code == 200
    html = response.content.decode()
    for name in ("username", "password", "profile_type", "sex", "birthdate"):
        assert f'name="{name}"' in html
    assert 'type="date"' in html
    assert '<option value="" selected>' in html  # sex starts empty
    assert 'value="O"' not in html  # choices are M/F


def test_signup_sends_every_field_and_the_receiver_creates_the_profile(client, sent):
    response = signup(client, sex="F", birthdate="1990-01-02")

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:profile", args=["ann"])
    assert sent == [
        (True, {"profile_type": "business", "sex": "F", "birthdate": datetime.date(1990, 1, 2)})
    ]
    user = get_user_model().objects.get(username="ann")
    assert user.check_password("s3cret-pass")
    assert profile_row("ann") == {
        "profile_type": "business",
        "sex": "F",
        "birthdate": datetime.date(1990, 1, 2),
    }


def test_signup_leaves_empty_optional_fields_out_of_profile_data(client, sent):
    response = signup(client, profile_type="personal", sex="", birthdate="")

    assert response.status_code == 302
    # Absent, not None: the receiver's .get(key, None) gives NULL on create.
    assert sent == [(True, {"profile_type": "personal"})]
    assert profile_row("ann") == {"profile_type": "personal", "sex": None, "birthdate": None}


@pytest.mark.parametrize(
    ("fields", "error_field"),
    [
        ({"username": ""}, "username"),
        ({"username": "has space"}, "username"),
        ({"password": ""}, "password"),
        ({"profile_type": "enterprise"}, "profile_type"),
        ({"sex": "O"}, "sex"),
        ({"birthdate": "not a date"}, "birthdate"),
        ({"birthdate": "2021-02-29"}, "birthdate"),
        ({"birthdate": "1990-02-30"}, "birthdate"),
        ({"birthdate": "02/30/1990"}, "birthdate"),
        ({"birthdate": "2999-01-01"}, "birthdate"),
    ],
    ids=lambda v: v if isinstance(v, str) else "-".join(f"{k}={v}" for k, v in v.items()),
)
def test_invalid_signup_re_renders_with_errors_and_creates_nothing(
    client, sent, fields, error_field
):
    response = signup(client, **fields)

    assert response.status_code == 200
    assert error_field in response.context["form"].errors
    assert 'class="errorlist' in response.content.decode()
    assert sent == []
    assert not get_user_model().objects.exists()
    assert not UserProfile.objects.exists()


def test_signup_refuses_a_taken_username_in_any_case(client, sent):
    assert signup(client).status_code == 302
    response = signup(client, username="ANN")

    assert response.status_code == 200
    assert "This username is taken." in response.context["form"].errors["username"]
    assert get_user_model().objects.count() == 1
    assert len(sent) == 1


def test_profile_page_shows_the_profile(client, in_process_receiver):
    signup(client, sex="M", birthdate="1985-12-31")

    response = client.get(reverse("accounts:profile", args=["ann"]))

    assert response.status_code == 200
    html = response.content.decode()
    assert '<dd id="profile-type">Business</dd>' in html
    assert '<dd id="profile-sex">Male</dd>' in html
    assert '<dd id="profile-birthdate">1985-12-31</dd>' in html
    assert reverse("accounts:profile_edit", args=["ann"]) in html


def test_profile_page_without_a_profile_says_so(client, in_process_receiver, receiver_disconnected):
    get_user_model().objects.create_user(username="bob", password="x")

    response = client.get(reverse("accounts:profile", args=["bob"]))

    assert response.status_code == 200
    html = response.content.decode()
    assert "No profile yet." in html
    assert "reload this page" in html


@pytest.mark.parametrize("view", ["accounts:profile", "accounts:profile_edit"])
@pytest.mark.parametrize("debug", [True, False], ids=["DEBUG", "no-DEBUG"])
def test_an_unknown_user_gets_the_demo_styled_404(client, in_process_receiver, settings, view, debug):
    settings.DEBUG = debug  # scripts/demo runs with DEBUG on, where Http404 shows Django's debug page

    response = client.get(reverse(view, args=["nobody"]))

    assert response.status_code == 404
    html = response.content.decode()
    assert "There is no user “nobody”." in html
    assert "DjangoSignalWorker demo" in html  # the site's layout, not Django's page
    assert "Using the URLconf" not in html


def test_an_unknown_url_gets_the_styled_404_without_debug(client, in_process_receiver, settings):
    settings.DEBUG = False

    response = client.get("/no/such/page/")

    assert response.status_code == 404
    html = response.content.decode()
    assert "There is no page at /no/such/page/." in html
    assert "DjangoSignalWorker demo" in html


@pytest.mark.parametrize("name", ["signup", "edit"])
def test_the_forms_let_the_browser_check_the_date_and_cap_it_at_today(client, sent, name):
    """No ``novalidate``: the browser refuses a date it cannot parse instead of
    sending it as an empty value; ``max`` is today (the server checks it too)."""
    signup(client, username="cap")
    url = reverse("accounts:signup") if name == "signup" else reverse("accounts:profile_edit", args=["cap"])

    html = client.get(url).content.decode()

    assert "novalidate" not in html
    today = timezone.localdate().isoformat()
    assert re.search(rf'<input type="date" name="birthdate"[^>]* max="{today}"', html), html


def test_edit_refuses_a_birthdate_in_the_future(client, sent):
    signup(client, birthdate="1990-01-02")
    sent.clear()
    tomorrow = timezone.localdate() + datetime.timedelta(days=1)

    response = client.post(
        reverse("accounts:profile_edit", args=["ann"]),
        {"profile_type": "business", "birthdate": tomorrow.isoformat()},
    )

    assert response.status_code == 200
    assert response.context["form"].errors["birthdate"] == ["A birthdate cannot be in the future."]
    assert sent == []
    assert profile_row("ann")["birthdate"] == datetime.date(1990, 1, 2)


def test_edit_sends_only_changed_fields_and_none_for_a_cleared_one(client, sent):
    signup(client, sex="F", birthdate="1990-01-02")
    sent.clear()
    url = reverse("accounts:profile_edit", args=["ann"])

    form_page = client.get(url)
    assert form_page.status_code == 200
    assert 'value="1990-01-02"' in form_page.content.decode()

    response = client.post(url, {"profile_type": "business", "sex": "M", "birthdate": ""})

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:profile", args=["ann"])
    # The receiver's update branch: sex changed, birthdate cleared (None is
    # sent), profile_type unchanged (absent: the stored value is kept).
    assert sent == [(False, {"sex": "M", "birthdate": None})]
    assert profile_row("ann") == {"profile_type": "business", "sex": "M", "birthdate": None}


def test_edit_without_changes_saves_nothing(client, sent):
    signup(client, sex="F", birthdate="1990-01-02")
    sent.clear()

    response = client.post(
        reverse("accounts:profile_edit", args=["ann"]),
        {"profile_type": "business", "sex": "F", "birthdate": "1990-01-02"},
    )

    assert response.status_code == 302
    assert sent == []


def test_edit_keeps_a_stored_value_outside_the_choices(client, sent):
    signup(client, sex="F")
    UserProfile.objects.filter(user__username="ann").update(sex="O")
    sent.clear()
    url = reverse("accounts:profile_edit", args=["ann"])

    assert '<option value="O" selected>' in client.get(url).content.decode()
    client.post(url, {"profile_type": "business", "sex": "O", "birthdate": "2000-02-29"})

    assert sent == [(False, {"birthdate": datetime.date(2000, 2, 29)})]
    assert profile_row("ann") == {
        "profile_type": "business",
        "sex": "O",
        "birthdate": datetime.date(2000, 2, 29),
    }


def test_invalid_edit_re_renders_and_changes_nothing(client, sent):
    signup(client, sex="F", birthdate="1990-01-02")
    sent.clear()

    response = client.post(
        reverse("accounts:profile_edit", args=["ann"]),
        {"profile_type": "business", "sex": "X", "birthdate": "1990-01-02"},
    )

    assert response.status_code == 200
    assert "sex" in response.context["form"].errors
    assert sent == []
    assert profile_row("ann")["sex"] == "F"


def test_edit_without_a_profile_explains_the_receiver_would_skip(
    client, in_process_receiver, receiver_disconnected
):
    get_user_model().objects.create_user(username="bob", password="x")

    response = client.get(reverse("accounts:profile_edit", args=["bob"]))

    assert response.status_code == 409
    assert response.context["form"] is None
    assert "No profile yet." in response.content.decode()


def test_home_lists_recent_users_with_links(client, in_process_receiver):
    signup(client, username="ann")
    signup(client, username="bob", profile_type="personal")

    response = client.get(reverse("accounts:home"))

    assert response.status_code == 200
    html = response.content.decode()
    assert html.index(">bob<") < html.index(">ann<")  # newest first
    assert reverse("accounts:profile", args=["ann"]) in html
    assert "Business" in html and "Personal" in html


@pytest.mark.django_db(transaction=True)
def test_the_example_sends_the_username_and_never_the_password_hash(client, settings):
    """The example's SENDERS names ``fields: ["username"]``: the message (here its
    outbox row, MODE="outbox" so that nothing is sent) holds the user's id, username
    and ``_profile_data``, and no other field of the user."""
    from signal_bridge.models import OutboxMessage

    settings.SIGNAL_BRIDGE = {**settings.SIGNAL_BRIDGE, "ENABLED": True, "MODE": "outbox"}
    response = signup(client, username="bea", password="s3cret-pass", sex="F")
    assert response.status_code == 302
    user = get_user_model().objects.get(username="bea")
    (row,) = OutboxMessage.objects.all()
    message = json.loads(row.payload)
    assert message["instance"] == {"model": "auth.user", "pk": user.pk, "fields": {"username": "bea"}}
    assert message["attrs"]["_profile_data"]["sex"] == "F"
    assert user.password and user.password not in row.payload


@pytest.mark.django_db(transaction=True)
def test_signup_with_the_worker_down_redirects_and_keeps_the_message(client, settings):
    """The example's own SIGNAL_BRIDGE (sync, ON_UNREACHABLE left at its default)
    with nothing listening: the sign-up still succeeds, quickly, and the message
    waits in the outbox for the relay instead of the page answering 500."""
    from signal_bridge.models import OutboxMessage

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    settings.SIGNAL_BRIDGE = {**settings.SIGNAL_BRIDGE, "ENABLED": True, "MODE": "sync", "ENDPOINT": endpoint}
    # Time the bridge, not PBKDF2 (about a second for one password on a busy 2-core machine).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

    started = time.monotonic()
    response = signup(client, username="dora", sex="F")
    elapsed = time.monotonic() - started

    assert response.status_code == 302, "the sign-up must not fail because the worker is down"
    assert elapsed < 2.0, f"the sign-up took {elapsed:.2f} s"
    user = get_user_model().objects.get(username="dora")
    (row,) = OutboxMessage.objects.all()
    assert json.loads(row.payload)["instance"]["pk"] == user.pk
    page = client.get(response["Location"]).content.decode()
    assert "No profile yet." in page

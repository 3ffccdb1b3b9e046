"""The demo's pages in a real browser: Playwright driving Debian's chromium.

What only a browser shows: what a date picker sends for a date it cannot
parse, whether the browser itself refuses a date after the input's ``max``,
and the page's width with a long username. The pages are served by
pytest-django's ``live_server`` with the Python receiver in process (the same
pages against the Swift worker: ``scripts/demo --check``).

Marked ``browser`` and left out of a plain ``pytest`` run (pytest.ini);
scripts/test runs it once: ``pytest -m browser tests/test_browser.py``. It
needs the ``playwright`` package (scripts/test installs it) and chromium at
``$SIGNAL_WORKER_TEST_CHROMIUM`` (default ``/usr/bin/chromium``, Debian's
``chromium`` package, which scripts/ensure-system-deps installs); it is
skipped only when that chromium is missing.
"""

from __future__ import annotations

import datetime
import os

import pytest
from django.contrib.auth import get_user_model

from accounts.models import UserProfile

CHROMIUM = os.environ.get("SIGNAL_WORKER_TEST_CHROMIUM", "/usr/bin/chromium")
PASSWORD = "s3cret-pass"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(
            f"no chromium at {CHROMIUM}: `apt-get install -y chromium` (scripts/ensure-system-deps tries it "
            "and says above if it failed), or set SIGNAL_WORKER_TEST_CHROMIUM"
        )
    from playwright.sync_api import sync_playwright

    # Django refuses ORM calls from a thread with a running event loop, which
    # Playwright's sync API keeps in this thread; the test's own queries run
    # between browser steps, never concurrently with them.
    before = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM)
            yield browser
            browser.close()
    finally:
        if before is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = before


@pytest.fixture
def page(browser, live_server, in_process_receiver):
    # en-US: the date picker's segments are mm/dd/yyyy.
    context = browser.new_context(base_url=live_server.url, locale="en-US", viewport={"width": 1024, "height": 768})
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    context.close()


def fill_signup(page, username, *, sex="", birthdate=None):
    page.goto("/signup/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.select_option("#id_profile_type", "business")
    page.select_option("#id_sex", sex)
    if birthdate is not None:
        page.fill("#id_birthdate", birthdate)


def type_into_date_picker(page, selector, digits):
    """Type as a user does into the picker's mm/dd/yyyy segments (no validation by Playwright)."""
    page.fill(selector, "")
    page.focus(selector)  # the month segment
    page.keyboard.type(digits)


def profile_row(username):
    return UserProfile.objects.values_list("profile_type", "sex", "birthdate").get(user__username=username)


def test_sign_up_then_edit(page):
    fill_signup(page, "ann", sex="F", birthdate="1990-01-02")
    page.click("button[type=submit]")
    page.wait_for_url("**/profile/ann/")
    assert page.text_content("#profile-type") == "Business"
    assert page.text_content("#profile-sex") == "Female"
    assert page.text_content("#profile-birthdate") == "1990-01-02"

    page.click("text=Edit profile")
    page.wait_for_url("**/profile/ann/edit/")
    assert page.input_value("#id_birthdate") == "1990-01-02"
    page.select_option("#id_sex", "M")
    page.fill("#id_birthdate", "")  # emptied on purpose: cleared
    page.click("button[type=submit]")
    page.wait_for_url("**/profile/ann/")
    assert page.text_content("#profile-sex") == "Male"
    assert page.text_content("#profile-birthdate") == "not set"
    assert profile_row("ann") == ("business", "M", None)


def test_an_impossible_date_typed_into_the_picker_is_refused_not_sent_empty(page):
    fill_signup(page, "bea")
    type_into_date_picker(page, "#id_birthdate", "02301990")  # 02/30/1990
    assert page.input_value("#id_birthdate") == "", "the browser cannot parse it: its value is empty"
    page.click("button[type=submit]")

    # Refused in the browser: still the sign-up page, with the field marked invalid.
    assert page.url.endswith("/signup/")
    assert page.eval_on_selector("#id_birthdate", "e => e.validity.badInput && e.validationMessage !== ''")
    # Corrected, the same form goes through (had the first click submitted, the
    # page would now be bea's profile and this username taken).
    page.fill("#id_birthdate", "1990-02-28")
    page.click("button[type=submit]")
    page.wait_for_url("**/profile/bea/")
    assert page.text_content("#profile-birthdate") == "1990-02-28"
    assert get_user_model().objects.filter(username="bea").count() == 1


def test_the_edit_form_refuses_an_impossible_date_and_keeps_the_stored_one(page):
    fill_signup(page, "cleo", birthdate="1985-06-15")
    page.click("button[type=submit]")
    page.wait_for_url("**/profile/cleo/")
    page.goto("/profile/cleo/edit/")
    type_into_date_picker(page, "#id_birthdate", "02301990")
    page.click("button[type=submit]")

    assert page.url.endswith("/profile/cleo/edit/")
    assert page.eval_on_selector("#id_birthdate", "e => e.validity.badInput")
    assert profile_row("cleo")[2] == datetime.date(1985, 6, 15), "not cleared by an empty value"


def test_a_birthdate_in_the_future_is_refused_in_the_browser_and_by_the_server(page):
    fill_signup(page, "dan", birthdate="2999-01-01")
    page.click("button[type=submit]")
    assert page.url.endswith("/signup/")
    assert page.eval_on_selector("#id_birthdate", "e => e.validity.rangeOverflow")

    # Past the browser (a client without the check): the server refuses it too.
    page.eval_on_selector("form", "f => f.noValidate = true")
    page.click("button[type=submit]")
    page.wait_for_selector("text=A birthdate cannot be in the future.")
    assert not get_user_model().objects.filter(username="dan").exists()


def test_a_150_character_username_does_not_widen_the_pages(page):
    username = "u" * 150
    fill_signup(page, username)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/profile/{username}/")
    for path in (f"/profile/{username}/", f"/profile/{username}/edit/", "/", f"/profile/{'x' * 150}/"):
        page.goto(path)
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1], f"{path}: the page is {widths[0]} px wide in a {widths[1]} px window"

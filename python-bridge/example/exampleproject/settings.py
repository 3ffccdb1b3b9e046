"""Settings of the example Django project (the demo, and the project the test
suites drive).

Environment:
- ``DJANGO_DATABASE_URL``: ``sqlite:///abs/path/db.sqlite3`` (default:
  ``db.sqlite3`` beside ``manage.py``) or
  ``postgres://user[:password]@host[:port]/dbname`` (psycopg 3).
- ``ACCOUNTS_RECEIVER``: who runs the profile receiver on ``post_save`` of
  the user model:
  ``bridge`` (default): ``signal_bridge`` publishes to the Swift worker;
  ``in_process``: the original Python receiver
  (``accounts.receivers.create_or_update_user_profile``) runs inside
  ``save()``, as before the bridge;
  ``none``: nobody (the contract-vector tests call the receiver themselves).
- ``ACCOUNTS_RECEIVERS``: which Python receivers run in process
  (``ACCOUNTS_RECEIVER=in_process``, and ``ON_UNREACHABLE = "local"``), comma
  separated, in the worker's ``--receivers`` names and order: ``profile``
  (default), ``drf-token`` (Django REST framework's ``create_auth_token``),
  e.g. ``profile,drf-token``. Unset, the worker's own variable
  ``SIGNAL_WORKER_RECEIVERS`` is read, so one variable configures both.
- ``SIGNAL_BRIDGE_ENDPOINT`` (default ``tcp://127.0.0.1:5557``) and
  ``SIGNAL_BRIDGE_MODE`` (default ``sync``): see ``SIGNAL_BRIDGE`` below.
- ``DJANGO_DEBUG=1``: Django's debug mode (``scripts/demo`` sets it; off
  otherwise).
"""

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import django
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


# A demo and test project: the key is public, never deploy these settings.
SECRET_KEY = "django-insecure-signal-worker-test-key-not-secret"
DEBUG = _env_flag("DJANGO_DEBUG")
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    # authtoken_token, the table of DRF's token receiver (drf-token).
    "rest_framework.authtoken",
    "signal_bridge",
    "accounts",
]

# No sessions, no login: the demo's pages are public. CSRF protects its forms
# (the token lives in a cookie).
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "exampleproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "accounts.context_processors.profile_receiver",
            ],
        },
    },
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# No static files (the pages inline their CSS); Django's test live server
# (tests/test_browser.py) needs the setting all the same.
STATIC_URL = "static/"


# Every view runs in one transaction. For the bridge this matters: Django sends
# ``post_save`` after ``save()``'s own write, and outside ``atomic()`` that
# write has already committed (autocommit), so the outbox row the shim writes
# in ``post_save`` would commit on its own and a crash in between would lose
# the message. Inside the request's transaction the user row and its outbox
# row commit together, and the message goes out on commit (in ``sync`` mode
# before the response is sent: the next page already sees ``user.profile``).
ATOMIC_REQUESTS = True


def _without_password(url):
    """``url`` with its password shown as ``***``: error messages never echo it."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def database_from_url(url):
    """Return a ``DATABASES`` entry for a ``sqlite://`` or ``postgres://`` URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in {"sqlite", "sqlite3"}:
        # sqlite:///abs/path -> path "/abs/path"; sqlite://relative is not supported.
        if parts.netloc:
            raise ImproperlyConfigured(
                f"DJANGO_DATABASE_URL {_without_password(url)!r}: use sqlite:///absolute/path (three slashes)"
            )
        path = unquote(parts.path)
        if not path:
            raise ImproperlyConfigured(f"DJANGO_DATABASE_URL {_without_password(url)!r}: missing file path")
        options = {
            # Seconds a writer waits for the lock (Python's default: 5). Django,
            # the worker and the relay write one file; under a sustained burst
            # SQLite's busy handler is not a fair queue, so give it room.
            "timeout": 20,
        }
        if django.VERSION >= (5, 1):
            # Every atomic() starts with BEGIN IMMEDIATE, so a writer waits on
            # the busy timeout instead of failing with "database is locked"
            # (docs/OPERATIONS.md, "SQLite shared with Django"); WAL on every connection.
            options["transaction_mode"] = "IMMEDIATE"
            options["init_command"] = "PRAGMA journal_mode=WAL;"
        # Django 4.2 has neither option: accounts.apps switches the file to WAL
        # (the mode is stored in the file) when a connection opens; IMMEDIATE
        # has no equivalent there (the bridge's check signal_bridge.W002 says so).
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path,
            "ATOMIC_REQUESTS": ATOMIC_REQUESTS,
            "OPTIONS": options,
            "TEST": {"NAME": path + ".pytest"},
        }
    if scheme in {"postgres", "postgresql", "pgsql"}:
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured(f"DJANGO_DATABASE_URL {_without_password(url)!r}: missing database name")
        options = dict(parse_qsl(parts.query))
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "ATOMIC_REQUESTS": ATOMIC_REQUESTS,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "OPTIONS": options,
        }
    raise ImproperlyConfigured(
        f"DJANGO_DATABASE_URL {_without_password(url)!r}: scheme must be sqlite:// or postgres://"
    )


DATABASE_URL = os.environ.get("DJANGO_DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {"default": database_from_url(DATABASE_URL)}

ACCOUNTS_RECEIVER = os.environ.get("ACCOUNTS_RECEIVER", "bridge").strip().lower()
if ACCOUNTS_RECEIVER not in {"bridge", "in_process", "none"}:
    raise ImproperlyConfigured(
        f"ACCOUNTS_RECEIVER={ACCOUNTS_RECEIVER!r}: use bridge, in_process or none"
    )

# The receivers in process (accounts.in_process), as the worker's --receivers:
# the names in connection order. Checked by accounts.E001.
ACCOUNTS_RECEIVERS = (
    os.environ.get("ACCOUNTS_RECEIVERS") or os.environ.get("SIGNAL_WORKER_RECEIVERS") or "profile"
).split(",")

# The two lines a project adds to use the bridge: "signal_bridge" in
# INSTALLED_APPS and this dictionary (python-bridge/README.md documents every key).
SIGNAL_BRIDGE = {
    "ENABLED": ACCOUNTS_RECEIVER == "bridge",
    "ENDPOINT": os.environ.get("SIGNAL_BRIDGE_ENDPOINT", "tcp://127.0.0.1:5557"),
    "MODE": os.environ.get("SIGNAL_BRIDGE_MODE", "sync"),
    "SENDERS": {
        # The receiver reads only the id and _profile_data: no password hash in
        # the message or the outbox (and half the rendering cost).
        "auth.user": {"signals": ["post_save"], "attrs": ["_profile_data"], "fields": ["username"]},
    },
    # Sync mode, worker not answering: ON_UNREACHABLE is left at its default,
    # "defer" (save() returns after TIMEOUT_MS, the relay sends the message
    # later); "raise" would answer the sign-up with a 500, "local" runs the
    # Python receiver named here: the ACCOUNTS_RECEIVERS, in one transaction.
    "LOCAL_RECEIVERS": {"auth.user": "accounts.in_process.run_receivers"},
}

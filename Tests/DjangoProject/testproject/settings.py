"""Settings of the reference Django project used by the test suites.

Environment:
- ``DJANGO_DATABASE_URL``: ``sqlite:///abs/path/db.sqlite3`` (default:
  ``db.sqlite3`` beside ``manage.py``) or
  ``postgres://user[:password]@host[:port]/dbname`` (psycopg 3).
- ``ACCOUNTS_IN_PROCESS_RECEIVER=1``: connect the Python receiver
  (``accounts.receivers.create_or_update_user_profile``) to ``post_save`` of
  the user model. Default off: the Swift worker plays the receiver.
"""

import os
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "django-insecure-signal-worker-test-key-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "accounts",
]

MIDDLEWARE = []
ROOT_URLCONF = "testproject.urls"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def database_from_url(url):
    """Return a ``DATABASES`` entry for a ``sqlite://`` or ``postgres://`` URL."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in {"sqlite", "sqlite3"}:
        # sqlite:///abs/path -> path "/abs/path"; sqlite://relative is not supported.
        if parts.netloc:
            raise ImproperlyConfigured(
                f"DJANGO_DATABASE_URL {url!r}: use sqlite:///absolute/path (three slashes)"
            )
        path = unquote(parts.path)
        if not path:
            raise ImproperlyConfigured(f"DJANGO_DATABASE_URL {url!r}: missing file path")
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path,
            "OPTIONS": {
                # Django >= 5.1: every atomic() starts with BEGIN IMMEDIATE, so
                # a writer waits on the busy timeout instead of failing with
                # "database is locked" (see DESIGN.md §1).
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL;",
            },
            "TEST": {"NAME": path + ".pytest"},
        }
    if scheme in {"postgres", "postgresql", "pgsql"}:
        name = unquote(parts.path.lstrip("/"))
        if not name:
            raise ImproperlyConfigured(f"DJANGO_DATABASE_URL {url!r}: missing database name")
        options = dict(parse_qsl(parts.query))
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": name,
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            "OPTIONS": options,
        }
    raise ImproperlyConfigured(
        f"DJANGO_DATABASE_URL {url!r}: scheme must be sqlite:// or postgres://"
    )


DATABASE_URL = os.environ.get("DJANGO_DATABASE_URL") or f"sqlite:///{BASE_DIR / 'db.sqlite3'}"
DATABASES = {"default": database_from_url(DATABASE_URL)}

# Connect the reference Python receiver in process (see accounts/apps.py).
ACCOUNTS_IN_PROCESS_RECEIVER = _env_flag("ACCOUNTS_IN_PROCESS_RECEIVER")

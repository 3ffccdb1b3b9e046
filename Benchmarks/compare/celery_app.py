"""Minimal Celery app for the comparison benchmark: the Python receiver as a Celery task.

The usual Celery pattern for this receiver: ``post_save`` (or the view) does
``transaction.on_commit(lambda: apply_profile.delay(user.pk, created, data))``
and a prefork worker runs the reference receiver through the ORM.

    COMPARE_REDIS_URL=redis://127.0.0.1:PORT/0 DJANGO_DATABASE_URL=... \
        celery -A celery_app worker --concurrency 2 --pool prefork
"""

import os
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "python-bridge" / "example"
if str(EXAMPLE) not in sys.path:
    sys.path.insert(0, str(EXAMPLE))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exampleproject.settings")
os.environ.setdefault("ACCOUNTS_RECEIVER", "none")  # the task runs the receiver, not post_save

if os.environ.get("COMPARE_CONN_MAX_AGE"):
    # The tuned variant: persistent database connections (Django's CONN_MAX_AGE;
    # the example settings do not read it from the environment). Django's own
    # import of the settings module gets this same module object.
    import exampleproject.settings as project_settings  # noqa: E402

    value = os.environ["COMPARE_CONN_MAX_AGE"]
    project_settings.DATABASES["default"]["CONN_MAX_AGE"] = None if value == "none" else int(value)

import django  # noqa: E402

django.setup()

from celery import Celery  # noqa: E402

app = Celery("compare", broker=os.environ.get("COMPARE_REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="compare.apply_profile")
def apply_profile(user_id, created, profile_data):
    from django.contrib.auth.models import User
    from django.db import transaction

    from accounts.receivers import create_or_update_user_profile

    with transaction.atomic():
        user = User.objects.get(pk=user_id)
        user._profile_data = profile_data
        create_or_update_user_profile(sender=User, instance=user, created=created)

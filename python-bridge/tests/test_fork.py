"""After os.fork() the child makes its own ZeroMQ context and socket."""

import os

import pytest
from django.contrib.auth.models import User
from django.db import connections

from accounts.models import UserProfile
from signal_bridge import transport

pytestmark = pytest.mark.django_db(transaction=True)


def test_child_process_can_publish_after_fork(bridge):
    parent = User(username="forker")
    parent._profile_data = {"sex": "F"}
    parent.save()  # the parent now has a context and a connected socket
    assert transport._context is not None
    parent_context = transport._context

    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        status = 1
        try:
            # Fresh database connections; the parent's stay untouched (kept
            # referenced so no destructor closes them from here).
            inherited = [c.connection for c in connections.all()]
            for c in connections.all():
                c.connection = None
            assert transport._context is None, "the fork hook must drop the parent's context"
            user = User.objects.get(pk=parent.pk)
            user._profile_data = {"sex": "M"}
            user.save()  # sync: raises if the child cannot reach the worker
            assert transport._context is not None and transport._context is not parent_context
            status = 0 if inherited is not None else 1
            for c in connections.all():
                c.close()
        except BaseException as exc:  # noqa: BLE001 - report anything to the parent
            os.write(2, f"child failed: {exc!r}\n".encode())
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(wait_status) == 0
    assert UserProfile.objects.get(user_id=parent.pk).sex == "M"
    # The parent's socket still works after the child is gone.
    parent._profile_data = {"sex": "O"}
    parent.save()
    assert UserProfile.objects.get(user_id=parent.pk).sex == "O"

#!/usr/bin/env python3
"""Django-side children of the comparison benchmark (one configuration per process).

    django_child.py celery-save '{"n": 300, "atomic": false}'
        User.save() with the receiver replaced by
        transaction.on_commit(lambda: apply_profile.delay(...)) (ACCOUNTS_RECEIVER=none);
        N creates then N updates, each phase timed, then waits until the Celery
        worker (started by the caller) applied them, then checks every row.
    django_child.py latency '{"n": 1000}'
        N creates, each timed: save() (the settings' receiver: none, in_process
        or the bridge in sync mode), then reading user.profile back
        (a fresh query); checks every row.

Prints one JSON line.
"""

import datetime
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parents[1] / "python-bridge" / "example"
sys.path.insert(0, str(EXAMPLE))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "django"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exampleproject.settings")

# The Django benchmark's load and timed save loop, so both measure save() the same way.
from save_benchmark import CREATE_DATA, UPDATE_DATA, time_saves  # noqa: E402
WAIT_S = 120.0


def check(problems, phase, n, sex):
    from django.contrib.auth.models import User

    from accounts.models import UserProfile

    bench = UserProfile.objects.filter(user__username__startswith="bench")
    users = User.objects.filter(username__startswith="bench").count()
    total = bench.count()
    good = bench.filter(profile_type="business", sex=sex, birthdate=datetime.date(1990, 1, 2)).count()
    if users != n or total != n or good != n:
        problems.append(f"{phase}: {users} users, {total} profiles, {good} with the expected values (N={n})")


def wait_for(count_fn, n):
    deadline = time.perf_counter() + WAIT_S
    while time.perf_counter() < deadline:
        if count_fn() >= n:
            return True
        time.sleep(0.01)
    return False


def celery_save(spec):
    import celery_app  # django.setup()
    from django.contrib.auth.models import User
    from django.db import transaction
    from django.db.models.signals import post_save

    from accounts.models import UserProfile

    apply_profile = celery_app.apply_profile

    def on_user_saved(sender, instance, created, **kwargs):
        data = dict(getattr(instance, "_profile_data", {}))
        pk = instance.pk
        transaction.on_commit(lambda: apply_profile.delay(pk, created, data))

    post_save.connect(on_user_saved, sender=User, weak=False, dispatch_uid="compare.celery")
    n, atomic = spec["n"], spec["atomic"]
    result = {"problems": [], "phases": {}}

    def save_all(users):
        start, end, _ = time_saves(users, atomic)
        return end - start, start

    warm = User(username="warmup", email="w@example.com", password="!")
    warm._profile_data = dict(CREATE_DATA)
    save_all([warm])
    if not wait_for(lambda: UserProfile.objects.filter(user=warm).count(), 1):
        result["problems"].append("warm-up: the Celery worker did not apply the warm-up task")
    users = []
    for i in range(n):
        u = User(username=f"bench{i}", email=f"bench{i}@example.com", password="!")
        u._profile_data = dict(CREATE_DATA)
        users.append(u)
    bench = UserProfile.objects.filter(user__username__startswith="bench")
    save_s, start = save_all(users)
    ok = wait_for(lambda: bench.count(), n)
    result["phases"]["create"] = {"save_s": save_s, "e2e_s": time.perf_counter() - start}
    if not ok:
        result["problems"].append("create: profiles not all visible")
    check(result["problems"], "create", n, "F")
    users = list(User.objects.filter(username__startswith="bench"))
    for u in users:
        u._profile_data = dict(UPDATE_DATA)
    save_s, start = save_all(users)
    ok = wait_for(lambda: bench.filter(sex="M").count(), n)
    result["phases"]["update"] = {"save_s": save_s, "e2e_s": time.perf_counter() - start}
    if not ok:
        result["problems"].append("update: profiles not all visible")
    check(result["problems"], "update", n, "M")
    print(json.dumps(result), flush=True)


def latency(spec):
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User

    from accounts.models import UserProfile

    n = spec["n"]
    receiver = settings.ACCOUNTS_RECEIVER
    result = {"problems": [], "receiver": receiver,
              "mode": settings.SIGNAL_BRIDGE["MODE"] if receiver == "bridge" else None}
    if receiver != spec["receiver"]:
        result["problems"].append(f"settings say receiver={receiver}, expected {spec['receiver']}")
    save_us, total_us = [], []

    def one(name, record):
        u = User(username=name, email=f"{name}@example.com", password="!")
        u._profile_data = dict(CREATE_DATA)
        t0 = time.perf_counter()
        u.save()
        t1 = time.perf_counter()
        if receiver != "none":
            profile = UserProfile.objects.get(user_id=u.pk)  # user.profile, from the database
            if profile.sex != "F":
                result["problems"].append(f"{name}: profile sex {profile.sex!r}")
        t2 = time.perf_counter()
        if record:
            save_us.append(1e6 * (t1 - t0))
            total_us.append(1e6 * (t2 - t0))

    for i in range(20):
        one(f"warm{i}", False)
    for i in range(n):
        one(f"bench{i}", True)
    if receiver == "none":
        if UserProfile.objects.exists():
            result["problems"].append("profiles exist without a receiver")
        if User.objects.filter(username__startswith="bench").count() != n:
            result["problems"].append("user count differs from N")
    else:
        check(result["problems"], "latency", n, "F")
    result["save_us"] = save_us
    result["total_us"] = total_us
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    spec = json.loads(sys.argv[2])
    {"celery-save": celery_save, "latency": latency}[sys.argv[1]](spec)

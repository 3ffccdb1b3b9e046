"""The README's integration, word for word, from the built wheel, in a project made by ``startproject``.

The other tests run against the editable install and the example project,
which could hide a packaging mistake (a module or the migrations missing
from the wheel) or a README snippet that no longer works on its own. Here:
``pip wheel`` builds the distribution, it is installed into a directory of its
own, the project's commands run without the editable install (see
``fresh_project``), ``django-admin startproject`` makes a project that has
never heard of the bridge, and the
settings block of README.md "Add it to an existing Django project" is
appended to its ``settings.py`` as it stands. Then ``migrate``, ``check``,
``signal_bridge ping`` and a ``save()`` whose profile the real worker writes;
and, ``startproject`` having installed the admin, the bridge's admin pages.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, Worker, worker_binary

BRIDGE = REPO / "python-bridge"
README = REPO / "README.md"

pytestmark = pytest.mark.skipif(
    os.environ.get("DJANGO_DATABASE_URL", "").startswith("postgres"),
    reason="uses a SQLite database of its own: runs in the SQLite sessions",
)


def readme_settings_block() -> str:
    """The first ```python block of README.md's "Add it to an existing Django project"."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Add it to an existing Django project", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README.md: no ```python block under 'Add it to an existing Django project'"
    return match.group(1)


def run(args: list, cwd: Path, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, args))} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result


def build_wheel(tmp_path: Path) -> Path:
    """``pip wheel`` of a clean copy of python-bridge/ (pip builds in the source tree)."""
    source = tmp_path / "source"
    shutil.copytree(
        BRIDGE, source,
        ignore=shutil.ignore_patterns("example", "tests", "build", "*.egg-info", "__pycache__", "*.sqlite3*"),
    )
    # pip's own deprecation notices are not the bridge's: no PYTHONWARNINGS here.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
         "-q", "-w", tmp_path / "dist", source], tmp_path, env, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("django_signal_bridge-*.whl")
    run([sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "-q",
         "--target", tmp_path / "site", wheel], tmp_path, env, timeout=300)
    return tmp_path / "site"


@dataclass
class FreshProject:
    """The project made by ``fresh_project``, and how to run its ``manage.py``."""

    path: Path
    site: Path
    env: dict
    manage: list

    def run(self, *args) -> subprocess.CompletedProcess:
        return run([*self.manage, *args], self.path, self.env)

    def shell(self, code: str) -> subprocess.CompletedProcess:
        return self.run("shell", "-c", code)

    def query(self, sql: str) -> list:
        with sqlite3.connect(self.path / "db.sqlite3") as db:
            return db.execute(sql).fetchall()


@pytest.fixture(scope="module")
def fresh_project(tmp_path_factory):
    """The wheel installed, a startproject project with the README's settings, migrated; its worker running."""
    tmp_path = tmp_path_factory.mktemp("fresh")
    site = build_wheel(tmp_path)
    path = tmp_path / "project"
    path.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SIGNAL_BRIDGE_"))}
    # `python -S` with the venv's packages on PYTHONPATH: Django, pyzmq and psycopg import as usual, but
    # site-packages' .pth files do not run, so the editable install's import hook (which would
    # serve signal_bridge's subpackages from the source tree) is not there and the wheel is all there is.
    packages = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(path), *sorted(packages)])
    python = [sys.executable, "-S"]
    run([*python, "-m", "django", "startproject", "fresh", path], tmp_path, env)

    # The project's own profile model, as the receiver's users have it.
    accounts = path / "accounts"
    accounts.mkdir()
    (accounts / "__init__.py").write_text("")
    shutil.copy(BRIDGE / "example" / "accounts" / "models.py", accounts / "models.py")

    worker = Worker(worker_binary(), f"sqlite://{path / 'db.sqlite3'}", tmp_path / "worker.log")
    settings = path / "fresh" / "settings.py"
    settings.write_text(
        settings.read_text()
        + "\nINSTALLED_APPS += ['accounts']\n"
        + readme_settings_block()
        + f"SIGNAL_BRIDGE['ENDPOINT'] = {worker.endpoint!r}  # a free port for the test\n"
    )
    project = FreshProject(path, site, env, [*python, path / "manage.py"])
    project.run("makemigrations", "accounts", "-v", "0")
    project.run("migrate", "-v", "0")
    worker.start()
    yield project
    worker.stop()


def test_readme_integration_from_the_wheel_in_a_fresh_project(fresh_project):
    where = fresh_project.shell("import signal_bridge; print(signal_bridge.__file__)")
    imported_from = where.stdout.strip().splitlines()[-1]  # Django 5.2's shell first says what it auto-imported
    assert imported_from.startswith(str(fresh_project.site)), f"signal_bridge imported from {imported_from}, not the wheel"

    tables = {name for (name,) in fresh_project.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"signal_bridge_outbox", "signal_bridge_deadletter", "accounts_userprofile"} <= tables
    # Applied from the wheel's migrations (without them Django would still create the tables, unversioned).
    applied = {name for (name,) in fresh_project.query("SELECT name FROM django_migrations WHERE app = 'signal_bridge'")}
    assert "0001_initial" in applied
    fresh_project.run("check")

    ping = fresh_project.run("signal_bridge", "ping")
    assert "pong" in ping.stdout, ping.stdout
    fresh_project.shell(
        "from django.contrib.auth.models import User\n"
        "u = User(username='fresh')\n"
        "u._profile_data = {'profile_type': 'business', 'sex': 'F', 'birthdate': '1990-01-02'}\n"
        "u.save()\n"
        "u.refresh_from_db()\n"
        "p = u.profile\n"  # sync mode: written by the worker before save() returned
        "assert (p.profile_type, p.sex, str(p.birthdate)) == ('business', 'F', '1990-01-02'), p\n")
    rows = fresh_project.query(
        "SELECT u.username, p.profile_type, p.sex, p.birthdate FROM accounts_userprofile p "
        "JOIN auth_user u ON u.id = p.user_id WHERE u.username = 'fresh'")
    assert rows == [("fresh", "business", "F", "1990-01-02")]
    assert fresh_project.query(
        "SELECT COUNT(*) FROM signal_bridge_outbox o JOIN auth_user u ON o.object_pk = CAST(u.id AS TEXT) "
        "WHERE u.username = 'fresh'") == [(0,)]


def test_admin_shows_the_outbox_and_dead_letters_read_only(fresh_project):
    """startproject installs the admin: the bridge's two tables appear there, as the module docstring of
    signal_bridge/admin.py says (view both, delete dead letters, nothing else)."""
    out = fresh_project.shell(
        "from django.test.utils import setup_test_environment\n"
        "setup_test_environment()\n"
        "from django.contrib.auth.models import User\n"
        "from django.test import Client\n"
        "from signal_bridge import WorkerError\n"
        "from signal_bridge.models import DeadLetter, OutboxMessage\n"
        "bad = User(username='bad-date')\n"
        "bad._profile_data = {'birthdate': '1990-02-30'}\n"  # the worker refuses it: invalid_value, a dead letter
        "try:\n"
        "    bad.save()\n"
        "    raise SystemExit('no WorkerError')\n"
        "except WorkerError as error:\n"
        "    assert error.code == 'invalid_value', error\n"
        "dead = DeadLetter.objects.get(object_pk=str(bad.pk))\n"
        "row = OutboxMessage.objects.create(message_id='waiting-for-the-relay', sender='auth.user', object_pk='424242',\n"
        "                                   payload='{}')\n"
        "client = Client()\n"
        "client.force_login(User.objects.create_superuser('root', 'root@example.com', 'pw'))\n"
        "def status(method, url):\n"
        "    return getattr(client, method)(url).status_code\n"
        "page = client.get('/admin/signal_bridge/outboxmessage/')\n"
        "assert page.status_code == 200 and b'waiting-for-the-relay' in page.content, page.status_code\n"
        "page = client.get('/admin/signal_bridge/deadletter/')\n"
        "assert page.status_code == 200 and b'invalid_value' in page.content, page.status_code\n"
        "assert status('get', f'/admin/signal_bridge/deadletter/{dead.pk}/change/') == 200\n"  # view only
        "assert status('post', f'/admin/signal_bridge/deadletter/{dead.pk}/change/') == 403\n"
        "assert status('get', '/admin/signal_bridge/outboxmessage/add/') == 403\n"
        "assert status('get', '/admin/signal_bridge/deadletter/add/') == 403\n"
        "assert status('post', f'/admin/signal_bridge/outboxmessage/{row.pk}/delete/') == 403\n"
        "assert OutboxMessage.objects.filter(pk=row.pk).exists()\n"
        "response = client.post(f'/admin/signal_bridge/deadletter/{dead.pk}/delete/', {'post': 'yes'})\n"
        "assert response.status_code == 302, response.status_code\n"
        "assert not DeadLetter.objects.filter(pk=dead.pk).exists()\n"
        "print('admin ok')\n")
    assert out.stdout.strip().endswith("admin ok"), out.stdout


def test_admin_action_requeues_a_dead_letter_for_users_who_may_delete_dead_letters(fresh_project):
    """The "Requeue" action on the dead-letter page puts the message back with its id and seq; the relay applies it.

    The dead letter: a user saved in ``atomic()`` beside a stray profile (``conflict``); the operator deletes
    the stray profile (the cause) and requeues. A staff user who may only view dead letters is not offered
    the action: posting it changes nothing.
    """
    out = fresh_project.shell(
        "from django.test.utils import setup_test_environment\n"
        "setup_test_environment()\n"
        "from django.contrib.auth.models import Permission, User\n"
        "from django.db import transaction\n"
        "from django.test import Client\n"
        "from accounts.models import UserProfile\n"
        "from signal_bridge import WorkerError\n"
        "from signal_bridge.models import DeadLetter, OutboxMessage\n"
        "try:\n"
        "    with transaction.atomic():\n"
        "        u = User(username='stray')\n"
        "        u._profile_data = {'sex': 'F'}\n"
        "        u.save()\n"
        "        UserProfile.objects.create(user=u)\n"
        "    raise SystemExit('no WorkerError')\n"
        "except WorkerError as error:\n"
        "    assert error.code == 'conflict', error\n"
        "dead = DeadLetter.objects.get(object_pk=str(u.pk))\n"
        "assert dead.seq is not None\n"
        "OutboxMessage.objects.filter(payload='{}').delete()\n"  # a row of the test above, not a message
        "UserProfile.objects.filter(user=u).delete()\n"
        "form = {'action': 'requeue', '_selected_action': [dead.pk]}\n"
        "viewer = User.objects.create_user('viewer', password='pw', is_staff=True)\n"
        "viewer.user_permissions.add(Permission.objects.get(codename='view_deadletter'))\n"
        "client = Client()\n"
        "client.force_login(viewer)\n"
        "page = client.get('/admin/signal_bridge/deadletter/')\n"
        "assert page.status_code == 200 and b'value=\"requeue\"' not in page.content\n"
        "client.post('/admin/signal_bridge/deadletter/', form)\n"
        "assert DeadLetter.objects.filter(pk=dead.pk).exists()\n"
        "assert not OutboxMessage.objects.filter(message_id=dead.message_id).exists()\n"
        "client.force_login(User.objects.create_superuser('root2', 'root2@example.com', 'pw'))\n"
        "page = client.get('/admin/signal_bridge/deadletter/')\n"
        "assert b'value=\"requeue\"' in page.content\n"
        "response = client.post('/admin/signal_bridge/deadletter/', form, follow=True)\n"
        "assert response.status_code == 200, response.status_code\n"
        "assert f'#{dead.pk} as seq {dead.seq}'.encode() in response.content, response.content\n"
        "assert not DeadLetter.objects.filter(pk=dead.pk).exists()\n"
        "row = OutboxMessage.objects.get(message_id=dead.message_id)\n"
        "assert (row.message_id, row.seq) == (dead.message_id, dead.seq), row\n"
        "print('requeued', u.pk)\n")
    user_pk = int(out.stdout.strip().splitlines()[-1].split()[-1])
    relayed = fresh_project.run("signal_bridge", "relay", "--once")
    assert "acked 1," in relayed.stdout, relayed.stdout
    assert fresh_project.query(f"SELECT sex FROM accounts_userprofile WHERE user_id = {user_pk}") == [("F",)]
    assert fresh_project.query("SELECT COUNT(*) FROM signal_bridge_deadletter WHERE object_pk = "
                               f"'{user_pk}'") == [(0,)]


def test_release_artifacts_pass_twine_check(tmp_path):
    """``python -m build`` makes an sdist and a wheel that ``twine check`` accepts, typed, licensed, classified."""
    import zipfile
    from email.parser import Parser

    source = tmp_path / "source"
    shutil.copytree(BRIDGE, source, ignore=shutil.ignore_patterns("example", "tests", "build", "*.egg-info", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", tmp_path / "dist", source], tmp_path, env, timeout=300)
    wheels = list((tmp_path / "dist").glob("django_signal_bridge-*.whl"))
    sdists = list((tmp_path / "dist").glob("django_signal_bridge-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in (tmp_path / "dist").iterdir())
    checked = run([sys.executable, "-m", "twine", "check", "--strict", wheels[0], sdists[0]], tmp_path, env)
    assert checked.stdout.count("PASSED") == 2, checked.stdout

    with zipfile.ZipFile(wheels[0]) as wheel:
        names = wheel.namelist()
        metadata_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(wheel.read(metadata_name).decode())
    assert "signal_bridge/py.typed" in names, "PEP 561 marker missing from the wheel"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names), names
    assert any(n.startswith("signal_bridge/migrations/") for n in names), "the migrations must ship"
    assert metadata["License-Expression"] == "MIT"
    classifiers = set(metadata.get_all("Classifier"))
    for version in ("3.10", "3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert {"Framework :: Django :: 4.2", "Framework :: Django :: 5.2", "Typing :: Typed"} <= classifiers
    # One license text for the project and the package: the copy cannot drift from the original.
    assert (BRIDGE / "LICENSE").read_text() == (REPO / "LICENSE").read_text()

"""Fixtures: a real ``signal-worker serve`` on pytest-django's test database.

The worker binary is ``$SIGNAL_WORKER_BINARY``, else
``<repo>/.build/debug/signal-worker``; without one the tests fail (they
are the bridge's integration tests, skipping them would hide a broken CI).
The worker starts after pytest-django created and migrated the test
database (``django_db_setup``) and stops before it is destroyed. Tests that
need the worker's writes use ``django_db(transaction=True)``: the worker is
another process and sees only committed rows.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 20.0


def worker_binary() -> Path:
    configured = os.environ.get("SIGNAL_WORKER_BINARY")
    path = Path(configured) if configured else REPO / ".build" / "debug" / "signal-worker"
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"signal-worker binary not found at {path} "
            f"({'SIGNAL_WORKER_BINARY' if configured else 'default; set SIGNAL_WORKER_BINARY or run swift build'})",
            pytrace=False,
        )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def store_url(settings_dict) -> str:
    """The worker's ``--store`` for the (test) database Django uses now."""
    engine = settings_dict["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        name = str(settings_dict["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            pytest.fail("the SQLite test database must be a file (TEST.NAME) for the worker to share it")
        return f"sqlite://{os.path.abspath(name)}"
    if engine == "django.db.backends.postgresql":
        user = quote(settings_dict.get("USER") or "")
        password = settings_dict.get("PASSWORD") or ""
        auth = f"{user}:{quote(password)}@" if password else (f"{user}@" if user else "")
        host = settings_dict.get("HOST") or "127.0.0.1"
        port = settings_dict.get("PORT") or "5432"
        return f"postgres://{auth}{host}:{port}/{settings_dict['NAME']}"
    pytest.fail(f"unsupported database engine {engine}")


class Worker:
    """A ``signal-worker serve`` process the tests can stop and start again."""

    def __init__(self, binary: Path, store: str, log_path: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.binary = binary
        self.store = store
        self.extra_args = extra_args
        self.port = free_port()
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.ping_args: tuple[str, ...] = ()  # e.g. CURVE keys for `signal-worker ping`

    def start(self) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [str(self.binary), "serve", "--store", self.store, "--bind", self.endpoint, "--linger-ms", "200",
             *self.extra_args],
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(
                    f"signal-worker exited with {self.process.returncode} at start; log:\n{self.log_tail()}",
                    pytrace=False,
                )
            ping = subprocess.run(
                [str(self.binary), "ping", "--connect", self.endpoint, *self.ping_args],
                capture_output=True,
                timeout=10,
            )
            if ping.returncode == 0:
                return
            time.sleep(0.05)
        self.stop()
        pytest.fail(f"signal-worker did not answer a ping within {STARTUP_TIMEOUT_S} s; log:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def pytest_report_header(config):
    """Which signal_bridge the suite tests: the source tree (editable install) or an installed wheel.

    ``SIGNAL_BRIDGE_TEST_INSTALLED=DIR`` (scripts/test-wheel sets it to the fresh venv's
    site-packages) makes the run stop at once when ``signal_bridge`` would come from anywhere else,
    so a wheel run cannot silently test the source tree.
    """
    import signal_bridge

    package = Path(signal_bridge.__file__).resolve().parent
    expected = os.environ.get("SIGNAL_BRIDGE_TEST_INSTALLED")
    if expected and not package.is_relative_to(Path(expected).resolve()):
        raise pytest.UsageError(f"signal_bridge is imported from {package}, not from {expected} (SIGNAL_BRIDGE_TEST_INSTALLED)")
    return f"signal_bridge {signal_bridge.__version__} from {package}"


def pytest_collection_modifyitems(items):
    """Tests that start the worker need the test database on disk.

    pytest-django creates it only when a collected test is marked
    ``django_db``; a module run alone whose tests only ping the worker
    (tests/test_checks.py) would otherwise start it against a missing file.
    """
    for item in items:
        if "worker" in getattr(item, "fixturenames", ()) and item.get_closest_marker("django_db") is None:
            item.add_marker(pytest.mark.django_db)


@pytest.fixture(scope="session")
def worker(django_db_setup, django_db_blocker, tmp_path_factory):
    from django.db import connection

    from signal_bridge import sender, transport

    binary = worker_binary()
    with django_db_blocker.unblock():
        store = store_url(connection.settings_dict)
    w = Worker(binary, store, tmp_path_factory.mktemp("worker") / "signal-worker.log")
    w.start()
    yield w
    sender.shutdown(timeout=5)
    transport.shutdown()
    w.stop()


def bridge_settings(endpoint: str, **overrides) -> dict:
    base = {
        "ENABLED": True,
        "ENDPOINT": endpoint,
        "MODE": "sync",
        "SENDERS": {"auth.user": {"signals": ["post_save"], "attrs": ["_profile_data"]}},
        "TIMEOUT_MS": 2000,
        "RETRIES": 1,
        "ON_UNREACHABLE": "raise",
        "DELETE_ACKED": "inline",
    }
    base.update(overrides)
    return base


@pytest.fixture
def bridge(worker, settings):
    """Configure the bridge for the running worker; returns a setter for overrides.

    ``bridge(MODE="async")`` re-applies ``SIGNAL_BRIDGE`` with the overrides
    (``settings`` sends ``setting_changed``, so the bridge re-reads it).
    """
    import signal_bridge

    def configure(**overrides):
        settings.SIGNAL_BRIDGE = bridge_settings(worker.endpoint, **overrides)

    configure()
    signal_bridge.reset_stats()
    yield configure
    signal_bridge.flush(5)


@pytest.fixture
def worker_down(worker):
    """Stop the worker for the test; started again afterwards (same endpoint)."""
    worker.stop()
    yield worker
    if worker.process is None:
        worker.start()

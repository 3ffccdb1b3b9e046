"""The Python benchmark drivers' one harness: worker processes, databases, pinning, CPU time, statistics.

Imported by ``Benchmarks/django/save_benchmark.py`` (and ``concurrent_saves.py``),
``Benchmarks/compare/compare.py`` and ``Benchmarks/scale-out/loadtest.py``, each
with a path insertion relative to its own file::

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "harness"))
    from signal_bench import start_worker, PostgresDB, ...

Python stdlib at import time; Django, psycopg and pyzmq are imported where used.

- Processes: ``start_worker`` is the one place that starts ``signal-worker serve``
  (``--bind`` or ``--connect``, ``--metrics-bind``, pinned if asked) and waits
  until it serves; ``Proc`` wraps every child (worker, broker, Celery, the pyzmq
  worker) with its log file, a SIGTERM-then-SIGKILL ``stop`` and its CPU time.
- Databases: ``SQLiteDB`` (a migrated template file, copied per run) and
  ``PostgresDB`` (a migrated template database, ``CREATE DATABASE ... TEMPLATE``
  per run), both with ``fresh()``/``drop()``/``close()``, made and dropped together
  by ``open_databases``/``close_databases``; ``Raw``, plain SQL on one of those
  databases (the orchestrators do not run Django on them).
- Pinning and CPU time: ``pinning_possible``/``pin_preexec``/``PostgresDB.pin``;
  ``process_cpu`` (getrusage, every thread of this process), ``cpu_seconds(pid)``
  and ``machine_cpu_seconds`` (``/proc``), ``vmhwm_kb``.
- Statistics and report: ``rate``, ``fmt``, ``median``, ``quartiles``,
  ``percentile``; ``git``, ``machine``, ``postgres_durability``,
  ``worker_version``, ``write_report``.
"""

from __future__ import annotations

import datetime
import os
import random
import resource
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "python-bridge" / "example"
RELEASE_WORKER = ROOT / ".build" / "release" / "signal-worker"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# The profile data every driver saves or sends: ``_profile_data`` of a create, then of an update.
CREATE_DATA = {"profile_type": "business", "sex": "F", "birthdate": "1990-01-02"}
UPDATE_DATA = {"sex": "M"}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# Child processes and the worker


def worker_env() -> dict:
    """This process's environment without ``SIGNAL_WORKER_*`` (a worker gets its options as arguments only)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SIGNAL_WORKER_")}


def django_env(database_url: str) -> dict:
    """The environment of a Django process of the example project on ``database_url``, with no
    bridge, worker, Django or receiver settings inherited."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SIGNAL_BRIDGE_", "SIGNAL_WORKER_", "DJANGO_", "ACCOUNTS_"))}
    env["DJANGO_DATABASE_URL"] = database_url
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def pin_preexec(cpu: int | None):
    """A ``preexec_fn`` that pins the child to ``cpu`` before exec (every thread it starts inherits
    the mask, as ``taskset`` does), or None."""
    return (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None


def pinning_possible(*cpus: int) -> bool:
    """Whether this process may run on every one of ``cpus`` (and there are at least that many)."""
    allowed = os.sched_getaffinity(0)
    return len(allowed) >= len(cpus) and set(cpus) <= allowed


def tail(path: Path, lines: int = 15, sep: str = "\n") -> str:
    """The last ``lines`` lines of a log file, joined by ``sep`` ("" if unreadable)."""
    try:
        return sep.join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


class Proc:
    """A child process with its log file, whose CPU time is remembered when it is stopped or killed."""

    def __init__(self, name: str, argv: list[str], logfile: Path, *, env: dict | None = None,
                 cpu: int | None = None, cwd: Path | None = None):
        self.name = name
        self.logfile = logfile
        with open(logfile, "ab") as out:
            self.popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                          env=worker_env() if env is None else env, cwd=cwd,
                                          preexec_fn=pin_preexec(cpu))
        self.cpu_at_exit: float | None = None
        self.bind: str | None = None  # signal-worker: the endpoint it binds, if any
        self.metrics_port: int | None = None  # signal-worker: its Prometheus port, if any

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def cpu(self) -> float:
        return self.cpu_at_exit if self.cpu_at_exit is not None else cpu_seconds(self.popen.pid)

    def kill(self) -> None:
        """SIGKILL, and wait for it."""
        self.cpu_at_exit = cpu_seconds(self.popen.pid)
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM; SIGKILL after ``timeout`` seconds. The exit status (negative: the signal)."""
        if self.running():
            self.cpu_at_exit = cpu_seconds(self.popen.pid)
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode

    def tail(self, lines: int = 15, sep: str = "\n") -> str:
        return tail(self.logfile, lines, sep) or "(no log)"

    def wait_until(self, ready, what: str, timeout: float = 30.0) -> None:
        """Poll ``ready()`` until it is true; raise RuntimeError (with the log's last lines, on one
        line, as reports show it) if the process exits first or ``timeout`` seconds pass (then it is killed)."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}: {self.tail(5, ' | ')}")
            if ready():
                return
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.name}: {what} within {timeout:.0f} s: {self.tail(5, ' | ')}")
            time.sleep(0.05)

    def wait_port(self, port: int, timeout: float = 60.0) -> None:
        """Wait until something accepts TCP connections on 127.0.0.1:``port``."""
        def listening():
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        self.wait_until(listening, f"nothing listening on port {port}", timeout)


def ping(binary: Path, endpoint: str, timeout_ms: int = 500) -> bool:
    """``signal-worker ping``: whether a worker answers on ``endpoint``."""
    return subprocess.run([str(binary), "ping", "--connect", endpoint, "--timeout-ms", str(timeout_ms)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def metrics_text(metrics_port: int, timeout: float = 5) -> str:
    import urllib.request

    return urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=timeout).read().decode()


# ``start_worker(bind=ANY_LOOPBACK_PORT)`` / ``metrics_port=ANY_PORT``: a free loopback port, found
# when the worker starts (``proc.bind``, ``proc.metrics_port`` say which).
ANY_LOOPBACK_PORT = "tcp://127.0.0.1:*"
ANY_PORT = 0
# Tries to start a worker on free ports: a port found free can be taken (by a client's ephemeral
# port, another worker) before the worker binds it; seen once in a Django-side run of 160 workers.
PORT_ATTEMPTS = 5


def start_worker(binary: Path, store: str, logfile: Path, *, bind: str | None = None,
                 connect: str | None = None, heartbeat_s: float | None = None, metrics_port: int | None = None,
                 cpu: int | None = None, extra_args=(), name: str = "signal-worker",
                 timeout: float = 30.0) -> Proc:
    """Start ``signal-worker serve`` on ``store`` and wait until it serves.

    ``bind``: the endpoint it binds (ready when ``signal-worker ping`` gets an answer there);
    ``connect``: a broker backend it connects to (ready when its metrics endpoint answers,
    so ``metrics_port`` is required; the broker's "worker joined" log line follows).
    ``ANY_LOOPBACK_PORT`` / ``ANY_PORT``: ports found free here, others tried if the worker finds
    one taken. ``cpu``: pin it (every thread) to that CPU. Warnings only in its log.
    """
    chooses = bind == ANY_LOOPBACK_PORT or metrics_port == ANY_PORT
    for attempt in range(1, PORT_ATTEMPTS + 1):
        chosen_bind = f"tcp://127.0.0.1:{free_port()}" if bind == ANY_LOOPBACK_PORT else bind
        chosen_metrics = free_port() if metrics_port == ANY_PORT else metrics_port
        try:
            return _start_worker(binary, store, logfile, bind=chosen_bind, connect=connect, heartbeat_s=heartbeat_s,
                                 metrics_port=chosen_metrics, cpu=cpu, extra_args=extra_args, name=name,
                                 timeout=timeout)
        except RuntimeError as error:
            if not chooses or attempt == PORT_ATTEMPTS or "already in use" not in str(error).lower():
                raise
            log(f"{name}: a port found free was taken before it bound ({error}); trying other ports")
    raise AssertionError("unreachable")


def _start_worker(binary: Path, store: str, logfile: Path, *, bind: str | None, connect: str | None,
                  heartbeat_s: float | None, metrics_port: int | None, cpu: int | None, extra_args, name: str,
                  timeout: float) -> Proc:
    if (bind is None) == (connect is None):
        raise ValueError("start_worker: give bind or connect")
    if connect is not None and metrics_port is None:
        raise ValueError("start_worker: a worker that connects needs metrics_port (its readiness check)")
    argv = [str(binary), "serve", "--store", store]
    argv += ["--bind", bind] if bind is not None else ["--connect", connect]
    if heartbeat_s is not None:
        argv += ["--heartbeat-interval", f"{int(heartbeat_s * 1000)}ms"]
    if metrics_port is not None:
        argv += ["--metrics-bind", f"127.0.0.1:{metrics_port}"]
    argv += ["--log-level", "warning", *extra_args]
    proc = Proc(name, argv, logfile, cpu=cpu)
    proc.bind, proc.metrics_port = bind, metrics_port
    if bind is not None:
        proc.wait_until(lambda: ping(binary, bind), "no answer to a ping", timeout)
    else:
        def metrics_up():
            try:
                metrics_text(metrics_port, timeout=1)
                return True
            except OSError:
                return False

        proc.wait_until(metrics_up, "no metrics endpoint", timeout)
    return proc


def worker_metrics(metrics_port: int) -> dict:
    """Transactions (batches), requests and mean times from the worker's Prometheus endpoint."""
    values = {}
    for line in metrics_text(metrics_port).splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    batches = values.get("signal_worker_batch_size_count", 0)
    requests = values.get("signal_worker_request_duration_seconds_count", 0)
    return {
        "batches": int(batches),
        "requests": int(requests),
        "request_us": 1e6 * values.get("signal_worker_request_duration_seconds_sum", 0) / requests if requests else None,
        "apply_us": 1e6 * values.get("signal_worker_batch_apply_duration_seconds_sum", 0) / batches if batches else None,
    }


def worker_version(binary: Path) -> str:
    return subprocess.run([str(binary), "version"], capture_output=True, text=True).stdout.strip()


def dealer(ctx, endpoint: str):
    """A pyzmq DEALER connected to ``endpoint``: no high-water marks (the driver bounds what is in
    flight), LINGER 0."""
    import zmq

    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.SNDHWM, 0)
    s.setsockopt(zmq.RCVHWM, 0)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(endpoint)
    return s


def uuid7_ids(n: int) -> list[str]:
    """``n`` time-ordered message ids (UUIDv7 layout)."""
    base = time.time_ns() // 1_000_000
    out = []
    for i in range(n):
        ms, counter = base + i // 4096, i % 4096
        value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | random.getrandbits(62)
        out.append(str(uuid.UUID(int=value)))
    return out


# --------------------------------------------------------------------------------------------
# Databases: a migrated template, a fresh copy per run


def manage(database_url: str, *args: str) -> None:
    """``manage.py ARGS`` of the example project on ``database_url`` (no receiver)."""
    env = django_env(database_url)
    env["ACCOUNTS_RECEIVER"] = "none"
    subprocess.run([sys.executable, str(EXAMPLE / "manage.py"), *args], env=env, check=True,
                   stdout=subprocess.DEVNULL, cwd=EXAMPLE)


class SQLiteDB:
    """A migrated SQLite file in ``tmp/sqlite``; ``fresh()`` copies it."""

    name = "SQLite"

    def __init__(self, tmp: Path):
        self.dir = tmp / "sqlite"
        self.dir.mkdir()
        self.template = self.dir / "template.sqlite3"
        manage(f"sqlite:///{self.template}", "migrate", "--noinput")
        with sqlite3.connect(self.template) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.counter = 0

    def fresh(self) -> tuple[str, object]:
        """A new copy: its URL and the handle ``drop`` takes (the path)."""
        self.counter += 1
        path = self.dir / f"run{self.counter}.sqlite3"
        shutil.copyfile(self.template, path)
        return f"sqlite:///{path}", path

    def drop(self, handle) -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(str(handle) + suffix).unlink(missing_ok=True)

    def close(self) -> None:
        pass


class PostgresDB:
    """A migrated template database ``{prefix}_template`` on the server of ``url``; ``fresh()``
    makes ``{prefix}_{pid}_{n}`` from it. Each benchmark has its own prefix, so one run never
    drops another's template. ``cpu``: pin the server to it (``pin``)."""

    name = "PostgreSQL"

    def __init__(self, url: str, prefix: str, cpu: int | None = None):
        from urllib.parse import urlsplit, urlunsplit

        self.url = url
        parts = urlsplit(url)
        self._with_db = lambda db: urlunsplit(parts._replace(path="/" + db))
        self.admin = self._connect()
        self.database_prefix = prefix
        self.template = f"{prefix}_template"
        self.execute(f"DROP DATABASE IF EXISTS {self.template}")
        self.execute(f"CREATE DATABASE {self.template}")
        manage(self._with_db(self.template), "migrate", "--noinput")
        self.counter = 0
        if cpu is not None:
            self.pin(cpu)

    def _connect(self):
        # Django's own PostgreSQL connection (psycopg), configured from the URL
        # by the example project's parser; the admin database is the URL's.
        sys.path.insert(0, str(EXAMPLE))
        from exampleproject.settings import database_from_url
        from django.conf import settings

        if not settings.configured:
            settings.configure(DATABASES={"default": database_from_url(self.url)}, USE_TZ=True)
            import django

            django.setup()
        from django.db import connection

        connection.ensure_connection()
        connection.set_autocommit(True)
        return connection

    def execute(self, sql: str) -> None:
        with self.admin.cursor() as cursor:
            cursor.execute(sql)

    def postmaster(self) -> int | None:
        """The server's postmaster pid (the parent of our backend), when it runs on this machine."""
        with self.admin.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            backend = cursor.fetchone()[0]
        return parent_pid(backend)

    def pin(self, cpu: int) -> None:
        """Pin the server (postmaster and every process it started) to ``cpu``: backends it
        forks later inherit the mask. Only for a server on this machine that we may pin."""
        postmaster = self.postmaster()
        pids = [postmaster] + [pid for pid in all_pids() if parent_pid(pid) == postmaster]
        for pid in pids:
            try:
                os.sched_setaffinity(pid, {cpu})
            except OSError as error:
                log(f"could not pin PostgreSQL process {pid} to CPU {cpu}: {error}")

    def server_cpu_seconds(self, postmaster: int) -> float:
        """The server's CPU: postmaster, live backends and reaped children."""
        try:
            fields = Path(f"/proc/{postmaster}/stat").read_text().rsplit(")", 1)[1].split()
            reaped = (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
        except (OSError, IndexError, ValueError):
            reaped = 0.0
        return cpu_seconds(postmaster) + reaped + sum(cpu_seconds(p) for p in children(postmaster))

    def fresh(self) -> tuple[str, object]:
        """A new database from the template: its URL and the handle ``drop`` takes (its name)."""
        self.counter += 1
        name = f"{self.database_prefix}_{os.getpid()}_{self.counter}"
        self.execute(f"CREATE DATABASE {name} TEMPLATE {self.template}")
        return self._with_db(name), name

    def drop(self, handle) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {handle} WITH (FORCE)")

    def close(self) -> None:
        self.execute(f"DROP DATABASE IF EXISTS {self.template} WITH (FORCE)")
        self.admin.close()


def open_databases(tmp: Path, postgres_url: str | None, prefix: str, cpu: int | None = None) -> list:
    """The migrated templates a run uses: SQLite (in ``tmp``) and, with ``postgres_url``, PostgreSQL
    (``PostgresDB(postgres_url, prefix, cpu)``). Give them back to ``close_databases``."""
    dbs = [SQLiteDB(tmp)]
    if postgres_url:
        dbs.append(PostgresDB(postgres_url, prefix, cpu=cpu))
    return dbs


def close_databases(dbs: list) -> None:
    """Drop the templates; a failure is logged, not raised (a cleanup must not hide the results)."""
    for db in dbs:
        try:
            db.close()
        except Exception as error:  # noqa: BLE001
            log(f"closing {db.name}: {error}")


class Raw:
    """Plain SQL on a database of ``SQLiteDB``/``PostgresDB`` (``%s`` placeholders on both)."""

    def __init__(self, db, url, handle):
        self.sqlite = db.name == "SQLite"
        if self.sqlite:
            self.conn = sqlite3.connect(str(handle), timeout=30, isolation_level=None)
            self.ph = "?"
        else:
            import psycopg

            self.conn = psycopg.connect(url, autocommit=True)
            self.ph = "%s"

    def q(self, sql, params=()):
        cur = self.conn.execute(sql.replace("%s", self.ph), params)
        return cur.fetchall()

    def create_users(self, n):
        """``n`` users ``bench0``... in one transaction; their ids, ascending."""
        now = datetime.datetime.now(datetime.timezone.utc).isoformat()
        rows = [("!", False, f"bench{i}", "Ann", "Example", f"bench{i}@example.com", False, True, now)
                for i in range(n)]
        sql = ("INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, "
               "is_staff, is_active, date_joined) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s)").replace("%s", self.ph)
        if self.sqlite:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(sql, rows)
            self.conn.execute("COMMIT")
        else:
            with self.conn.cursor() as cur:
                with self.conn.transaction():
                    cur.executemany(sql, rows)
        return [r[0] for r in self.q("SELECT id FROM auth_user WHERE username LIKE 'bench%%' ORDER BY id")]

    def count_profiles(self):
        return self.q("SELECT count(*) FROM accounts_userprofile")[0][0]

    def close(self):
        self.conn.close()


# --------------------------------------------------------------------------------------------
# CPU time and memory of processes


def process_cpu() -> float:
    """CPU seconds (user + system) of every thread of this process so far (getrusage). Unlike
    wall time it does not grow while another process has the core."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` in seconds, from ``/proc/PID/stat`` (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def machine_cpu_seconds() -> dict:
    """Whole-machine CPU seconds from ``/proc/stat``: busy (all processes), idle, iowait."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    return {"busy": (user + nice + system + irq + softirq + steal) / CLOCK_TICKS,
            "idle": idle / CLOCK_TICKS, "iowait": iowait / CLOCK_TICKS}


def vmhwm_kb(pid: int) -> int:
    """Peak resident set size of ``pid`` (VmHWM), kB; 0 if it is gone."""
    return _proc_status(pid, "VmHWM:") or 0


def parent_pid(pid: int) -> int | None:
    return _proc_status(pid, "PPid:")


def _proc_status(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def children(pid: int) -> list[int]:
    out = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            out += [int(x) for x in (task / "children").read_text().split()]
    except OSError:
        pass
    return out


# --------------------------------------------------------------------------------------------
# Statistics


def rate(n: int, seconds: float | None) -> float | None:
    return n / seconds if seconds else None


def fmt(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def median(values) -> float | None:
    """The median of the values that are not None (None if there are none)."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def quartiles(values: list[float]) -> tuple[float, float]:
    """First and third quartile (the interquartile range), by linear interpolation between
    the sorted values (``statistics.quantiles(method="inclusive")``); one value: itself."""
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def percentile(values, p: float, method: str = "rank") -> float | None:
    """The ``p``-th percentile of ``values`` as one of them (None if empty).

    ``rank``: the value of rank ≈ ⌈p/100 · n⌉ (the compare report's latencies); ``nearest``:
    the value at index round(p/100 · (n − 1)) (the scale-out report's).
    """
    if not values:
        return None
    v = sorted(values)
    if method == "rank":
        k = int(round(p / 100 * len(v) + 0.5)) - 1
    elif method == "nearest":
        k = int(round(p / 100 * (len(v) - 1)))
    else:
        raise ValueError(f"percentile: unknown method {method!r}")
    return v[min(len(v) - 1, max(0, k))]


# --------------------------------------------------------------------------------------------
# What a report states about the run


def git(*args: str) -> str:
    """``git -C ROOT ARGS``'s output, or "unknown"."""
    try:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def checkout() -> str:
    """What the measured binaries were built from: ``checkout_now()`` as it was when
    Benchmarks/build last built them in this run ($SIGNAL_BENCH_CHECKOUT), else as it is now."""
    return os.environ.get("SIGNAL_BENCH_CHECKOUT") or checkout_now()


def checkout_now() -> str:
    """This checkout's short commit, with " + uncommitted changes" when tracked files outside
    Benchmarks/results differ from it: results written by earlier runs are not changes to what is measured."""
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)Benchmarks/results")
    return git("rev-parse", "--short", "HEAD") + (" + uncommitted changes" if dirty and dirty != "unknown" else "")


def git_at(path: Path, *args: str) -> str:
    """``git -C path ...``'s output, or "not a git checkout"."""
    try:
        return subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return (path / "COMMIT").read_text().strip() if (path / "COMMIT").is_file() else "not a git checkout"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores (`nproc`), {cpu}; Django, the worker and the database share them"


def postgres_durability(url: str) -> str:
    """The server's fsync and synchronous_commit, as the report states them."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        fsync = connection.execute("SHOW fsync").fetchone()[0]
        synchronous_commit = connection.execute("SHOW synchronous_commit").fetchone()[0]
    durable = fsync == "on" and synchronous_commit != "off"
    return (f"fsync={fsync}, synchronous_commit={synchronous_commit}: "
            + ("every commit waits for its WAL flush, as in production" if durable else "commits cost no disk flush"))


def shown_path(path: Path) -> str:
    """``path`` relative to the checkout if it is inside it."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def write_report(text: str, path: str | Path | None) -> None:
    """Print the report and write it to ``path`` (its folder made if missing; None: print only)."""
    print(text)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text)

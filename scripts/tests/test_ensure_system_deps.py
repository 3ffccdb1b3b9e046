"""scripts/ensure-system-deps checks and installs only what its mode needs.

The script is sourced with a PATH of stubs only: every check it makes
(pkg-config, python3, id, ls, command -v ...) finds a stub, and the stub
``apt-get`` records what it was asked to install and "installs" it by making
the stubs that package would bring. So each test starts from a machine on
which everything is missing (or what it says is present) and reads back
which packages were asked for and whether sourcing succeeded.

Run by scripts/test; alone: ``.venv/bin/python -m pytest scripts/tests``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "ensure-system-deps"

# What each package brings: stub executables (on PATH) and markers (read by other stubs).
PROVIDES = {
    "libzmq3-dev": ["marker:libzmq"],
    "pkg-config": [],
    "python3-venv": ["marker:venv"],
    "postgresql": ["bin:pg_ctl", "bin:initdb", "marker:postgres-user", "marker:postgresql"],
    "pgbouncer": ["bin:pgbouncer"],
    "gdb": ["bin:gdb"],
    "chromium": ["bin:chromium"],
    "debootstrap": ["bin:debootstrap"],
}

STUBS = {
    # Exit 0 iff "libzmq3-dev" was installed.
    "pkg-config": '[ -e "$STATE/libzmq" ]',
    # `python3 -m venv --help` and `python3 -c 'import ensurepip'`: iff python3-venv is there.
    "python3": '[ -e "$STATE/venv" ]',
    # `id -u`: root; `id postgres`: iff the postgresql package made the user.
    "id": 'if [ "$1" = -u ]; then echo 0; else [ -e "$STATE/postgres-user" ]; fi',
    # The checks' fallbacks: ls /usr/lib/postgresql/*/bin/pg_ctl, ls /usr/sbin/pgbouncer.
    "ls": 'case "$*" in *pg_ctl*|*postgresql*) [ -e "$STATE/postgresql" ];; *pgbouncer*) [ -e "$BIN/pgbouncer" ];; *) exit 2;; esac',
    "sudo": 'exec "$@"',
    "apt-get": r'''
echo "$*" >> "$STATE/apt.log"
[ "$1" = install ] || exit 0
shift
for p in "$@"; do
    case "$p" in -*) continue;; esac
    case " $APT_FAIL " in *" $p "*) echo "E: Unable to locate package $p" >&2; exit 100;; esac
    for what in $(grep "^$p " "$STATE/provides" | cut -d' ' -f2-); do
        case "$what" in
            bin:*) printf '#!/bin/sh\nexit 0\n' > "$BIN/${what#bin:}"; chmod +x "$BIN/${what#bin:}";;
            marker:*) touch "$STATE/${what#marker:}";;
        esac
    done
done
''',
}

# Real tools the script uses that are not the subject of a check.
REAL_TOOLS = ("awk", "sort", "tail", "grep", "cut", "touch", "chmod")


class Machine:
    def __init__(self, root: Path, present: set[str]) -> None:
        self.bin = root / "bin"
        self.state = root / "state"
        self.bin.mkdir()
        self.state.mkdir()
        (self.state / "provides").write_text(
            "".join(f"{pkg} {' '.join(items)}\n" for pkg, items in PROVIDES.items())
        )
        for name, body in STUBS.items():
            path = self.bin / name
            path.write_text("#!/bin/sh\n" + body + "\n")
            path.chmod(0o755)
        for tool in REAL_TOOLS:
            (self.bin / tool).symlink_to(shutil.which(tool))
        (self.bin / "swift").symlink_to(self.bin / "sudo")  # `command -v swift` only
        for what in present:
            self.install(what)

    def install(self, package: str) -> None:
        for what in PROVIDES[package]:
            kind, name = what.split(":")
            if kind == "bin":
                (self.bin / name).write_text("#!/bin/sh\nexit 0\n")
                (self.bin / name).chmod(0o755)
            else:
                (self.state / name).touch()

    def source(self, mode: str, **env: str) -> subprocess.CompletedProcess:
        """Source the script as scripts/demo does (set -euo pipefail); prints PATH after."""
        return subprocess.run(
            ["/bin/bash", "-c", 'set -euo pipefail; source "$0"; echo "SOURCED PATH=$PATH"', str(SCRIPT)],
            env={"PATH": str(self.bin), "STATE": str(self.state), "BIN": str(self.bin),
                 "SIGNAL_WORKER_DEPS": mode, "APT_FAIL": "", **env},
            capture_output=True,
            text=True,
            timeout=30,
        )

    def installs(self) -> list[list[str]]:
        """The package lists of every `apt-get install`, in order."""
        log = self.state / "apt.log"
        lines = log.read_text().splitlines() if log.exists() else []
        return [[w for w in line.split()[1:] if not w.startswith("-")] for line in lines if line.startswith("install")]


@pytest.fixture
def machine(tmp_path):
    def make(*present: str) -> Machine:
        return Machine(tmp_path, set(present))

    return make


def test_runtime_installs_libzmq_only_and_checks_nothing_else(machine):
    m = machine()  # nothing at all: no PostgreSQL, no venv, no postgres user
    result = m.source("runtime")
    assert result.returncode == 0, result.stderr
    assert m.installs() == [["libzmq3-dev", "pkg-config"]]
    assert "missing: libzmq (pkg-config libzmq)\n" in result.stdout
    assert "pg_ctl" not in result.stderr + result.stdout and "venv" not in result.stderr + result.stdout


def test_runtime_with_libzmq_present_installs_nothing(machine):
    m = machine("libzmq3-dev")
    result = m.source("runtime")
    assert result.returncode == 0, result.stderr
    assert m.installs() == []
    assert result.stdout.startswith("SOURCED")


def test_demo_needs_a_working_venv_but_not_postgresql(machine):
    m = machine("python3-venv")
    result = m.source("demo")
    assert result.returncode == 0, result.stderr
    assert m.installs() == [["libzmq3-dev", "pkg-config"]]


def test_demo_says_when_venv_cannot_be_fixed_by_apt(machine):
    m = machine()  # a python3 that is not Debian's: apt cannot add venv to it
    result = m.source("demo")
    assert result.returncode != 0
    assert "python3 -m venv still missing" in result.stderr
    assert m.installs() == [["libzmq3-dev", "pkg-config"]]
    assert "pg_ctl" not in result.stderr


def test_demo_with_a_prebuilt_binary_needs_no_swift(machine):
    m = machine("libzmq3-dev", "python3-venv")
    (m.bin / "swift").unlink()
    assert m.source("demo", SIGNAL_WORKER_DEPS_SWIFT="0").returncode == 0
    result = m.source("demo")
    assert result.returncode != 0 and "swift is not on PATH" in result.stderr


def test_test_mode_installs_everything_then_chromium_and_debootstrap_on_their_own(machine):
    m = machine("python3-venv")
    result = m.source("test")
    assert result.returncode == 0, result.stderr
    assert m.installs() == [
        ["libzmq3-dev", "pkg-config", "postgresql", "pgbouncer", "gdb"], ["chromium"], ["debootstrap"]
    ]
    assert f"SOURCED PATH={m.bin}" in result.stdout


def test_test_mode_goes_on_without_chromium_when_it_cannot_be_installed(machine):
    m = machine("python3-venv", "libzmq3-dev", "postgresql", "pgbouncer", "gdb", "debootstrap")
    result = m.source("test", APT_FAIL="chromium")
    assert result.returncode == 0, result.stderr
    assert m.installs() == [["chromium"]]
    assert "chromium could not be installed; the browser test will be skipped" in result.stderr


def test_test_mode_goes_on_without_debootstrap_when_it_cannot_be_installed(machine):
    m = machine("python3-venv", "libzmq3-dev", "postgresql", "pgbouncer", "gdb", "chromium")
    result = m.source("test", APT_FAIL="debootstrap")
    assert result.returncode == 0, result.stderr
    assert m.installs() == [["debootstrap"]]
    assert "debootstrap could not be installed; the package's install test will be skipped" in result.stderr


def test_test_mode_does_not_install_debootstrap_without_root(machine):
    m = machine("python3-venv", "libzmq3-dev", "postgresql", "pgbouncer", "gdb", "chromium")
    (m.bin / "id").write_text('#!/bin/sh\nif [ "$1" = -u ]; then echo 1000; else [ -e "$STATE/postgres-user" ]; fi\n')
    result = m.source("test")
    assert result.returncode == 0, result.stderr
    assert m.installs() == []


def test_test_mode_fails_when_a_package_did_not_bring_what_was_missing(machine):
    m = machine("python3-venv")
    provides = m.state / "provides"  # apt-get "installs" gdb, but no gdb appears
    provides.write_text(provides.read_text().replace("gdb bin:gdb\n", "gdb\n"))
    result = m.source("test")
    assert result.returncode != 0
    assert "gdb still missing after apt-get install" in result.stderr


def test_an_unknown_mode_is_refused(machine):
    result = machine().source("everything")
    assert result.returncode != 0 and "must be runtime, demo or test" in result.stderr

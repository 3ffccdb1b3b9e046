"""What scripts/package ships besides the binary: the settings file and the systemd unit.

The release build with the Swift runtime linked in takes 10-20 minutes, too long for every
run: these tests check the parts that do not need it, against the debug binary that
scripts/test builds (``SIGNAL_WORKER_BINARY``):

- ``packaging/make-env-file`` lists every ``SIGNAL_WORKER_*`` variable that ``serve --help``
  names, commented out, with its default, and nothing test-only;
- the unit passes ``systemd-analyze verify`` and has the hardening the package promises.

Run by scripts/test; alone: ``.venv/bin/python -m pytest scripts/tests``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "packaging" / "signal-worker.service"
BINARY = Path(os.environ.get("SIGNAL_WORKER_BINARY", ROOT / ".build" / "debug" / "signal-worker"))

needs_binary = pytest.mark.skipif(not BINARY.exists(), reason=f"no signal-worker at {BINARY} (scripts/test builds it)")


@needs_binary
def test_env_file_lists_every_variable_of_serve_commented_out():
    env_file = subprocess.run(
        [ROOT / "packaging" / "make-env-file", BINARY], check=True, capture_output=True, text=True
    ).stdout
    help_text = subprocess.run(
        [BINARY, "serve", "--help"], check=True, capture_output=True, text=True, env={**os.environ, "COLUMNS": "1000"}
    ).stdout
    wanted = set(re.findall(r"\[env: (SIGNAL_WORKER_[A-Z0-9_]+)", help_text))
    listed = set(re.findall(r"^#(SIGNAL_WORKER_[A-Z0-9_]+)=", env_file, re.M))
    assert len(wanted) > 20, sorted(wanted)
    assert listed == wanted
    # Nothing is set: the file only documents (a set line would be a start-up surprise).
    assert not re.findall(r"^SIGNAL_WORKER_", env_file, re.M)
    assert "TEST_ONLY" not in env_file
    # Each variable comes with its option's help and default.
    assert "# --retry-hold-ms:" in env_file and "#SIGNAL_WORKER_RETRY_HOLD_MS=120000" in env_file
    assert "#SIGNAL_WORKER_STORE=db.sqlite3" in env_file


def test_unit_is_hardened_and_drains_on_sigterm():
    unit = UNIT.read_text()
    settings = dict(
        line.split("=", 1) for line in unit.splitlines() if "=" in line and not line.startswith("#")
    )
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ReadWritePaths": "/var/lib/signal-worker",
        "LimitNOFILE": "65536",
        "Restart": "on-failure",
        "KillSignal": "SIGTERM",
        "EnvironmentFile": "/etc/signal-worker/env",
        "User": "signal-worker",
        "ExecStart": "/usr/bin/signal-worker serve",
    }
    assert {key: settings.get(key) for key in expected} == expected
    # SIGTERM drains within --linger-ms (2 s by default): the stop timeout leaves room for a batch.
    assert int(settings["TimeoutStopSec"]) >= 10


@needs_binary
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    # verify checks that ExecStart's binary exists: point a copy of the unit at the debug binary.
    unit = tmp_path / "signal-worker.service"
    unit.write_text(UNIT.read_text().replace("ExecStart=/usr/bin/signal-worker", f"ExecStart={BINARY}"))
    result = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "signal-worker.service" not in result.stderr, result.stderr

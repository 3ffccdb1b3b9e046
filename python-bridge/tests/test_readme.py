"""The README's "Talking to the worker" snippet works as written.

It is taken from README.md as it stands and run against a real worker started
the way the README says (``scripts/serve --create-schema``: ``signal-worker
serve --create-schema`` in an empty directory, which serves ``./db.sqlite3``),
with only the endpoint changed to a free port. The reply must be the one the
snippet's comment shows, then ``duplicate`` on a second run, and the profile
must be in the database.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time

import pytest

from conftest import REPO, free_port, worker_binary

README = REPO / "README.md"
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5557"


def readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, f"README.md has no section '## {title}'"
    return match.group(1)


def python_blocks(section: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)


@pytest.fixture
def trial_worker(tmp_path):
    """``scripts/serve --create-schema`` in an empty directory, on a free port."""
    binary = worker_binary()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    log = open(tmp_path / "worker.log", "wb")
    process = subprocess.Popen(
        [str(binary), "serve", "--create-schema", "--bind", endpoint], cwd=tmp_path, stdout=log, stderr=log
    )
    deadline = time.monotonic() + 20
    while subprocess.run([str(binary), "ping", "--connect", endpoint], capture_output=True).returncode != 0:
        assert process.poll() is None, (tmp_path / "worker.log").read_text()
        assert time.monotonic() < deadline, "the trial worker did not answer a ping"
        time.sleep(0.05)
    yield tmp_path, endpoint
    process.terminate()
    process.wait(timeout=10)
    log.close()


def test_the_talking_to_the_worker_snippet_gets_the_reply_it_shows(trial_worker):
    directory, endpoint = trial_worker
    section = readme_section("Talking to the worker")
    assert "scripts/serve --create-schema" in section, "the section says which worker the snippet runs against"
    (snippet,) = python_blocks(section)
    assert snippet.count(DEFAULT_ENDPOINT) == 1
    snippet = snippet.replace(DEFAULT_ENDPOINT, endpoint)
    shown = re.search(r"^print\(.*\)\s+#\s*(\{.*\})\s*$", snippet, re.M)
    assert shown, "the snippet's print() shows the reply in a comment"
    # The comment abbreviates the id ("0193…"); everything else must match exactly.
    expected = re.escape(shown.group(1)).replace("…", '[0-9a-f-]*')

    def run() -> str:
        result = subprocess.run([sys.executable, "-c", snippet], cwd=directory, capture_output=True, text=True,
                                timeout=30)
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    first = run()
    assert re.fullmatch(expected, first), f"the README shows {shown.group(1)}, the worker answered {first}"
    second = json.loads(run())
    assert second["result"] == {"action": "duplicate"}, "run twice, the same id is a duplicate (README)"

    with sqlite3.connect(directory / "db.sqlite3") as db:
        row = db.execute("SELECT profile_type, birthdate FROM accounts_userprofile WHERE user_id = 1").fetchone()
    assert row == ("business", "1990-01-02")


def test_the_bridge_readme_installs_what_exists():
    """python-bridge/README.md "Install": no PyPI name pip cannot find; the wheel it names is the one
    ``pip wheel`` builds of this version; and pip's in-tree build directory is ignored by git."""
    install = (REPO / "python-bridge" / "README.md").read_text(encoding="utf-8").split("## Install", 1)[1]
    install = install.split("\n## ", 1)[0]
    commands = "\n".join(re.findall(r"^```sh\n(.*?)^```", install, re.S | re.M))
    assert "pip install ./python-bridge" in commands
    assert not re.search(r"pip install django-signal-bridge\b", commands), "not on PyPI"
    pyproject = (REPO / "python-bridge" / "pyproject.toml").read_text(encoding="utf-8")
    version = re.search(r'^version = "([^"]+)"', pyproject, re.M).group(1)
    wheels = re.findall(r"\S+\.whl", commands)
    assert wheels and all(w.endswith(f"/django_signal_bridge-{version}-py3-none-any.whl") for w in wheels), wheels

    ignored = subprocess.run(["git", "check-ignore", "-q", "python-bridge/build/lib/x.py"], cwd=REPO)
    assert ignored.returncode == 0, "python-bridge/build/ (left by pip install ./python-bridge) is not in .gitignore"


def test_the_readme_documents_every_demo_variable_and_links_the_demo_metrics():
    """Each DEMO_* variable of ``scripts/demo --help`` is in the README's demo table (DEMO_WORKER_BIN, the
    way to reuse a binary, was only in --help), and the demo section links the /metrics the demo serves."""
    help_text = subprocess.run([str(REPO / "scripts" / "demo"), "--help"], capture_output=True, text=True,
                               timeout=30, check=True).stdout
    variables = set(re.findall(r"^\s*(DEMO_[A-Z_]+)", help_text, re.M)) - {"DEMO_CHECK"}  # = --check
    demo = readme_section("Two commands")
    documented = set(re.findall(r"^\| `(DEMO_[A-Z_]+)` \|", demo, re.M))
    assert variables and variables <= documented, f"not in README.md's table: {sorted(variables - documented)}"
    port = re.search(r"DEMO_METRICS_PORT\s+the worker's /metrics port on 127\.0\.0\.1 \(default (\d+)\)", help_text)
    assert port, "scripts/demo --help gives the metrics port's default"
    assert f"(http://127.0.0.1:{port.group(1)}/metrics)" in demo, "the demo section links the metrics endpoint"


def serve_options() -> dict[str, str]:
    """``signal-worker serve --help``: each option and the variable it reads."""
    help_text = subprocess.run([str(worker_binary()), "serve", "--help"], capture_output=True, text=True,
                               timeout=30, check=True).stdout
    options = {}
    for block in re.split(r"\n(?=  --)", help_text.split("OPTIONS:", 1)[1]):
        name = re.match(r"\s*(--[a-z-]+)", block)
        env = re.search(r"\[env:\s*([A-Z_]+)", re.sub(r"\s+", " ", block))
        if name and env:
            options[name.group(1)] = env.group(1)
    assert len(options) > 20, "could not read the options of serve --help"
    return options


def option_rows(text: str) -> dict[str, str]:
    """``| `--opt`, `--other` | `VAR`, `OTHER=1` | ...``: each option of a table with its variable."""
    rows = {}
    for cells in re.findall(r"^\| (`--.*?) \| (`[A-Z_].*?) \|", text, re.M):
        names = re.findall(r"`(--[a-z-]+)`", cells[0])
        variables = re.findall(r"`([A-Z_]+)(?:=1)?`", cells[1])
        assert len(names) == len(variables), cells
        rows.update(zip(names, variables))
    return rows


def test_the_option_tables_are_the_options_serve_help_has():
    """README's "Settings" table names real options with their variables, and docs/OPERATIONS.md's
    "Every `serve` option" lists every option ``serve --help`` has."""
    options = serve_options()
    readme = option_rows(readme_section("Settings"))
    wrong = sorted(name for name, variable in readme.items() if options.get(name) != variable)
    assert readme and not wrong, f"README.md's worker table: not in serve --help, or another variable: {wrong}"
    operations = (REPO / "docs" / "OPERATIONS.md").read_text(encoding="utf-8")
    every = option_rows(operations.split("## Every `serve` option", 1)[1].split("\n## ", 1)[0])
    assert every == options, f"missing: {sorted(set(options) - set(every))}, unknown or wrong variable: " \
        f"{sorted(k for k in every if options.get(k) != every[k])}"

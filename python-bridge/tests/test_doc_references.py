"""Every reference to a document in what signal_bridge and the example project say resolves.

Check messages, exceptions, log lines, help texts, docstrings and comments
cite documents as ``docs/PROTOCOL.md, "Transport"``, ``python-bridge/README.md``
or ``docs/DEPLOYMENT.md#commands``. Each must name a file of this repository
(``DESIGN.md`` never was one) and, where it names a section, a heading of
that file: a quoted title must be (part of) a heading, an anchor must be a
heading's GitHub anchor, and a number (``§3``, ``section 1``) must start a
heading.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import REPO

SCANNED = [REPO / "python-bridge" / "signal_bridge", REPO / "python-bridge" / "example"]
# Where a bare or relative name may live.
BASES = [REPO, REPO / "python-bridge", REPO / "docs"]

REFERENCE = re.compile(r"(?<![\w/.-])(/?(?:[\w.-]+/)*[\w.-]+\.md)(#[\w-]+)?")
QUOTED = re.compile(r"""\s*,?\s*(?:see\s+)?["“]([^"”\n]+)["”]""")
NUMBERED = re.compile(r"\s*(?:§\s*|,?\s*section\s+)(\d+)", re.I)


def texts(path: Path):
    """(line, text) of every string literal and comment block of a source file."""
    source = path.read_text(encoding="utf-8")
    if path.suffix != ".py":
        yield 1, source
        return
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            yield node.lineno, "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    block, start, last = [], 0, -2
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type != tokenize.COMMENT:
            continue
        line = token.start[0]
        if line != last + 1 and block:
            yield start, " ".join(block)
            block = []
        if not block:
            start = line
        block.append(token.string.lstrip("#").strip())
        last = line
    if block:
        yield start, " ".join(block)


def headings(doc: Path) -> list[str]:
    return [
        line.lstrip("#").strip().replace("`", "")
        for line in doc.read_text(encoding="utf-8").splitlines()
        if re.match(r"#{1,6} ", line)
    ]


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def problem(text: str, match: re.Match) -> str | None:
    """What is wrong with the reference ``match`` in ``text``, or None."""
    name, fragment = match.group(1), match.group(2)
    if name.startswith("/"):
        return f"{name}: a path outside the repository"
    found = [base / name for base in BASES if (base / name).is_file()]
    if not found:
        return f"{name}: no such file in the repository"
    doc = found[0]
    titles = headings(doc)
    rest = text[match.end():]
    if fragment:
        if fragment[1:] not in {anchor(t) for t in titles}:
            return f"{name}{fragment}: no heading with that anchor"
    elif numbered := NUMBERED.match(rest):
        if not any(re.match(rf"{numbered.group(1)}\b", t) for t in titles):
            return f"{name} section {numbered.group(1)}: no numbered heading"
    elif quoted := QUOTED.match(rest):
        title = quoted.group(1).replace("`", "").lower()
        if not any(title in t.lower() for t in titles):
            return f'{name}, "{quoted.group(1)}": no such heading'
    return None


def references():
    for root in SCANNED:
        for path in sorted(root.rglob("*")):
            if path.suffix not in {".py", ".html", ".txt"} or "migrations" in path.parts:
                continue
            for line, text in texts(path):
                for match in REFERENCE.finditer(text):
                    yield f"{path.relative_to(REPO)}:{line}", text, match


def test_every_document_reference_resolves():
    found = list(references())
    assert len(found) >= 10, "the scan found (almost) no references: is the pattern still right?"
    bad = sorted({f"{where}: {why}" for where, text, match in found if (why := problem(text, match))})
    assert not bad, "unresolved document references:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ('see docs/PROTOCOL.md, "Transport".', True),
        ("docs/PROTOCOL.md, “Exactly once and ordering”", True),
        ('(python-bridge/README.md, "Delivery guarantees")', True),  # part of "Modes and delivery guarantees"
        ("docs/DEPLOYMENT.md#commands", True),
        ("PROTOCOL.md", True),
        ("instead of waiting (DESIGN.md section 1).", False),
        ("edge (DESIGN.md §3)", False),
        ("docs/PROTOCOL.md §3", False),
        ('docs/PROTOCOL.md, "No such heading"', False),
        ("docs/DEPLOYMENT.md#no-such-anchor", False),
        ("(``/work/shared/ZEROMQ.md``, pyzmq docs)", False),
    ],
)
def test_the_resolver_tells_good_references_from_bad(text, ok):
    (match,) = REFERENCE.finditer(text)
    assert (problem(text, match) is None) == ok


def test_the_sqlite_warning_cites_a_section_that_exists(monkeypatch):
    """W002, the message a SQLite user sees first, cites a document (and it resolves)."""
    from signal_bridge import checks

    sqlite = SimpleNamespace(settings_dict={"ENGINE": "django.db.backends.sqlite3", "OPTIONS": {}})
    monkeypatch.setattr(checks, "connections", {"default": sqlite})
    (w002,) = [w for w in checks.check_sqlite() if w.id == "signal_bridge.W002"]
    cited = list(REFERENCE.finditer(w002.msg))
    assert cited, w002.msg
    assert [problem(w002.msg, m) for m in cited] == [None] * len(cited)

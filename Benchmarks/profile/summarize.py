"""Turn `perf report --sort dso,sym` outputs into Benchmarks/results/profile.md.

Usage: summarize.py --requests N --output PATH "LABEL=PREFIX" ...

PREFIX.report is the flat (self time) profile of one `signal-worker serve` process
(`perf report --sort dso,sym`), PREFIX.stacks its samples with call stacks (`perf script`).
Two views: by stage, each sample charged to the nearest frame of the worker's own stages
(decoding, receiver, store, SQLite, PostgreSQL client, sockets), so the runtime work
(retain/release, malloc, hashing) and the system calls a stage causes count for it; and
flat, by shared object and, inside the worker binary, by the Swift module of the symbol.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

LINE = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[([.k])\]\s+(.*)$")
SWIFT_MODULE = re.compile(r"^\$s(\d+)([A-Za-z_][A-Za-z0-9_]*)")

# Swift module (from the mangled name) -> component.
MODULE_COMPONENTS = {
    "SignalProtocol": "JSON parse/encode, request validation (SignalProtocol)",
    "SignalInbox": "inbox: dedupe, order, batch planning (SignalInbox)",
    "ProfileReceiver": "receiver logic (ProfileReceiver)",
    "DRFTokenReceiver": "receiver logic (DRFTokenReceiver)",
    "SignalStoreSQLite": "SQLite store: statements, binding (SignalStoreSQLite)",
    "GRDB": "GRDB (SQLite wrapper)",
    "SignalStorePostgres": "PostgreSQL store: statements, binding (SignalStorePostgres)",
    "PostgresNIO": "PostgreSQL client (PostgresNIO, SwiftNIO)",
    "SignalWorker": "worker plumbing: socket loop, queue, replies, metrics (SignalWorker)",
    "WorkerOperations": "worker plumbing: socket threads, metrics endpoint (WorkerOperations)",
    "ZeroMQ": "ZeroMQ wrapper (ZeroMQ)",
}
NIO_PREFIXES = ("NIO", "_NIO", "PostgresNIO", "_ConnectionPool", "ConnectionPool")


def component(dso: str, symbol: str) -> str:
    if dso.startswith("[kernel"):
        return "kernel: system calls (fsync/fdatasync, sockets, futex), page faults"
    if dso.startswith("libsqlite3"):
        return "SQLite engine (libsqlite3)"
    if dso.startswith("libzmq"):
        return "libzmq (I/O thread, pipes)"
    if dso.startswith(("libswiftCore", "libswift_Concurrency", "libswiftSynchronization", "libdispatch", "libBlocksRuntime")):
        return "Swift runtime: retain/release, allocation, concurrency"
    if dso.startswith(("libFoundation", "lib_Foundation")):
        return "Foundation"
    if dso.startswith(("libc.", "libc-", "libm.", "libpthread", "ld-linux", "libstdc++", "libgcc")):
        return "libc: malloc/free, memcpy, locks"
    if dso.startswith(("libcrypto", "libssl", "libsodium", "libgnutls")):
        return "crypto libraries"
    if dso == "signal-worker":
        match = SWIFT_MODULE.match(symbol)
        if match:
            module = match.group(2)[: int(match.group(1))]
            if module in MODULE_COMPONENTS:
                return MODULE_COMPONENTS[module]
            if module.startswith(NIO_PREFIXES):
                return MODULE_COMPONENTS["PostgresNIO"]
            if module in ("Logging", "Metrics", "CoreMetrics", "Prometheus", "ServiceLifecycle", "UnixSignals"):
                return "logging, metrics, lifecycle packages"
            return f"other Swift code in the binary ({module})"
        if symbol.startswith("$s"):
            return "Swift standard library generics specialized into the binary"
        return "other code in the binary"
    return f"other: {dso}"


def demangle(symbols: list[str]) -> dict[str, str]:
    tool = shutil.which("swift-demangle") or shutil.which("swift")
    if not tool or not symbols:
        return {s: s for s in symbols}
    command = [tool, "--compact", "--simplified"] if tool.endswith("swift-demangle") else [tool, "demangle", "--compact", "--simplified"]
    try:
        out = subprocess.run(command, input="\n".join(symbols), capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return {s: s for s in symbols}
    lines = out.splitlines()
    return dict(zip(symbols, lines)) if len(lines) == len(symbols) else {s: s for s in symbols}


def parse(path: str):
    rows, samples = [], "?"
    with open(path, encoding="utf-8", errors="replace") as report:
        for line in report:
            if line.startswith("# Samples:"):
                samples = line.split(":", 1)[1].strip()
            match = LINE.match(line)
            if match:
                rows.append((float(match.group(1)), match.group(2), match.group(4).strip()))
    return rows, samples


# Swift module of a frame in the worker binary -> stage (inclusive view).
MODULE_STAGES = {
    "SignalProtocol": "decode and validate the request (JSON parser, envelope)",
    "SignalInbox": "inbox and receivers: build the messages, plan the batch",
    "ProfileReceiver": "inbox and receivers: build the messages, plan the batch",
    "DRFTokenReceiver": "inbox and receivers: build the messages, plan the batch",
    "SignalStoreSQLite": "SQLite store: SQL, binding, reading rows (SignalStoreSQLite + GRDB)",
    "GRDB": "SQLite store: SQL, binding, reading rows (SignalStoreSQLite + GRDB)",
    "SignalStorePostgres": "PostgreSQL store: SQL, binding, decoding (SignalStorePostgres)",
    "SignalWorker": "worker plumbing: socket loop, queue, batching, replies, metrics",
    "WorkerOperations": "worker plumbing: socket loop, queue, batching, replies, metrics",
    "ZeroMQ": "sockets: ZeroMQ wrapper and libzmq",
}


def stage_of_frame(symbol: str, dso: str) -> str | None:
    name = os.path.basename(dso)
    if name.startswith("libsqlite3"):
        return "SQLite engine, with its system calls (write, fdatasync)"
    if name.startswith("libzmq"):
        return MODULE_STAGES["ZeroMQ"]
    if name != "signal-worker":
        return None
    match = SWIFT_MODULE.match(symbol)
    if not match:
        return None
    module = match.group(2)[: int(match.group(1))]
    if module in MODULE_STAGES:
        return MODULE_STAGES[module]
    if module.startswith(NIO_PREFIXES):
        return "PostgreSQL client: PostgresNIO, SwiftNIO (protocol, event loop, socket I/O)"
    if module in ("Logging", "Metrics", "CoreMetrics", "Prometheus", "ServiceLifecycle", "UnixSignals"):
        return "logging, metrics, lifecycle packages"
    return None


# When no stage is on the stack (libc has no frame pointers, so a stack often ends at the
# system call's wrapper), the libc function says what the time was spent on.
LIBC_STAGES = (
    (("fdatasync", "fsync"), "disk flush: fdatasync (SQLite's commit)"),
    (("write", "pwrite", "fcntl", "lseek", "pread", "read"), "file I/O and locks (SQLite's WAL writes, fcntl locks)"),
    (("send", "recv", "poll", "epoll", "getpid"), "socket system calls (send, recv, poll, epoll: ZeroMQ; on PostgreSQL also the database connection)"),
    (("futex", "pthread_cond", "sem_"), "thread hand-offs (futex: waking and waiting threads)"),
    (("malloc", "free", "realloc", "calloc"), "allocation (caller not on the stack)"),
)


def stage_of_libc(symbol: str) -> str | None:
    name = symbol.lstrip("_").removeprefix("GI_").removeprefix("_").removeprefix("libc_")
    for prefixes, stage in LIBC_STAGES:
        if name.startswith(prefixes):
            return stage
    return None


FRAME = re.compile(r"^\s*[0-9a-f]+\s+(\S+)\s+\((.*)\)\s*$")


def stages(path: str) -> tuple[dict[str, int], int]:
    """Samples per stage: each sample goes to its frame nearest the leaf that is a stage."""
    counts: dict[str, int] = defaultdict(int)
    total = 0
    current: str | None = None
    libc: str | None = None  # the stage named by the first libc function on the stack
    in_sample = False

    def finish():
        nonlocal total, current, libc, in_sample
        if in_sample:
            total += 1
            counts[current or libc or "elsewhere: scheduling, runtime start-up, frames perf could not unwind"] += 1
        current, libc, in_sample = None, None, False

    with open(path, encoding="utf-8", errors="replace") as stacks:
        for line in stacks:
            if not line.strip():
                finish()
                continue
            match = FRAME.match(line)
            if not match:
                continue
            in_sample = True
            if current is None:
                current = stage_of_frame(match.group(1), match.group(2))
                if libc is None and os.path.basename(match.group(2)).startswith("libc."):
                    libc = stage_of_libc(match.group(1))
    finish()
    return counts, total


def section(label: str, prefix: str) -> list[str]:
    rows, samples = parse(prefix + ".report")
    if not rows:
        return [f"## {label}", "", f"No samples (see {os.path.basename(prefix)}.report).", ""]
    groups: dict[str, float] = defaultdict(float)
    for percent, dso, symbol in rows:
        groups[component(dso, symbol)] += percent
    names = demangle([symbol for _, _, symbol in rows[:15]])
    out = [f"## {label}", "", f"Samples: {samples} (perf, 1999 Hz, the worker process only).", ""]
    by_stage, total = stages(prefix + ".stacks")
    if total:
        out += ["By stage (a sample counts for the nearest stage on its call stack, runtime and kernel work included):", ""]
        out += ["| stage | share of the worker's CPU samples |", "| --- | ---: |"]
        for name, count in sorted(by_stage.items(), key=lambda item: -item[1]):
            out.append(f"| {name} | {100.0 * count / total:.1f} % |")
        out += [""]
    out += ["Flat, by where the instructions are (self time):", ""]
    out += ["| component | share of the worker's CPU samples |", "| --- | ---: |"]
    for name, percent in sorted(groups.items(), key=lambda item: -item[1]):
        if percent >= 0.5:
            out.append(f"| {name} | {percent:.1f} % |")
    covered = sum(percent for percent, _, _ in rows)
    out += ["", f"Rows above 0.05 % cover {covered:.1f} % of the samples.", ""]
    out += ["Hottest functions:", "", "| self % | object | function |", "| ---: | --- | --- |"]
    for percent, dso, symbol in rows[:15]:
        name = names.get(symbol, symbol).replace("|", "\\|")
        if len(name) > 110:
            name = name[:107] + "..."
        out.append(f"| {percent:.2f} | {dso} | `{name}` |")
    out.append("")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("reports", nargs="+", help="LABEL=PATH of a perf report")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "harness"))
    from signal_bench import checkout  # the commit a report names
    lines = [
        "# Where the worker's CPU time goes",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')}",
        f"- commit: {checkout()}",
        f"- machine: {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the end",
        f"- command: `Benchmarks/profile/run --requests {args.requests}`",
        f"- load: `worker-benchmark --rounds 1 --requests {args.requests}` ({args.requests:,} pipelined creates, as many updates, "
        "then 1,000 one-at-a-time updates) against the release `signal-worker serve`, recorded with "
        "`perf record -F 1999 -g -p <worker>`; grouped by shared object and, inside the worker binary, by the "
        "Swift module of each symbol. Throughput under sampling is lower than without: quote the figures of "
        "`Benchmarks/compare/run` and `worker-benchmark`, not this run's.",
        "",
    ]
    for item in args.reports:
        label, _, path = item.rpartition("=")
        lines += section(label, path)
    with open(args.output, "w", encoding="utf-8") as out:
        out.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

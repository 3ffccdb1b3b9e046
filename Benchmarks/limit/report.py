"""Write Benchmarks/results/limit.md from the reports of one Benchmarks/limit/run.

Usage: report.py --work DIR --rounds N --requests N --command TEXT --output PATH
                 [--profile PROFILE.md --profile-dir DIR --profile-requests N] [--deeper-window W]

DIR holds store-R.md (store-benchmark) and worker-R.md (worker-benchmark) for rounds 1..N, and
with --deeper-window W also worker-deep-R.md (worker-benchmark --window W).
The profile directory is the one Benchmarks/profile/run kept (PROFILE_KEEP=1): per `serve`,
its arguments (.args), call stacks (.stacks, split into stages by Benchmarks/profile/summarize.py)
and per-thread shares (.threads, `perf report --sort comm`).
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import pathlib
import re
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "profile"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "harness"))
import summarize  # noqa: E402  (Benchmarks/profile/summarize.py: the stage of each sample)
from signal_bench import checkout  # noqa: E402  (the commit a report names)

TARGET = 0.70
# store-benchmark's label -> worker-benchmark's label, for the databases both measure alike.
DATABASES = {"SQLite (synchronous=FULL)": "SQLite", "PostgreSQL": "PostgreSQL"}
KINDS = ("creates", "updates")

# summarize.py's stages, grouped as the issue asks: decode, socket thread, store, replies.
BUCKETS = (
    ("decode", ("decode and validate",)),
    ("sockets: ZeroMQ receive and send (socket thread, libzmq)", ("sockets:", "socket system calls")),
    ("worker plumbing: queue, batching, replies, metrics", ("worker plumbing",)),
    ("hand-offs between the socket thread and the apply loop (futex)", ("thread hand-offs",)),
    ("store: inbox, receiver, SQL, database client and engine, disk",
     ("inbox and receivers", "SQLite", "PostgreSQL", "disk flush", "file I/O")),
    ("other: allocation with no caller, logging, unwinding gaps", ("allocation", "logging", "elsewhere")),
)


def table_rows(text: str, header_start: str) -> list[list[str]]:
    """The cells of the Markdown table whose header row starts with `header_start`."""
    rows, inside = [], False
    for line in text.splitlines():
        if line.startswith(header_start):
            inside = True
            continue
        if inside:
            if not line.startswith("|"):
                break
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not set(cells[0]) <= set("-: "):
                rows.append(cells)
    return rows


def store_rates(path: pathlib.Path) -> dict[tuple[str, str, str], float]:
    """(database, scenario, kind) -> profiles/s, scenario "a'" or "b", from store-benchmark's report."""
    rates = {}
    for cells in table_rows(path.read_text(), "| store | benchmark |"):
        database, benchmark, rate = cells[0], cells[1], float(cells[4])
        for scenario in ("a'", "b"):
            if benchmark.startswith(f"({scenario})"):
                for kind in KINDS:
                    if benchmark.endswith(kind):
                        rates[(database, scenario, kind)] = rate
    return rates


def worker_rates(path: pathlib.Path) -> dict[tuple[str, str], float]:
    """(database, kind) -> requests/s, and (database, "cpu") / (database, "client cpu") -> the worker's /
    its client's CPU µs per request."""
    rates = {}
    for cells in table_rows(path.read_text(), "| store | creates/s |"):
        rates[(cells[0], "creates")] = float(cells[1])
        rates[(cells[0], "updates")] = float(cells[2])
        worker_cpu, client_cpu = cells[-1].split(",")[:2]
        rates[(cells[0], "cpu")] = float(worker_cpu) * 10  # CPU s per 100k -> µs per request
        rates[(cells[0], "client cpu")] = float(client_cpu) * 10
    return rates


def quartiles(values: list[float]) -> str:
    if len(values) < 4:
        return f"{min(values):,.0f}–{max(values):,.0f}" if len(values) > 1 else ""
    q = statistics.quantiles(values, n=4)
    return f"{q[0]:,.0f}–{q[2]:,.0f}"


def percent(ratio: float) -> str:
    """A ratio of (a') as a percentage with one decimal, rounded down, so that a ratio just under
    the target (0.697, or 0.6999) never prints as the target itself ("70 %") beside "missed"."""
    return f"{math.floor(1000 * ratio) / 10:.1f} %"


def verdict(ratio: float, target: float = TARGET) -> tuple[str, str]:
    """The summary's ratio cell (``percent``, in bold) and whether it meets ``target``."""
    return f"**{percent(ratio)}**", "met" if ratio >= target else "missed"


def deeper_window_section(window: int, stores: dict, workers: dict, deep: dict, rounds: range) -> list[str]:
    """The worker at 2,000 and at ``window`` requests in flight, same rounds: rate, ratio to (a'), CPU.

    The same CPU per request at a higher rate means the worker was idle part of the time at
    2,000, waiting for its client's next requests (a closed loop refills only as replies come
    back), not that it does less work.
    """
    median = statistics.median
    lines = [f"## The same worker with {window:,} requests in flight", "",
             f"Each round also ran `worker-benchmark --window {window}` right after the run above. The target is "
             "judged at 2,000; this shows how much of the gap is the benchmark's closed loop rather than the "
             "worker's CPU.", "",
             f"| database | kind | worker/s at 2,000 | worker/s at {window:,} | worker / (a') at 2,000 | "
             f"worker / (a') at {window:,} | worker CPU µs per request at 2,000 / {window:,} |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for database, label in DATABASES.items():
        for kind in KINDS:
            present = [r for r in rounds if (label, kind) in workers[r] and (label, kind) in deep[r]
                       and (database, "a'", kind) in stores[r]]
            if not present:
                continue
            shallow_ratio = median([workers[r][(label, kind)] / stores[r][(database, "a'", kind)] for r in present])
            deep_ratio = median([deep[r][(label, kind)] / stores[r][(database, "a'", kind)] for r in present])
            cpu = [median([source[r][(label, "cpu")] for r in present]) for source in (workers, deep)]
            lines.append(
                f"| {database.split(' (')[0]} | {kind} | {median([workers[r][(label, kind)] for r in present]):,.0f} | "
                f"{median([deep[r][(label, kind)] for r in present]):,.0f} | {percent(shallow_ratio)} | "
                f"{percent(deep_ratio)} | {cpu[0]:.1f} / {cpu[1]:.1f} |")
    return lines + [""]


def ceiling_section(cores: int, stores: dict, workers: dict, rounds: range) -> list[str]:
    """The most the worker could do on these cores with the CPU it and its client take per request.

    At best every core is busy with the worker or its client all the time: `cores / (worker + client
    CPU per request)` requests per second. Against (a') that is the highest worker / (a') this
    worker can reach here, whatever the scheduling; a ratio above it would mean less CPU per request.
    """
    median = statistics.median
    lines = ["## The CPU ceiling", "",
             f"The worker and its client share {cores} cores. With every core busy with one of them all the time, "
             f"the worker could answer at most {cores} / (its CPU + its client's CPU per request) requests per "
             "second: the highest worker / (a') this worker can reach on this machine (medians of the rounds; "
             "`worker-benchmark`'s \"CPU s / 100k\" column). On PostgreSQL the server's own CPU shares the cores "
             "too and is not counted, so there the real ceiling is lower.", "",
             "| database | worker CPU µs/request | client CPU µs/request | ceiling, requests/s | ceiling / (a'), "
             "creates | ceiling / (a'), updates | measured worker / (a'), creates / updates |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for database, label in DATABASES.items():
        present = [r for r in rounds if (label, "cpu") in workers[r] and (label, "client cpu") in workers[r]]
        if not present:
            continue
        worker_cpu = median([workers[r][(label, "cpu")] for r in present])
        client_cpu = median([workers[r][(label, "client cpu")] for r in present])
        ceiling = cores * 1e6 / (worker_cpu + client_cpu)
        cells = [database.split(" (")[0], f"{worker_cpu:.1f}", f"{client_cpu:.1f}", f"{ceiling:,.0f}"]
        measured = []
        for kind in KINDS:
            limits = [stores[r][(database, "a'", kind)] for r in present if (database, "a'", kind) in stores[r]]
            cells.append(percent(ceiling / median(limits)) if limits else "—")
            ratios = [workers[r][(label, kind)] / stores[r][(database, "a'", kind)] for r in present
                      if (label, kind) in workers[r] and (database, "a'", kind) in stores[r]]
            measured.append(percent(median(ratios)) if ratios else "—")
        lines.append("| " + " | ".join(cells + [" / ".join(measured)]) + " |")
    return lines + [""]


def profile_sections(directory: pathlib.Path, cpu_per_request: dict[str, float],
                     limit_us: dict[str, float]) -> list[str]:
    """Per database: the worker's CPU by stage group and by thread, in shares and µs per request."""
    lines = []
    for argsfile in sorted(directory.glob("serve-*.args")):
        arguments = argsfile.read_text()
        if "--sqlite-synchronous normal" in arguments:
            continue
        database = "SQLite" if "sqlite://" in arguments else "PostgreSQL"
        counts, total = summarize.stages(str(argsfile.with_suffix(".stacks")))
        if not total:
            lines += [f"### {database}", "", "No samples recorded.", ""]
            continue
        cpu = cpu_per_request.get(database, float("nan"))
        store_us = 0.0
        lines += [f"### {database}", "",
                  f"{total:,} samples. µs per request = the share × the worker's CPU per request "
                  f"measured without the profiler in the rounds above (median {cpu:.1f} µs).", "",
                  "| where | share of the worker's CPU | µs per request |", "| --- | ---: | ---: |"]
        for bucket, prefixes in BUCKETS:
            share = sum(count for stage, count in counts.items() if stage.startswith(prefixes)) / total
            detail = ", ".join(f"{stage.split(' (')[0].split(':')[0]} {100 * count / total:.1f} %"
                               for stage, count in sorted(counts.items(), key=lambda item: -item[1])
                               if stage.startswith(prefixes))
            lines.append(f"| {bucket}{f' ({detail})' if detail else ''} | {100 * share:.1f} % | {share * cpu:.1f} |")
            if bucket.startswith("store"):
                store_us = share * cpu
        lines += [""]
        if database in limit_us:
            lines += [f"In short: of the worker's {cpu:.1f} µs of CPU per request, {store_us:.1f} µs are the store "
                      f"(where (a') takes {limit_us[database]:.1f} µs of wall time per message on one thread, creates and updates averaged) and "
                      f"{cpu - store_us:.1f} µs everything (a') does not do: decoding, ZeroMQ, the queue and the "
                      "replies, the hand-offs between threads, the runtime.", ""]
        roles = thread_roles(argsfile.with_suffix(".threads"))
        if roles:
            every = sum(samples for samples, _ in roles.values())
            lines += ["By thread (each thread named by the code on its stacks; `perf script -F tid,ip,sym,dso`):", "",
                      "| thread | threads | share of the worker's CPU | µs per request |", "| --- | ---: | ---: | ---: |"]
            for role, (samples, count) in sorted(roles.items(), key=lambda item: -item[1][0]):
                lines.append(f"| {role} | {count} | {100 * samples / every:.1f} % | {samples / every * cpu:.1f} |")
            lines += [""]
    return lines


# A thread's role, from the code on its samples' stacks: (role, minimum share, marker). A thread
# takes the first role whose marker(symbol, dso) holds for a frame of at least that share of its
# samples. libzmq's I/O thread spends most samples in the kernel, with no libzmq frame unwound.
THREAD_ROLES = (
    ("socket thread: receive, decode and validate, queue, send replies", 0.2, lambda sym, dso: "SocketLoop" in sym),
    ("apply loop: inbox, receiver, store, database client", 0.2,
     lambda sym, dso: any(module in sym for module in ("17SignalStoreSQLite", "19SignalStorePostgres", "4GRDB"))
     or os.path.basename(dso).startswith("libsqlite3")),
    ("SwiftNIO event loop: the PostgreSQL connection's I/O", 0.2, lambda sym, dso: "NIO" in sym[:12]),
    ("libzmq's I/O thread: TCP framing", 0.05, lambda sym, dso: os.path.basename(dso).startswith("libzmq")),
)
OTHER_THREAD = "other: main thread, start-up, Swift tasks (reply mailbox, metrics)"


def thread_roles(path: pathlib.Path) -> dict[str, tuple[int, int]]:
    """role -> (samples, threads), from `perf script -F tid,ip,sym,dso` output."""
    if not path.exists():
        return {}
    samples: dict[str, int] = {}
    marked: dict[str, list[int]] = {}
    tid, hits = None, set()

    def finish():
        if tid is not None:
            for index in hits:
                marked.setdefault(tid, [0] * len(THREAD_ROLES))[index] += 1

    frame = re.compile(r"^\s+[0-9a-f]+\s+(\S+)\s+\((.*)\)\s*$")
    for line in path.read_text(errors="replace").splitlines():
        if line.strip() and not line[0].isspace():
            finish()
            tid, hits = line.split()[0], set()
            samples[tid] = samples.get(tid, 0) + 1
            continue
        match = frame.match(line)
        if match and tid is not None:
            for index, (_, _, marker) in enumerate(THREAD_ROLES):
                if marker(match.group(1), match.group(2)):
                    hits.add(index)
    finish()
    roles: dict[str, tuple[int, int]] = {}
    for thread, count in samples.items():
        shares = [hits / count for hits in marked.get(thread, [0] * len(THREAD_ROLES))]
        role = next((THREAD_ROLES[i][0] for i, share in enumerate(shares) if share >= THREAD_ROLES[i][1]), OTHER_THREAD)
        total, threads = roles.get(role, (0, 0))
        roles[role] = (total + count, threads + 1)
    return roles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, type=pathlib.Path)
    parser.add_argument("--rounds", required=True, type=int)
    parser.add_argument("--requests", required=True, type=int)
    parser.add_argument("--command", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--profile", type=pathlib.Path)
    parser.add_argument("--profile-dir", type=pathlib.Path)
    parser.add_argument("--profile-requests", type=int)
    parser.add_argument("--deeper-window", type=int, default=0,
                        help="the in-flight window of the worker-deep-R.md runs (0: none)")
    args = parser.parse_args()

    rounds = range(1, args.rounds + 1)
    stores = {r: store_rates(args.work / f"store-{r}.md") for r in rounds}
    workers = {r: worker_rates(args.work / f"worker-{r}.md") for r in rounds}
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        "# The honest limit: the worker end to end against (a')",
        "",
        f"- command: `{args.command}`",
        f"- date: {now}; commit {checkout()}; "
        f"{os.cpu_count()} cores shared by the client, the worker and PostgreSQL; load average {os.getloadavg()[0]:.1f} at the end",
        f"- (a'): `store-benchmark --count {args.requests} --runs 1`, a hand-written transaction per 1,000 messages doing "
        "the worker's writes for each (the profile, its dedupe id, its object's sequence), no sockets, no decoding; "
        "(b): the same store-benchmark run through the worker's own store (`Inbox.apply`, 1,000 per batch)",
        f"- worker: `worker-benchmark --requests {args.requests} --rounds 1` against the release `signal-worker serve`: "
        f"{args.requests:,} creates then {args.requests:,} updates pipelined over ZeroMQ (≤ 2,000 in flight), "
        "every reply checked `ok`",
        f"- both in every round, against the same durable PostgreSQL (fsync on) and SQLite files with "
        f"`synchronous=FULL`; {args.rounds} rounds, the side that runs first alternating; ratios are per round, then their median",
        "",
        "## Every round",
        "",
        "| database | round | load before | (a') creates/s | worker creates/s | ratio | (a') updates/s | worker updates/s | ratio |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    ratios = {}
    for database, worker_label in DATABASES.items():
        for r in rounds:
            load = args.work / f"load-{r}.txt"
            cells = [database.split(" (")[0], str(r), load.read_text().strip() if load.exists() else "?"]
            for kind in KINDS:
                limit, worker = stores[r].get((database, "a'", kind)), workers[r].get((worker_label, kind))
                if limit is None or worker is None:
                    cells += ["—", "—", "—"]
                    continue
                ratios.setdefault((database, kind), []).append(worker / limit)
                cells += [f"{limit:,.0f}", f"{worker:,.0f}", f"{100 * worker / limit:.0f} %"]
            lines.append("| " + " | ".join(cells) + " |")

    lines += ["", "## Summary (medians)", "",
              "| database | kind | (a')/s | (b) store apply/s | worker/s (IQR) | (b) / (a') | worker / (b) | "
              f"**worker / (a')** | target ≥ {100 * TARGET:.0f} % |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    median = statistics.median
    cpu_per_request = {}
    for database, worker_label in DATABASES.items():
        cpus = [workers[r][(worker_label, "cpu")] for r in rounds if (worker_label, "cpu") in workers[r]]
        if cpus:
            cpu_per_request[worker_label] = median(cpus)
        for kind in KINDS:
            if (database, kind) not in ratios:
                continue
            limit = [stores[r][(database, "a'", kind)] for r in rounds]
            apply = [stores[r][(database, "b", kind)] for r in rounds if (database, "b", kind) in stores[r]]
            worker = [workers[r][(worker_label, kind)] for r in rounds]
            ratio_cell, met = verdict(median(ratios[(database, kind)]))
            lines.append(
                f"| {database.split(' (')[0]} | {kind} | {median(limit):,.0f} | {median(apply):,.0f} | "
                f"{median(worker):,.0f} ({quartiles(worker)}) | {100 * median(apply) / median(limit):.0f} % | "
                f"{100 * median(worker) / median(apply):.0f} % | {ratio_cell} | {met} |")
    lines += ["",
              "(b) / (a') is what the worker's store layer costs over the hand-written SQL (planning, dedupe and "
              "sequence checks, the generic statements); worker / (b) is what the rest of the worker costs: "
              "receiving, decoding, queueing, replying, on cores it shares with its client.", ""]
    per_request = []
    for database, label in DATABASES.items():
        if (database, "creates") not in ratios:
            continue
        limit = median([stores[r][(database, "a'", "creates")] for r in rounds])
        worker = median([workers[r][(label, "creates")] for r in rounds])
        per_request.append(
            f"{database.split(' (')[0]}: (a') {1e6 / limit:.1f} µs per create on one thread; the worker "
            f"{1e6 / worker:.1f} µs wall per create, {cpu_per_request.get(label, float('nan')):.1f} µs of CPU "
            "per request (all its threads, creates and updates)")
    lines += ["Per request: " + "; ".join(per_request) + ".", ""]

    lines += ceiling_section(os.cpu_count() or 1, stores, workers, rounds)
    if args.deeper_window > 0:
        deep = {r: worker_rates(args.work / f"worker-deep-{r}.md") for r in rounds}
        lines += deeper_window_section(args.deeper_window, stores, workers, deep, rounds)

    lines += ["## Where the rest goes", ""]
    if args.profile_dir and args.profile_dir.is_dir():
        lines += [f"`perf record -F 1999 -g` of the release worker under `Benchmarks/profile/run --requests "
                  f"{args.profile_requests}` (the same pipelined load, then 1,000 one-at-a-time updates; stages as in "
                  "`Benchmarks/results/profile.md`: each sample counts for the nearest stage on its call stack, with "
                  "the runtime and kernel work it causes).", ""]
        limit_us = {label: statistics.mean(1e6 / median([stores[r][(database, "a'", kind)] for r in rounds])
                                           for kind in KINDS)
                    for database, label in DATABASES.items() if (database, "creates") in ratios}
        lines += profile_sections(args.profile_dir, cpu_per_request, limit_us)
    else:
        lines += ["Not profiled in this run (`--no-profile`).", ""]
    pathlib.Path(args.output).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()

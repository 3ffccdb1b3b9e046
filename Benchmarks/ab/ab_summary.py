"""Summarizes an A/B run of two signal-worker binaries (Benchmarks/ab/run): per store column
(creates/s, updates/s), each binary's median, the median over quads of B's rate divided by A's
(each quad's two runs of each averaged first), a bootstrap 95 % interval of that median, and the
quads in which B was faster.

Why quads (A B B A): this host's rate drifts by more than the effects worth measuring (consecutive
runs of one binary differ by 15 %); within a quad both binaries see the same drift, on average.

    python3 Benchmarks/ab/ab_summary.py record QUAD BINARY WORKER.md >>RUNS.tsv
    python3 Benchmarks/ab/ab_summary.py summarize RUNS.tsv --a NAME --b NAME [--output REPORT.md]

RUNS.tsv: one line per run, `quad<TAB>binary<TAB>creates/s<TAB>updates/s`; `record` writes that line
from worker-benchmark's report (its SQLite row, synchronous=FULL), read by the limit report's parser.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "limit"))
from report import worker_rates  # noqa: E402  (Benchmarks/limit/report.py: worker-benchmark's table)

COLUMNS = ("creates/s", "updates/s")
BOOTSTRAP_SAMPLES = 2000


@dataclass(frozen=True)
class Comparison:
    column: str
    median_a: float
    median_b: float
    ratio: float  # median over quads of B / A
    low: float  # bootstrap 95 % interval of that median
    high: float
    b_faster: int
    quads: int

    @property
    def verdict(self) -> str:
        return self.verdict_for("B")

    def verdict_for(self, b: str) -> str:
        """The verdict, naming B `b`."""
        if self.low > 1:
            return f"{b} faster"
        if self.high < 1:
            return f"{b} slower"
        return "no difference shown"


def run_line(quad: str, binary: str, worker_report: Path) -> str:
    """The RUNS.tsv line of one worker-benchmark run: its SQLite (synchronous=FULL) creates/s and updates/s."""
    rates = worker_rates(worker_report)
    return f"{quad}\t{binary}\t{rates[('SQLite', 'creates')]:.0f}\t{rates[('SQLite', 'updates')]:.0f}"


def read_runs(path: Path) -> list[tuple[str, str, float, float]]:
    runs = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 4:
            raise ValueError(f"{path}:{number}: expected 4 tab-separated fields, got {len(fields)}")
        runs.append((fields[0], fields[1], float(fields[2]), float(fields[3])))
    return runs


def compare(runs: list[tuple[str, str, float, float]], a: str, b: str, seed: int = 1) -> list[Comparison]:
    comparisons = []
    for index, column in enumerate(COLUMNS):
        by_quad: dict[str, dict[str, list[float]]] = {}
        for quad, binary, *rates in runs:
            by_quad.setdefault(quad, {}).setdefault(binary, []).append(rates[index])
        ratios = [
            statistics.mean(rates[b]) / statistics.mean(rates[a])
            for rates in by_quad.values()
            if rates.get(a) and rates.get(b)
        ]
        if not ratios:
            raise ValueError(f"no quad has runs of both {a} and {b}")
        generator = random.Random(seed)
        medians = sorted(
            statistics.median(generator.choices(ratios, k=len(ratios))) for _ in range(BOOTSTRAP_SAMPLES))
        comparisons.append(Comparison(
            column=column,
            median_a=statistics.median(run[index + 2] for run in runs if run[1] == a),
            median_b=statistics.median(run[index + 2] for run in runs if run[1] == b),
            ratio=statistics.median(ratios),
            low=medians[int(0.025 * BOOTSTRAP_SAMPLES)],
            high=medians[int(0.975 * BOOTSTRAP_SAMPLES) - 1],
            b_faster=sum(1 for ratio in ratios if ratio > 1),
            quads=len(ratios),
        ))
    return comparisons


def report(comparisons: list[Comparison], a: str, b: str, header: str) -> str:
    lines = [
        header,
        "",
        f"| SQLite | {a} | {b} | {b} / {a} (median of quads) | 95 % interval | {b} faster in | verdict |",
        "| --- | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for c in comparisons:
        lines.append(
            f"| {c.column} | {c.median_a:,.0f} | {c.median_b:,.0f} | {c.ratio:.3f} | {c.low:.3f}–{c.high:.3f} "
            f"| {c.b_faster} of {c.quads} quads | {c.verdict_for(b)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    record = commands.add_parser("record", help="print the RUNS.tsv line of one worker-benchmark report")
    record.add_argument("quad")
    record.add_argument("binary")
    record.add_argument("worker_report", type=Path)
    summary = commands.add_parser("summarize", help="compare B with A over the quads of RUNS.tsv")
    summary.add_argument("runs", type=Path)
    summary.add_argument("--a", required=True)
    summary.add_argument("--b", required=True)
    summary.add_argument("--header", default="# A/B: two signal-worker binaries under worker-benchmark")
    summary.add_argument("--output", type=Path)
    arguments = parser.parse_args()
    if arguments.command == "record":
        print(run_line(arguments.quad, arguments.binary, arguments.worker_report))
        return
    text = report(compare(read_runs(arguments.runs), arguments.a, arguments.b), arguments.a, arguments.b,
                  arguments.header)
    print(text, end="")
    if arguments.output:
        arguments.output.write_text(text)


if __name__ == "__main__":
    main()

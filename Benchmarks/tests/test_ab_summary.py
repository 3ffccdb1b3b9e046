"""Benchmarks/ab/ab_summary.py: the ratio is B over A within each quad, the interval brackets it,
and the verdict says "no difference" unless the whole interval is on one side of 1.

    python3 -m unittest discover -s Benchmarks/tests -v      # any Python 3.10+, no packages
"""

from __future__ import annotations

import sys
import tempfile
import unittest
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCHMARKS / "ab"))
import ab_summary as summarize  # noqa: E402


def quads(rates_a: list[float], rates_b: list[float]) -> list[tuple[str, str, float, float]]:
    """One quad per pair of rates: A, B, B, A, with updates at half the creates."""
    runs = []
    for quad, (a, b) in enumerate(zip(rates_a, rates_b)):
        for binary, rate in (("old", a), ("new", b), ("new", b), ("old", a)):
            runs.append((str(quad), binary, rate, rate / 2))
    return runs


class ABSummaryTest(unittest.TestCase):
    def test_a_steady_ten_percent_gain_under_drift_is_shown_as_b_faster(self) -> None:
        # The host drifts from 100,000 to 160,000 per second; B is 10 % faster in every quad.
        drift = [100_000 + 5_000 * quad for quad in range(12)]
        comparisons = summarize.compare(quads(drift, [rate * 1.1 for rate in drift]), "old", "new")
        creates = comparisons[0]
        self.assertAlmostEqual(creates.ratio, 1.1)
        self.assertEqual((creates.b_faster, creates.quads), (12, 12))
        self.assertLessEqual(creates.low, creates.ratio)
        self.assertGreaterEqual(creates.high, creates.ratio)
        self.assertEqual(creates.verdict, "B faster")

    def test_noise_either_way_is_no_difference(self) -> None:
        a = [100_000] * 8
        b = [110_000, 90_000, 108_000, 93_000, 105_000, 96_000, 101_000, 99_000]
        creates = summarize.compare(quads(a, b), "old", "new")[0]
        self.assertLess(creates.low, 1)
        self.assertGreater(creates.high, 1)
        self.assertEqual(creates.verdict, "no difference shown")
        self.assertEqual(creates.b_faster, 4)

    def test_a_loss_is_b_slower_and_each_column_is_its_own(self) -> None:
        runs = [(quad, binary, creates, 100.0 if binary == "old" else 80.0)
                for quad, binary, creates, _ in quads([100.0] * 6, [100.0] * 6)]
        creates, updates = summarize.compare(runs, "old", "new")
        self.assertEqual(creates.ratio, 1.0)
        self.assertAlmostEqual(updates.ratio, 0.8)
        self.assertEqual(updates.verdict, "B slower")

    def test_runs_file_is_read_and_reported(self) -> None:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "runs.tsv"
            path.write_text("".join(f"{q}\t{b}\t{c}\t{u}\n" for q, b, c, u in quads([100.0] * 4, [120.0] * 4)))
            text = summarize.report(summarize.compare(summarize.read_runs(path), "old", "new"), "old", "new", "# t")
        self.assertIn("| creates/s | 100 | 120 | 1.200 |", text)
        self.assertIn("4 of 4 quads", text)

    def test_a_run_is_recorded_from_worker_benchmarks_sqlite_full_row(self) -> None:
        report = (
            "| store | creates/s | updates/s | target | p50 µs | p90 µs | p99 µs | max µs | p99 target | peak RSS MB "
            "| RSS target | CPU s / 100k: worker, client |\n"
            "| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | --- | ---: |\n"
            "| SQLite | 127182 | 136253 | ≥ 50000: yes | 588 | 588 | 588 | 588 | ≤ 1000: yes | 2.9 | ≤ 50: yes | 1.00, 0.14 |\n"
            "| SQLite (NORMAL) | 1 | 2 | ≥ 50000: no | 1 | 1 | 1 | 1 | ≤ 1000: yes | 2.9 | ≤ 50: yes | 1.00, 0.14 |\n")
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "worker.md"
            path.write_text(report)
            self.assertEqual(summarize.run_line("3", "B", path), "3\tB\t127182\t136253")

    def test_a_malformed_line_names_its_place(self) -> None:
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "runs.tsv"
            path.write_text("0\told\t100\n")
            with self.assertRaisesRegex(ValueError, "runs.tsv:1: expected 4"):
                summarize.read_runs(path)

    def test_quads_without_both_binaries_are_refused(self) -> None:
        with self.assertRaisesRegex(ValueError, "no quad has runs of both"):
            summarize.compare([("0", "old", 1.0, 1.0)], "old", "new")


if __name__ == "__main__":
    unittest.main()

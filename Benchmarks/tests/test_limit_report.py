"""Benchmarks/limit/report.py: the verdict cell of its summary (worker / (a') against the target), the
table of the worker at a deeper window, and the CPU ceiling.

    python3 -m unittest discover -s Benchmarks/tests -v      # any Python 3.10+, no packages
"""

from __future__ import annotations

import sys
import unittest
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCHMARKS / "limit"))
import report  # noqa: E402


class VerdictTest(unittest.TestCase):
    def test_a_ratio_just_under_the_target_never_prints_as_the_target(self) -> None:
        for ratio in (0.697, 0.6996, 0.69999):
            cell, met = report.verdict(ratio)
            self.assertEqual(met, "missed", ratio)
            self.assertNotIn("70.0", cell, ratio)
        self.assertEqual(report.verdict(0.697), ("**69.7 %**", "missed"))

    def test_the_target_itself_and_above_are_met(self) -> None:
        self.assertEqual(report.verdict(0.70), ("**70.0 %**", "met"))
        self.assertEqual(report.verdict(0.9712), ("**97.1 %**", "met"))

    def test_a_lower_target_is_honoured(self) -> None:
        self.assertEqual(report.verdict(0.62, target=0.6)[1], "met")
        self.assertEqual(report.verdict(0.59, target=0.6)[1], "missed")


class DeeperWindowTest(unittest.TestCase):
    """The table of the worker at 2,000 and at a deeper window, from fabricated round reports."""

    def test_rates_ratios_and_cpu_are_the_medians_of_the_rounds(self) -> None:
        rounds = range(1, 4)
        database = "SQLite (synchronous=FULL)"
        stores = {r: {(database, "a'", "creates"): 200_000.0} for r in rounds}
        shallow = {r: {("SQLite", "creates"): rate, ("SQLite", "cpu"): 12.0}
                   for r, rate in zip(rounds, (110_000.0, 120_000.0, 130_000.0))}
        deep = {r: {("SQLite", "creates"): rate, ("SQLite", "cpu"): cpu}
                for r, rate, cpu in zip(rounds, (150_000.0, 139_980.0, 160_000.0), (11.0, 11.4, 11.2))}
        lines = report.deeper_window_section(8000, stores, shallow, deep, rounds)
        rows = [line for line in lines if line.startswith("| SQLite | creates |")]
        self.assertEqual(
            rows, ["| SQLite | creates | 120,000 | 150,000 | 60.0 % | 75.0 % | 12.0 / 11.2 |"])
        self.assertIn("8,000 requests in flight", lines[0])

    def test_a_database_missing_from_a_run_gets_no_row(self) -> None:
        rounds = range(1, 2)
        stores = {1: {("PostgreSQL", "a'", "updates"): 50_000.0}}
        shallow = {1: {("PostgreSQL", "updates"): 40_000.0, ("PostgreSQL", "cpu"): 12.0}}
        lines = report.deeper_window_section(8000, stores, shallow, {1: {}}, rounds)
        self.assertFalse([line for line in lines if line.startswith("| PostgreSQL")])


class CeilingTest(unittest.TestCase):
    """The CPU ceiling: cores / (worker + client CPU per request), against (a')."""

    def test_the_ceiling_is_the_cores_over_the_cpu_per_request(self) -> None:
        rounds = range(1, 4)
        database = "SQLite (synchronous=FULL)"
        stores = {r: {(database, "a'", "creates"): 244_212.0, (database, "a'", "updates"): 220_654.0} for r in rounds}
        workers = {r: {("SQLite", "creates"): rate, ("SQLite", "updates"): rate, ("SQLite", "cpu"): cpu,
                       ("SQLite", "client cpu"): 1.1}
                   for r, rate, cpu in zip(rounds, (130_000.0, 134_000.0, 120_000.0), (11.0, 12.0, 13.0))}
        lines = report.ceiling_section(2, stores, workers, rounds)
        rows = [line for line in lines if line.startswith("| SQLite |")]
        # 2 cores / (12.0 + 1.1) µs = 152,672 requests/s: 62.5 % of 244,212, 69.1 % of 220,654.
        self.assertEqual(rows, ["| SQLite | 12.0 | 1.1 | 152,672 | 62.5 % | 69.1 % | 53.2 % / 58.9 % |"])

    def test_a_run_without_client_cpu_gets_no_row(self) -> None:
        stores = {1: {("PostgreSQL", "a'", "creates"): 70_000.0}}
        workers = {1: {("PostgreSQL", "creates"): 50_000.0, ("PostgreSQL", "cpu"): 12.0}}
        lines = report.ceiling_section(2, stores, workers, range(1, 2))
        self.assertFalse([line for line in lines if line.startswith("| PostgreSQL")])


if __name__ == "__main__":
    unittest.main()

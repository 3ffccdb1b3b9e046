"""The verdict cell of Benchmarks/limit/report.py's summary (worker / (a') against the target).

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


if __name__ == "__main__":
    unittest.main()

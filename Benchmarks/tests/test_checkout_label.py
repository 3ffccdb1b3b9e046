"""The commit a benchmark report names: what Benchmarks/build built, not the checkout as it is when
the report is written (a file edited while a run goes on is not in the binaries it measured).

    python3 -m unittest discover -s Benchmarks/tests -v      # any Python 3.10+, no packages
"""

from __future__ import annotations

import os
import subprocess
import sys
import unittest
from pathlib import Path
from unittest import mock

BENCHMARKS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCHMARKS / "harness"))
import signal_bench  # noqa: E402


class CheckoutLabelTest(unittest.TestCase):
    def test_the_label_recorded_at_build_time_wins_over_the_checkout_now(self) -> None:
        with mock.patch.dict(os.environ, {"SIGNAL_BENCH_CHECKOUT": "abc1234"}):
            self.assertEqual(signal_bench.checkout(), "abc1234")

    def test_without_a_build_the_label_is_the_checkout_now(self) -> None:
        environment = {key: value for key, value in os.environ.items() if key != "SIGNAL_BENCH_CHECKOUT"}
        with mock.patch.dict(os.environ, environment, clear=True):
            self.assertEqual(signal_bench.checkout(), signal_bench.checkout_now())

    def test_building_records_the_label_for_the_reports(self) -> None:
        # The release build itself is replaced: what is tested is the label it leaves behind.
        script = (
            f'source "{BENCHMARKS}/build"\n'
            "swift_build_release() { return 0; }\n"
            "unset SIGNAL_BENCH_CHECKOUT\n"
            "build_benchmark_binaries signal-worker 2>/dev/null\n"
            'printf "%s" "$SIGNAL_BENCH_CHECKOUT"\n'
        )
        recorded = subprocess.run(["bash", "-c", script], capture_output=True, text=True, check=True).stdout
        self.assertEqual(recorded, signal_bench.checkout_now())
        self.assertRegex(recorded, r"^([0-9a-f]{7,}|unknown)( \+ uncommitted changes)?$")


if __name__ == "__main__":
    unittest.main()

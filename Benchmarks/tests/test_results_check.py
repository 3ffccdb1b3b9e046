"""The regression check of ``Benchmarks/run --check`` (Benchmarks/harness/results.py) on fabricated results.

    python3 -m unittest discover -s Benchmarks/tests -v      # any Python 3.10+, no packages
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCHMARKS / "harness"))
import results  # noqa: E402


def summary(rates: dict[str, list[float]], cpu: dict[str, list[float]], failed=()) -> dict:
    """A save_benchmark summary: per-round saves/s and CPU µs per save, creates and updates alike."""
    rounds = len(next(iter(rates.values())))
    per_round = [{f"{phase}.save": rates[phase][i], f"{phase}.cpu_us": cpu[phase][i]}
                 for i in range(rounds) for phase in ("create", "update")]
    merged = [{**per_round[2 * i], **per_round[2 * i + 1]} for i in range(rounds)]
    return {"failed": list(failed), "per_round": merged}


def django_results(sync_rate: float = 600.0, baseline_sync_rate: float | None = None,
                   none_rate: float = 1000.0) -> dict:
    """A two-database, two-pattern run; ``sync_rate``: sync's saves/s (the in-process receiver does 500);
    ``baseline_sync_rate``: with it, the bridge configurations also ran with a ``--baseline`` bridge,
    the same as this one but for sync's rate; ``none_rate``: no receiver's saves/s."""
    configs = {"none": (none_rate, 500.0), "in_process": (500.0, 900.0), "sync": (sync_rate, 800.0),
               "async": (950.0, 530.0), "outbox": (820.0, 700.0)}
    if baseline_sync_rate is not None:
        configs |= {"sync@baseline": (baseline_sync_rate, 800.0), "async@baseline": (950.0, 530.0),
                    "outbox@baseline": (820.0, 700.0)}
    summaries = {}
    for db in ("SQLite", "PostgreSQL"):
        for suffix in ("", "+atomic"):
            for name, (rate, cpu) in configs.items():
                mode, _, variant = name.partition("@")
                key = mode + suffix + ("@" + variant if variant else "")
                summaries.setdefault(db, {})[key] = summary(
                    {"create": [rate * 0.9, rate, rate * 1.1], "update": [rate * 0.9, rate, rate * 1.1]},
                    {"create": [cpu, cpu, cpu], "update": [cpu, cpu, cpu]})
    return results.django_save({"command": "fabricated"}, summaries, "fabricated for the unit test",
                               baseline="abc1234" if baseline_sync_rate is not None else None)


def callgrind_results(create: int = 250_000, update: int = 200_000) -> dict:
    return {"schema": results.SCHEMA, "benchmark": "bridge-callgrind",
            "checks": {"sync save() path, creates: instructions per save": {"value": create, "better": "lower"},
                       "sync save() path, updates: instructions per save": {"value": update, "better": "lower"}}}


class CheckTests(unittest.TestCase):
    def test_the_same_results_pass(self):
        committed = {"django-save.json": django_results(), "bridge-callgrind.json": callgrind_results()}
        failures, passed, skipped = results.check(committed, copy.deepcopy(committed))
        self.assertEqual(failures, [])
        self.assertEqual(skipped, [])
        self.assertGreater(len(passed), 40)

    def test_a_change_within_15_percent_passes(self):
        committed = {"django-save.json": django_results(600.0), "bridge-callgrind.json": callgrind_results()}
        current = {"django-save.json": django_results(520.0),  # sync / in_process: 1.2 -> 1.04 (-13 %)
                   "bridge-callgrind.json": callgrind_results(create=285_000)}  # +14 %
        failures, _, _ = results.check(committed, current)
        self.assertEqual(failures, [])

    def test_a_ratio_that_regressed_more_than_15_percent_fails_and_is_named(self):
        committed = {"django-save.json": django_results(600.0)}
        current = {"django-save.json": django_results(480.0)}  # sync / in_process: 1.2 -> 0.96 (-20 %)
        failures, _, _ = results.check(committed, current)
        self.assertTrue(failures)
        self.assertTrue(all("sync" in line for line in failures), failures)
        self.assertTrue(any("SQLite autocommit: saves/s of sync / in_process, creates" in line
                            and "regressed by more than 15 %" in line for line in failures), failures)

    def test_an_improvement_passes(self):
        committed = {"django-save.json": django_results(600.0)}
        current = {"django-save.json": django_results(900.0)}
        self.assertEqual(results.check(committed, current)[0], [])

    def test_more_instructions_than_15_percent_fail(self):
        committed = {"bridge-callgrind.json": callgrind_results(create=250_000)}
        current = {"bridge-callgrind.json": callgrind_results(create=290_000)}  # +16 %
        failures, _, _ = results.check(committed, current)
        self.assertEqual(len(failures), 1)
        self.assertIn("creates: instructions per save", failures[0])

    def test_fewer_instructions_pass(self):
        committed = {"bridge-callgrind.json": callgrind_results(create=250_000)}
        current = {"bridge-callgrind.json": callgrind_results(create=150_000)}
        self.assertEqual(results.check(committed, current)[0], [])

    def test_a_missing_key_fails(self):
        committed = {"django-save.json": django_results()}
        current = copy.deepcopy(committed)
        key = "PostgreSQL atomic: saves/s of async / none, updates"
        del current["django-save.json"]["checks"][key]
        failures, _, _ = results.check(committed, current)
        self.assertEqual(len(failures), 1)
        self.assertIn(key, failures[0])
        self.assertIn("missing", failures[0])

    def test_a_failed_configuration_fails(self):
        committed = {"django-save.json": django_results()}
        current = copy.deepcopy(committed)
        current["django-save.json"]["checks"]["SQLite autocommit: saves/s of sync / none, creates"]["value"] = None
        failures, _, _ = results.check(committed, current)
        self.assertEqual(len(failures), 1)
        self.assertIn("no value", failures[0])

    def test_a_file_not_re_run_is_skipped_not_failed(self):
        committed = {"django-save.json": django_results(), "worker-throughput.json": {
            "schema": 1, "checks": {"SQLite: profiles/s of the Swift worker / celery": {"value": 200.0,
                                                                                         "better": "higher"}}}}
        failures, _, skipped = results.check(committed, {"django-save.json": django_results()})
        self.assertEqual(failures, [])
        self.assertEqual(skipped, ["worker-throughput.json"])

    def test_the_command_exits_1_on_a_regression_and_0_otherwise(self):
        with tempfile.TemporaryDirectory() as tmp:
            old, new = Path(tmp, "old"), Path(tmp, "new")
            old.mkdir()
            new.mkdir()
            results.write(old / "bridge-callgrind.json", callgrind_results(create=250_000))
            results.write(new / "bridge-callgrind.json", callgrind_results(create=300_000))
            run = [sys.executable, str(BENCHMARKS / "report"), "check", str(new), "--committed", str(old)]
            r = subprocess.run(run, capture_output=True, text=True)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("FAILED  bridge-callgrind.json: sync save() path, creates: instructions per save", r.stdout)
            results.write(new / "bridge-callgrind.json", callgrind_results(create=251_000))
            r = subprocess.run(run, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


class ConfirmationTests(unittest.TestCase):
    """``check(..., confirmation=)``: a regression of a re-run file counts only if the re-run shows it too."""

    KEY = "SQLite autocommit: saves/s of sync / in_process, creates"

    def test_a_regression_the_re_run_does_not_show_passes_and_says_so(self):
        committed = {"django-save.json": django_results(600.0)}
        current = {"django-save.json": django_results(480.0)}  # -20 %
        failures, passed, _ = results.check(committed, current, confirmation={"django-save.json": django_results(590.0)})
        self.assertEqual(failures, [])
        line = next(line for line in passed if self.KEY in line)
        self.assertIn("in the re-run", line)
        self.assertIn("not confirmed", line)

    def test_a_regression_the_re_run_shows_too_fails_with_both_values(self):
        committed = {"django-save.json": django_results(600.0)}
        current = {"django-save.json": django_results(480.0)}  # -20 %
        failures, _, _ = results.check(committed, current, confirmation={"django-save.json": django_results(470.0)})
        line = next(line for line in failures if self.KEY in line)
        self.assertIn("again in the re-run (0.94)", line)

    def test_only_the_figures_that_regressed_are_judged_on_the_re_run(self):
        # A re-run that is worse everywhere does not fail figures that passed the first time.
        committed = {"django-save.json": django_results(600.0)}
        failures, _, _ = results.check(committed, copy.deepcopy(committed),
                                       confirmation={"django-save.json": django_results(300.0)})
        self.assertEqual(failures, [])

    def test_files_the_re_run_does_not_have_fail_as_without_it(self):
        committed = {"bridge-callgrind.json": callgrind_results(create=250_000)}
        current = {"bridge-callgrind.json": callgrind_results(create=300_000)}
        failures, _, _ = results.check(committed, current, confirmation={"django-save.json": django_results()})
        self.assertEqual(len(failures), 1)
        self.assertIn("instructions per save", failures[0])

    def test_a_figure_without_a_value_fails_whatever_the_re_run_says(self):
        committed = {"django-save.json": django_results()}
        current = copy.deepcopy(committed)
        current["django-save.json"]["checks"][self.KEY]["value"] = None
        failures, _, _ = results.check(committed, current, confirmation={"django-save.json": django_results()})
        self.assertEqual(len(failures), 1)
        self.assertIn("no value", failures[0])

    def test_a_re_run_without_the_figure_confirms_the_regression(self):
        committed = {"django-save.json": django_results(600.0)}
        current = {"django-save.json": django_results(480.0)}
        second = django_results(600.0)
        del second["checks"][self.KEY]
        failures, _, _ = results.check(committed, current, confirmation={"django-save.json": second})
        self.assertTrue(any(self.KEY in line and "the re-run has no value" in line for line in failures), failures)

    def test_the_command_takes_the_re_run_with_confirm(self):
        with tempfile.TemporaryDirectory() as tmp:
            old, new, again = Path(tmp, "old"), Path(tmp, "new"), Path(tmp, "again")
            for folder in (old, new, again):
                folder.mkdir()
            results.write(old / "django-save.json", django_results(600.0))
            results.write(new / "django-save.json", django_results(480.0))
            results.write(again / "django-save.json", django_results(600.0))
            run = [sys.executable, str(BENCHMARKS / "report"), "check", str(new), "--committed", str(old)]
            self.assertEqual(subprocess.run(run, capture_output=True, text=True).returncode, 1)
            r = subprocess.run(run + ["--confirm", str(again)], capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            results.write(again / "django-save.json", django_results(480.0))
            r = subprocess.run(run + ["--confirm", str(again)], capture_output=True, text=True)
            self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
            self.assertIn("again in the re-run", r.stdout)


class InRunBaselineTests(unittest.TestCase):
    """A Django-side run with a ``--baseline`` bridge is held to that bridge, measured in the same rounds."""

    KEY = "SQLite autocommit: saves/s of sync / in_process, creates"

    def test_the_baseline_rows_give_their_own_checks_and_stay_out_of_the_tables(self):
        run = django_results(sync_rate=600.0, baseline_sync_rate=400.0)
        self.assertEqual(run["baseline"]["bridge"], "abc1234")
        self.assertEqual(run["checks"][self.KEY]["value"], 1.2)
        self.assertEqual(run["baseline"]["checks"][self.KEY]["value"], 0.8)
        # Figures without the bridge are the same rows in both.
        key = "PostgreSQL atomic: CPU µs/save of in_process / none, updates"
        self.assertEqual(run["baseline"]["checks"][key], run["checks"][key])
        self.assertFalse(any("@" in key for configs in run["configurations"].values() for key in configs))
        self.assertNotIn("baseline", django_results())

    def test_a_run_is_held_to_its_baseline_not_to_the_committed_file(self):
        committed = {"django-save.json": django_results(600.0)}
        # The machine's hour moved every ratio against no receiver (none twice as fast: -50 %), but
        # this bridge and the baseline's measured the same side by side: nothing regressed.
        current = {"django-save.json": django_results(600.0, baseline_sync_rate=600.0, none_rate=2000.0)}
        self.assertTrue(results.check(committed, current)[0])
        failures, passed, _ = results.check(results.in_run_references(committed, current), current)
        self.assertEqual(failures, [])
        self.assertTrue(any("the baseline bridge (abc1234) in the same run" in line for line in passed))

    def test_a_regression_against_the_baseline_in_the_same_run_fails(self):
        committed = {"django-save.json": django_results(480.0)}  # the committed file would let 480 pass
        current = {"django-save.json": django_results(480.0, baseline_sync_rate=600.0)}
        failures, _, _ = results.check(results.in_run_references(committed, current), current)
        self.assertTrue(any(self.KEY in line and "regressed by more than 15 %" in line for line in failures), failures)

    def test_files_without_a_baseline_keep_the_committed_reference(self):
        committed = {"bridge-callgrind.json": callgrind_results(create=250_000)}
        current = {"bridge-callgrind.json": callgrind_results(create=300_000)}
        self.assertEqual(results.in_run_references(committed, current), committed)

    def test_the_command_says_what_it_holds_the_run_to(self):
        with tempfile.TemporaryDirectory() as tmp:
            old, new = Path(tmp, "old"), Path(tmp, "new")
            old.mkdir()
            new.mkdir()
            results.write(old / "django-save.json", django_results(600.0))
            results.write(new / "django-save.json", django_results(480.0, baseline_sync_rate=480.0))
            run = [sys.executable, str(BENCHMARKS / "report"), "check", str(new), "--committed", str(old)]
            r = subprocess.run(run, capture_output=True, text=True)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("django-save.json is held to the baseline bridge (abc1234) in the same run", r.stderr)


class TargetTests(unittest.TestCase):
    def test_targets_are_judged_on_the_medians(self):
        rows = django_results(600.0)["targets"]
        sync_rate = [r for r in rows if r["database"] == "SQLite" and r["pattern"] == "autocommit"
                     and r["config"] == "sync" and r["target"] == "saves/s ≥ in-process"]
        self.assertEqual(len(sync_rate), 1)
        self.assertTrue(sync_rate[0]["met"])
        self.assertAlmostEqual(sync_rate[0]["values"]["create"]["ratio"], 1.2)
        async_cpu = [r for r in rows if r["config"] == "async" and "CPU" in r["target"]]
        self.assertTrue(all(r["met"] for r in async_cpu))  # 530 ≤ 500 + 40

    def test_the_block_between_the_markers_is_replaced_and_nothing_else(self):
        text = "a\n" + "\n".join(results.block("cost-table", "x", ["old"])) + "\nb\n"
        out = results.replace_block(text, "cost-table", ["new 1", "new 2"])
        self.assertTrue(out.startswith("a\n<!-- begin generated cost-table"))
        self.assertIn("\nnew 1\nnew 2\n<!-- end generated cost-table -->\nb\n", out)
        self.assertNotIn("old", out)
        with self.assertRaises(ValueError):
            results.replace_block("no markers", "cost-table", ["x"])

    def test_the_results_file_is_json(self):
        json.dumps(django_results())


class AllocationLinesTest(unittest.TestCase):
    def test_each_worker_with_its_total_and_socket_thread(self) -> None:
        data = {"schema": results.SCHEMA, "benchmark": "worker-allocations",
                "meta": {"command": "Benchmarks/allocations/run --requests 50000", "date": "D", "commit": "abc"},
                "workers": {"SQLite (synchronous=FULL)":
                            {"allocations per request": {"total": 23.14, "socket thread": 13.0}},
                            "SQLite (synchronous=NORMAL)":
                            {"allocations per request": {"total": 23.46, "socket thread": 12.96}}}}
        (line,) = results.allocation_lines(data)
        self.assertIn("SQLite (synchronous=FULL) 23.1 (13.0 on the socket thread), "
                      "SQLite (synchronous=NORMAL) 23.5 (13.0 on the socket thread)", line)
        self.assertIn("`Benchmarks/allocations/run --requests 50000`, D, commit abc", line)


if __name__ == "__main__":
    unittest.main()

"""``signal_bench.start_worker`` on ports it finds itself: a port found free but taken before the
worker binds it is replaced by another, with a real ``signal-worker`` (the debug build of
``scripts/test``, else the release build; ``SIGNAL_WORKER_BINARY`` to choose).

    python3 -m unittest discover -s Benchmarks/tests -v
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import unittest
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(BENCHMARKS / "harness"))
import signal_bench  # noqa: E402


def worker_binary() -> Path | None:
    chosen = os.environ.get("SIGNAL_WORKER_BINARY")
    if chosen:
        return Path(chosen)
    for build in ("debug", "release"):
        path = BENCHMARKS.parent / ".build" / build / "signal-worker"
        if path.exists():
            return path
    return None


@unittest.skipIf(worker_binary() is None, "no signal-worker built (swift build --product signal-worker)")
class WorkerPortTests(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        # A port that is taken: something listens on it, as a client's or another worker's would be.
        self.taken = socket.socket()
        self.taken.bind(("127.0.0.1", 0))
        self.taken.listen()
        self.addCleanup(self.taken.close)
        self.taken_port = self.taken.getsockname()[1]

    def start(self, **ports):
        store = f"sqlite://{self.tmp.name}/db.sqlite3"
        return signal_bench.start_worker(worker_binary(), store, Path(self.tmp.name) / "worker.log",
                                         extra_args=["--create-schema"], timeout=60, **ports)

    def test_a_port_taken_before_the_worker_binds_it_is_replaced(self):
        found = iter([self.taken_port])
        real = signal_bench.free_port
        # The first port "found free" is the taken one; the next ones are really free.
        signal_bench.free_port = lambda: next(found, None) or real()
        self.addCleanup(setattr, signal_bench, "free_port", real)
        proc = self.start(bind=signal_bench.ANY_LOOPBACK_PORT)
        self.addCleanup(proc.stop)
        self.assertNotEqual(proc.bind, f"tcp://127.0.0.1:{self.taken_port}")
        self.assertTrue(signal_bench.ping(worker_binary(), proc.bind))
        self.assertIn("Address already in use", proc.logfile.read_text())

    def test_a_port_the_caller_chose_is_not_replaced(self):
        with self.assertRaises(RuntimeError) as raised:
            self.start(bind=f"tcp://127.0.0.1:{self.taken_port}")
        self.assertIn("already in use", str(raised.exception).lower())


if __name__ == "__main__":
    unittest.main()

"""metrics.jsonl reading and concurrent appending."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import runctl  # noqa: E402
from support import IsolatedTest  # noqa: E402

WRITER = r"""
import os, sys, time
import runctl
name, lines, go = sys.argv[1], int(sys.argv[2]), sys.argv[3]
run = runctl.init(system_metrics=False, capture_git=False, capture_pip=False)
while not os.path.exists(go):  # start both writers together
    time.sleep(0.001)
for i in range(lines):
    big = i % 10 == 0
    run.log({"writer": name, "seq": i, "pad": (name * 3072)[:3072] if big else ""}, step=i)
run.finish()
"""


class ReadMetricsTest(IsolatedTest):
    def write(self, content: bytes) -> str:
        path = os.path.join(self.tmp, "metrics.jsonl")
        with open(path, "wb") as f:
            f.write(content)
        return path

    def test_torn_last_line_and_bad_lines_are_skipped(self) -> None:
        path = self.write(
            b'{"_idx": 0, "_timestamp": "2026-11-22T20:15:00.000Z", "loss": 1}\n'
            b"not json at all\n"
            b"\n"
            b"[1, 2]\n"
            b"\xff\xfe garbage bytes\n"
            b'{"_idx": 1, "_timestamp": "2026-11-22T20:15:01.000Z", "loss": 2}\n'
            b'{"_idx": 2, "_timestamp": "2026-11-22T20:15:02.000Z", "lo'
        )
        self.assertEqual([r["_idx"] for r in runctl.read_metrics(path)], [0, 1])
        self.assertEqual([r["_idx"] for r in runctl.read_metrics(self.tmp)], [0, 1])  # the directory works too

    def test_complete_last_line_without_newline_is_still_unfinished(self) -> None:
        # It parses, but a writer may still be mid-write: the spec says skip it.
        path = self.write(b'{"_idx": 0, "_timestamp": "x"}\n{"_idx": 1, "_timestamp": "y"}')
        self.assertEqual([r["_idx"] for r in runctl.read_metrics(path)], [0])

    def test_missing_file_reads_as_empty(self) -> None:
        self.assertEqual(runctl.read_metrics(os.path.join(self.tmp, "nope.jsonl")), [])
        self.assertEqual(runctl.read_metrics(self.tmp), [])


class ConcurrentAppendTest(IsolatedTest):
    def test_two_processes_never_interleave_within_a_line(self) -> None:
        run_dir = os.path.join(self.tmp, "shared-run")
        os.makedirs(run_dir)
        with open(os.path.join(run_dir, "meta.json"), "w") as f:  # as the supervisor would have
            json.dump({"id": "20261122-201500-0000aa", "name": "shared", "tags": [], "status": "running",
                       "started_at": "2026-11-22T20:15:00.000Z", "writer": "supervisor", "pid": 1,
                       "hostname": "elsewhere", "heartbeat_at": None}, f)
        go = os.path.join(self.tmp, "go")
        env = self.child_env(RUNCTL_RUN_DIR=run_dir, RUNCTL_RUN_ID="20261122-201500-0000aa")
        lines = 2000
        procs = [
            subprocess.Popen([sys.executable, "-c", WRITER, name, str(lines), go], env=env, cwd=self.work, stderr=subprocess.PIPE)
            for name in ("a", "b")
        ]
        open(go, "w").close()
        for proc in procs:
            _, err = proc.communicate(timeout=300)
            self.assertEqual(proc.returncode, 0, err.decode())

        with open(os.path.join(run_dir, "metrics.jsonl"), "rb") as f:
            data = f.read()
        self.assertTrue(data.endswith(b"\n"))
        raw_lines = data.split(b"\n")[:-1]
        self.assertEqual(len(raw_lines), 2 * lines)
        seen = {"a": [], "b": []}
        big = 0
        for raw in raw_lines:
            record = json.loads(raw)  # every single line parses
            self.assert_spec_metric_line(record)
            seen[record["writer"]].append(record["seq"])
            self.assertEqual(record["step"], record["seq"])
            if record["pad"]:
                self.assertEqual(record["pad"], record["writer"] * 3072)
                big += 1
        self.assertEqual(big, 2 * lines // 10)
        self.assertEqual(seen["a"], list(range(lines)))  # each writer's lines in its own order
        self.assertEqual(seen["b"], list(range(lines)))


if __name__ == "__main__":
    unittest.main()

"""RuntimeController.enqueue from several processes at once, consumed while they write."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import runctl  # noqa: E402
from support import IsolatedTest, read_lines  # noqa: E402

WRITERS = 4
PER_WRITER = 250

PUBLISHER = r"""
import os, sys, time
import runctl
queue, name, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
while not os.path.exists(go):  # start every writer together
    time.sleep(0.001)
for i in range(count):
    runctl.RuntimeController.enqueue(queue, "counter.add", name, i, pad="x" * (i % 7) * 300)
"""


class ConcurrentEnqueueTest(IsolatedTest):
    def test_four_writers_one_consumer_each_command_applied_once(self) -> None:
        queue = os.path.join(self.tmp, "control")
        go = os.path.join(self.tmp, "go")
        ctl = runctl.RuntimeController(queue)
        self.addCleanup(ctl.close)
        applied = []
        ctl.register("counter.add", lambda ctx, name, i, pad="": applied.append((name, i)))
        procs = [
            subprocess.Popen([sys.executable, "-c", PUBLISHER, queue, "w%d" % w, str(PER_WRITER), go],
                             env=self.child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            for w in range(WRITERS)
        ]
        self.addCleanup(lambda: [p.kill() for p in procs if p.poll() is None])
        open(go, "w").close()
        acks = []
        while any(p.poll() is None for p in procs):  # consume while the writers append
            acks.extend(ctl.poll_and_apply(None, every_s=0))
        for p in procs:
            _, err = p.communicate(timeout=60)
            self.assertEqual(p.returncode, 0, err.decode())
        acks.extend(ctl.poll_and_apply(None, every_s=0))  # what was written after the last poll

        total = WRITERS * PER_WRITER
        self.assertEqual(len(applied), total)
        self.assertEqual(len(set(applied)), total)
        per_writer = collections.defaultdict(list)
        for name, i in applied:
            per_writer[name].append(i)
        for w in range(WRITERS):  # each writer's commands in its own order
            self.assertEqual(per_writer["w%d" % w], list(range(PER_WRITER)))
        self.assertEqual([a["status"] for a in acks], ["applied"] * total)
        self.assertEqual([a["seq"] for a in acks], list(range(total)))
        self.assertEqual(read_lines(os.path.join(queue, "acks.jsonl")), acks)
        commands = read_lines(os.path.join(queue, "commands.jsonl"))  # every line whole JSON
        self.assertEqual(len(commands), total)
        self.assertEqual(len({c["id"] for c in commands}), total)
        self.assertEqual(ctl.state_dict()["seq"], total)
        self.assertEqual(ctl.state_dict()["offset"], os.path.getsize(os.path.join(queue, "commands.jsonl")))
        self.assertFalse(os.path.exists(os.path.join(queue, "commands.jsonl.lock")))


if __name__ == "__main__":
    unittest.main()

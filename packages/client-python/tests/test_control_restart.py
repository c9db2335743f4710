"""A trainer killed with SIGKILL mid-run and restarted from its checkpoint
(which holds the controller's state_dict) applies no command twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import runctl  # noqa: E402
from support import IsolatedTest  # noqa: E402

TRAINER = r"""
import json, os, sys, time
import runctl
queue, ckpt, log = sys.argv[1], sys.argv[2], sys.argv[3]
ctl = runctl.RuntimeController(queue)
ctl.register("lr.scale", lambda ctx, v: ctx.append(v))
applied = []
if os.path.exists(ckpt):
    with open(ckpt) as f:
        ctl.load_state_dict(json.load(f)["control"])
step = 0
while True:
    for ack in ctl.poll_and_apply(applied, every_s=0):
        with open(log, "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "id": ack["id"], "status": ack["status"]}) + "\n")
    # a checkpoint every step: the model would be here; the cursor goes with it
    tmp = ckpt + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"step": step, "control": ctl.state_dict()}, f)
    os.replace(tmp, ckpt)
    step += 1
    time.sleep(0.01)
"""


class RestartTest(IsolatedTest):
    def start(self, queue: str, ckpt: str, log: str, cursor_file_gone: bool) -> subprocess.Popen:
        if cursor_file_gone:  # prove the checkpoint, not the cursor file, carries the position
            for name in os.listdir(queue):
                if name.startswith("cursor."):
                    os.unlink(os.path.join(queue, name))
        proc = subprocess.Popen([sys.executable, "-c", TRAINER, queue, ckpt, log], env=self.child_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        return proc

    def wait_applied(self, log: str, n: int) -> list:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if os.path.exists(log):
                with open(log) as f:
                    lines = [json.loads(line) for line in f if line.endswith("\n")]
                if len(lines) >= n:
                    return lines
            time.sleep(0.02)
        self.fail("timed out waiting for %d acks" % n)

    def test_sigkill_and_restart_from_checkpoint_does_not_reapply(self) -> None:
        queue = os.path.join(self.tmp, "control")
        ckpt = os.path.join(self.tmp, "ckpt.json")
        log = os.path.join(self.tmp, "acks.log")
        os.makedirs(queue)
        first = self.start(queue, ckpt, log, cursor_file_gone=False)
        ids = [runctl.RuntimeController.enqueue(queue, "lr.scale", 0.5)["id"] for _ in range(3)]
        self.wait_applied(log, 3)
        time.sleep(0.1)  # let a checkpoint be written after the last apply
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        ids += [runctl.RuntimeController.enqueue(queue, "lr.scale", 0.25)["id"] for _ in range(2)]
        second = self.start(queue, ckpt, log, cursor_file_gone=True)
        lines = self.wait_applied(log, 5)
        time.sleep(0.5)  # room for a wrong re-apply to show up
        second.send_signal(signal.SIGKILL)
        second.wait(timeout=30)
        with open(log) as f:
            lines = [json.loads(line) for line in f if line.endswith("\n")]
        self.assertEqual([entry["id"] for entry in lines], ids)
        self.assertEqual({entry["pid"] for entry in lines[:3]}, {first.pid})
        self.assertEqual({entry["pid"] for entry in lines[3:]}, {second.pid})


if __name__ == "__main__":
    unittest.main()

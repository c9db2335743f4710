"""RuntimeController across 2 real torch.distributed ranks (gloo, CPU): same commands at the same call."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import runctl  # noqa: E402
from support import IsolatedTest, read_json, read_lines  # noqa: E402

TORCH_PYTHON = "/usr/bin/python3"


def _has_torch(python: str) -> bool:
    if not os.access(python, os.X_OK):
        return False
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"
    try:
        return subprocess.run([python, "-c", probe], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


HAS_TORCH = _has_torch(TORCH_PYTHON)

RANK_SCRIPT = r"""
import json, os, sys, time
import torch
import torch.distributed as dist
import runctl

queue, out_dir = sys.argv[1], sys.argv[2]
dist.init_process_group("gloo")  # env://: RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT
rank = dist.get_rank()
ctl = runctl.RuntimeController()  # queue from RUNCTL_CONTROL_DIR, rank from the group

def validate_mult(v):
    v = float(v)
    assert v > 0
    return v

def apply_lr_multiplier(ctx, mult):
    for pg in ctx["optimizer"].param_groups:
        pg["lr"] *= mult

applied = []
ctl.register("optimizer.lr.multiplier", apply_lr_multiplier, validate_mult)
ctl.register("trace.mark", lambda ctx, label: applied.append([ctx["call"], label]))
saved = []
ctl.on_checkpoint(lambda ctx: saved.append(ctx["call"]))
model = torch.nn.Linear(2, 1)
optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
ctx = {"optimizer": optimizer, "call": 0}
returned = []
pace = 0.002 if rank == 0 else 0.006  # the ranks run at different speeds
for call in range(4000):
    ctx["call"] = call
    time.sleep(pace * (1 + call % 3))
    for ack in ctl.poll_and_apply(ctx, every_s=0.05):
        returned.append([call, ack["id"], ack["status"], ack["rank"], ack["world_size"]])
    if call == 0:
        open(os.path.join(out_dir, "polling.rank%d" % rank), "w").close()
    if ctl.stop_requested:
        break
with open(os.path.join(out_dir, "result.rank%d.json" % rank), "w") as f:
    json.dump({"rank": rank, "calls": call + 1, "applied": applied, "saved": saved, "returned": returned,
               "lr": optimizer.param_groups[0]["lr"], "state": ctl.state_dict()}, f)
dist.destroy_process_group()
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@unittest.skipUnless(HAS_TORCH, "%s has no torch (CI installs python3-torch)" % TORCH_PYTHON)
class TwoRankTest(IsolatedTest):
    def test_both_ranks_apply_the_same_commands_at_the_same_call(self) -> None:
        queue = os.path.join(self.tmp, "control")
        out = os.path.join(self.tmp, "out")
        os.makedirs(out)
        port = str(free_port())
        procs = []
        for rank in range(2):
            env = self.child_env(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                                 MASTER_PORT=port, RUNCTL_CONTROL_DIR=queue, OMP_NUM_THREADS="1")
            procs.append(subprocess.Popen([TORCH_PYTHON, "-c", RANK_SCRIPT, queue, out], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        self.addCleanup(lambda: [p.kill() for p in procs if p.poll() is None])

        deadline = time.monotonic() + 90
        while not all(os.path.exists(os.path.join(out, "polling.rank%d" % r)) for r in range(2)):
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                self.fail("ranks did not start polling:\n" + "\n".join(
                    p.communicate(timeout=30)[1].decode()[-2000:] for p in procs if p.poll() is not None))
            time.sleep(0.01)

        enqueue = runctl.RuntimeController.enqueue
        sent = [enqueue(queue, "trace.mark", "a"), enqueue(queue, "optimizer.lr.multiplier", "0.5"),
                enqueue(queue, "optimizer.lr.multiplier", -1), enqueue(queue, "no.such.control", 1)]
        time.sleep(0.2)  # the next ones most likely land at later polls (not asserted)
        sent += [enqueue(queue, "checkpoint.save"), enqueue(queue, "trace.mark", "b")]
        time.sleep(0.2)
        sent.append(enqueue(queue, "run.stop"))
        for p in procs:
            _, err = p.communicate(timeout=90)
            self.assertEqual(p.returncode, 0, err.decode()[-3000:])

        r0, r1 = (read_json(os.path.join(out, "result.rank%d.json" % r)) for r in range(2))
        self.assertEqual([label for _, label in r0["applied"]], ["a", "b"])
        self.assertEqual(r0["applied"], r1["applied"])  # same commands, same call index
        self.assertEqual(r0["saved"], r1["saved"])
        self.assertEqual(len(r0["saved"]), 1)
        self.assertEqual(r0["calls"], r1["calls"])  # run.stop applied at the same call on both
        self.assertEqual(r0["lr"], 0.5)
        self.assertEqual(r1["lr"], 0.5)
        self.assertEqual(r0["state"], r1["state"])
        self.assertEqual(r0["state"]["seq"], len(sent))
        # What each poll returned: identical but for the rank.
        self.assertEqual([[c, i, s] for c, i, s, _, _ in r0["returned"]], [[c, i, s] for c, i, s, _, _ in r1["returned"]])
        self.assertEqual({(rk, ws) for _, _, _, rk, ws in r0["returned"]}, {(0, 2)})
        self.assertEqual({(rk, ws) for _, _, _, rk, ws in r1["returned"]}, {(1, 2)})
        self.assertLess(len({c for c, *_ in r0["returned"]}), r0["calls"])

        acks = read_lines(os.path.join(queue, "acks.jsonl"))
        expected = ["applied", "applied", "failed", "rejected", "applied", "applied", "applied"]
        for seq, (cmd, status) in enumerate(zip(sent, expected)):
            mine = [a for a in acks if a["id"] == cmd["id"]]
            self.assertEqual(sorted((a["rank"], a["world_size"], a["seq"], a["status"]) for a in mine),
                             [(0, 2, seq, status), (1, 2, seq, status)], cmd)
        for rank in range(2):
            self.assertEqual(read_json(os.path.join(queue, "cursor.rank%d.json" % rank)), r0["state"])
        controls = read_json(os.path.join(queue, "controls.json"))
        self.assertIn("trace.mark", {c["path"] for c in controls["controls"]})


if __name__ == "__main__":
    unittest.main()

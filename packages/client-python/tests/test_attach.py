"""Attached runs: the supervisor created the run directory and owns its status."""

from __future__ import annotations

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import runctl  # noqa: E402
from support import IsolatedTest, read_json  # noqa: E402

QUIET = dict(system_metrics=False, capture_git=False, capture_pip=False)
RUN_ID = "20261122-201500-abc123"


def supervisor_meta(run_dir: str) -> dict:
    """meta.json the way the supervisor writes it before starting the script."""
    return {
        "id": RUN_ID,
        "name": "train",
        "tags": ["sweep"],
        "started_at": "2026-11-22T20:15:00.123Z",
        "finished_at": None,
        "status": "running",
        "summary": None,
        "config_file": "config.json",
        "metrics_file": "metrics.jsonl",
        "artifacts_dir": "artifacts",
        "git": None,
        "git_file": None,
        "requirements_file": None,
        "exit_code": None,
        "error": None,
        "attempts": [{"number": 1, "started_at": "2026-11-22T20:15:00.123Z", "finished_at": None, "status": "running", "exit_code": None}],
        "heartbeat_at": "2026-11-22T20:15:10.000Z",
        "pid": 1,  # the supervisor: alive on every Linux machine
        "hostname": "supervisor-host",
        "writer": "supervisor",
        "command": ["python", "train.py"],
        "placement": {"provider": "local"},  # a key this client does not know
    }


class AttachTest(IsolatedTest):
    def setUp(self) -> None:
        super().setUp()
        self.run_dir = os.path.join(self.tmp, "supervised", RUN_ID)
        os.makedirs(self.run_dir)
        self.meta_path = os.path.join(self.run_dir, "meta.json")
        with open(self.meta_path, "w") as f:
            json.dump(supervisor_meta(self.run_dir), f)
        with open(os.path.join(self.run_dir, "config.json"), "w") as f:
            json.dump({"epochs": 10, "lr": 0.1}, f)
        os.environ["RUNCTL_RUN_DIR"] = self.run_dir
        os.environ["RUNCTL_RUN_ID"] = RUN_ID

    def test_attach_writes_into_the_given_directory_without_touching_status(self) -> None:
        before = read_json(self.meta_path)
        run = runctl.init(name="resnet", config={"lr": 0.01, "batch": 32}, tags=["cpu", "sweep"], **QUIET)
        self.assertEqual(run.run_dir, self.run_dir)
        self.assertEqual(run.run_id, RUN_ID)
        self.assertTrue(run.attached)
        self.assertFalse(run.owns_status)
        self.assertEqual(run.config, {"epochs": 10, "lr": 0.01, "batch": 32})
        run.log({"loss": 0.5}, step=1)
        run.summary({"best": 0.5})
        run.finish()  # closes; the supervisor sets the status when the process exits

        self.assertEqual(os.listdir(self.tmp + "/supervised"), [RUN_ID])
        self.assertFalse(os.path.exists(self.runs))  # no new run was created
        after = read_json(self.meta_path)
        for key in ("status", "heartbeat_at", "pid", "hostname", "writer", "finished_at", "exit_code", "attempts", "command", "placement", "started_at"):
            self.assertEqual(after[key], before[key], key)
        self.assertEqual(after["name"], "resnet")
        self.assertEqual(after["tags"], ["sweep", "cpu"])
        self.assertEqual(after["summary"], {"best": 0.5})
        self.assertEqual(read_json(os.path.join(self.run_dir, "config.json")), {"epochs": 10, "lr": 0.01, "batch": 32})
        self.assertEqual(runctl.read_metrics(self.run_dir)[0]["loss"], 0.5)

    def test_unhandled_exception_in_attached_process_leaves_status_to_the_supervisor(self) -> None:
        proc = self.run_python(
            "import runctl\nrun = runctl.init(system_metrics=False, capture_git=False, capture_pip=False)\n"
            "run.log({'loss': 1.0})\nraise RuntimeError('boom')\n",
            env=self.child_env(RUNCTL_RUN_DIR=self.run_dir, RUNCTL_RUN_ID=RUN_ID),
        )
        self.assertEqual(proc.returncode, 1)
        meta = read_json(self.meta_path)
        self.assertEqual(meta["status"], "running")
        self.assertIsNone(meta["error"])

    def test_idx_continues_after_existing_lines(self) -> None:
        with open(os.path.join(self.run_dir, "metrics.jsonl"), "w") as f:
            for i in range(3):
                f.write(json.dumps({"_idx": i, "_timestamp": "2026-11-22T20:15:00.000Z", "loss": 1.0}) + "\n")
            f.write('{"_idx": 3, "_timest')  # torn by the previous attempt's crash
        run = runctl.init(**QUIET)
        run.log({"loss": 0.5})
        run.finish()
        records = runctl.read_metrics(self.run_dir)
        self.assertEqual([r["_idx"] for r in records], [0, 1, 2, 3])
        self.assertEqual(records[-1]["loss"], 0.5)

    def test_whirr_variables_attach_too(self) -> None:
        del os.environ["RUNCTL_RUN_DIR"], os.environ["RUNCTL_RUN_ID"]
        os.environ["WHIRR_RUN_DIR"] = self.run_dir
        os.environ["WHIRR_RUN_ID"] = RUN_ID
        run = runctl.init(**QUIET)
        run.log({"x": 1})
        run.finish()
        self.assertEqual(run.run_dir, self.run_dir)
        self.assertEqual(read_json(self.meta_path)["writer"], "supervisor")

    def test_missing_meta_is_created_and_then_owned(self) -> None:
        os.remove(self.meta_path)
        run = runctl.init(name="orphan", **QUIET)
        self.assertTrue(run.owns_status)
        run.finish()
        meta = read_json(self.meta_path)
        self.assert_spec_meta(meta)
        self.assertEqual((meta["id"], meta["writer"], meta["status"]), (RUN_ID, "python", "completed"))


if __name__ == "__main__":
    unittest.main()

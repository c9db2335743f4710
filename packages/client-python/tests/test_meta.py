"""Run ids, timestamps, runs-dir resolution, meta.json rewrites and the "lost" rule."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import runctl  # noqa: E402
from runctl import _clock, _env, _meta  # noqa: E402
from support import ISO, RUN_ID, IsolatedTest, read_json  # noqa: E402


class IdsAndTimestampsTest(unittest.TestCase):
    def test_run_id_format(self) -> None:
        self.assertEqual(runctl.new_run_id(0)[:16], "19700101-000000-")
        rid = runctl.new_run_id(1795378500.5)
        self.assertRegex(rid, RUN_ID)
        self.assertTrue(rid.startswith("20261122-201500-"))
        self.assertNotEqual(runctl.new_run_id(), runctl.new_run_id())

    def test_timestamp_format_and_round_trip(self) -> None:
        self.assertEqual(_clock.iso_from_epoch(1795378500.125), "2026-11-22T20:15:00.125Z")
        self.assertEqual(_clock.iso_from_epoch(1795378500.999999), "2026-11-22T20:15:00.999Z")
        now = time.time()
        stamp = _clock.now_iso()
        self.assertRegex(stamp, ISO)
        self.assertLess(abs(_clock.parse_iso(stamp) - now), 5)
        self.assertAlmostEqual(_clock.parse_iso("2026-11-22T20:15:00.123Z"), 1795378500.123, places=3)
        self.assertAlmostEqual(_clock.parse_iso("2026-11-22T21:15:00.1+01:00"), 1795378500.1, places=3)
        self.assertAlmostEqual(_clock.parse_iso("2026-11-22T20:15:00.123456789Z"), 1795378500.123456, places=5)
        self.assertIsNone(_clock.parse_iso("yesterday"))
        self.assertIsNone(_clock.parse_iso(None))


class RunsDirTest(IsolatedTest):
    def test_precedence(self) -> None:
        env = {"XDG_CONFIG_HOME": os.path.join(self.tmp, "xdg")}
        project = os.path.join(self.tmp, "proj")
        deep = os.path.join(project, "src", "models")
        os.makedirs(deep)
        self.assertEqual(_env.runs_dir(deep, env), os.path.join(deep, "runs"))

        user = os.path.join(self.tmp, "xdg", "runctl", "config.toml")
        os.makedirs(os.path.dirname(user))
        with open(user, "w") as f:
            f.write('[local]\nruns_dir = "/data/user-runs"\n')
        self.assertEqual(_env.runs_dir(deep, env), "/data/user-runs")

        with open(os.path.join(project, ".runctl.toml"), "w") as f:
            f.write('# project\n[nats]\nurl = "nats://x"\n\n[local]\nname = "p"\nruns_dir = "experiments"  # here\n[aws]\nruns_dir = "no"\n')
        self.assertEqual(_env.runs_dir(deep, env), os.path.join(project, "experiments"))  # relative to the file

        self.assertEqual(_env.runs_dir(deep, dict(env, RUNCTL_LOCAL_RUNS_DIR="r2")), os.path.join(project, "r2"))
        self.assertEqual(_env.runs_dir(deep, dict(env, RUNCTL_RUNS_DIR="/abs/runs")), "/abs/runs")
        self.assertEqual(_env.runs_dir(deep, dict(env, RUNCTL_RUNS_DIR="rel")), os.path.join(deep, "rel"))

    def test_minimal_toml_reader_for_old_pythons(self) -> None:
        scan = _env._scan_local_runs_dir
        self.assertEqual(scan('[local]\nruns_dir = "a"\n'), "a")
        self.assertEqual(scan("[local]\nruns_dir = 'c:\\runs'\n"), "c:\\runs")
        self.assertEqual(scan('local.runs_dir = "b"\n[local]\nname = "x"\n'), "b")
        self.assertIsNone(scan('[aws]\nruns_dir = "a"\n'))
        self.assertIsNone(scan('[local.sub]\nruns_dir = "a"\n'))

    def test_attach_target(self) -> None:
        self.assertIsNone(_env.attach_target({}))
        self.assertEqual(_env.attach_target({"WHIRR_RUN_DIR": "/w", "WHIRR_RUN_ID": "i"}), ("/w", "i"))
        self.assertEqual(_env.attach_target({"RUNCTL_RUN_DIR": "/r", "WHIRR_RUN_DIR": "/w"}), ("/r", None))


class MetaFileTest(IsolatedTest):
    def test_rewrite_keeps_unknown_keys_and_leaves_no_temp_files(self) -> None:
        run_dir = os.path.join(self.tmp, "r")
        os.makedirs(run_dir)
        with open(os.path.join(run_dir, "meta.json"), "w") as f:
            json.dump({"id": "x", "status": "running", "cost_usd": 1.5, "placement": {"provider": "aws"}}, f)
        _meta.update_meta(run_dir, lambda m: m.update(summary={"loss": float("nan"), "ok": 1}))
        meta = read_json(os.path.join(run_dir, "meta.json"))
        self.assertEqual(meta["cost_usd"], 1.5)
        self.assertEqual(meta["placement"], {"provider": "aws"})
        self.assertEqual(meta["summary"], {"loss": None, "ok": 1})  # strict JSON: NaN stored as null
        self.assertEqual(sorted(os.listdir(run_dir)), ["meta.json"])

    def test_lost_rule(self) -> None:
        proc = subprocess.Popen([sys.executable, "-c", "pass"])
        proc.wait()
        here = socket.gethostname()
        now = time.time()
        fresh = _clock.iso_from_epoch(now - 5)
        stale = _clock.iso_from_epoch(now - 120)
        self.assertIsNone(_meta.lost_reason({"status": "running", "pid": os.getpid(), "hostname": here, "heartbeat_at": fresh}))
        self.assertIn("gone", _meta.lost_reason({"status": "running", "pid": proc.pid, "hostname": here, "heartbeat_at": fresh}))
        self.assertIn("heartbeat", _meta.lost_reason({"status": "running", "pid": 1, "hostname": "other", "heartbeat_at": stale}))
        self.assertIsNone(_meta.lost_reason({"status": "completed", "pid": proc.pid, "hostname": here, "heartbeat_at": stale}))
        self.assertIsNone(_meta.lost_reason({"status": "pending", "hostname": "other", "heartbeat_at": None}))

        run_dir = os.path.join(self.tmp, "lost")
        os.makedirs(run_dir)
        with open(os.path.join(run_dir, "meta.json"), "w") as f:
            json.dump({"id": "lost", "status": "running", "pid": proc.pid, "hostname": here, "heartbeat_at": fresh, "error": None}, f)
        reported = runctl.read_meta(run_dir)
        self.assertEqual(reported["status"], "failed")
        self.assertTrue(reported["error"].startswith("lost: "))
        self.assertEqual(runctl.read_meta(run_dir, raw=True)["status"], "running")
        self.assertEqual(read_json(os.path.join(run_dir, "meta.json"))["status"], "running")  # file untouched

    def test_heartbeat_is_refreshed_by_the_owner(self) -> None:
        run = runctl.init(system_metrics=False, capture_git=False, capture_pip=False, _heartbeat_interval=0.05)
        path = os.path.join(run.run_dir, "meta.json")
        first = read_json(path)["heartbeat_at"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and read_json(path)["heartbeat_at"] == first:
            time.sleep(0.05)
        run.finish()
        self.assertNotEqual(read_json(path)["heartbeat_at"], first)


if __name__ == "__main__":
    unittest.main()

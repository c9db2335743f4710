"""Shared test helpers: an isolated environment per test, spec checks written out by hand, subprocesses."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import unittest
from typing import Any, Dict, Optional
from unittest import mock

PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$")
STATUSES = {"pending", "provisioning", "running", "completed", "failed", "cancelled", "preempted"}

# Variables that would make init() attach to somebody else's run or pick another runs dir.
_ISOLATE = ("RUNCTL_RUN_DIR", "RUNCTL_RUN_ID", "WHIRR_RUN_DIR", "WHIRR_RUN_ID", "RUNCTL_RUNS_DIR",
            "RUNCTL_LOCAL_RUNS_DIR", "RANK", "LOCAL_RANK", "CUDA_VISIBLE_DEVICES", "RUNCTL_BIN",
            "RUNCTL_CONTROL_DIR", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


class IsolatedTest(unittest.TestCase):
    """Each test gets a temp dir (``self.tmp``), a runs dir (``self.runs``) and its own cwd."""

    def setUp(self) -> None:
        self.tmp = tempfile.mkdtemp(prefix="runctl-py-test-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.runs = os.path.join(self.tmp, "runs")
        env = mock.patch.dict(os.environ, {"XDG_CONFIG_HOME": os.path.join(self.tmp, "xdg")})
        env.start()
        self.addCleanup(env.stop)
        for var in _ISOLATE:
            os.environ.pop(var, None)
        os.environ["RUNCTL_RUNS_DIR"] = self.runs
        cwd = os.getcwd()
        self.work = os.path.join(self.tmp, "work")
        os.makedirs(self.work)
        os.chdir(self.work)
        self.addCleanup(os.chdir, cwd)

    def child_env(self, **extra: str) -> Dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _ISOLATE}
        env["RUNCTL_RUNS_DIR"] = self.runs
        env["PYTHONPATH"] = PKG_DIR + os.pathsep + env.get("PYTHONPATH", "")
        env.update(extra)
        return env

    def run_python(self, code: str, env: Optional[Dict[str, str]] = None, timeout: float = 120.0) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            cwd=self.work,
            env=env if env is not None else self.child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
        )

    def only_run_dir(self) -> str:
        entries = sorted(os.listdir(self.runs))
        self.assertEqual(len(entries), 1, entries)
        return os.path.join(self.runs, entries[0])

    # -- the spec, checked key by key (docs/run-directory.md) -------------------

    def assert_iso(self, value: Any, what: str) -> None:
        self.assertIsInstance(value, str, what)
        self.assertRegex(value, ISO, what)

    def assert_optional(self, meta: Dict[str, Any], key: str, kind: Any) -> None:
        self.assertIn(key, meta)
        if meta[key] is not None:
            self.assertIsInstance(meta[key], kind, key)

    def assert_spec_meta(self, meta: Dict[str, Any]) -> None:
        self.assertIsInstance(meta["id"], str)
        self.assertRegex(meta["id"], RUN_ID)
        self.assertIsInstance(meta["name"], str)
        self.assertIsInstance(meta["tags"], list)
        for tag in meta["tags"]:
            self.assertIsInstance(tag, str)
        self.assert_iso(meta["started_at"], "started_at")
        self.assertIn("finished_at", meta)
        if meta["finished_at"] is not None:
            self.assert_iso(meta["finished_at"], "finished_at")
        self.assertIn(meta["status"], STATUSES)
        self.assert_optional(meta, "summary", dict)
        self.assertEqual(meta["config_file"], "config.json")
        self.assertEqual(meta["metrics_file"], "metrics.jsonl")
        self.assertEqual(meta["artifacts_dir"], "artifacts")
        self.assert_optional(meta, "git", dict)
        self.assert_optional(meta, "git_file", str)
        self.assertIn(meta.get("requirements_file"), (None, "requirements.txt", "uv.lock"))
        self.assertIn("exit_code", meta)
        if meta["exit_code"] is not None:
            self.assertIs(type(meta["exit_code"]), int)
        self.assert_optional(meta, "error", str)
        self.assertIsInstance(meta["attempts"], list)
        self.assertGreaterEqual(len(meta["attempts"]), 1)
        for number, attempt in enumerate(meta["attempts"], start=1):
            self.assertEqual(attempt["number"], number)
            self.assert_iso(attempt["started_at"], "attempt.started_at")
            if attempt.get("finished_at") is not None:
                self.assert_iso(attempt["finished_at"], "attempt.finished_at")
            self.assertIn(attempt["status"], STATUSES)
            self.assertIn("exit_code", attempt)
        self.assertIn("heartbeat_at", meta)
        if meta["heartbeat_at"] is not None:
            self.assert_iso(meta["heartbeat_at"], "heartbeat_at")
        self.assertIs(type(meta["pid"]), int)
        self.assertIsInstance(meta["hostname"], str)
        self.assertIn(meta["writer"], ("supervisor", "python"))

    def assert_spec_metric_line(self, record: Dict[str, Any]) -> None:
        self.assertIs(type(record["_idx"]), int)
        self.assertGreaterEqual(record["_idx"], 0)
        self.assert_iso(record["_timestamp"], "_timestamp")
        if "step" in record:
            self.assertIs(type(record["step"]), int)


def read_json(path: str) -> Any:
    with open(path, "r", encoding="utf-8") as f:
        return json.load(f)


def read_lines(path: str) -> list:
    with open(path, "r", encoding="utf-8") as f:
        return [json.loads(line) for line in f.read().splitlines()]

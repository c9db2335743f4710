"""Trainctl against a stand-in ``runctl`` script that prints the CLI's --json envelopes."""

from __future__ import annotations

import os
import stat
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from runctl import Trainctl, TrainctlError  # noqa: E402
from support import IsolatedTest  # noqa: E402

# Behaves by its first argument; otherwise echoes its argv inside a success envelope.
FAKE_RUNCTL = r"""#!/bin/sh
case "$1" in
  show)
    if [ "$2" = "nope" ]; then
      printf '%s\n' '{"success": false, "error": {"code": "run_not_found", "message": "No run matches nope", "hint": "Run `runctl runs` to list runs."}}'
      exit 1
    fi ;;
  doctor)
    echo "Segmentation fault in plugin loader" >&2
    echo "this is not json"
    exit 3 ;;
  providers)
    printf '%s\n' '{"success": false, "error": {"code": "config_invalid", "message": "bad .runctl.toml"}}'
    exit 3 ;;
esac
printf '{"success": true, "argv": ['
sep=""
for a in "$@"; do printf '%s"%s"' "$sep" "$a"; sep=", "; done
printf ']}\n'
"""


class TrainctlTest(IsolatedTest):
    def setUp(self) -> None:
        super().setUp()
        bindir = os.path.join(self.tmp, "bin")
        os.makedirs(bindir)
        self.binary = os.path.join(bindir, "runctl")
        with open(self.binary, "w") as f:
            f.write(FAKE_RUNCTL)
        os.chmod(self.binary, os.stat(self.binary).st_mode | stat.S_IEXEC)

    def test_namespaces_map_to_commands_with_json(self) -> None:
        tc = Trainctl(self.binary)
        self.assertEqual(tc.checkpoint.list("ckpts")["argv"], ["checkpoint", "list", "ckpts", "--json"])
        self.assertEqual(tc.checkpoint.info("ckpts/e1.pt")["argv"], ["checkpoint", "info", "ckpts/e1.pt", "--json"])
        self.assertEqual(tc.runs()["argv"], ["runs", "--json"])
        self.assertEqual(tc.show("20261122")["argv"], ["show", "20261122", "--json"])
        self.assertEqual(
            tc.aws.create_instance("g4dn.xlarge", spot=True, spot_max_price=0.5)["argv"],
            ["aws", "create", "g4dn.xlarge", "--spot", "--max-price", "0.5", "--json"],
        )
        self.assertEqual(tc.aws.terminate("i-1")["argv"], ["aws", "terminate", "i-1", "--yes", "--json"])
        self.assertEqual(tc.aws.stop("i-1", dry_run=True)["argv"], ["aws", "stop", "i-1", "--dry-run", "--json"])
        self.assertEqual(tc.resources.list(platform="aws")["argv"], ["resources", "list", "--provider", "aws", "--json"])
        # The script's own arguments stay after `--`, runctl's --json before it.
        self.assertEqual(
            tc.aws.train("i-1", "train.py", ["--epochs", "3"], nproc_per_node=2)["argv"],
            ["aws", "train", "i-1", "train.py", "--nproc-per-node", "2", "--json", "--", "--epochs", "3"],
        )
        self.assertEqual(
            tc.aws.train("i-1", "train.py", resume="20261203-173216-bf68d1")["argv"],
            ["aws", "train", "i-1", "train.py", "--resume", "20261203-173216-bf68d1", "--json", "--"],
        )
        self.assertEqual(
            tc.aws.create_instance("m5.large", store="s3://b/p", idle_stop=5)["argv"],
            ["aws", "create", "m5.large", "--store", "s3://b/p", "--idle-stop", "5", "--json"],
        )
        self.assertEqual(
            tc.aws.monitor("i-1", follow=True, tail=20)["argv"],
            ["aws", "monitor", "i-1", "--follow", "--tail", "20", "--json"],
        )
        self.assertEqual(tc.aws.processes("i-1")["argv"], ["aws", "processes", "i-1", "--json"])
        self.assertEqual(tc.aws.logs("i-1", tail=50)["argv"], ["aws", "logs", "i-1", "--tail", "50", "--json"])
        self.assertEqual(tc.resources.stop_all()["argv"], ["resources", "stop-all", "--yes", "--json"])
        result = tc._run(["logs", "abc"])
        self.assertIs(result["success"], True)

    def test_error_envelope_raises_with_code_hint_and_exit_code(self) -> None:
        with self.assertRaises(TrainctlError) as caught:
            Trainctl(self.binary).show("nope")
        err = caught.exception
        self.assertEqual(err.message, "No run matches nope")
        self.assertEqual(err.code, "run_not_found")
        self.assertEqual(err.hint, "Run `runctl runs` to list runs.")
        self.assertEqual(err.exit_code, 1)
        self.assertIn("run_not_found", str(err))

        with self.assertRaises(TrainctlError) as caught:
            Trainctl(self.binary).providers()
        self.assertEqual((caught.exception.code, caught.exception.hint, caught.exception.exit_code), ("config_invalid", None, 3))

    def test_non_json_stdout_raises_with_stderr(self) -> None:
        with self.assertRaises(TrainctlError) as caught:
            Trainctl(self.binary).doctor()
        err = caught.exception
        self.assertEqual(err.exit_code, 3)
        self.assertEqual(err.code, "invalid_output")
        self.assertIn("Segmentation fault in plugin loader", err.message)
        self.assertIn("this is not json", err.message)

    def test_binary_from_env_then_path(self) -> None:
        os.environ["RUNCTL_BIN"] = self.binary
        self.assertEqual(Trainctl().argv, [self.binary])
        del os.environ["RUNCTL_BIN"]
        os.environ["PATH"] = os.path.dirname(self.binary) + os.pathsep + os.environ.get("PATH", "")
        self.assertEqual(Trainctl().runs()["argv"], ["runs", "--json"])
        os.environ["PATH"] = os.path.join(self.tmp, "empty")
        with self.assertRaises(TrainctlError) as caught:
            Trainctl()
        self.assertEqual(caught.exception.code, "runctl_not_found")


if __name__ == "__main__":
    unittest.main()

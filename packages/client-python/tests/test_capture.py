"""git.json and requirements.txt capture."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import runctl  # noqa: E402
from runctl import _capture  # noqa: E402
from support import IsolatedTest, read_json  # noqa: E402


def git(cwd: str, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main", *args],
        cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


@unittest.skipIf(shutil.which("git") is None, "git is not installed")
class GitCaptureTest(IsolatedTest):
    def setUp(self) -> None:
        super().setUp()
        git(self.work, "init", "-q")
        with open(os.path.join(self.work, "train.py"), "w") as f:
            f.write("print('v1')\n")
        git(self.work, "add", "train.py")
        git(self.work, "commit", "-q", "-m", "first")
        git(self.work, "remote", "add", "origin", "https://alice:s3cret-token@github.com/acme/model.git")

    def test_clean_repository(self) -> None:
        info = _capture.git_info(self.work)
        self.assertRegex(info["commit"], r"^[0-9a-f]{40}$")
        self.assertTrue(info["commit"].startswith(info["short_hash"]))
        self.assertEqual(info["branch"], "main")
        self.assertIs(info["dirty"], False)
        self.assertEqual(info["remote"], "https://github.com/acme/model.git")  # credentials removed
        self.assertEqual(info["diff"], "")
        self.assertIs(info["diff_truncated"], False)

    def test_dirty_repository_diff_and_truncation(self) -> None:
        with open(os.path.join(self.work, "train.py"), "w") as f:
            f.write("print('v2')\n" + "x = 1\n" * 500)
        info = _capture.git_info(self.work)
        self.assertIs(info["dirty"], True)
        self.assertIn("+print('v2')", info["diff"])
        self.assertIs(info["diff_truncated"], False)
        small = _capture.git_info(self.work, diff_limit=100)
        self.assertEqual(len(small["diff"].encode()), 100)
        self.assertIs(small["diff_truncated"], True)
        self.assertEqual(small["diff_bytes"], info["diff_bytes"])

    def test_not_a_repository(self) -> None:
        elsewhere = os.path.join(self.tmp, "plain")
        os.makedirs(elsewhere)
        os.environ["GIT_CEILING_DIRECTORIES"] = self.tmp
        self.assertIsNone(_capture.git_info(elsewhere))

    def test_init_writes_git_json_and_meta_git(self) -> None:
        with open(os.path.join(self.work, "train.py"), "a") as f:
            f.write("print('uncommitted')\n")
        run = runctl.init(system_metrics=False, capture_pip=False)
        run.finish()  # waits for the capture thread
        info = read_json(os.path.join(run.run_dir, "git.json"))
        meta = read_json(os.path.join(run.run_dir, "meta.json"))
        self.assertEqual(meta["git_file"], "git.json")
        self.assertEqual(meta["git"], {k: info[k] for k in ("commit", "short_hash", "branch", "dirty", "remote")})
        self.assertIn("+print('uncommitted')", info["diff"])
        self.assertIs(meta["git"]["dirty"], True)


class RequirementsCaptureTest(IsolatedTest):
    def test_uv_lock_is_copied_when_present(self) -> None:
        with open(os.path.join(self.work, "uv.lock"), "w") as f:
            f.write("version = 1\n")
        run = runctl.init(system_metrics=False, capture_git=False)
        run.finish()
        with open(os.path.join(run.run_dir, "uv.lock")) as f:
            self.assertEqual(f.read(), "version = 1\n")
        self.assertEqual(read_json(os.path.join(run.run_dir, "meta.json"))["requirements_file"], "uv.lock")

    def test_pip_freeze(self) -> None:
        has_pip = subprocess.run([sys.executable, "-m", "pip", "--version"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
        written = _capture.capture_requirements(self.tmp, self.work)
        if not has_pip:
            self.assertIsNone(written)  # skipped silently
            return
        self.assertEqual(written, "requirements.txt")
        self.assertTrue(os.path.isfile(os.path.join(self.tmp, "requirements.txt")))

    def test_missing_interpreter_is_not_fatal(self) -> None:
        self.assertIsNone(_capture.capture_requirements(self.tmp, self.work, python=os.path.join(self.tmp, "no-python")))


if __name__ == "__main__":
    unittest.main()

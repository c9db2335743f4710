"""save_artifact never writes outside artifacts/."""

from __future__ import annotations

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import runctl  # noqa: E402
from support import IsolatedTest  # noqa: E402


class SaveArtifactTest(IsolatedTest):
    def setUp(self) -> None:
        super().setUp()
        self.run = runctl.init(system_metrics=False, capture_git=False, capture_pip=False)
        self.addCleanup(self.run.finish)
        self.source = os.path.join(self.work, "weights.pt")
        with open(self.source, "w") as f:
            f.write("tensor")

    def test_refuses_names_escaping_artifacts(self) -> None:
        for name in ("../x", "a/../../x", "..", "/etc/passwd", "", "   ", "ok/..\\..\\x", "a\x00b"):
            with self.subTest(name=name):
                with self.assertRaises(ValueError):
                    self.run.save_artifact(self.source, name=name)
        self.assertFalse(os.path.exists(os.path.join(self.run.run_dir, "x")))
        self.assertEqual(os.listdir(os.path.join(self.run.run_dir, "artifacts")), [])

    def test_refuses_a_symlinked_directory_leading_outside(self) -> None:
        outside = os.path.join(self.tmp, "outside")
        os.makedirs(outside)
        os.symlink(outside, os.path.join(self.run.run_dir, "artifacts", "link"))
        with self.assertRaises(runctl.ArtifactNameError):
            self.run.save_artifact(self.source, name="link/x")
        self.assertEqual(os.listdir(outside), [])

    def test_copies_files_directories_and_replaces(self) -> None:
        first = self.run.save_artifact(self.source, name="./best/./weights.pt")
        self.assertEqual(first, os.path.join(os.path.realpath(self.run.run_dir), "artifacts", "best", "weights.pt"))
        with open(self.source, "w") as f:
            f.write("newer")
        self.run.save_artifact(self.source, name="best/weights.pt")
        with open(first) as f:
            self.assertEqual(f.read(), "newer")
        folder = os.path.join(self.work, "plots")
        os.makedirs(folder)
        with open(os.path.join(folder, "loss.svg"), "w") as f:
            f.write("<svg/>")
        copied = self.run.save_artifact(folder)
        self.assertTrue(os.path.isfile(os.path.join(copied, "loss.svg")))
        leftovers = [n for n in os.listdir(os.path.dirname(first)) if n.endswith(".tmp")]
        self.assertEqual(leftovers, [])
        with self.assertRaises(FileNotFoundError):
            self.run.save_artifact(os.path.join(self.work, "missing.bin"))


if __name__ == "__main__":
    unittest.main()

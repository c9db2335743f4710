"""Hostile JSON (the hardening issue): nested too deep for Python's json, or lines too long."""

from __future__ import annotations

import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import runctl  # noqa: E402
from runctl._client import MAX_JSON_DEPTH, json_text_depth  # noqa: E402
from runctl._jsonl import MAX_LINE_BYTES, read_jsonl  # noqa: E402


class JsonDepthTest(unittest.TestCase):
    def test_depth_of_text_ignores_brackets_in_strings(self) -> None:
        self.assertEqual(json_text_depth('{"a":[1,{"b":"[[[\\"{{"}]}'), 3)
        self.assertEqual(json_text_depth("[" * 100_000 + "]" * 100_000), 100_000)
        self.assertEqual(json_text_depth("3"), 0)

    def test_submit_refuses_a_deep_config_before_sending_it(self) -> None:
        config: dict = {}
        for _ in range(3000):
            config = {"a": config}
        # Port 9 on loopback: nothing listens, so reaching the network would raise ServerUnreachable instead.
        client = runctl.Client("http://127.0.0.1:9")
        with self.assertRaises(ValueError) as caught:
            client.submit_job(["true"], config=config)
        self.assertIn("nested more than %d levels deep" % MAX_JSON_DEPTH, str(caught.exception))


class JsonlLimitsTest(unittest.TestCase):
    def test_read_jsonl_skips_deep_and_over_long_lines(self) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "metrics.jsonl")
            with open(path, "w") as f:
                f.write('{"_idx": 0}\n')
                f.write("[" * 5000 + "]" * 5000 + "\n")
                f.write('{"_idx": 1, "blob": "%s"}\n' % ("x" * (MAX_LINE_BYTES + 1)))
                f.write('{"_idx": 2}\n')
            self.assertEqual([r["_idx"] for r in read_jsonl(path)], [0, 2])


if __name__ == "__main__":
    unittest.main()

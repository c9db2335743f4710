"""System metrics: GPU selection from CUDA_VISIBLE_DEVICES, nvidia-smi parsing, /proc sampling."""

from __future__ import annotations

import os
import stat
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import runctl  # noqa: E402
from runctl import _system  # noqa: E402
from support import IsolatedTest, read_lines  # noqa: E402

SMI_OUTPUT = (
    "0, NVIDIA A100-SXM4-40GB, 97, 30000, 40960, 64, GPU-aaaa1111-0000-0000-0000-000000000000\n"
    "1, NVIDIA A100-SXM4-40GB, 3, 1024, 40960, 40, GPU-bbbb2222-0000-0000-0000-000000000000\n"
    "2, NVIDIA A100-SXM4-40GB, [N/A], 0, 40960, [N/A], GPU-cccc3333-0000-0000-0000-000000000000\n"
    "3, NVIDIA A100-SXM4-40GB, 50, 2048, 40960, 55, GPU-dddd4444-0000-0000-0000-000000000000\n"
)
GPUS = _system.parse_nvidia_smi(SMI_OUTPUT)


def indices(selection: str) -> list:
    return [g["index"] for g in _system.select_gpus(GPUS, selection)]


class GpuSelectionTest(unittest.TestCase):
    def test_unset_means_every_gpu(self) -> None:
        self.assertEqual([g["index"] for g in _system.select_gpus(GPUS, None)], [0, 1, 2, 3])

    def test_indices_in_the_order_given(self) -> None:
        self.assertEqual(indices("2"), [2])
        self.assertEqual(indices("3,1"), [3, 1])
        self.assertEqual(indices(" 1 , 2 "), [1, 2])
        self.assertEqual(indices("1,1,2"), [1, 2])

    def test_empty_or_minus_one_means_none(self) -> None:
        self.assertEqual(indices(""), [])
        self.assertEqual(indices("-1"), [])
        self.assertEqual(indices("NoDevFiles"), [])

    def test_list_ends_at_first_invalid_entry_as_in_cuda(self) -> None:
        self.assertEqual(indices("0,1,-1,2"), [0, 1])
        self.assertEqual(indices("1,7,2"), [1])  # 7 names no device
        self.assertEqual(indices("2,,3"), [2])

    def test_uuids_and_unique_prefixes(self) -> None:
        self.assertEqual(indices("GPU-cccc3333-0000-0000-0000-000000000000"), [2])
        self.assertEqual(indices("GPU-dddd,GPU-AAAA1111"), [3, 0])
        self.assertEqual(indices("GPU-"), [])

    def test_parse_nvidia_smi(self) -> None:
        self.assertEqual(GPUS[0]["name"], "NVIDIA A100-SXM4-40GB")
        self.assertEqual(GPUS[0]["util"], 97.0)
        self.assertEqual(GPUS[0]["mem_used_gb"], round(30000 / 1024, 3))
        self.assertEqual(GPUS[0]["mem_total_gb"], 40.0)
        self.assertEqual(GPUS[0]["temperature_c"], 64.0)
        self.assertNotIn("util", GPUS[2])  # [N/A] is left out, not zero
        self.assertNotIn("temperature_c", GPUS[2])
        self.assertEqual(_system.parse_nvidia_smi("garbage\n\n"), [])


@unittest.skipUnless(os.path.exists("/proc/stat") and os.path.exists("/proc/meminfo"), "needs Linux /proc")
class ProcSamplingTest(unittest.TestCase):
    def test_sample_has_the_spec_keys(self) -> None:
        sampler = _system.SystemSampler(cuda_visible_devices=None, nvidia_smi=None)
        sum(i * i for i in range(200000))  # some CPU time between the two readings
        time.sleep(0.05)
        record = sampler.sample()
        for key in ("cpu_percent", "memory_used_gb", "memory_total_gb", "proc_cpu_percent", "proc_rss_gb"):
            self.assertIsInstance(record[key], float, key)
        self.assertGreater(record["memory_total_gb"], 0)
        self.assertLessEqual(record["memory_used_gb"], record["memory_total_gb"])
        self.assertGreater(record["proc_rss_gb"], 0)
        self.assertGreaterEqual(record["cpu_percent"], 0)
        self.assertLessEqual(record["cpu_percent"], 100)
        self.assertNotIn("gpus", record)  # no nvidia-smi: key omitted


class SystemThreadTest(IsolatedTest):
    def test_thread_writes_samples_with_the_visible_gpus(self) -> None:
        # A stand-in for the external nvidia-smi binary, first on PATH.
        bindir = os.path.join(self.tmp, "bin")
        os.makedirs(bindir)
        fake = os.path.join(bindir, "nvidia-smi")
        with open(fake, "w") as f:
            f.write("#!/bin/sh\ncat <<'EOF'\n" + SMI_OUTPUT + "EOF\n")
        os.chmod(fake, os.stat(fake).st_mode | stat.S_IEXEC)
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
        os.environ["CUDA_VISIBLE_DEVICES"] = "3,1"

        run = runctl.init(capture_git=False, capture_pip=False, _system_interval=0.05)
        path = os.path.join(run.run_dir, "system.jsonl")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not runctl.read_metrics(path):
            time.sleep(0.05)
        run.finish()
        samples = read_lines(path)
        self.assertGreaterEqual(len(samples), 1)
        sample = samples[0]
        self.assertRegex(sample["_timestamp"], r"Z$")
        self.assertEqual([g["index"] for g in sample["gpus"]], [3, 1])
        self.assertEqual(set(sample["gpus"][0]), {"index", "name", "util", "mem_used_gb", "mem_total_gb", "temperature_c"})
        self.assertIn("proc_cpu_percent", sample)


if __name__ == "__main__":
    unittest.main()

"""System metrics: a daemon thread appending a sample to ``system.jsonl`` every 10 s.

Sources (Linux): ``/proc/stat`` (host CPU), ``/proc/meminfo`` (host memory),
``os.times()`` (this process's CPU), ``/proc/self/status`` ``VmRSS`` (its
resident memory), and ``nvidia-smi`` for GPUs when it is installed, limited to
the GPUs in ``CUDA_VISIBLE_DEVICES``. Keys a machine cannot provide are left
out; on systems without ``/proc`` only the process CPU share is sampled.
Sizes are GiB (2**30 bytes) under the spec's ``*_gb`` names.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ._clock import now_iso
from ._jsonl import AppendWriter, encode_line

GIB = float(1 << 30)
MIB_PER_GIB = 1024.0
SAMPLE_INTERVAL_S = 10.0
NVIDIA_SMI_TIMEOUT_S = 5.0
NVIDIA_SMI_FIELDS = "index,name,utilization.gpu,memory.used,memory.total,temperature.gpu,uuid"


# --- CPU and memory ---------------------------------------------------------


def read_host_cpu_times(path: str = "/proc/stat") -> Optional[Tuple[float, float]]:
    """``(busy, total)`` jiffies of all CPUs from the ``cpu`` line of /proc/stat."""
    try:
        with open(path, "r") as f:
            line = f.readline()
    except OSError:
        return None
    parts = line.split()
    if not parts or parts[0] != "cpu":
        return None
    try:
        values = [float(v) for v in parts[1:]]
    except ValueError:
        return None
    # user nice system idle iowait irq softirq steal guest guest_nice; guest* are already in user/nice.
    fields = values[:8]
    total = sum(fields)
    idle = sum(fields[3:5])  # idle + iowait
    return total - idle, total


def read_meminfo(path: str = "/proc/meminfo") -> Optional[Tuple[float, float]]:
    """``(used_bytes, total_bytes)``; used is MemTotal − MemAvailable."""
    try:
        with open(path, "r") as f:
            text = f.read()
    except OSError:
        return None
    values: Dict[str, float] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        fields = rest.split()
        if fields:
            try:
                values[name] = float(fields[0]) * 1024.0  # kB
            except ValueError:
                pass
    total = values.get("MemTotal")
    if not total:
        return None
    available = values.get("MemAvailable")
    if available is None:  # kernels before 3.14
        available = values.get("MemFree", 0.0) + values.get("Buffers", 0.0) + values.get("Cached", 0.0)
    return total - available, total


def read_proc_rss(path: str = "/proc/self/status") -> Optional[float]:
    """Resident set size of this process in bytes (``VmRSS``)."""
    try:
        with open(path, "r") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return float(line.split()[1]) * 1024.0
    except (OSError, ValueError, IndexError):
        return None
    return None


def _proc_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


# --- GPUs ---------------------------------------------------------------------


def visible_gpu_selectors(cuda_visible_devices: Optional[str]) -> Optional[List[str]]:
    """The entries of ``CUDA_VISIBLE_DEVICES`` CUDA would honour, or None for "all GPUs".

    Follows CUDA's reading: unset means every GPU; an empty value or ``-1``
    means none; entries are indices or (prefixes of) ``GPU-…`` UUIDs,
    whitespace ignored, and the list ends at the first invalid entry
    (``0,1,-1,2`` → ``0,1``). Duplicates are dropped.
    """
    if cuda_visible_devices is None:
        return None
    selectors: List[str] = []
    for entry in cuda_visible_devices.split(","):
        token = entry.strip()
        if not token:
            break
        if token.isdigit():
            pass
        elif token.upper().startswith("GPU-") and len(token) > 4:
            token = "GPU-" + token[4:].lower()
        else:  # -1, MIG-… (not mapped to a parent GPU here), garbage
            break
        if token not in selectors:
            selectors.append(token)
    return selectors


def select_gpus(gpus: Sequence[Dict[str, Any]], cuda_visible_devices: Optional[str]) -> List[Dict[str, Any]]:
    """The rows of ``gpus`` (each with ``index`` and optionally ``uuid``) that ``cuda_visible_devices`` selects,
    in the order it lists them. Index entries refer to nvidia-smi's numbering (which is CUDA's when
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID``); a UUID prefix selects a GPU when it matches exactly one."""
    selectors = visible_gpu_selectors(cuda_visible_devices)
    if selectors is None:
        return list(gpus)
    chosen: List[Dict[str, Any]] = []
    for selector in selectors:
        if selector.startswith("GPU-"):
            matches = [g for g in gpus if str(g.get("uuid", "")).lower().startswith(selector.lower())]
        else:
            matches = [g for g in gpus if g.get("index") == int(selector)]
        if len(matches) != 1:
            break  # CUDA stops at an entry that names no device
        if matches[0] not in chosen:
            chosen.append(matches[0])
    return chosen


def _number(text: str) -> Optional[float]:
    try:
        return float(text)
    except ValueError:
        return None  # "[N/A]", "[Not Supported]"


def parse_nvidia_smi(output: str) -> List[Dict[str, Any]]:
    """Rows of ``nvidia-smi --query-gpu=<NVIDIA_SMI_FIELDS> --format=csv,noheader,nounits``."""
    gpus: List[Dict[str, Any]] = []
    for line in output.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) < 6:
            continue
        try:
            index = int(cells[0])
        except ValueError:
            continue
        gpu: Dict[str, Any] = {"index": index, "name": cells[1]}
        util = _number(cells[2])
        used = _number(cells[3])
        total = _number(cells[4])
        temp = _number(cells[5])
        if util is not None:
            gpu["util"] = util
        if used is not None:
            gpu["mem_used_gb"] = round(used / MIB_PER_GIB, 3)
        if total is not None:
            gpu["mem_total_gb"] = round(total / MIB_PER_GIB, 3)
        if temp is not None:
            gpu["temperature_c"] = temp
        if len(cells) > 6 and cells[6]:
            gpu["uuid"] = cells[6]
        gpus.append(gpu)
    return gpus


def query_gpus(nvidia_smi: str, cuda_visible_devices: Optional[str]) -> Optional[List[Dict[str, Any]]]:
    try:
        proc = subprocess.run(
            [nvidia_smi, "--query-gpu=" + NVIDIA_SMI_FIELDS, "--format=csv,noheader,nounits"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=NVIDIA_SMI_TIMEOUT_S,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    gpus = select_gpus(parse_nvidia_smi(proc.stdout.decode("utf-8", "replace")), cuda_visible_devices)
    for gpu in gpus:
        gpu.pop("uuid", None)
    return gpus


# --- sampler --------------------------------------------------------------------


class SystemSampler:
    """Computes one ``system.jsonl`` record per call from deltas since the previous call."""

    def __init__(self, cuda_visible_devices: Optional[str] = None, nvidia_smi: Optional[str] = None) -> None:
        self._cuda_visible_devices = cuda_visible_devices
        self._nvidia_smi = nvidia_smi
        self._host = read_host_cpu_times()
        self._proc = _proc_cpu_seconds()
        self._wall = time.monotonic()

    def sample(self) -> Dict[str, Any]:
        record: Dict[str, Any] = {"_timestamp": now_iso()}
        host = read_host_cpu_times()
        if host is not None and self._host is not None:
            busy = host[0] - self._host[0]
            total = host[1] - self._host[1]
            if total > 0:
                record["cpu_percent"] = round(100.0 * busy / total, 1)
        self._host = host
        mem = read_meminfo()
        if mem is not None:
            record["memory_used_gb"] = round(mem[0] / GIB, 3)
            record["memory_total_gb"] = round(mem[1] / GIB, 3)
        proc = _proc_cpu_seconds()
        wall = time.monotonic()
        if wall > self._wall:
            # Share of one CPU, like `top` and psutil: 250.0 is two and a half cores busy.
            record["proc_cpu_percent"] = round(100.0 * (proc - self._proc) / (wall - self._wall), 1)
        self._proc, self._wall = proc, wall
        rss = read_proc_rss()
        if rss is not None:
            record["proc_rss_gb"] = round(rss / GIB, 3)
        if self._nvidia_smi:
            gpus = query_gpus(self._nvidia_smi, self._cuda_visible_devices)
            if gpus is not None:
                record["gpus"] = gpus
        return record


class SystemMetricsThread:
    """A daemon thread writing a ``SystemSampler`` record every ``interval`` seconds."""

    def __init__(self, path: str, interval: float = SAMPLE_INTERVAL_S) -> None:
        self._writer = AppendWriter(path)
        self._interval = interval
        self._stop = threading.Event()
        self._sampler = SystemSampler(
            cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
            nvidia_smi=shutil.which("nvidia-smi"),
        )
        self._thread = threading.Thread(target=self._loop, name="runctl-system-metrics", daemon=True)

    def start(self) -> "SystemMetricsThread":
        self._thread.start()
        return self

    def _loop(self) -> None:
        try:
            while not self._stop.wait(self._interval):
                try:
                    self._writer.write_line(encode_line(self._sampler.sample()))
                except Exception:  # noqa: BLE001 — metrics must never take training down
                    pass
        finally:
            self._writer.close()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

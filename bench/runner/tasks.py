"""The client side of bench/runner/bench.mjs: maps a trivial function over N inputs.

Usage: python tasks.py <N>   (cwd: a project holding bench_mod.py; RUNCTL_* set by bench.mjs)
Prints one JSON object: wall seconds for N tasks, and each task's created→finished (server) in ms.
"""

import json
import os
import sys
import time
from datetime import datetime

sys.path.insert(0, os.getcwd())

import bench_mod  # noqa: E402
import runctl  # noqa: E402


def ts(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def main():
    n = int(sys.argv[1])
    with runctl.Runner("bench-%d" % os.getpid()) as r:
        svc = r.service(bench_mod.noop)
        runctl.get(svc.map(range(20)))  # warm: every worker's executor started, imports paid
        t0 = time.monotonic()
        futures = svc.map(range(n))
        submitted = time.monotonic()
        values = runctl.get(futures)
        t1 = time.monotonic()
        assert values == list(range(n))
        latencies = [
            (ts(f._record["finished_at"]) - ts(f._record["created_at"])) * 1000 for f in futures
        ]
    print(json.dumps({"seconds": t1 - t0, "submit_seconds": submitted - t0, "latencies_ms": latencies}))


if __name__ == "__main__":
    main()

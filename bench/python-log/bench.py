#!/usr/bin/env python3
"""How fast ``run.log`` is against the plainest durable-enough JSONL loop.

baseline: ``f.write(json.dumps({"step", "loss", "acc"}) + "\\n"); f.flush()`` per point
runctl:   ``run.log({"loss", "acc"}, step=i)`` per point (adds ``_idx``, ``_timestamp``)

Both write to files in the same temporary directory. Each round writes N
points with each, interleaved in chunks of 10,000 (alternating which goes
first) so background load hits both alike; the figure is the median over
``--repeats`` rounds of the per-round ratio runctl rate / baseline rate
(higher is better, 1.0 = as fast).

    /usr/bin/python3 bench/python-log/bench.py            # N=200000, 5 rounds
    /usr/bin/python3 bench/python-log/bench.py --n 50000 --repeats 5 --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "packages", "client-python"))

import runctl  # noqa: E402


CHUNK = 10_000


def baseline_chunk(f, start: int, count: int) -> float:
    dumps = json.dumps
    write = f.write
    flush = f.flush
    t0 = time.perf_counter()
    for i in range(start, start + count):
        x = 1.0 / (i + 1)
        write(dumps({"step": i, "loss": x, "acc": 1.0 - x}) + "\n")
        flush()
    return time.perf_counter() - t0


def runctl_chunk(run: "runctl.Run", start: int, count: int) -> float:
    log = run.log
    t0 = time.perf_counter()
    for i in range(start, start + count):
        x = 1.0 / (i + 1)
        log({"loss": x, "acc": 1.0 - x}, step=i)
    return time.perf_counter() - t0


def one_round(tmp: str, label: str, n: int, runctl_first: bool) -> "tuple[float, float]":
    """Rates (points/s) of baseline and runctl over n points each, interleaved in chunks."""
    os.environ["RUNCTL_RUNS_DIR"] = os.path.join(tmp, "runs-" + label)
    run = runctl.init(name="bench", system_metrics=False, capture_git=False, capture_pip=False)
    base_s = runctl_s = 0.0
    with open(os.path.join(tmp, "baseline-%s.jsonl" % label), "a") as f:
        done = 0
        while done < n:
            count = min(CHUNK, n - done)
            if runctl_first:
                runctl_s += runctl_chunk(run, done, count)
                base_s += baseline_chunk(f, done, count)
            else:
                base_s += baseline_chunk(f, done, count)
                runctl_s += runctl_chunk(run, done, count)
            runctl_first = not runctl_first
            done += count
    run.finish()
    lines = len(runctl.read_metrics(run.run_dir))
    if lines != n:
        raise SystemExit("runctl wrote %d lines, expected %d" % (lines, n))
    return n / base_s, n / runctl_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000, help="points per measurement (default 200000)")
    parser.add_argument("--repeats", type=int, default=5, help="alternating rounds (default 5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    for var in ("RUNCTL_RUN_DIR", "WHIRR_RUN_DIR"):
        os.environ.pop(var, None)  # measure direct mode even when started inside a run

    base_rates, runctl_rates, ratios = [], [], []
    with tempfile.TemporaryDirectory(prefix="runctl-bench-") as tmp:
        one_round(tmp, "warm-up", min(args.n, 2 * CHUNK), False)  # imports, page cache
        for r in range(args.repeats):
            base, ours = one_round(tmp, str(r), args.n, r % 2 == 1)
            base_rates.append(base)
            runctl_rates.append(ours)
            ratios.append(ours / base)

    result = {
        "n": args.n,
        "repeats": args.repeats,
        "python": platform.python_version(),
        "executable": sys.executable,
        "baseline": {"best_per_s": max(base_rates), "median_per_s": statistics.median(base_rates), "rates": base_rates},
        "runctl": {"best_per_s": max(runctl_rates), "median_per_s": statistics.median(runctl_rates), "rates": runctl_rates},
        "ratio": statistics.median(ratios),
        "ratios": ratios,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print("python %s (%s), n=%d, %d rounds" % (result["python"], sys.executable, args.n, args.repeats))
    print("baseline json.dumps+write+flush: %10.0f points/s (median %.0f)" % (max(base_rates), result["baseline"]["median_per_s"]))
    print("runctl run.log:                  %10.0f points/s (median %.0f)" % (max(runctl_rates), result["runctl"]["median_per_s"]))
    print("ratio runctl/baseline: %.2f (median of rounds; rounds: %s)" % (result["ratio"], ", ".join("%.2f" % r for r in ratios)))


if __name__ == "__main__":
    main()

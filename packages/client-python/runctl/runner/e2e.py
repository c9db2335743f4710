"""Self-check of the Runner against the configured server and workers.

``python -m runctl.runner.e2e [--json] [--server URL] [--store URL] [--timeout S]``
packages a temporary project, then exercises a function service (mapped over
inputs), chained futures (a future passed into a second call), a stateful
instance, and an exception coming back with its remote traceback; it prints
what passed and exits non-zero if anything failed. Needs ``runctl server``
and at least one ``runctl worker`` that can read the store.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import textwrap
import time
import traceback
import uuid
from typing import Any, Callable, Dict, List, Optional

MODULE = "runctl_runner_selfcheck"

SOURCE = textwrap.dedent(
    '''
    """Written by python -m runctl.runner.e2e."""
    import os


    def square(x):
        return x * x


    def add(a, b):
        return a + b


    def where():
        return os.getpid()


    def boom(message):
        raise ValueError(message)


    class Counter:
        def __init__(self):
            self.n = 0

        def add(self, k):
            self.n += k
            return self.n

        def pid(self):
            return os.getpid()
    '''
)


def run_checks(server: Optional[str], store: Optional[str], timeout: float) -> Dict[str, Any]:
    import runctl

    project = tempfile.mkdtemp(prefix="runctl-runner-e2e-")
    checks: List[Dict[str, Any]] = []
    try:
        with open(os.path.join(project, MODULE + ".py"), "w") as f:
            f.write(SOURCE)
        sys.path.insert(0, project)
        mod = __import__(MODULE)

        name = "selfcheck-" + uuid.uuid4().hex[:8]
        with runctl.Runner(name, fail_if_exists=True, workdir=project, store=store, server_url=server) as r:

            def check(label: str, fn: Callable[[], Any]) -> None:
                started = time.monotonic()
                try:
                    detail = fn()
                    checks.append({"check": label, "ok": True, "detail": detail, "seconds": round(time.monotonic() - started, 3)})
                except Exception as exc:  # noqa: BLE001 - each check reports its own failure
                    checks.append(
                        {
                            "check": label,
                            "ok": False,
                            "error": "%s: %s" % (type(exc).__name__, exc),
                            "traceback": traceback.format_exc(),
                        }
                    )

            sq = r.service(mod.square)

            def function_service() -> str:
                values = runctl.get(sq.map(range(20)), timeout=timeout)
                assert values == [x * x for x in range(20)], values
                return "square over 20 inputs"

            def chained() -> str:
                add = r.service(mod.add)
                total = add(sq(3), sq(4)).get(timeout=timeout)
                assert total == 25, total
                return "add(square(3), square(4)) == 25 with the futures passed by reference"

            def stateful() -> str:
                counter = r.service(mod.Counter())
                futures = [counter.add(1) for _ in range(5)]
                values = runctl.get(futures, timeout=timeout)
                assert values == [1, 2, 3, 4, 5], values
                pids = set(runctl.get([counter.pid() for _ in range(3)], timeout=timeout))
                assert len(pids) == 1, pids
                return "one instance counted to 5 in process %s" % pids.pop()

            def exception() -> str:
                failing = r.service(mod.boom)
                try:
                    failing("expected by the self-check").get(timeout=timeout)
                except ValueError as exc:
                    tb = getattr(exc, "remote_traceback", "")
                    assert "boom" in tb, tb
                    return "ValueError re-raised with its remote traceback"
                raise AssertionError("no exception came back")

            check("function service", function_service)
            check("chained futures", chained)
            check("stateful instance", stateful)
            check("exception", exception)
    finally:
        sys.path[:] = [p for p in sys.path if p != project]
        sys.modules.pop(MODULE, None)
        shutil.rmtree(project, ignore_errors=True)
    return {"ok": all(c["ok"] for c in checks) and len(checks) == 4, "checks": checks}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runctl.runner.e2e", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--server", help="job server URL (default: $RUNCTL_SERVER_URL)")
    parser.add_argument("--store", help="runner store URL (default: $RUNCTL_RUNNER_STORE)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each check's tasks")
    args = parser.parse_args(argv)
    try:
        result = run_checks(args.server, args.store, args.timeout)
    except Exception as exc:  # noqa: BLE001 - the runner itself could not be opened
        result = {"ok": False, "checks": [], "error": "%s: %s" % (type(exc).__name__, exc)}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for c in result["checks"]:
            print("%s  %-18s %s" % ("PASS" if c["ok"] else "FAIL", c["check"], c.get("detail") or c.get("error")))
        if "error" in result:
            print("FAIL  %s" % result["error"])
        print("ok" if result["ok"] else "FAILED")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

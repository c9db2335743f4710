"""The warm Python process a ``runctl worker`` keeps per Runner service.

Started by the worker (packages/provider-local/src/runner-service.ts) in the
service's unpacked bundle, it imports the service's target once, then runs
one call at a time: it reads a JSON line per call on stdin, writes the result
(or the exception) to the store under the runner's prefix, and answers one
JSON line on its protocol stream. What the user's code prints goes to stderr,
so it can never corrupt the protocol.

Environment: ``RUNCTL_RUNNER_STORE`` (store URL), ``RUNCTL_RUNNER_PREFIX``
(``runners/<name>/``), ``RUNCTL_RUNNER_TARGET`` (key of the pickled function,
class or instance under the prefix), ``RUNCTL_RUNNER_STATEFUL`` (``1`` for an
instance that keeps its state).
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import sys
import threading
import time
import traceback
from typing import Any, Dict, Optional

from ._pickling import dumps, encode_error, loads
from ._store import FileStore, open_store


#: A call that only starts the process (``Runner.service(..., warmup=n)``): no arguments, no result.
WARMUP_METHOD = "__runctl_warmup__"


class _Service:
    def __init__(self, store: FileStore, prefix: str, target_key: str, stateful: bool) -> None:
        self.store = store
        self.prefix = prefix
        self.stateful = stateful
        self.target = self._fetch(target_key)
        self._instance: Optional[Any] = None

    def _fetch(self, key: str) -> Any:
        return loads(self.store.get_bytes(self.prefix + key), self._fetch_ref)

    def _fetch_ref(self, key: str) -> Any:
        return self._fetch(key)

    def _callable(self, method: str) -> Any:
        target = self.target
        if self.stateful:
            return getattr(target, method)
        if isinstance(target, type):
            # A class as a stateless service: one instance per warm process, built on first use.
            if self._instance is None:
                self._instance = target()
            return getattr(self._instance, method)
        if method != "__call__":
            raise AttributeError("a function service has no method %r" % method)
        return target

    def call(self, method: str, payload: Dict[str, Any]) -> None:
        if method == WARMUP_METHOD:
            # Loading the target (done at start) was the point; a class service builds its instance too.
            if isinstance(self.target, type) and not self.stateful and self._instance is None:
                self._instance = self.target()
            return
        result_key = self.prefix + str(payload["result"])
        error_key = self.prefix + str(payload["error"])
        try:
            if payload.get("args") is not None:
                raw = base64.b64decode(payload["args"])
            else:
                raw = self.store.get_bytes(self.prefix + str(payload["args_key"]))
            args, kwargs = loads(raw, self._fetch_ref)
            value = self._callable(method)(*args, **kwargs)
            data, _refs = dumps(value)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the caller
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            self.store.put_bytes(error_key, pickle.dumps(encode_error(exc), protocol=4))
            raise
        self.store.put_bytes(result_key, data)


def _exit_with_parent(interval: float = 0.5) -> None:
    """Orphan guard: a worker killed with SIGKILL cannot stop us, and a lost attempt must not go
    on to write a result over the one of the attempt that replaced it."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(70)

    threading.Thread(target=watch, name="runctl-orphan-guard", daemon=True).start()


def main() -> int:
    _exit_with_parent()
    # The protocol gets the real stdout; fd 1 becomes stderr for the user's prints.
    proto = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)

    def say(message: Dict[str, Any]) -> None:
        proto.write(json.dumps(message) + "\n")
        proto.flush()

    try:
        service = _Service(
            open_store(os.environ["RUNCTL_RUNNER_STORE"]),
            os.environ["RUNCTL_RUNNER_PREFIX"],
            os.environ["RUNCTL_RUNNER_TARGET"],
            os.environ.get("RUNCTL_RUNNER_STATEFUL") == "1",
        )
    except BaseException as exc:  # noqa: BLE001
        traceback.print_exc()
        say({"ready": False, "error": "%s: %s" % (type(exc).__name__, exc)})
        return 1
    say({"ready": True, "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        task_id = message.get("id")
        try:
            service.call(str(message["method"]), message["payload"])
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            say({"id": task_id, "ok": False, "error": "%s: %s" % (type(exc).__name__, exc)})
            continue
        say({"id": task_id, "ok": True})
    return 0


if __name__ == "__main__":
    sys.exit(main())

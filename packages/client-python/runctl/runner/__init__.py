"""The Runner: package the working directory, run Python functions and objects
on ``runctl worker`` processes, get futures back (Flame's Runner shape;
docs/runner.md in the runctl repository).

Standard library only::

    import runctl
    from mymodule import square, Counter   # module-level, inside the packaged directory

    with runctl.Runner("exp1", fail_if_exists=False) as r:
        sq = r.service(square)                 # a function: stateless, any worker
        futures = sq.map(range(10))
        print(runctl.get(futures))
        total = sq(futures[3])                 # a future as an argument travels by reference
        counter = r.service(Counter())         # an instance: stateful, pinned to one worker process
        counter.add(1); print(counter.add(2).get())

Functions and classes travel *by reference* (standard ``pickle``): they must be
defined at module level in a module of the packaged directory; lambdas,
closures and anything defined in ``__main__`` are refused with the fix.
"""

from __future__ import annotations

import base64
import itertools
import os
import re
import threading
import time
import types
import uuid
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from .._client import Client, ServerError
from .._trainctl import Trainctl
from ._pickling import (
    ObjectRef,
    RemoteTraceback,
    RunnerTaskError,
    UnpicklableTarget,
    check_importable,
    decode_error,
    dumps,
    loads,
)
from ._store import StoreError, default_store_url, normalize_url, open_store

__all__ = [
    "ObjectFuture",
    "ObjectRef",
    "RemoteTraceback",
    "Runner",
    "RunnerError",
    "RunnerTaskError",
    "Service",
    "StoreError",
    "UnpicklableTarget",
    "get",
    "select",
    "wait",
]

#: Arguments up to this size travel inside the task record; larger ones as a store object.
INLINE_ARGS_BYTES = 16 * 1024
#: Tasks per create request (the server takes up to 1000 and 1 MiB).
SUBMIT_BATCH = 200
#: Task ids per status request.
POLL_BATCH = 200
_FINISHED = ("completed", "failed", "cancelled")


class RunnerError(Exception):
    """The Runner could not be opened or used (server, store, packaging)."""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")[:40] or "svc"


class ObjectFuture:
    """The result of one call: ``get()``, ``wait(timeout)``, ``ref()``.

    Passing a future (or its ``ref()``) as an argument of another call sends
    only the reference: the worker reads the object from the store, and the
    second task waits on the server for the first.
    """

    def __init__(self, runner: "Runner", job_id: int, key: str, error_key: str) -> None:
        self._runner = runner
        self.job_id = job_id
        self.key = key
        self._error_key = error_key
        self._record: Optional[Dict[str, Any]] = None
        self._value: Any = None
        self._loaded = False

    def __repr__(self) -> str:
        status = self._record["status"] if self._record else "pending"
        return "ObjectFuture(job %d, %s)" % (self.job_id, status)

    def __runctl_ref__(self) -> ObjectRef:
        return self.ref()

    def ref(self) -> ObjectRef:
        """A reference to the result, to pass on without fetching it."""
        return ObjectRef(self.key, self.job_id)

    def done(self) -> bool:
        if self._record is None:
            self._runner._refresh([self])
        return self._record is not None

    @property
    def status(self) -> str:
        """``queued``, ``running``, ``completed``, ``failed`` or ``cancelled`` (as last seen)."""
        return self._record["status"] if self._record else "pending"

    def wait(self, timeout: Optional[float] = None) -> bool:
        """True once the task has finished (in any way), False if ``timeout`` passed first."""
        done, _ = wait([self], timeout=timeout)
        return bool(done)

    def get(self, timeout: Optional[float] = None) -> Any:
        """The value, or the task's exception raised again (remote traceback as ``__cause__``)."""
        if not self.wait(timeout):
            raise TimeoutError("task %d did not finish within %s s" % (self.job_id, timeout))
        return self._result()

    def _result(self) -> Any:
        record = self._record or {}
        if record.get("status") == "completed":
            if not self._loaded:
                self._value = self._runner._load(self.key)
                self._loaded = True
            return self._value
        store = self._runner._store
        prefix = self._runner.prefix
        if store.exists(prefix + self._error_key):
            import pickle

            info = pickle.loads(store.get_bytes(prefix + self._error_key))
            raise decode_error(info, self.job_id)
        raise RunnerTaskError(
            "task %d %s: %s" % (self.job_id, record.get("status"), record.get("error_message") or "no detail"),
            job_id=self.job_id,
        )


class _Method:
    def __init__(self, service: "Service", name: str) -> None:
        self._service = service
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> ObjectFuture:
        return self._service._runner._submit(self._service, self._name, [(args, kwargs)])[0]

    def map(self, *iterables: Iterable[Any]) -> List[ObjectFuture]:
        """One call per element (several iterables: zipped, as ``map``), submitted in batches."""
        calls = [(tuple(args), {}) for args in zip(*iterables)]
        return self._service._runner._submit(self._service, self._name, calls)


class Service:
    """A function, class or instance as a service: call it (functions) or its methods; each call is a task."""

    def __init__(self, runner: "Runner", service_id: str, label: str, stateful: bool, is_function: bool) -> None:
        self._runner = runner
        self.id = service_id
        self.label = label
        self.stateful = stateful
        self._is_function = is_function

    def __repr__(self) -> str:
        return "Service(%r, %s%s)" % (self.id, self.label, ", stateful" if self.stateful else "")

    def __call__(self, *args: Any, **kwargs: Any) -> ObjectFuture:
        name = "__call__"
        return self._runner._submit(self, name, [(args, kwargs)])[0]

    def map(self, *iterables: Iterable[Any]) -> List[ObjectFuture]:
        return _Method(self, "__call__").map(*iterables)

    def __getattr__(self, name: str) -> _Method:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._is_function:
            raise AttributeError("%s is a function service: call it directly" % self.label)
        return _Method(self, name)


class Runner:
    """A session of remote work under a name (Flame's Runner).

    Opening it packages ``workdir`` (default: the current directory) with
    runctl's bundle rules (``.gitignore``, ``.runctlignore``, ``bundle.exclude``,
    default excludes) through ``runctl bundle --store`` (one implementation of
    the rules, in runctl's core), uploads the archive to ``store`` once per
    content key, and registers the runner with the job server. A runner of the
    same name that exists already is reused and not owned (``fail_if_exists``
    refuses instead): closing this session then leaves it and its bundle alone.

    ``store`` defaults to ``$RUNCTL_RUNNER_STORE``, else a ``file://`` directory
    under ``$XDG_DATA_HOME/runctl``; the workers must see the same store.
    """

    def __init__(
        self,
        name: str,
        fail_if_exists: bool = False,
        *,
        workdir: Union[str, "os.PathLike[str]", None] = None,
        store: Optional[str] = None,
        server_url: Optional[str] = None,
        token: Optional[str] = None,
        binary: Union[str, Sequence[str], None] = None,
        poll_interval: float = 0.2,
    ) -> None:
        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", name):
            raise ValueError("runner name must be 1-100 letters, digits, . _ - starting with a letter or digit (got %r)" % (name,))
        self.name = name
        self.owner = uuid.uuid4().hex
        self.client = Client(server_url, token)
        self.poll_interval = poll_interval
        self.workdir = os.path.abspath(os.fspath(workdir) if workdir is not None else os.getcwd())
        store_url = store or default_store_url()
        self._store = open_store(normalize_url(store_url))  # refuses a bad store before anything is uploaded
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._keys: List[str] = []
        self._task_ids: List[int] = []
        self._closed = False
        bundle = Trainctl(binary)._run(["bundle", self.workdir, "--store", store_url])
        self.bundle_key = str(bundle["bundle"]["key"])
        uploaded = bool(bundle.get("upload", {}).get("uploaded"))
        try:
            answer = self._json(
                "POST",
                "/runners",
                {
                    "name": name,
                    "bundle_key": self.bundle_key,
                    "store_url": normalize_url(store_url),
                    "owner": self.owner,
                    "fail_if_exists": bool(fail_if_exists),
                },
            )
        except BaseException:
            # Nothing will use the bundle this session just uploaded.
            if uploaded:
                self._store.delete("bundles/%s.tar.gz" % self.bundle_key)
            raise
        record = answer["runner"]
        #: True when this session created the runner (and so closes it).
        self.owned = bool(answer["created"])
        #: True when this session uploaded the bundle (and so deletes it on close).
        self.bundle_uploaded = uploaded
        self.prefix = str(record["prefix"])
        self.store_url = str(record["store_url"])
        if self.store_url != normalize_url(store_url):
            self._store = open_store(self.store_url)
        if not self.owned:
            # The existing runner's code is what its workers run; ours is not used.
            if uploaded and str(record["bundle_key"]) != self.bundle_key:
                self._store.delete("bundles/%s.tar.gz" % self.bundle_key)
            self.bundle_uploaded = False
            self.bundle_key = str(record["bundle_key"])

    def __repr__(self) -> str:
        return "runctl.Runner(%r%s)" % (self.name, "" if self.owned else ", reused")

    def __enter__(self) -> "Runner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ server

    def _json(self, method: str, path: str, body: Optional[Dict[str, Any]] = None, query: Optional[Dict[str, Any]] = None) -> Any:
        try:
            return self.client._json(method, path, query=query, body=body, resend=True)
        except ServerError as exc:
            raise RunnerError(str(exc)) from exc

    def _path(self, suffix: str = "") -> str:
        return "/runners/%s%s" % (self.name, suffix)

    # ------------------------------------------------------------ services and objects

    def service(self, target: Any, warmup: int = 0, max_instances: Optional[int] = None, gpus: int = 0) -> Service:
        """A function or class becomes a stateless service (each call a task on any worker); an
        instance a stateful one, pinned to one worker process that keeps its state across calls.

        ``max_instances`` caps how many of its calls run at once across all workers; ``gpus``
        is what each call needs on its worker (given as ``CUDA_VISIBLE_DEVICES``). ``warmup``
        queues that many no-op calls, so that workers start the service's processes (and pay
        its imports) before the first real call; which workers take them is the queue's choice.
        """
        self._check_open()
        check_importable(target)
        is_function = isinstance(target, (types.FunctionType, types.BuiltinFunctionType))
        stateful = not is_function and not isinstance(target, type)
        kind = target if (is_function or isinstance(target, type)) else type(target)
        label = "%s.%s" % (kind.__module__, kind.__qualname__)
        service_id = "%s-%s-%d" % (_slug(kind.__qualname__), self.owner[:8], next(self._counter))
        data, _refs = dumps(target)
        key = "services/%s.pkl" % service_id
        self._put(key, data)
        self._json(
            "POST",
            self._path("/services"),
            {
                "id": service_id,
                "stateful": stateful,
                "target": key,
                "label": label[:500],
                "gpus": int(gpus),
                "max_instances": None if max_instances is None else int(max_instances),
            },
        )
        service = Service(self, service_id, label, stateful, is_function)
        if warmup > 0:
            self._submit(service, "__runctl_warmup__", [((), {})] * int(warmup))
        return service

    def put_object(self, obj: Any) -> ObjectRef:
        """Stores ``obj`` once; pass the reference to many calls instead of the value."""
        self._check_open()
        data, _refs = dumps(obj)
        key = "objects/%s.pkl" % uuid.uuid4().hex
        self._put(key, data)
        return ObjectRef(key)

    def get_object(self, ref: Union[ObjectRef, ObjectFuture]) -> Any:
        if isinstance(ref, ObjectFuture):
            return ref.get()
        return self._load(ref.key)

    def _put(self, key: str, data: bytes) -> None:
        self._store.put_bytes(self.prefix + key, data)
        with self._lock:
            self._keys.append(key)

    def _load(self, key: str) -> Any:
        return loads(self._store.get_bytes(self.prefix + key), self._load)

    # ------------------------------------------------------------ tasks

    def _submit(self, service: Service, method: str, calls: List[Tuple[tuple, dict]]) -> List[ObjectFuture]:
        self._check_open()
        futures: List[ObjectFuture] = []
        tasks: List[Dict[str, Any]] = []
        for args, kwargs in calls:
            data, refs = dumps((args, kwargs))
            rid = uuid.uuid4().hex
            payload: Dict[str, Any] = {
                "v": 1,
                "result": "objects/%s.pkl" % rid,
                "error": "objects/%s.err.pkl" % rid,
            }
            if len(data) <= INLINE_ARGS_BYTES:
                payload["args"] = base64.b64encode(data).decode("ascii")
            else:
                payload["args_key"] = "objects/%s.args.pkl" % rid
                self._put(payload["args_key"], data)
            with self._lock:
                self._keys.extend([payload["result"], payload["error"]])
            depends = sorted({r.task_id for r in refs if r.task_id is not None})
            tasks.append(
                {
                    "service": service.id,
                    "method": method,
                    "payload": payload,
                    "depends_on": depends,
                    "idempotency_key": "%s-%s" % (self.owner, rid),
                }
            )
        for start in range(0, len(tasks), SUBMIT_BATCH):
            batch = tasks[start : start + SUBMIT_BATCH]
            answer = self._json("POST", self._path("/tasks"), {"tasks": batch})
            with self._lock:
                self._task_ids.extend(int(created["job_id"]) for created in answer["tasks"])
            for task, created in zip(batch, answer["tasks"]):
                payload = task["payload"]
                futures.append(ObjectFuture(self, int(created["job_id"]), payload["result"], payload["error"]))
        return futures

    def _refresh(self, futures: Sequence[ObjectFuture]) -> None:
        pending = [f for f in futures if f._record is None]
        for start in range(0, len(pending), POLL_BATCH):
            batch = pending[start : start + POLL_BATCH]
            ids = ",".join(str(f.job_id) for f in batch)
            answer = self._json("GET", self._path("/tasks"), query={"ids": ids})
            by_id = {int(t["id"]): t for t in answer["tasks"]}
            for f in batch:
                record = by_id.get(f.job_id)
                if record is None:
                    f._record = {"status": "cancelled", "error_message": "the task is gone (its runner was closed)"}
                elif record["status"] in _FINISHED:
                    f._record = record

    # ------------------------------------------------------------ close

    def _check_open(self) -> None:
        if self._closed:
            raise RunnerError("runner %s is closed" % self.name)

    def close(self, timeout: float = 60.0) -> Dict[str, Any]:
        """Stops this session's work and deletes what it owns.

        The owner closes the runner on the server (queued tasks cancelled,
        running ones stopped), waits for them to stop, then deletes every
        object under the runner's prefix and the bundle if it uploaded it. A
        session that reused a runner cancels only its own tasks and deletes
        only the objects it created.
        """
        if self._closed:
            return {"closed": False}
        self._closed = True
        summary: Dict[str, Any] = {"owned": self.owned}
        if self.owned:
            answer = self._json("POST", self._path("/close"), {"owner": self.owner})
        else:
            # Someone else's runner: stop only this session's tasks.
            answer = {"cancelled": [], "cancel_requested": []}
            with self._lock:
                ids = list(self._task_ids)
            for start in range(0, len(ids), 10_000):
                part = self._json("POST", self._path("/tasks/cancel"), {"ids": ids[start : start + 10_000]})
                answer["cancelled"] += part["cancelled"]
                answer["cancel_requested"] += part["cancel_requested"]
        summary["cancelled"] = answer["cancelled"]
        # Their results would land after the objects are deleted: wait for them to stop first.
        running = list(answer["cancel_requested"])
        deadline = time.monotonic() + timeout
        while running and time.monotonic() < deadline:
            running = [i for i in running if not self._stopped(int(i))]
            if running:
                time.sleep(self.poll_interval)
        if self.owned:
            summary["deleted_objects"] = self._store.delete_prefix(self.prefix)
            if self.bundle_uploaded:
                self._store.delete("bundles/%s.tar.gz" % self.bundle_key)
                summary["deleted_bundle"] = self.bundle_key
        else:
            with self._lock:
                keys = list(self._keys)
            for key in keys:
                self._store.delete(self.prefix + key)
            summary["deleted_objects"] = len(keys)
        return summary

    def _stopped(self, job_id: int) -> bool:
        try:
            record = self.client.get_job(job_id)
        except Exception:  # noqa: BLE001 - the server may be gone; nothing left to wait for
            return True
        return record is None or record.get("status") in _FINISHED


# ---------------------------------------------------------------- many futures


def _poll(futures: Sequence[ObjectFuture]) -> None:
    by_runner: Dict[int, List[ObjectFuture]] = {}
    for f in futures:
        by_runner.setdefault(id(f._runner), []).append(f)
    for group in by_runner.values():
        group[0]._runner._refresh(group)


def wait(
    futures: Sequence[ObjectFuture], num_returns: Optional[int] = None, timeout: Optional[float] = None
) -> Tuple[List[ObjectFuture], List[ObjectFuture]]:
    """``(done, pending)`` once ``num_returns`` (default: all) have finished, or at ``timeout``."""
    futures = list(futures)
    want = len(futures) if num_returns is None else min(num_returns, len(futures))
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while True:
        _poll([f for f in futures if f._record is None])
        done = [f for f in futures if f._record is not None]
        if len(done) >= want:
            return done, [f for f in futures if f._record is None]
        if deadline is not None and time.monotonic() >= deadline:
            return done, [f for f in futures if f._record is None]
        interval = min(f._runner.poll_interval for f in futures)
        pause = min(delay, interval)
        if deadline is not None:
            pause = max(0.0, min(pause, deadline - time.monotonic()))
        time.sleep(pause)
        delay = min(delay * 2, interval)


def get(futures: Union[ObjectFuture, Sequence[ObjectFuture]], timeout: Optional[float] = None) -> Any:
    """The value of one future, or the values of a list of them, in order (the first failure raises)."""
    if isinstance(futures, ObjectFuture):
        return futures.get(timeout)
    futures = list(futures)
    done, pending = wait(futures, timeout=timeout)
    if pending:
        raise TimeoutError("%d of %d tasks did not finish within %s s" % (len(pending), len(futures), timeout))
    return [f._result() for f in futures]


def select(futures: Sequence[ObjectFuture], timeout: Optional[float] = None) -> Iterator[ObjectFuture]:
    """Yields the futures as they finish (completion order)."""
    pending = list(futures)
    deadline = None if timeout is None else time.monotonic() + timeout
    while pending:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        done, pending = wait(pending, num_returns=1, timeout=remaining)
        if not done:
            raise TimeoutError("%d tasks did not finish within %s s" % (len(pending), timeout))
        for f in done:
            yield f

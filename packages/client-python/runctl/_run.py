"""``runctl.init()`` and the ``Run`` it returns.

Two modes:

- **attached**: inside a run started by runctl (``RUNCTL_RUN_DIR``) or whirr
  (``WHIRR_RUN_DIR``). The supervisor created ``meta.json`` and owns
  ``status``, ``heartbeat_at``, ``pid``/``hostname``/``writer``; the client only
  merges its name, tags and config and appends metrics, summary and artifacts.
  (If ``meta.json`` does not exist yet, the client creates it and then owns the
  run as in direct mode.)
- **direct**: a new run under the runs directory, owned by this process: it
  writes ``writer: "python"``, keeps ``heartbeat_at`` fresh every 10 s and sets
  the final status (see ``_lifecycle`` for what happens without ``finish()``).
"""

from __future__ import annotations

import itertools
import os
import socket
import sys
import threading
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional, Union

from . import _lifecycle
from ._artifacts import copy_artifact
from ._capture import capture_requirements, git_info, git_summary
from ._clock import _cache as _ts_cache
from ._clock import now_iso
from ._env import attach_target, runs_dir
from ._jsonl import AppendWriter, encode_obj as _encode_obj, fast_encode as _encode, last_index, short_write
from ._meta import (
    ARTIFACTS_DIR,
    CONFIG_FILE,
    GIT_FILE,
    META_FILE,
    METRICS_FILE,
    SYSTEM_FILE,
    TERMINAL_STATUSES,
    new_run_id,
    read_json_object,
    update_json,
    update_meta,
    write_json_atomic,
)
from ._system import SAMPLE_INTERVAL_S, SystemMetricsThread

HEARTBEAT_INTERVAL_S = 10.0
CAPTURE_JOIN_TIMEOUT_S = 90.0

_time = time.time
_gmtime = time.gmtime
_strftime = time.strftime
_os_write = os.write


def _default_name() -> str:
    script = sys.argv[0] if sys.argv else ""
    if not script or script == "-c":
        return "python"
    stem = os.path.splitext(os.path.basename(script))[0]
    return stem or "python"


def _as_dict(config: Any) -> Dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "__dict__"):  # argparse.Namespace, simple objects
        return dict(vars(config))
    raise TypeError("runctl: config must be a dict (or an argparse.Namespace), not %s" % type(config).__name__)


def _as_tags(tags: Union[str, Iterable[str], None]) -> List[str]:
    if tags is None:
        return []
    if isinstance(tags, str):
        return [tags]
    return [str(t) for t in tags]


def _is_local_leader() -> bool:
    """True on the process that captures environment and system data for a node (LOCAL_RANK, else RANK, 0)."""
    for var in ("LOCAL_RANK", "RANK"):
        value = os.environ.get(var)
        if value:
            try:
                return int(value) == 0
            except ValueError:
                return True
    return True


class Run:
    """A run directory being written. Create it with ``runctl.init()``."""

    def __init__(
        self,
        run_dir: str,
        run_id: str,
        config: Dict[str, Any],
        owner: bool,
        attached: bool,
    ) -> None:
        self.run_dir = run_dir
        self.run_id = run_id
        self.config = config
        self.attached = attached
        self._owner = owner
        self._owner_pid = os.getpid()
        self._finished = False
        self._finish_lock = threading.Lock()
        self._metrics: Optional[AppendWriter] = None
        self._fd = -1
        self._idx = itertools.count()
        self._stop = threading.Event()
        self._heartbeat: Optional[threading.Thread] = None
        self._system: Optional[SystemMetricsThread] = None
        self._capture: Optional[threading.Thread] = None

    # -- properties -----------------------------------------------------------

    @property
    def id(self) -> str:
        return self.run_id

    @property
    def owns_status(self) -> bool:
        """True when this process sets the run's status and heartbeat (direct mode)."""
        return self._owner

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def artifacts_dir(self) -> str:
        return os.path.join(self.run_dir, ARTIFACTS_DIR)

    def __repr__(self) -> str:
        return "Run(id=%r, dir=%r%s)" % (self.run_id, self.run_dir, ", attached" if self.attached else "")

    # -- the training-loop API ----------------------------------------------------

    def log(self, metrics: Mapping[str, Any], step: Optional[int] = None) -> None:
        """Append one record ``{"_idx", "_timestamp", "step"?, **metrics}`` to metrics.jsonl.

        One ``os.write`` per call on an ``O_APPEND`` descriptor, no fsync: as
        durable as ``f.write(line); f.flush()``. NaN/±Infinity are stored as
        null; tensors and numpy scalars are converted with ``.item()``.
        """
        fd = self._fd
        if fd < 0:
            raise RuntimeError("runctl: log() on a finished run %s" % self.run_id)
        if metrics.__class__ is not dict and not isinstance(metrics, dict):
            metrics = dict(metrics)
        if "_idx" in metrics or "_timestamp" in metrics:
            raise ValueError("runctl: _idx and _timestamp are reserved metric names")
        if step is not None:
            if step.__class__ is not int:
                step = _as_step(step)
            if "step" in metrics:  # the argument wins over a "step" key
                metrics = {k: v for k, v in metrics.items() if k != "step"}
        # The user's keys are encoded on their own and appended to a hand-formatted
        # head: the JSON encoder costs far more per key than a %-format.
        try:
            body = _encode(metrics)
        except ValueError:  # NaN or ±Infinity somewhere: stored as null
            body = _encode_obj(metrics)
        # The timestamp, inlined from _clock.now_iso (this is the hot path).
        t = _time()
        s = int(t)
        cache = _ts_cache
        if s != cache[0]:
            prefix = _strftime("%Y-%m-%dT%H:%M:%S.", _gmtime(s))
            cache[1] = prefix
            cache[0] = s
        else:
            prefix = cache[1]
        if step is None:
            head = '{"_idx": %d, "_timestamp": "%s%03dZ"' % (next(self._idx), prefix, int((t - s) * 1000))
        else:
            head = '{"_idx": %d, "_timestamp": "%s%03dZ", "step": %d' % (next(self._idx), prefix, int((t - s) * 1000), step)
        if body == "{}":
            data = (head + "}\n").encode()
        else:
            data = (head + ", " + body[1:] + "\n").encode()
        written = _os_write(fd, data)
        if written != len(data):
            raise short_write(fd, os.path.join(self.run_dir, METRICS_FILE), written, len(data))

    def summary(self, metrics: Mapping[str, Any]) -> Dict[str, Any]:
        """Merge ``metrics`` into ``meta.summary``; returns the merged summary."""
        values = dict(metrics)
        result: Dict[str, Any] = {}

        def change(meta: Dict[str, Any]) -> None:
            current = meta.get("summary")
            merged = dict(current) if isinstance(current, dict) else {}
            merged.update(values)
            meta["summary"] = merged
            result.update(merged)

        update_meta(self.run_dir, change)
        return result

    def save_artifact(self, path: Union[str, "os.PathLike[str]"], name: Optional[str] = None) -> str:
        """Copy a file or directory into ``artifacts/`` (as ``name``, default its base name); returns the copy's path.

        Names may contain sub-directories; names that would land outside
        ``artifacts/`` (absolute, ``..``) raise ``ValueError``.
        """
        os.makedirs(self.artifacts_dir, exist_ok=True)
        return copy_artifact(os.fspath(path), self.artifacts_dir, name)

    def finish(self, status: str = "completed", exit_code: Optional[int] = None, error: Optional[str] = None) -> None:
        """End the run: stop the background threads, close metrics.jsonl, and (direct mode) set the status.

        ``status`` is one of ``completed``, ``failed``, ``cancelled``,
        ``preempted``. Attached to a supervisor's run, the status is the
        supervisor's to set and is left alone. Calling it twice is harmless.
        """
        if status not in TERMINAL_STATUSES:
            raise ValueError("runctl: finish() status must be one of %s, not %r" % (", ".join(sorted(TERMINAL_STATUSES)), status))
        if exit_code is None and status == "completed":
            exit_code = 0
        if self._owner:
            self._finish_owned(status, exit_code=exit_code, error=error)
        else:
            self._close()

    # -- context manager ----------------------------------------------------------

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            self.finish("completed")
        elif self._owner:
            _lifecycle.finish_for_exception(self, exc_type, exc, tb)
        else:
            self._close()
        return False

    # -- internals -----------------------------------------------------------------

    def _open(self, start_idx: int) -> None:
        self._metrics = AppendWriter(os.path.join(self.run_dir, METRICS_FILE))
        self._fd = self._metrics.fd
        self._idx = itertools.count(start_idx)

    def _close(self, wait: bool = True) -> bool:
        """Stop threads and close files once; False when already done.

        ``wait=False`` (SIGTERM, Ctrl-C) does not wait for a capture still running.
        """
        with self._finish_lock:
            if self._finished:
                return False
            self._finished = True
        self._stop.set()
        if self._system is not None:
            self._system.stop()
        if wait and self._capture is not None and self._capture.is_alive() and threading.current_thread() is not self._capture:
            self._capture.join(CAPTURE_JOIN_TIMEOUT_S)
        if self._heartbeat is not None and self._heartbeat.is_alive() and threading.current_thread() is not self._heartbeat:
            self._heartbeat.join(5.0)
        self._fd = -1
        if self._metrics is not None:
            self._metrics.close()
        _lifecycle.unregister(self)
        return True

    def _finish_owned(self, status: str, exit_code: Optional[int], error: Optional[str], wait: bool = True) -> None:
        if not self._close(wait):
            return
        now = now_iso()

        def change(meta: Dict[str, Any]) -> None:
            meta["status"] = status
            meta["finished_at"] = now
            meta["exit_code"] = exit_code
            meta["error"] = error
            meta["heartbeat_at"] = now
            attempts = meta.get("attempts")
            if isinstance(attempts, list) and attempts and isinstance(attempts[-1], dict):
                attempts[-1]["finished_at"] = now
                attempts[-1]["status"] = status
                attempts[-1]["exit_code"] = exit_code

        update_meta(self.run_dir, change)

    def _heartbeat_loop(self, interval: float) -> None:
        def beat(meta: Dict[str, Any]) -> None:
            meta["heartbeat_at"] = now_iso()

        while not self._stop.wait(interval):
            try:
                update_meta(self.run_dir, beat)
            except Exception:  # noqa: BLE001 — a failed heartbeat must not stop training
                pass

    def _capture_environment(self, capture_git: bool, capture_pip: bool, cwd: str) -> None:
        if capture_git and not os.path.exists(os.path.join(self.run_dir, GIT_FILE)):
            try:
                info = git_info(cwd)
                if info is not None:
                    write_json_atomic(os.path.join(self.run_dir, GIT_FILE), info)
                    summary = git_summary(info)

                    def set_git(meta: Dict[str, Any]) -> None:
                        meta["git"] = summary
                        meta["git_file"] = GIT_FILE

                    update_meta(self.run_dir, set_git)
            except Exception:  # noqa: BLE001 — capture is best effort
                pass
        if capture_pip and not any(os.path.exists(os.path.join(self.run_dir, f)) for f in ("requirements.txt", "uv.lock")):
            try:
                written = capture_requirements(self.run_dir, cwd)
                if written is not None:

                    def set_requirements(meta: Dict[str, Any]) -> None:
                        meta["requirements_file"] = written

                    update_meta(self.run_dir, set_requirements)
            except Exception:  # noqa: BLE001
                pass


def _as_step(step: Any) -> int:
    if isinstance(step, bool):
        raise TypeError("runctl: step must be an integer, not bool")
    index = getattr(step, "__index__", None)
    if index is not None:
        return index()  # numpy/torch integer scalars
    if isinstance(step, float) and step.is_integer():
        return int(step)
    item = getattr(step, "item", None)
    if callable(item):
        return _as_step(item())
    raise TypeError("runctl: step must be an integer, not %r" % (step,))


def _new_meta(run_id: str, name: str, tags: List[str], started_at: str) -> Dict[str, Any]:
    return {
        "id": run_id,
        "name": name,
        "tags": tags,
        "started_at": started_at,
        "finished_at": None,
        "status": "running",
        "summary": None,
        "config_file": CONFIG_FILE,
        "metrics_file": METRICS_FILE,
        "artifacts_dir": ARTIFACTS_DIR,
        "git": None,
        "git_file": None,
        "requirements_file": None,
        "exit_code": None,
        "error": None,
        "attempts": [{"number": 1, "started_at": started_at, "finished_at": None, "status": "running", "exit_code": None}],
        "heartbeat_at": started_at,
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "writer": "python",
    }


def _create_run_dir(base: str) -> "tuple[str, str]":
    os.makedirs(base, exist_ok=True)
    for _ in range(100):
        run_id = new_run_id()
        path = os.path.join(base, run_id)
        try:
            os.mkdir(path)
        except FileExistsError:
            continue
        return path, run_id
    raise RuntimeError("runctl: could not create a unique run directory in %s" % base)


# The directory of the last run init() created or attached to in this process:
# a RuntimeController without a queue directory uses that run's control queue.
_latest_run_dir: Optional[str] = None


def latest_run_dir() -> Optional[str]:
    return _latest_run_dir


def init(
    name: Optional[str] = None,
    config: Any = None,
    tags: Union[str, Iterable[str], None] = None,
    system_metrics: bool = True,
    capture_git: bool = True,
    capture_pip: bool = True,
    *,
    _system_interval: float = SAMPLE_INTERVAL_S,
    _heartbeat_interval: float = HEARTBEAT_INTERVAL_S,
) -> Run:
    """Start (or attach to) a run and return it.

    Inside a run started by runctl/whirr, writes into that run's directory;
    otherwise creates ``<runs_dir>/<run_id>/`` (runs_dir: ``$RUNCTL_RUNS_DIR``,
    ``local.runs_dir`` of ``.runctl.toml``, else ``./runs``).
    """
    config_values = _as_dict(config)
    tag_list = _as_tags(tags)
    cwd = os.getcwd()
    target = attach_target()
    started_at = now_iso()
    owner = True
    attached = target is not None

    if target is not None:
        run_dir = os.path.abspath(target[0])
        os.makedirs(run_dir, exist_ok=True)
        meta_path = os.path.join(run_dir, META_FILE)
        env_id = target[1] or os.path.basename(os.path.normpath(run_dir))
        created: List[bool] = []

        def merge(meta: Dict[str, Any]) -> None:
            if not meta:  # no meta.json yet: this process creates the run and owns it
                meta.update(_new_meta(env_id, name or _default_name(), tag_list, started_at))
                created.append(True)
                return
            if name:
                meta["name"] = name
            if tag_list:
                existing = meta.get("tags") if isinstance(meta.get("tags"), list) else []
                meta["tags"] = list(existing) + [t for t in tag_list if t not in existing]

        meta = update_json(meta_path, merge)
        owner = bool(created)
        run_id = str(meta.get("id") or env_id)
        config_name = meta.get("config_file") if isinstance(meta.get("config_file"), str) else CONFIG_FILE
        config_path = os.path.join(run_dir, config_name)
        if config_values or not os.path.exists(config_path):
            merged = update_json(config_path, lambda current: current.update(config_values))
        else:
            try:
                merged = read_json_object(config_path)
            except (OSError, ValueError):
                merged = {}
    else:
        run_dir, run_id = _create_run_dir(runs_dir(cwd))
        write_json_atomic(os.path.join(run_dir, CONFIG_FILE), config_values)
        write_json_atomic(os.path.join(run_dir, META_FILE), _new_meta(run_id, name or _default_name(), tag_list, started_at))
        merged = config_values

    os.makedirs(os.path.join(run_dir, ARTIFACTS_DIR), exist_ok=True)
    run = Run(run_dir, run_id, merged, owner=owner, attached=attached)
    global _latest_run_dir
    _latest_run_dir = run_dir
    previous = last_index(os.path.join(run_dir, METRICS_FILE)) if attached else None
    run._open(0 if previous is None else previous + 1)

    # runctl's supervisor samples system metrics and captures git/pip itself;
    # doing it here too would double system.jsonl.
    supervised = attached and not owner and meta.get("writer") == "supervisor"
    leader = owner or (_is_local_leader() and not supervised)
    if owner:
        _lifecycle.register(run)
        run._heartbeat = threading.Thread(
            target=run._heartbeat_loop, args=(_heartbeat_interval,), name="runctl-heartbeat", daemon=True
        )
        run._heartbeat.start()
    if leader and (capture_git or capture_pip):
        run._capture = threading.Thread(
            target=run._capture_environment, args=(capture_git, capture_pip, cwd), name="runctl-capture", daemon=True
        )
        run._capture.start()
    if leader and system_metrics:
        try:
            run._system = SystemMetricsThread(os.path.join(run_dir, SYSTEM_FILE), interval=_system_interval).start()
        except OSError:
            run._system = None
    return run

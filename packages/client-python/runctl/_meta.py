"""``meta.json`` and ``config.json``: run ids, atomic rewrites, and the "lost" rule.

Every rewrite reads the file, merges, and replaces it atomically (temp file in
the same directory, fsync, rename), keeping keys this client does not know:
the supervisor, the TypeScript tracker and whirr write the same file.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from typing import Any, Callable, Dict, Optional

from ._clock import parse_iso
from ._jsonl import dumps_meta

META_FILE = "meta.json"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SYSTEM_FILE = "system.jsonl"
ARTIFACTS_DIR = "artifacts"
GIT_FILE = "git.json"

STATUSES = ("pending", "provisioning", "running", "completed", "failed", "cancelled", "preempted")
TERMINAL_STATUSES = frozenset(("completed", "failed", "cancelled", "preempted"))
LOST_AFTER_S = 60.0

# One lock for every meta.json rewrite in this process (heartbeat thread,
# capture thread, summary() from the training loop).
meta_lock = threading.RLock()


def new_run_id(now: Optional[float] = None) -> str:
    """``YYYYMMDD-HHMMSS-xxxxxx``: UTC creation time, then 6 random lower-case hex characters."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    return "%s-%s" % (stamp, secrets.token_hex(3))


def read_json_object(path: str) -> Dict[str, Any]:
    with open(path, "r", encoding="utf-8") as f:
        value = json.load(f)
    if not isinstance(value, dict):
        raise ValueError("runctl: %s does not hold a JSON object" % path)
    return value


def write_json_atomic(path: str, value: Any) -> None:
    """Replace ``path`` with ``value`` as JSON: temp file + fsync + rename (+ directory fsync)."""
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, ".%s.%d.%s.tmp" % (os.path.basename(path), os.getpid(), secrets.token_hex(4)))
    data = dumps_meta(value).encode("utf-8")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        view = memoryview(data)
        while view:  # a private temp file: looping on short writes is safe here
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not supported on every platform/filesystem
    finally:
        os.close(fd)


FILE_MUTEX_STALE_S = 2.0


class _FileMutex:
    """Cross-process mutex around a read-merge-write of ``path``, shared with the
    TypeScript tracker (``file-mutex.ts``): ``<path>.lock`` created with O_EXCL,
    held only for the rewrite; a lock older than 2 s belongs to a dead writer."""

    def __init__(self, path: str) -> None:
        self.lock = path + ".lock"

    def __enter__(self) -> "_FileMutex":
        while True:
            try:
                fd = os.open(self.lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                try:
                    if time.time() - os.stat(self.lock).st_mtime > FILE_MUTEX_STALE_S:
                        os.unlink(self.lock)
                except OSError:
                    pass  # released meanwhile
                time.sleep(0.002)
                continue
            try:
                os.write(fd, str(os.getpid()).encode())
            finally:
                os.close(fd)
            return self

    def __exit__(self, *exc: object) -> None:
        try:
            os.unlink(self.lock)
        except OSError:
            pass


def update_json(path: str, change: Callable[[Dict[str, Any]], None]) -> Dict[str, Any]:
    """Read ``path`` (a missing or unreadable file counts as ``{}``), apply ``change`` in place, write back."""
    with meta_lock, _FileMutex(path):
        try:
            value = read_json_object(path)
        except (FileNotFoundError, ValueError):
            value = {}
        change(value)
        write_json_atomic(path, value)
        return value


def update_meta(run_dir: str, change: Callable[[Dict[str, Any]], None]) -> Dict[str, Any]:
    return update_json(os.path.join(run_dir, META_FILE), change)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def lost_reason(meta: Dict[str, Any], now: Optional[float] = None) -> Optional[str]:
    """Why a run whose status is not terminal has no live writer, or None.

    Lost: ``hostname`` is this machine and ``pid`` is not alive, or
    ``heartbeat_at`` is older than 60 s.
    """
    status = meta.get("status")
    if status in TERMINAL_STATUSES:
        return None
    pid = meta.get("pid")
    host = meta.get("hostname")
    if isinstance(pid, int) and not isinstance(pid, bool) and host == socket.gethostname() and not pid_alive(pid):
        return "lost: writer process %d on %s is gone" % (pid, host)
    beat = parse_iso(meta.get("heartbeat_at"))
    if beat is not None:
        age = (time.time() if now is None else now) - beat
        if age > LOST_AFTER_S:
            return "lost: no heartbeat for %d s" % int(age)
    return None


def read_meta(run_dir: str, raw: bool = False) -> Dict[str, Any]:
    """``meta.json`` of ``run_dir`` as a dict.

    Unless ``raw``, a run that is not terminal and whose writer is gone is
    reported the way the spec asks readers to: status ``failed`` with
    ``error: "lost: …"`` (the file itself is not rewritten).
    """
    meta = read_json_object(os.path.join(run_dir, META_FILE))
    if not raw:
        reason = lost_reason(meta)
        if reason is not None:
            meta = dict(meta)
            meta["status"] = "failed"
            meta["error"] = reason
    return meta

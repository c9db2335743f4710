"""``RuntimeController``: runtimectl's API over runctl's node-local file queue.

The contract is docs/control.md in the runctl repository. In short, a queue is a
directory holding ``commands.jsonl`` (one command per line, appended under the
writers' mutex ``commands.jsonl.lock``), ``acks.jsonl`` (one ack per line, from
every rank), ``controls.json`` (the registered controls, written by rank 0) and
``cursor.rank<N>.json`` (how far rank N has applied).

Inside a run started by runctl the queue is ``$RUNCTL_CONTROL_DIR``, so::

    ctl = runctl.RuntimeController()
    ctl.register("optimizer.lr.multiplier", apply_lr_multiplier, validate_mult)
    for step in ...:
        ...
        ctl.poll_and_apply(ctx={"optimizer": opt}, every_s=2.0)
        if ctl.stop_requested:
            break

Validators and ``apply``: a command carries ``args`` and ``kwargs``.
``validate(*args, **kwargs)`` returns the normalised arguments of ``apply``:

- a single value → ``apply(ctx, value)``;
- a tuple → ``apply(ctx, *tuple)``;
- a 2-tuple ``(tuple_or_list, dict)`` → ``apply(ctx, *args, **kwargs)``.

So a validator of a one-argument control whose value is itself a tuple (or a
2-tuple made of a sequence and a dict) must wrap it: ``return ((value,), {})``.
Without a validator ``apply(ctx, *args, **kwargs)`` gets the command's
arguments as they are.

Multi-rank (torch.distributed initialised, world size > 1): every rank calls
``poll_and_apply`` once per step. Poll points are chosen by call count (call 0,
then every ``k`` calls, ``k`` picked by rank 0 from its time per call so that
polls are about ``every_s`` apart); at a poll point rank 0 reads the new lines
and broadcasts ``[n_new, k_next]`` (two int64), then the lines themselves when
``n_new > 0``; every rank applies exactly those, in order, and acks with its own
rank. Between poll points there is no collective and no file access. Without
torch.distributed each process polls the file on its own, at most once every
``every_s`` seconds (runtimectl's throttle).
"""

from __future__ import annotations

import collections
import json
import os
import re
import sys
import time
import uuid
import warnings
from typing import Any, Callable, Deque, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from ._clock import now_iso
from ._jsonl import _to_json_value, encode_line, fence_torn_tail, short_write
from ._meta import _FileMutex, read_json_object, write_json_atomic

COMMANDS_FILE = "commands.jsonl"
ACKS_FILE = "acks.jsonl"
CONTROLS_FILE = "controls.json"
CURSOR_FILE = "cursor.rank%d.json"
CONTROL_DIR_ENV = "RUNCTL_CONTROL_DIR"

MAX_LINE_BYTES = 64 * 1024  # a command line, newline included
APPLIED_IDS_KEPT = 1024
MAX_POLL_INTERVAL_CALLS = 1000000

_OPEN_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
_ID_IN_BROKEN_LINE = re.compile(rb'"id"\s*:\s*("(?:[^"\\]|\\.)*")')
_NO_VALUE = object()


class _Control:
    __slots__ = ("apply", "validate", "description", "schema", "get_value")

    def __init__(self, apply: Callable[..., Any], validate: Optional[Callable[..., Any]],
                 description: Optional[str], schema: Optional[Dict[str, Any]],
                 get_value: Optional[Callable[[], Any]]) -> None:
        self.apply = apply
        self.validate = validate
        self.description = description
        self.schema = schema
        self.get_value = get_value


class _Cursor:
    __slots__ = ("seq", "offset", "applied_ids")

    def __init__(self) -> None:
        self.seq = 0
        self.offset = 0
        self.applied_ids: Deque[str] = collections.deque(maxlen=APPLIED_IDS_KEPT)

    def as_dict(self) -> Dict[str, Any]:
        return {"seq": self.seq, "offset": self.offset, "applied_ids": list(self.applied_ids)}

    def load(self, state: Mapping[str, Any], what: str) -> None:
        if not isinstance(state, Mapping):
            raise ValueError("runctl: %s is not a cursor object" % what)
        seq, offset, ids = state.get("seq", 0), state.get("offset", 0), state.get("applied_ids", [])
        for name, value in (("seq", seq), ("offset", offset)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError("runctl: %s: %s must be a non-negative integer, not %r" % (what, name, value))
        if not isinstance(ids, (list, tuple)) or not all(isinstance(i, str) for i in ids):
            raise ValueError("runctl: %s: applied_ids must be a list of strings" % what)
        self.seq = seq
        self.offset = offset
        self.applied_ids = collections.deque(ids, maxlen=APPLIED_IDS_KEPT)


def _reject_constant(name: str) -> Any:
    raise ValueError("%s is not valid JSON" % name)


def _json_or_none(value: Any) -> Optional[str]:
    """``value`` as strict JSON text (what JSON.parse accepts), or None when it is not representable."""
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, OverflowError, RecursionError):
        return None


def _error_message(exc: BaseException) -> str:
    """The exception's message; its class name when the message is empty (a bare ``assert``)."""
    return str(exc) or type(exc).__name__


def _split_validated(result: Any) -> Tuple[Tuple[Any, ...], Dict[str, Any]]:
    """A validator's return value as ``(args, kwargs)`` for ``apply`` (see the module docstring)."""
    if isinstance(result, tuple):
        if len(result) == 2 and isinstance(result[0], (tuple, list)) and isinstance(result[1], dict):
            return tuple(result[0]), dict(result[1])
        return result, {}
    return (result,), {}


def _ack_value(args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
    """The ack's ``value``: the one argument, a list of several, or ``{"args", "kwargs"}``; none for no arguments."""
    if kwargs:
        return {"args": list(args), "kwargs": dict(kwargs)}
    if len(args) == 1:
        return args[0]
    if args:
        return list(args)
    return _NO_VALUE


def next_poll_interval(k_prev: int, elapsed_s: Optional[float], calls: int, every_s: float) -> int:
    """Rank 0's choice of ``k`` (calls between poll points) so that polls are about ``every_s`` apart.

    ``elapsed_s`` is the time the last ``calls`` calls took (None at the first
    poll). ``k`` may shrink at once but at most doubles per poll, so a burst of
    fast calls (warm-up, a loop before training) cannot push the next poll far
    into the slow steps that follow.
    """
    if every_s <= 0 or elapsed_s is None or calls <= 0:
        return 1
    per_call = elapsed_s / calls
    target = MAX_POLL_INTERVAL_CALLS if per_call <= 0 else int(every_s / per_call)
    return max(1, min(target, 2 * max(1, k_prev), MAX_POLL_INTERVAL_CALLS))


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "") or default)
    except ValueError:
        return default


class RuntimeController:
    """Named controls changed at run time by ``runctl ctl`` (runtimectl's API).

    ``queue_dir`` defaults to ``$RUNCTL_CONTROL_DIR`` (set by runctl for every
    run it starts); without either, call ``configure(queue_dir)`` before the
    first ``poll_and_apply``. ``rank``/``world_size`` default to the
    torch.distributed group once one is initialised, else ``RANK``/``WORLD_SIZE``.
    """

    def __init__(self, queue_dir: "Optional[str | os.PathLike[str]]" = None, *,
                 rank: Optional[int] = None, world_size: Optional[int] = None) -> None:
        for name, value, low in (("rank", rank, 0), ("world_size", world_size, 1)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
                raise ValueError("runctl: %s must be an integer >= %d, not %r" % (name, low, value))
        self._explicit_rank = rank
        self._explicit_world_size = world_size
        self.rank: int = rank if rank is not None else _env_int("RANK", 0)
        self.world_size: int = world_size if world_size is not None else max(1, _env_int("WORLD_SIZE", 1))
        if self.rank >= self.world_size:
            raise ValueError("runctl: rank %d is not below world_size %d" % (self.rank, self.world_size))
        self.queue_dir: Optional[str] = None
        self.stop_requested = False
        self._controls: Dict[str, _Control] = {}
        self._checkpoint_hook: Optional[Callable[..., Any]] = None
        self._cursor = _Cursor()
        self._cursor_restored = False  # load_state_dict() was called: the cursor file is not read
        self._consumed = False
        self._acks: Optional[int] = None
        self._last_poll: Optional[float] = None  # single-process throttle (time.monotonic)
        # Multi-rank state: the torch.distributed module once a group is seen, the
        # call counter, the next poll point and k, and rank 0's clock at the last poll.
        self._dist: Any = None
        self._calls = 0
        self._next_poll = 0
        self._k = 1
        self._poll_clock: Optional[float] = None
        self._poll_call = 0

        self.register("run.stop", self._apply_stop,
                      description="Stop the run: sets stop_requested, which the training loop checks")
        self.register("checkpoint.save", self._apply_checkpoint,
                      description="Save a checkpoint now: calls the hook registered with on_checkpoint(fn)")
        if queue_dir is None:
            queue_dir = os.environ.get(CONTROL_DIR_ENV) or None
        if queue_dir is not None:
            self.configure(queue_dir)

    # -- setup ---------------------------------------------------------------

    def configure(self, queue_dir: "str | os.PathLike[str]") -> None:
        """Use ``queue_dir`` (created if missing). Idempotent for the same directory;
        ValueError when already configured with another one."""
        path = os.path.abspath(os.fspath(queue_dir))
        if self.queue_dir is not None:
            if os.path.realpath(path) == os.path.realpath(self.queue_dir):
                return
            raise ValueError("RuntimeController already configured with %s" % self.queue_dir)
        os.makedirs(path, exist_ok=True)
        os.close(os.open(os.path.join(path, COMMANDS_FILE), _OPEN_APPEND, 0o644))
        acks_path = os.path.join(path, ACKS_FILE)
        fd = os.open(acks_path, _OPEN_APPEND, 0o644)
        try:
            fence_torn_tail(acks_path, fd)
        except BaseException:
            os.close(fd)
            raise
        self._acks = fd
        self.queue_dir = path
        if not self._cursor_restored:
            self._load_cursor_file()
        if self.rank == 0:
            self._write_controls()

    def register(
        self,
        path: str,
        apply: Optional[Callable[..., Any]] = None,
        validate: Optional[Callable[..., Any]] = None,
        overwrite: bool = False,
        *,
        description: Optional[str] = None,
        schema: Optional[Dict[str, Any]] = None,
        get_value: Optional[Callable[[], Any]] = None,
        apply_fn: Optional[Callable[..., Any]] = None,
        validate_fn: Optional[Callable[..., Any]] = None,
    ) -> None:
        """Register the control ``path``: ``apply(ctx, *args, **kwargs)`` after ``validate(*args, **kwargs)``.

        Idempotent: registering an existing path again does nothing unless
        ``overwrite``. ``description``, ``schema`` (a JSON Schema of the
        arguments, descriptive only) and ``get_value()`` (the current value) are
        published in ``controls.json``. ``apply_fn``/``validate_fn`` are
        runtimectl's keyword names for ``apply``/``validate``.
        """
        apply = apply if apply is not None else apply_fn
        validate = validate if validate is not None else validate_fn
        if not isinstance(path, str) or not path:
            raise ValueError("path must be a non-empty string")
        if not callable(apply):
            raise TypeError("runctl: apply for %r must be callable" % path)
        for name, fn in (("validate", validate), ("get_value", get_value)):
            if fn is not None and not callable(fn):
                raise TypeError("runctl: %s for %r must be callable" % (name, path))
        if description is not None and not isinstance(description, str):
            raise TypeError("runctl: description must be a string")
        if schema is not None and (not isinstance(schema, dict) or _json_or_none(schema) is None):
            raise TypeError("runctl: schema must be a JSON object (a JSON Schema)")
        if path in self._controls and not overwrite:
            return
        self._controls[path] = _Control(apply, validate, description, schema, get_value)
        if self.queue_dir is not None and self.rank == 0:
            self._write_controls()

    def on_checkpoint(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Set the hook ``checkpoint.save`` calls: ``fn(ctx, *args, **kwargs)``. Usable as a decorator."""
        if not callable(fn):
            raise TypeError("runctl: the checkpoint hook must be callable")
        self._checkpoint_hook = fn
        return fn

    def close(self) -> None:
        """Close ``acks.jsonl`` (the controller stays configured but can no longer ack)."""
        fd, self._acks = self._acks, None
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # -- the cursor ----------------------------------------------------------

    def state_dict(self) -> Dict[str, Any]:
        """``{"seq", "offset", "applied_ids"}``: save it in a checkpoint, restore with ``load_state_dict``."""
        return self._cursor.as_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` (a ``state_dict()``); it replaces this rank's cursor file."""
        cursor = _Cursor()
        cursor.load(state, "state_dict")
        self._cursor = cursor
        self._cursor_restored = True
        if self.queue_dir is not None:
            self._save_cursor()

    def _cursor_path(self) -> str:
        assert self.queue_dir is not None
        return os.path.join(self.queue_dir, CURSOR_FILE % self.rank)

    def _load_cursor_file(self) -> None:
        path = self._cursor_path()
        try:
            state = read_json_object(path)
        except FileNotFoundError:
            return
        except ValueError as exc:
            raise ValueError("runctl: cannot read the control cursor %s: %s" % (path, exc)) from None
        cursor = _Cursor()
        cursor.load(state, path)
        self._cursor = cursor

    def _save_cursor(self) -> None:
        try:
            write_json_atomic(self._cursor_path(), self._cursor.as_dict())
        except OSError as exc:
            warnings.warn("runctl: could not write %s: %s" % (self._cursor_path(), exc), RuntimeWarning, stacklevel=3)

    # -- polling -------------------------------------------------------------

    def poll_and_apply(self, ctx: Any = None, every_s: float = 2.0) -> List[Dict[str, Any]]:
        """Apply the commands published since the last poll; returns the acks written by this call.

        Single process: reads the queue at most once every ``every_s`` seconds.
        torch.distributed: see the module docstring (every rank must call it once per step).
        """
        if self.queue_dir is None:
            # A script run directly (no RUNCTL_CONTROL_DIR) that called runctl.init() is steered
            # through that run's queue: `runctl ctl <run> …` finds it in the run directory.
            from ._run import latest_run_dir

            run_dir = latest_run_dir()
            if run_dir is not None:
                self.configure(os.path.join(run_dir, "control"))
        if self.queue_dir is None:
            raise RuntimeError(
                "runctl: RuntimeController has no queue directory: pass queue_dir, call configure(queue_dir), "
                "or run under runctl (which sets %s)" % CONTROL_DIR_ENV
            )
        dist = self._dist if self._dist is not None else self._detect_dist()
        if dist is not None:
            return self._poll_distributed(dist, ctx, every_s)
        now = time.monotonic()
        if every_s > 0 and self._last_poll is not None and now - self._last_poll < every_s:
            return []
        self._last_poll = now
        return self._process(self._read_new(), ctx)

    def _detect_dist(self) -> Any:
        """The torch.distributed module when a process group with world size > 1 is initialised, else None.

        Never imports torch: a script that initialised a group has imported it.
        """
        dist = sys.modules.get("torch.distributed")
        if dist is None:
            return None
        try:
            if not (dist.is_available() and dist.is_initialized()):
                return None
            rank, world_size = dist.get_rank(), dist.get_world_size()
        except Exception:
            return None
        if world_size <= 1:
            return None
        if (self._explicit_rank is not None and self._explicit_rank != rank) or (
            self._explicit_world_size is not None and self._explicit_world_size != world_size
        ):
            raise ValueError(
                "runctl: RuntimeController(rank=%r, world_size=%r) disagrees with torch.distributed (rank %d of %d)"
                % (self._explicit_rank, self._explicit_world_size, rank, world_size)
            )
        if rank != self.rank:
            self.rank = rank
            if not self._cursor_restored and not self._consumed:
                self._cursor = _Cursor()
                self._load_cursor_file()
        self.world_size = world_size
        self._dist = dist
        self._calls = 0
        self._next_poll = 0
        self._k = 1
        self._poll_clock = None
        return dist

    def _poll_distributed(self, dist: Any, ctx: Any, every_s: float) -> List[Dict[str, Any]]:
        call = self._calls
        self._calls = call + 1
        if call != self._next_poll:
            return []  # no collective, no file access
        if not dist.is_initialized():  # the group was destroyed (on every rank, at the same call)
            self._dist = None
            self._last_poll = None
            return self.poll_and_apply(ctx, every_s)
        torch = sys.modules["torch"]
        if dist.get_backend() == "nccl":
            device = torch.device("cuda", torch.cuda.current_device())
        else:
            device = torch.device("cpu")
        entries: Optional[List[Dict[str, Any]]] = None
        if self.rank == 0:
            now = time.monotonic()
            elapsed = None if self._poll_clock is None else now - self._poll_clock
            k_next = next_poll_interval(self._k, elapsed, call - self._poll_call, every_s)
            self._poll_clock, self._poll_call = now, call
            try:
                entries = self._read_new()
            except OSError as exc:  # never leave the other ranks waiting in the broadcast
                warnings.warn("runctl: could not read the control queue: %s" % exc, RuntimeWarning, stacklevel=3)
                entries = []
            header = torch.tensor([len(entries), k_next], dtype=torch.int64, device=device)
        else:
            header = torch.zeros(2, dtype=torch.int64, device=device)
        dist.broadcast(header, src=0)
        n_new, k_next = (int(x) for x in header.tolist())
        if n_new > 0:
            box: List[Any] = [entries]
            if device.type == "cuda":
                dist.broadcast_object_list(box, src=0, device=device)
            else:
                dist.broadcast_object_list(box, src=0)
            entries = box[0]
        else:
            entries = []
        self._k = max(1, k_next)
        self._next_poll = call + self._k
        return self._process(entries or [], ctx)

    def _read_new(self) -> List[Dict[str, Any]]:
        """The complete lines after the cursor, prepared (parsed, duplicates marked); a torn last line waits."""
        path = os.path.join(self.queue_dir or ".", COMMANDS_FILE)
        cursor = self._cursor
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return []
        with f:
            size = os.fstat(f.fileno()).st_size
            offset = cursor.offset
            if offset > 0:
                before = b""
                if offset <= size:
                    f.seek(offset - 1)
                    before = f.read(1)
                if before != b"\n":
                    warnings.warn(
                        "runctl: %s no longer matches the cursor (seq %d at byte %d; the file was replaced or "
                        "truncated): reading it from the start, skipping the ids already applied"
                        % (path, cursor.seq, offset),
                        RuntimeWarning,
                        stacklevel=3,
                    )
                    cursor.seq, cursor.offset, offset = 0, 0, 0
            if size <= offset:
                return []
            f.seek(offset)
            data = f.read(size - offset)
        end = data.rfind(b"\n")
        if end < 0:
            return []
        seen: Set[str] = set(cursor.applied_ids)
        entries = []
        pos, seq = offset, cursor.seq
        for raw in data[:end].split(b"\n"):
            pos += len(raw) + 1
            entries.append(_prepare(raw, seq, pos, seen))
            seq += 1
        return entries

    def _process(self, entries: List[Dict[str, Any]], ctx: Any) -> List[Dict[str, Any]]:
        """Run prepared entries in order (the same on every rank) and ack each command with this rank."""
        acks: List[Dict[str, Any]] = []
        applied = False
        cursor = self._cursor
        try:
            for entry in entries:
                kind = entry["kind"]
                ack: Optional[Dict[str, Any]] = None
                if kind == "command":
                    ack = self._run_command(entry["command"], entry["seq"], ctx)
                    applied = applied or ack["status"] == "applied"
                elif kind == "malformed":
                    ack = self._ack(entry["id"], None, "invalid", entry["seq"], "rejected",
                                    error="malformed command: %s" % entry["reason"])
                cursor.seq = entry["seq"] + 1
                cursor.offset = entry["end"]
                if kind == "command" and entry.get("id"):
                    cursor.applied_ids.append(entry["id"])
                if ack is not None:
                    self._write_ack(ack)
                    acks.append(ack)
        finally:
            if entries:
                self._consumed = True
                self._save_cursor()
            if applied and self.rank == 0:
                self._write_controls()
        return acks

    def _run_command(self, cmd: Dict[str, Any], seq: int, ctx: Any) -> Dict[str, Any]:
        cid = cmd.get("id")
        if not isinstance(cid, str) or not cid:
            cid = "seq-%d" % seq
        path = cmd.get("path")
        ack_path = path if isinstance(path, str) else None
        op = cmd.get("op", "set")
        op_text = op if isinstance(op, str) else json.dumps(op)
        if "args" in cmd:
            args = cmd["args"]
        elif "value" in cmd:  # runtimectl's first command format: {"value": v}
            args = [cmd["value"]]
        else:
            args = []
        kwargs = cmd.get("kwargs", {})
        if not isinstance(args, list):
            return self._ack(cid, ack_path, op_text, seq, "rejected", error="args must be a list")
        if not isinstance(kwargs, dict):
            return self._ack(cid, ack_path, op_text, seq, "rejected", error="kwargs must be an object")
        if op != "set":
            return self._ack(cid, ack_path, op_text, seq, "rejected", error="unsupported op: %s" % op_text)
        control = self._controls.get(path) if isinstance(path, str) else None
        if control is None:
            shown = path if isinstance(path, str) else json.dumps(path)
            return self._ack(cid, ack_path, op_text, seq, "rejected", error="unknown path: %s" % shown)
        try:
            if control.validate is not None:
                call_args, call_kwargs = _split_validated(control.validate(*args, **kwargs))
            else:
                call_args, call_kwargs = tuple(args), dict(kwargs)
        except Exception as exc:
            return self._ack(cid, ack_path, op_text, seq, "failed", error=_error_message(exc))
        try:
            control.apply(ctx, *call_args, **call_kwargs)
        except Exception as exc:
            return self._ack(cid, ack_path, op_text, seq, "failed", error=_error_message(exc))
        return self._ack(cid, ack_path, op_text, seq, "applied", value=_ack_value(call_args, call_kwargs))

    def _ack(self, cid: str, path: Optional[str], op: str, seq: int, status: str,
             error: Optional[str] = None, value: Any = _NO_VALUE) -> Dict[str, Any]:
        ack: Dict[str, Any] = {"id": cid, "ts": time.time(), "path": path, "op": op, "status": status}
        if error is not None:
            ack["error"] = error
        if value is not _NO_VALUE:
            text = _json_or_none(value)
            if text is not None:
                ack["value"] = json.loads(text)  # plain JSON values (tuples become lists)
        ack["rank"] = self.rank
        ack["world_size"] = self.world_size
        ack["seq"] = seq
        return ack

    def _write_ack(self, ack: Dict[str, Any]) -> None:
        fd = self._acks
        if fd is None:
            warnings.warn("runctl: RuntimeController is closed; ack for %s not written" % ack["id"], RuntimeWarning)
            return
        data = encode_line(ack)
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise short_write(fd, ACKS_FILE, written, len(data))
        except OSError as exc:  # a full disk must not stop training (or desynchronise ranks)
            warnings.warn("runctl: could not write an ack: %s" % exc, RuntimeWarning, stacklevel=4)

    def _write_controls(self) -> None:
        items = []
        for path, control in self._controls.items():
            item: Dict[str, Any] = {"path": path}
            if control.description is not None:
                item["description"] = control.description
            if control.schema is not None:
                item["schema"] = control.schema
            if control.get_value is not None:
                try:
                    text = _json_or_none(control.get_value())
                except Exception:
                    text = None
                if text is not None:
                    item["value"] = json.loads(text)
            items.append(item)
        target = os.path.join(self.queue_dir or ".", CONTROLS_FILE)
        try:
            write_json_atomic(target, {"controls": items, "updated_at": now_iso(), "pid": os.getpid()})
        except OSError as exc:
            warnings.warn("runctl: could not write %s: %s" % (target, exc), RuntimeWarning, stacklevel=3)

    # -- standard controls ---------------------------------------------------

    def _apply_stop(self, ctx: Any, *args: Any, **kwargs: Any) -> None:
        self.stop_requested = True

    def _apply_checkpoint(self, ctx: Any, *args: Any, **kwargs: Any) -> None:
        hook = self._checkpoint_hook
        if hook is None:
            raise RuntimeError("no checkpoint hook registered")
        hook(ctx, *args, **kwargs)

    # -- publishing ----------------------------------------------------------

    @staticmethod
    def enqueue(queue_dir: "str | os.PathLike[str]", path: str, *args: Any, **kwargs: Any) -> Dict[str, Any]:
        """Append ``{"id", "ts", "op": "set", "path", "args", "kwargs"}`` to ``queue_dir``'s
        ``commands.jsonl`` (under the writers' mutex, one O_APPEND write) and return it.

        ValueError when the line would exceed 64 KiB or the arguments are not JSON.
        """
        if not isinstance(path, str) or not path:
            raise ValueError("path must be a non-empty string")
        cmd = {"id": str(uuid.uuid4()), "ts": time.time(), "op": "set", "path": path,
               "args": list(args), "kwargs": dict(kwargs)}
        try:
            text = json.dumps(cmd, allow_nan=False, separators=(",", ":"), ensure_ascii=False, default=_to_json_value)
        except ValueError as exc:
            raise ValueError("runctl: command arguments must be JSON values (%s)" % exc) from None
        line = (text + "\n").encode("utf-8")
        if len(line) > MAX_LINE_BYTES:
            raise ValueError("payload_too_large: the command is %d bytes, the limit is %d" % (len(line), MAX_LINE_BYTES))
        cmd = json.loads(text)
        directory = os.fspath(queue_dir)
        os.makedirs(directory, exist_ok=True)
        commands = os.path.join(directory, COMMANDS_FILE)
        with _FileMutex(commands):
            fd = os.open(commands, _OPEN_APPEND, 0o644)
            try:
                fence_torn_tail(commands, fd)  # a writer died mid-line: keep its fragment a line of its own
                written = os.write(fd, line)
                if written != len(line):
                    raise short_write(fd, commands, written, len(line))
            finally:
                os.close(fd)
        return cmd


def _prepare(raw: bytes, seq: int, end: int, seen: Set[str]) -> Dict[str, Any]:
    """One complete line of ``commands.jsonl`` as an entry every rank processes the same way.

    Kinds: ``command``; ``malformed`` (rejected); ``duplicate`` (id already
    applied, skipped without an ack); ``blank`` (an empty line, e.g. a writer's
    fence, skipped); ``supervisor`` (op ``signal``, applied by the supervisor,
    skipped). Every kind advances the cursor.
    """
    entry: Dict[str, Any] = {"seq": seq, "end": end}
    if not raw.strip():
        entry["kind"] = "blank"
        return entry
    reason = None
    cmd: Any = None
    try:
        cmd = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as exc:
        reason = "invalid UTF-8 (%s)" % exc.reason
    except ValueError as exc:
        reason = str(exc)
    except RecursionError:
        reason = "nested more than %d levels deep" % MAX_JSON_DEPTH
    if reason is None and not isinstance(cmd, dict):
        reason = "not a JSON object"
    if reason is None and _json_depth(cmd) > MAX_JSON_DEPTH:
        # As the TypeScript consumer: both must reject the same lines.
        reason = "nested more than %d levels deep" % MAX_JSON_DEPTH
    if reason is not None:
        entry["kind"] = "malformed"
        entry["id"] = _salvage_id(raw) or "seq-%d" % seq
        entry["reason"] = reason
        return entry
    cid = cmd.get("id")
    cid = cid if isinstance(cid, str) and cid else None
    if cid is not None and cid in seen:
        entry["kind"] = "duplicate"
        entry["id"] = cid
        return entry
    if cmd.get("op") == "signal":
        entry["kind"] = "supervisor"
        return entry
    if cid is not None:
        seen.add(cid)
    entry["kind"] = "command"
    entry["id"] = cid
    entry["command"] = cmd
    return entry


MAX_JSON_DEPTH = 64


def _json_depth(value: Any) -> int:
    """Nesting of lists and dicts (a scalar is 0), counted without recursion, stopping past the limit."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            depth += 1
            if depth > deepest:
                deepest = depth
            if depth > MAX_JSON_DEPTH:
                return depth
            stack.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def _salvage_id(raw: bytes) -> Optional[str]:
    """The ``"id": "…"`` string of a line that does not parse, when one can be read."""
    match = _ID_IN_BROKEN_LINE.search(raw)
    if match is None:
        return None
    try:
        value = json.loads(match.group(1).decode("utf-8"))
    except ValueError:
        return None
    return value if isinstance(value, str) and value else None

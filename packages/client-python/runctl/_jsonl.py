"""Append-only JSON Lines files: ``metrics.jsonl`` and ``system.jsonl``.

Writing: the file is opened once with ``O_WRONLY | O_APPEND | O_CREAT`` and
every line (JSON text plus ``\\n``) goes out in exactly one ``os.write``. With
``O_APPEND`` the kernel positions and writes each call as a unit, so lines from
several processes (ranks, the supervisor) never interleave. There is no fsync
per line: durability is that of ``f.write(...); f.flush()`` (the line is in the
kernel when ``log`` returns and survives the process dying, not a power cut).

Reading: an incomplete last line (no trailing newline, e.g. a writer killed
mid-write or a write still in flight) and lines that do not parse are skipped;
a missing file reads as no records.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, Dict, Iterator, List, Optional

_dumps = json.dumps
_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


def _to_json_value(value: Any) -> Any:
    """``default=`` hook: tensors and numpy scalars/arrays become plain numbers and lists."""
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass  # a multi-element tensor/array: fall through to tolist
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(
        "runctl: %r of type %s is not JSON serializable; log numbers, strings, lists or dicts"
        % (value, type(value).__name__)
    )


def sanitize(value: Any) -> Any:
    """A copy of ``value`` with NaN and ±Infinity replaced by None.

    ``json.dumps`` writes them as ``NaN``/``Infinity``, which is not JSON: the
    TypeScript readers (``JSON.parse``) would drop the whole line. A diverged
    loss is common in training, so the other keys of that line are kept and
    the non-finite number is stored as ``null``.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [sanitize(v) for v in value]
    return value


def _make_fast_encoder() -> Callable[[Any], str]:
    """A compact JSON encoder for the logging hot path, about twice as fast as ``json.dumps``.

    ``json.dumps`` builds a new C encoder on every call; this builds CPython's
    once (same output as ``json.dumps(obj)``, ``.item()``/``.tolist()`` for
    tensors, no circular-reference check). It raises ValueError for NaN and
    ±Infinity so the caller can store them as null. Falls back to ``json.dumps``
    where the C encoder is missing (other interpreters).
    """
    try:
        from json.encoder import c_make_encoder, encode_basestring_ascii
    except ImportError:  # pragma: no cover
        c_make_encoder = None
    if c_make_encoder is None:  # pragma: no cover
        def encode(obj: Any) -> str:
            return _dumps(obj, default=_to_json_value, allow_nan=False)

        return encode
    chunks = c_make_encoder(None, _to_json_value, encode_basestring_ascii, None, ": ", ", ", False, False, False)
    join = "".join

    def encode_c(obj: Any) -> str:
        return join(chunks(obj, 0))

    return encode_c


fast_encode = _make_fast_encoder()


def encode_obj(obj: Any) -> str:
    """Compact JSON for ``obj`` with NaN/±Infinity stored as null."""
    try:
        return fast_encode(obj)
    except ValueError:
        return _dumps(sanitize(_roundtrip(obj)), allow_nan=False)


def encode_line(record: Dict[str, Any]) -> bytes:
    """``record`` as one line of JSON (with the newline), UTF-8 encoded."""
    return (encode_obj(record) + "\n").encode("utf-8")


def _roundtrip(record: Dict[str, Any]) -> Any:
    """Plain JSON values for ``record`` (applies the default hook), keeping NaN as float."""
    return json.loads(_dumps(record, default=_to_json_value))


def dumps_meta(obj: Any) -> str:
    """Pretty JSON for meta.json/config.json/git.json, never emitting NaN/Infinity."""
    try:
        return json.dumps(obj, indent=2, allow_nan=False, default=_to_json_value) + "\n"
    except ValueError:
        return json.dumps(sanitize(_roundtrip(obj)), indent=2, allow_nan=False) + "\n"


def short_write(fd: int, path: str, written: int, total: int) -> OSError:
    """Handle a write that came back short (only on a full disk or a hard quota).

    It is not continued: a second write could land after another process's
    line. A lone newline (best effort) fences the fragment off as a line of its
    own, which readers skip. Returns the error to raise.
    """
    try:
        os.write(fd, b"\n")
    except OSError:
        pass
    return OSError("runctl: short write to %s (%d of %d bytes); is the disk full?" % (path, written, total))


def fence_torn_tail(path: str, fd: int) -> None:
    """End a file left with an unterminated last line (a writer killed mid-line) with a newline.

    Otherwise the next appended line would be glued to the fragment and both
    lost. The fragment stays a line of its own, which readers skip. If another
    writer appends a line between the check and this write, the cost is one
    empty line, which readers skip too.
    """
    size = os.fstat(fd).st_size
    if size == 0:
        return
    with open(path, "rb") as f:
        f.seek(size - 1)
        last = f.read(1)
    if last and last != b"\n":
        os.write(fd, b"\n")


class AppendWriter:
    """One JSONL file held open for appending; each line is a single ``os.write``."""

    __slots__ = ("path", "fd")

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int = os.open(path, _OPEN_FLAGS, 0o644)
        try:
            fence_torn_tail(path, self.fd)
        except BaseException:
            os.close(self.fd)
            raise

    def write_line(self, data: bytes) -> None:
        """Append ``data`` (one encoded line ending in ``\\n``) with one ``write`` call."""
        fd = self.fd
        if fd < 0:
            raise ValueError("runctl: %s is closed" % self.path)
        written = os.write(fd, data)
        if written != len(data):
            raise short_write(fd, self.path, written, len(data))

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    @property
    def closed(self) -> bool:
        return self.fd < 0


MAX_LINE_BYTES = 1 << 20


def iter_jsonl(path: str) -> Iterator[Dict[str, Any]]:
    """Records of a JSONL file: skips bad lines and an unterminated last line; missing file → nothing."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return
    lines = data.split(b"\n")
    # The element after the last newline is either b"" or an incomplete line.
    for raw in lines[:-1]:
        # Over-long lines are skipped like in the TypeScript readers (MAX_JSONL_LINE_BYTES).
        if not raw.strip() or len(raw) > MAX_LINE_BYTES:
            continue
        try:
            record = json.loads(raw)
        # RecursionError: a line nested thousands of levels deep; skipped like garbage.
        except (ValueError, RecursionError):  # also JSONDecodeError and UnicodeDecodeError
            continue
        if isinstance(record, dict):
            yield record


def read_jsonl(path: str) -> List[Dict[str, Any]]:
    return list(iter_jsonl(path))


def last_index(path: str, key: str = "_idx", tail_bytes: int = 1 << 20) -> Optional[int]:
    """The largest integer ``key`` among the complete lines at the end of ``path``.

    Reads at most ``tail_bytes`` from the end, so resuming into a long metrics
    file stays cheap. None when the file is missing or holds no such line.
    """
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            start = max(0, size - tail_bytes)
            f.seek(start)
            data = f.read()
    except FileNotFoundError:
        return None
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # the first one is probably cut
    best: Optional[int] = None
    for raw in lines[:-1]:
        try:
            record = json.loads(raw)
        except (ValueError, RecursionError):
            continue
        if isinstance(record, dict):
            value = record.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and (best is None or value > best):
                best = value
    return best

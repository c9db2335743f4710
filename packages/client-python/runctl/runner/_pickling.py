"""How Runner values travel: standard-library pickle, functions and classes by
reference, futures and object references as *persistent ids* so that a future
passed as an argument is fetched from the store by the worker, never by the
client.
"""

from __future__ import annotations

import io
import pickle
import traceback
import types
from typing import Any, Callable, Dict, List, Optional, Tuple

PROTOCOL = 4  # the newest protocol Python 3.9 and later all read
_REF_TAG = "runctl.object"


class ObjectRef:
    """A reference to an object in the runner's store (``objects/<id>.pkl``).

    ``task_id`` is the job id of the task that produces it (None for
    ``Runner.put_object``): a task taking the reference waits for that task.
    """

    __slots__ = ("key", "task_id")

    def __init__(self, key: str, task_id: Optional[int] = None) -> None:
        self.key = key
        self.task_id = task_id

    def __repr__(self) -> str:
        return "ObjectRef(%r, task_id=%r)" % (self.key, self.task_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and (other.key, other.task_id) == (self.key, self.task_id)

    def __hash__(self) -> int:
        return hash((self.key, self.task_id))

    def __runctl_ref__(self) -> "ObjectRef":
        return self


class UnpicklableTarget(TypeError):
    """A function or class that cannot be pickled by reference (lambda, closure, ``__main__``)."""


def check_importable(obj: Any, what: str = "service target") -> None:
    """Refuses, with the fix, what the worker could not import by name."""
    target = obj if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)) else type(obj)
    qualname = getattr(target, "__qualname__", "") or ""
    module = getattr(target, "__module__", None)
    name = "%s.%s" % (module, qualname)
    if "<lambda>" in qualname:
        raise UnpicklableTarget(
            "%s %s is a lambda; the Runner pickles functions by reference, so they must be defined "
            "at module level (def name(...) in a module of the packaged directory)" % (what, name)
        )
    if "<locals>" in qualname:
        raise UnpicklableTarget(
            "%s %s is defined inside a function (a closure); define it at module level in a module "
            "of the packaged directory, and pass what it captured as arguments" % (what, name)
        )
    if module == "__main__":
        raise UnpicklableTarget(
            "%s %s is defined in __main__ (the script or notebook you run), which the worker cannot import; "
            "move it to a module in the packaged directory and import it from there" % (what, qualname)
        )


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, refs: List[ObjectRef]) -> None:
        super().__init__(file, protocol=PROTOCOL)
        self._refs = refs

    def persistent_id(self, obj: Any) -> Any:  # noqa: D401 - pickle's hook
        hook = getattr(type(obj), "__runctl_ref__", None)
        if hook is None:
            return None
        ref = hook(obj)
        self._refs.append(ref)
        return (_REF_TAG, ref.key, ref.task_id)


def dumps(obj: Any) -> Tuple[bytes, List[ObjectRef]]:
    """The pickle of ``obj`` and the object references inside it."""
    buf = io.BytesIO()
    refs: List[ObjectRef] = []
    try:
        _Pickler(buf, refs).dump(obj)
    except (pickle.PicklingError, AttributeError, TypeError) as exc:
        raise UnpicklableTarget(
            "cannot pickle %s: %s (functions and classes travel by reference: define them at module level "
            "in the packaged directory; lambdas and closures cannot be sent)" % (type(obj).__name__, exc)
        ) from exc
    return buf.getvalue(), refs


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, fetch: Callable[[str], Any]) -> None:
        super().__init__(file)
        self._fetch = fetch

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) == 3 and pid[0] == _REF_TAG:
            return self._fetch(pid[1])
        raise pickle.UnpicklingError("unknown persistent id %r" % (pid,))


def loads(data: bytes, fetch: Callable[[str], Any]) -> Any:
    """Unpickles ``data``; each object reference inside is replaced by ``fetch(key)``."""
    return _Unpickler(io.BytesIO(data), fetch).load()


# ---------------------------------------------------------------- exceptions


def encode_error(exc: BaseException) -> Dict[str, Any]:
    """What the client needs to raise ``exc`` again: the exception pickled when it can be, and its traceback."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        pickled: Optional[bytes] = pickle.dumps(exc, protocol=PROTOCOL)
        pickle.loads(pickled)  # some exceptions pickle but cannot be rebuilt (required __init__ args)
    except Exception:
        pickled = None
    return {
        "module": type(exc).__module__,
        "qualname": type(exc).__qualname__,
        "message": str(exc),
        "traceback": tb,
        "pickled": pickled,
    }


class RemoteTraceback(Exception):
    """The traceback of an exception raised on a worker (set as the re-raised exception's ``__cause__``)."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return '\n"""\n%s"""' % self.tb


class RunnerTaskError(Exception):
    """A task failed and its original exception could not be rebuilt here (or it never ran)."""

    def __init__(self, message: str, remote_traceback: Optional[str] = None, job_id: Optional[int] = None) -> None:
        super().__init__(message)
        self.remote_traceback = remote_traceback
        self.job_id = job_id


def decode_error(info: Dict[str, Any], job_id: Optional[int] = None) -> BaseException:
    """The original exception (where its type imports here), its remote traceback as ``__cause__``."""
    tb = str(info.get("traceback") or "")
    exc: Optional[BaseException] = None
    pickled = info.get("pickled")
    if isinstance(pickled, bytes):
        try:
            candidate = pickle.loads(pickled)
            if isinstance(candidate, BaseException):
                exc = candidate
        except Exception:
            exc = None
    if exc is None:
        exc = RunnerTaskError(
            "%s.%s: %s" % (info.get("module"), info.get("qualname"), info.get("message")), tb, job_id
        )
    exc.__cause__ = RemoteTraceback(tb)
    try:
        exc.remote_traceback = tb  # type: ignore[attr-defined]
    except AttributeError:
        pass
    return exc

"""Keeping a directly started run's status truthful when the script does not call ``finish()``.

Installed once per process, only for runs this process owns (created itself,
not attached to a supervisor's run):

- ``sys.excepthook``: an unhandled exception marks the run ``failed`` with the
  exception and the end of its traceback (``KeyboardInterrupt``: ``cancelled``),
  then the previous hook prints it as usual.
- ``atexit``: a normal interpreter exit without ``finish()`` marks the run
  ``completed`` (what whirr does), unless the script called
  ``sys.exit(<non-zero>)``, which marks it ``failed`` with that exit code.
  ``sys.exit`` is wrapped only to remember the code; Python gives atexit
  handlers no other way to know it.
- ``SIGTERM`` (only when its handler is still the default, in the main
  thread): marks the run ``cancelled`` then lets the signal kill the process
  as it would have.

Processes forked from the owner (DataLoader workers) never finish the run.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any, List, Optional

if TYPE_CHECKING:
    from ._run import Run

ERROR_CHARS = 4000

_lock = threading.Lock()
_installed = False
_owned: List["Run"] = []
_exit_code: List[Any] = []  # [code] once sys.exit was called


def register(run: "Run") -> None:
    global _installed
    with _lock:
        _owned.append(run)
        if not _installed:
            _installed = True
            _install()


def unregister(run: "Run") -> None:
    with _lock:
        try:
            _owned.remove(run)
        except ValueError:
            pass


def _live_runs() -> List["Run"]:
    pid = os.getpid()
    with _lock:
        return [r for r in _owned if r._owner_pid == pid]


def describe_exception(exc_type: Any, exc: Any, tb: Any) -> str:
    """``Type: message`` followed by the end of the traceback, capped for meta.json."""
    head = "".join(traceback.format_exception_only(exc_type, exc)).strip()
    lines = "".join(traceback.format_exception(exc_type, exc, tb)).rstrip()
    text = head + "\n\n" + lines if lines and lines != head else head
    return text if len(text) <= ERROR_CHARS else head[:500] + "\n…\n" + text[-(ERROR_CHARS - 520) :]


def finish_for_exception(run: "Run", exc_type: Any, exc: Any, tb: Any) -> None:
    if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
        run._finish_owned("cancelled", exit_code=130, error="KeyboardInterrupt", wait=False)
    elif exc_type is not None and issubclass(exc_type, SystemExit):
        code = exit_code_of(getattr(exc, "code", None))
        if code == 0:
            run._finish_owned("completed", exit_code=0, error=None)
        else:
            run._finish_owned("failed", exit_code=code, error="exited with code %d" % code)
    else:
        run._finish_owned("failed", exit_code=1, error=describe_exception(exc_type, exc, tb))


def exit_code_of(code: Any) -> int:
    """The process exit status ``sys.exit(code)`` produces."""
    if code is None:
        return 0
    if isinstance(code, bool):
        return int(code)
    if isinstance(code, int):
        return code & 0xFF if code >= 0 else code
    return 1  # sys.exit("message") prints the message and exits with 1


def _install() -> None:
    previous_hook = sys.excepthook

    def excepthook(exc_type: Any, exc: Any, tb: Any) -> None:
        for run in _live_runs():
            try:
                finish_for_exception(run, exc_type, exc, tb)
            except Exception:  # noqa: BLE001 — never hide the user's traceback
                pass
        previous_hook(exc_type, exc, tb)

    sys.excepthook = excepthook

    original_exit = sys.exit

    def exit(code: Optional[Any] = None) -> None:  # noqa: A001 — mirrors sys.exit
        _exit_code[:] = [code]
        original_exit(code)

    exit.__doc__ = original_exit.__doc__
    exit.__wrapped__ = original_exit  # type: ignore[attr-defined]
    sys.exit = exit

    atexit.register(_at_exit)

    if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGTERM"):
        try:
            if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
                signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):
            pass


def _at_exit() -> None:
    code = exit_code_of(_exit_code[0]) if _exit_code else 0
    for run in _live_runs():
        try:
            if code == 0:
                run._finish_owned("completed", exit_code=0, error=None)
            else:
                run._finish_owned("failed", exit_code=code, error="exited with code %d" % code)
        except Exception:  # noqa: BLE001
            pass


def _on_sigterm(signum: int, frame: Any) -> None:
    for run in _live_runs():
        try:
            run._finish_owned("cancelled", exit_code=128 + signum, error="terminated by SIGTERM", wait=False)
        except Exception:  # noqa: BLE001
            pass
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)

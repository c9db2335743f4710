"""Driving the ``runctl`` CLI from Python through its ``--json`` envelope.

Every command prints one JSON document on stdout with ``--json``:
``{"success": true, ...result}`` or
``{"success": false, "error": {"code", "message", "hint"?}}``; people-facing
text goes to stderr. ``Trainctl`` runs the binary, parses the envelope and
raises ``TrainctlError`` for failures.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from typing import Any, Dict, List, Optional, Sequence, Union

STDERR_TAIL_CHARS = 4000


class TrainctlError(Exception):
    """A ``runctl`` command failed: ``code`` and ``hint`` come from its JSON envelope when it printed one."""

    def __init__(
        self,
        message: str,
        code: Optional[str] = None,
        hint: Optional[str] = None,
        exit_code: Optional[int] = None,
        stderr: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.hint = hint
        self.exit_code = exit_code
        self.stderr = stderr

    def __str__(self) -> str:
        text = self.message
        if self.code:
            text = "[%s] %s" % (self.code, text)
        if self.hint:
            text += " (hint: %s)" % self.hint
        return text


def _resolve_binary(binary: Union[str, Sequence[str], None]) -> List[str]:
    if binary is not None and not isinstance(binary, str):
        return list(binary)
    if binary:
        return [binary]
    env = os.environ.get("RUNCTL_BIN")
    if env:
        # A path to the binary, or a command line such as `node /path/to/bin/run.js`.
        return [env] if os.path.exists(env) else shlex.split(env)
    found = shutil.which("runctl")
    if found is None:
        raise TrainctlError(
            "runctl was not found on PATH",
            code="runctl_not_found",
            hint="Install it (npm i -g runctl), set RUNCTL_BIN, or pass Trainctl(binary=...).",
        )
    return [found]


class _Checkpoint:
    """``runctl checkpoint …``"""

    def __init__(self, tc: "Trainctl") -> None:
        self._tc = tc

    def list(self, directory: str) -> Dict[str, Any]:
        return self._tc._run(["checkpoint", "list", os.fspath(directory)])

    def info(self, path: str) -> Dict[str, Any]:
        return self._tc._run(["checkpoint", "info", os.fspath(path)])


class Trainctl:
    """The ``runctl`` CLI as Python calls.

    ``Trainctl(binary=None)`` uses ``binary`` (a path, or an argv prefix list),
    else ``$RUNCTL_BIN``, else ``runctl`` on PATH.
    """

    def __init__(self, binary: Union[str, Sequence[str], None] = None, timeout: Optional[float] = 600.0) -> None:
        self.argv = _resolve_binary(binary)
        self.timeout = timeout
        self.checkpoint = _Checkpoint(self)

    def _run(self, args: Sequence[str]) -> Dict[str, Any]:
        argv = [*self.argv, *[os.fspath(a) for a in args], "--json"]
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                timeout=self.timeout,
            )
        except FileNotFoundError as exc:
            raise TrainctlError("cannot run %s: %s" % (argv[0], exc), code="runctl_not_found") from exc
        except subprocess.TimeoutExpired as exc:
            raise TrainctlError("`%s` timed out after %s s" % (" ".join(argv), self.timeout), code="timeout") from exc
        stdout = proc.stdout.decode("utf-8", "replace")
        stderr = proc.stderr.decode("utf-8", "replace")
        try:
            envelope = json.loads(stdout)
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict):
            tail = stderr.strip()[-STDERR_TAIL_CHARS:]
            out = stdout.strip()[-STDERR_TAIL_CHARS:]
            message = "`%s` exited with %d without a JSON result" % (" ".join(argv), proc.returncode)
            if tail:
                message += "; stderr: " + tail
            if out:
                message += "; stdout: " + out
            raise TrainctlError(message, code="invalid_output", exit_code=proc.returncode, stderr=stderr)
        if envelope.get("success") is False or (proc.returncode != 0 and envelope.get("success") is not True):
            error = envelope.get("error")
            error = error if isinstance(error, dict) else {}
            message = error.get("message") or ("`%s` failed with exit code %d" % (" ".join(argv), proc.returncode))
            raise TrainctlError(
                str(message),
                code=error.get("code"),
                hint=error.get("hint"),
                exit_code=proc.returncode,
                stderr=stderr,
            )
        return envelope

    def runs(self, *args: str) -> Dict[str, Any]:
        """``runctl runs`` (extra arguments, e.g. ``"--status", "running"``, are passed through)."""
        return self._run(["runs", *args])

    def show(self, run: str) -> Dict[str, Any]:
        return self._run(["show", run])

    def providers(self) -> Dict[str, Any]:
        return self._run(["providers"])

    def doctor(self) -> Dict[str, Any]:
        return self._run(["doctor"])

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


class _Aws:
    """``runctl aws …``, with the Rust runctl wrapper's method names.

    Calls that stop or terminate pass ``--yes``: the call is the confirmation.
    """

    def __init__(self, tc: "Trainctl") -> None:
        self._tc = tc

    def create_instance(
        self,
        instance_type: str,
        spot: bool = False,
        spot_max_price: Optional[float] = None,
        spot_fallback: bool = False,
        fallback_types: Sequence[str] = (),
        zone: Optional[str] = None,
        image: Optional[str] = None,
        disk_gb: Optional[int] = None,
        name: Optional[str] = None,
        idempotency_key: Optional[str] = None,
        store: Optional[str] = None,
        idle_stop: Optional[int] = None,
        dry_run: bool = False,
    ) -> Dict[str, Any]:
        """Launches (or with ``dry_run`` quotes) an instance; the result's ``placement.resourceId`` is its id.

        With a ``store`` (or ``[aws] store``) and ``[nats] url`` the instance runs runctl's agent,
        which waits for runs (``train``) and shuts it down after ``idle_stop`` idle minutes.
        """
        args = ["aws", "create", instance_type]
        if spot:
            args.append("--spot")
        if spot_max_price is not None:
            args += ["--max-price", repr(float(spot_max_price))]
        if spot_fallback:
            args.append("--spot-fallback")
        for t in fallback_types:
            args += ["--fallback-type", t]
        for flag, value in (
            ("--zone", zone),
            ("--image", image),
            ("--name", name),
            ("--idempotency-key", idempotency_key),
            ("--store", store),
        ):
            if value is not None:
                args += [flag, value]
        if disk_gb is not None:
            args += ["--disk-gb", str(int(disk_gb))]
        if idle_stop is not None:
            args += ["--idle-stop", str(int(idle_stop))]
        if dry_run:
            args.append("--dry-run")
        return self._tc._run(args)

    def train(
        self,
        instance_id: str,
        script: str,
        args: Sequence[str] = (),
        nproc_per_node: Optional[int] = None,
        store: Optional[str] = None,
        dry_run: bool = False,
        resume: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Sends ``script`` (relative to the project) to the agent on a live instance made by
        ``create_instance(store=…)``; the result's ``runId`` names the run, ``follow`` how to follow it.
        ``resume`` names an earlier run (one that was preempted): the new run starts from its newest
        checkpoint in the store, whose path the script reads from ``RUNCTL_RESUME_FROM``."""
        argv = ["aws", "train", instance_id, script]
        if nproc_per_node is not None:
            argv += ["--nproc-per-node", str(int(nproc_per_node))]
        if store is not None:
            argv += ["--store", store]
        if resume is not None:
            argv += ["--resume", resume]
        if dry_run:
            argv.append("--dry-run")
        return self._tc._run([*argv, "--", *args])

    def monitor(
        self, instance_id: str, follow: bool = False, store: Optional[str] = None, tail: Optional[int] = None
    ) -> Dict[str, Any]:
        """The instance and its run (``machine``, ``run``, the output in ``output``). With ``follow``
        it returns when the run ends (no timeout) and ``exitCode`` is the run's."""
        argv = ["aws", "monitor", instance_id, *(["--follow"] if follow else [])]
        argv += _optional(("--store", store), ("--tail", tail))
        return self._tc._run(argv, timeout=None if follow else self._tc.timeout)

    def processes(self, instance_id: str, store: Optional[str] = None) -> Dict[str, Any]:
        """The ranks of the instance's run (pid, state, last heartbeat, CPU and memory), from the store copy."""
        return self._tc._run(["aws", "processes", instance_id, *_optional(("--store", store))])

    def logs(self, instance_id: str, tail: Optional[int] = None) -> Dict[str, Any]:
        """The instance's console (``output``): how its bootstrap went, also after it stopped."""
        return self._tc._run(["aws", "logs", instance_id, *_optional(("--tail", tail))])

    def list_instances(self, all: bool = False) -> Dict[str, Any]:
        return self._tc._run(["aws", "list", *(["--all"] if all else [])])

    def status(self, instance_id: str) -> Dict[str, Any]:
        return self._tc._run(["aws", "status", instance_id])

    def wait(self, instance_id: str, state: str = "running", timeout: int = 600) -> Dict[str, Any]:
        return self._tc._run(["aws", "wait", instance_id, "--state", state, "--timeout", str(int(timeout))])

    def start(self, instance_id: str) -> Dict[str, Any]:
        return self._tc._run(["aws", "start", instance_id])

    def stop(self, instance_id: str, force: bool = False, dry_run: bool = False) -> Dict[str, Any]:
        return self._tc._run(["aws", "stop", instance_id, *_confirmed(force, dry_run)])

    def terminate(self, instance_id: str, force: bool = False, dry_run: bool = False) -> Dict[str, Any]:
        return self._tc._run(["aws", "terminate", instance_id, *_confirmed(force, dry_run)])


class _Resources:
    """``runctl resources …`` across every provider (``platform`` narrows to one)."""

    def __init__(self, tc: "Trainctl") -> None:
        self._tc = tc

    def list(self, platform: Optional[str] = None, all: bool = False) -> Dict[str, Any]:
        return self._tc._run(["resources", "list", *_platform(platform), *(["--all"] if all else [])])

    def summary(self, platform: Optional[str] = None) -> Dict[str, Any]:
        return self._tc._run(["resources", "summary", *_platform(platform)])

    def stop_all(self, platform: Optional[str] = None, dry_run: bool = False) -> Dict[str, Any]:
        return self._tc._run(["resources", "stop-all", *_platform(platform), "--dry-run" if dry_run else "--yes"])


def _optional(*pairs: Any) -> List[str]:
    out: List[str] = []
    for flag, value in pairs:
        if value is not None:
            out += [flag, str(value)]
    return out


def _platform(platform: Optional[str]) -> List[str]:
    return ["--provider", platform] if platform else []


def _confirmed(force: bool, dry_run: bool) -> List[str]:
    return (["--force"] if force else []) + (["--dry-run"] if dry_run else ["--yes"])


# A call's timeout when it names none: the Trainctl's own (None is "no timeout").
_OWN_TIMEOUT: Any = object()


class Trainctl:
    """The ``runctl`` CLI as Python calls.

    ``Trainctl(binary=None)`` uses ``binary`` (a path, or an argv prefix list),
    else ``$RUNCTL_BIN``, else ``runctl`` on PATH.
    """

    def __init__(self, binary: Union[str, Sequence[str], None] = None, timeout: Optional[float] = 600.0) -> None:
        self.argv = _resolve_binary(binary)
        self.timeout = timeout
        self.checkpoint = _Checkpoint(self)
        self.aws = _Aws(self)
        self.resources = _Resources(self)

    def _run(self, args: Sequence[str], timeout: Any = _OWN_TIMEOUT) -> Dict[str, Any]:
        args = [os.fspath(a) for a in args]
        # --json before a `--`: what follows it belongs to the script.
        at = args.index("--") if "--" in args else len(args)
        argv = [*self.argv, *args[:at], "--json", *args[at:]]
        timeout = self.timeout if timeout is _OWN_TIMEOUT else timeout
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                timeout=timeout,
            )
        except FileNotFoundError as exc:
            raise TrainctlError("cannot run %s: %s" % (argv[0], exc), code="runctl_not_found") from exc
        except subprocess.TimeoutExpired as exc:
            raise TrainctlError("`%s` timed out after %s s" % (" ".join(argv), timeout), code="timeout") from exc
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

"""The job server's HTTP API (docs/job-queue.md) from Python: ``runctl.Client``.

whirr's client (``submit_job``, ``wait_for_job``, ``get_metrics``, …) with the
same method names and arguments, over ``urllib`` so that a training script
needs nothing beyond the standard library. Two failure kinds are kept apart
on purpose: ``ServerUnreachable`` (no answer at all) and ``ServerError`` (an
HTTP error answer); neither is ever turned into "not found".
"""

from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import os
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any, Dict, List, Optional, Sequence, Union

DEFAULT_SERVER_URL = "http://127.0.0.1:8080"
SERVER_URL_ENV = "RUNCTL_SERVER_URL"
SERVER_TOKEN_ENV = "RUNCTL_SERVER_TOKEN"
API_PREFIX = "/api/v1"

# Waits before each resend after a connection error. Resending is safe only for
# reads and for creates that carry an idempotency key.
RESEND_BACKOFF_S = (0.25, 0.5, 1.0)
# A proxy in front of the server answering for it: the server may not have
# seen the request, so these are resent like connection errors.
GATEWAY_STATUSES = (502, 503, 504)

FINISHED_JOB_STATUSES = ("completed", "failed", "cancelled")
ERROR_TEXT_CHARS = 2000

# runctl's limit for nested JSON (MAX_JSON_DEPTH in @runctl/core). Python's
# json module recurses per level and raises RecursionError around 1,000, so a
# deep answer is refused before json.loads and a deep config before sending.
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def json_text_depth(text: str) -> int:
    """The deepest nesting of objects and arrays in JSON ``text``, without parsing it.

    String literals are removed first (by regular expressions, at C speed), so
    only the brackets are looked at one by one.
    """
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depth = deepest = 0
    for c in brackets:
        if c in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
        else:
            depth -= 1
    return deepest


def _value_depth(value: Any) -> int:
    """The deepest nesting of dicts, lists and tuples in ``value``, walked without recursion."""
    deepest = 0
    stack = [(value, 0)]
    while stack:
        item, above = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        depth = above + 1
        if depth > deepest:
            deepest = depth
            if deepest > MAX_JSON_DEPTH:
                return deepest
        stack.extend((child, depth) for child in children if isinstance(child, (dict, list, tuple)))
    return deepest


class ServerUnreachable(ConnectionError):
    """No answer from the server: refused, reset, unknown host or timed out."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(
            "cannot reach the runctl server at %s (%s): start it with `runctl server`, "
            "or set %s to its address" % (url, reason, SERVER_URL_ENV)
        )
        self.url = url
        self.reason = reason


class ServerError(Exception):
    """The server answered with an HTTP error: ``status``, ``code`` (its ``error_code``), ``detail``, ``hint``."""

    def __init__(
        self,
        status: int,
        detail: str,
        code: Optional[str] = None,
        hint: Optional[str] = None,
        method: Optional[str] = None,
        url: Optional[str] = None,
    ) -> None:
        self.status = status
        self.code = code
        self.detail = detail
        self.hint = hint
        self.method = method
        self.url = url
        super().__init__(str(self))

    def __str__(self) -> str:
        text = "HTTP %d" % self.status
        if self.code:
            text += " %s" % self.code
        text += ": %s" % self.detail
        if self.method and self.url:
            text += " (%s %s)" % (self.method, self.url)
        if self.hint:
            text += "; hint: %s" % self.hint
        return text


class _Answer:
    __slots__ = ("status", "body")

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body


def _is_loopback(host: Optional[str]) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _job_id(job_id: Any) -> int:
    # Numeric strings are accepted because ids often come from argv or a file.
    if isinstance(job_id, str) and job_id.strip().isdigit():
        return int(job_id.strip())
    if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id < 0:
        raise ValueError("job_id must be a non-negative int (got %r)" % (job_id,))
    return job_id


def _run_id(run_id: Any) -> str:
    if not isinstance(run_id, str) or not run_id or "/" in run_id:
        raise ValueError("run_id must be a non-empty string without '/' (got %r)" % (run_id,))
    return run_id


def _int_arg(name: str, value: Any, minimum: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("%s must be an int (got %r)" % (name, value))
    if minimum is not None and value < minimum:
        raise ValueError("%s must be >= %d (got %d)" % (name, minimum, value))
    return value


def _seconds_arg(name: str, value: Any, allow_zero: bool) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError("%s must be a number of seconds or None (got %r)" % (name, value))
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError("%s must be %s (got %r)" % (name, ">= 0" if allow_zero else "> 0", value))
    return float(value)


def _text_arg(name: str, value: Any) -> Optional[str]:
    if value is not None and (not isinstance(value, str) or not value):
        raise ValueError("%s must be a non-empty string or None (got %r)" % (name, value))
    return value


def _artifact_path(path: Any) -> str:
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise ValueError("artifact path must be a non-empty string (got %r)" % (path,))
    segments = path.split("/")
    if path.startswith("/") or ".." in segments or "\x00" in path:
        raise ValueError("artifact path must be relative to the run directory, without '..' (got %r)" % (path,))
    # Each segment is encoded on its own so that '/' keeps separating them and
    # '?', '#', '%' or spaces in a file name cannot change the request.
    return "/".join(urllib.parse.quote(s, safe="") for s in segments)


def _config_arg(config: Any) -> Optional[Dict[str, Any]]:
    if config is None:
        return None
    if isinstance(config, argparse.Namespace):
        config = vars(config)
    if not isinstance(config, dict):
        raise ValueError("config must be a dict, an argparse.Namespace or None (got %s)" % type(config).__name__)
    if _value_depth(config) > MAX_JSON_DEPTH:
        raise ValueError(
            "config is nested more than %d levels deep (the limit for JSON in runctl): flatten it" % MAX_JSON_DEPTH
        )
    try:
        json.dumps(config, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError("config must hold JSON values only: %s" % exc) from None
    return config


def _tags_arg(tags: Any) -> Optional[List[str]]:
    if tags is None:
        return None
    if isinstance(tags, str) or not isinstance(tags, (list, tuple)):
        raise ValueError("tags must be a list of strings (got %r)" % (tags,))
    for tag in tags:
        if not isinstance(tag, str) or not tag:
            raise ValueError("every tag must be a non-empty string (got %r)" % (tag,))
    return list(tags)


def _argv_arg(command_argv: Any) -> List[str]:
    if isinstance(command_argv, str) or not isinstance(command_argv, (list, tuple)) or not command_argv:
        raise ValueError(
            "command_argv must be a non-empty list of strings, e.g. ['python', 'train.py', '--lr', '0.1'] (got %r)"
            % (command_argv,)
        )
    for arg in command_argv:
        if not isinstance(arg, str):
            raise ValueError("every item of command_argv must be a string (got %r)" % (arg,))
    return list(command_argv)


def _error_from(status: int, body: bytes, method: str, url: str) -> ServerError:
    text = body.decode("utf-8", "replace").strip()
    detail, code, hint = "", None, None
    try:
        doc = json.loads(text) if json_text_depth(text) <= MAX_JSON_DEPTH else None
    except ValueError:
        doc = None
    if isinstance(doc, dict) and "detail" in doc:
        raw = doc.get("detail")
        detail = raw if isinstance(raw, str) else json.dumps(raw)
        code = doc.get("error_code") if isinstance(doc.get("error_code"), str) else None
        hint = doc.get("hint") if isinstance(doc.get("hint"), str) else None
    else:
        detail = text[:ERROR_TEXT_CHARS] or http.client.responses.get(status, "error")
    if status == 401 and not hint:
        hint = "pass token=... or set %s to the server's token" % SERVER_TOKEN_ENV
    return ServerError(status, detail, code=code, hint=hint, method=method, url=url)


def _not_found(err: ServerError, code: str) -> bool:
    """A 404 for the thing asked for; any other 404 (an unknown route: a wrong server URL) is an error."""
    return err.status == 404 and err.code == code


class Client:
    """The runctl job server (``runctl server``) over HTTP.

    ``server_url`` defaults to ``$RUNCTL_SERVER_URL``, else
    ``http://127.0.0.1:8080``; ``token`` to ``$RUNCTL_SERVER_TOKEN`` (sent as
    ``Authorization: Bearer``). ``timeout`` bounds each HTTP request.
    """

    def __init__(self, server_url: Optional[str] = None, token: Optional[str] = None, timeout: float = 30.0) -> None:
        url = server_url if server_url is not None else os.environ.get(SERVER_URL_ENV) or DEFAULT_SERVER_URL
        if not isinstance(url, str):
            raise ValueError("server_url must be a string such as %s (got %r)" % (DEFAULT_SERVER_URL, url))
        url = url.strip().rstrip("/")
        if url.endswith(API_PREFIX):
            url = url[: -len(API_PREFIX)]
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("server_url must be an http(s) URL such as %s (got %r)" % (DEFAULT_SERVER_URL, url))
        if token is None:
            token = os.environ.get(SERVER_TOKEN_ENV) or None
        if token is not None and (not isinstance(token, str) or not token):
            raise ValueError("token must be a non-empty string or None")
        self.timeout = _seconds_arg("timeout", timeout, allow_zero=False)
        self.server_url = url
        self.token = token
        # Loopback never goes through an HTTP proxy from the environment: the
        # proxy cannot reach this machine's server, and no_proxy is rarely set.
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(parts.hostname) else []
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:
        return "runctl.Client(%r)" % self.server_url

    def close(self) -> None:
        """Nothing to release (one connection per request); kept for whirr's ``with`` usage."""

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------ HTTP

    def _url(self, path: str, query: Optional[Dict[str, Any]] = None) -> str:
        url = self.server_url + API_PREFIX + path
        if query:
            pairs = [(k, str(v)) for k, v in query.items() if v is not None]
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs)
        return url

    def _send(self, method: str, url: str, body: Optional[bytes]) -> _Answer:
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return _Answer(response.status, response.read())
        except urllib.error.HTTPError as exc:
            try:
                data = exc.read()
            except (OSError, http.client.HTTPException):
                data = b""
            finally:
                exc.close()
            raise _error_from(exc.code, data, method, url) from None
        except urllib.error.URLError as exc:
            raise ServerUnreachable(self.server_url, str(exc.reason)) from exc
        except (OSError, http.client.HTTPException) as exc:
            # Reset or refused mid-request, a read timeout (socket.timeout), or
            # a response cut short (IncompleteRead): no usable answer either way.
            reason = str(exc) or type(exc).__name__
            if isinstance(exc, socket.timeout):
                reason = "no answer within %s s" % self.timeout
            raise ServerUnreachable(self.server_url, reason) from exc

    def _call(
        self,
        method: str,
        path: str,
        query: Optional[Dict[str, Any]] = None,
        body: Optional[Dict[str, Any]] = None,
        resend: bool = False,
    ) -> _Answer:
        url = self._url(path, query)
        data = None if body is None else json.dumps(body, allow_nan=False).encode("utf-8")
        waits = RESEND_BACKOFF_S if resend else ()
        for wait in waits:
            try:
                return self._send(method, url, data)
            except ServerUnreachable:
                pass
            except ServerError as exc:
                if exc.status not in GATEWAY_STATUSES:
                    raise
            time.sleep(wait)
        return self._send(method, url, data)

    def _json(
        self,
        method: str,
        path: str,
        query: Optional[Dict[str, Any]] = None,
        body: Optional[Dict[str, Any]] = None,
        resend: bool = False,
    ) -> Any:
        answer = self._call(method, path, query=query, body=body, resend=resend)
        text = answer.body.decode("utf-8", "replace")
        if json_text_depth(text) > MAX_JSON_DEPTH:
            raise ServerError(
                answer.status,
                "the answer is nested more than %d levels deep (the limit for JSON in runctl)" % MAX_JSON_DEPTH,
                code="json_too_deep",
                hint="a job stored before the server enforced the limit holds such a value; "
                "cancel or ignore that job (its config cannot be read back)",
                method=method,
                url=self._url(path, query),
            )
        try:
            return json.loads(text)
        except ValueError:
            raise ServerError(
                answer.status,
                "the answer is not JSON: %r" % answer.body[:200],
                code="invalid_response",
                hint="check that %s is a runctl server" % self.server_url,
                method=method,
                url=self._url(path, query),
            ) from None

    def _get(self, path: str, query: Optional[Dict[str, Any]] = None) -> Any:
        return self._json("GET", path, query=query, resend=True)

    # ------------------------------------------------------------ jobs

    def submit_job(
        self,
        command_argv: Sequence[str],
        workdir: Union[str, "os.PathLike[str]", None] = None,
        name: Optional[str] = None,
        config: Optional[Dict[str, Any]] = None,
        tags: Optional[Sequence[str]] = None,
        priority: int = 0,
        gpus: int = 0,
        timeout_seconds: Optional[float] = None,
        max_retries: int = 0,
        retry_backoff_seconds: Optional[float] = None,
        idempotency_key: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Queue ``command_argv`` to run in ``workdir`` (default: the current directory).

        Returns ``{"job_id", "run_id", "run_dir", "message", "created"}``. The
        request carries an idempotency key (a fresh one unless given) and is
        resent with the same key after a connection error, so a lost answer
        never queues the job twice (``created`` is then False).
        """
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError("name must be a non-empty string or None (got %r)" % (name,))
        if workdir is None:
            workdir = os.getcwd()
        workdir = os.fspath(workdir)
        if not isinstance(workdir, str) or not workdir:
            raise ValueError("workdir must be a directory path (got %r)" % (workdir,))
        if idempotency_key is None:
            idempotency_key = uuid.uuid4().hex
        elif not isinstance(idempotency_key, str) or not idempotency_key:
            raise ValueError("idempotency_key must be a non-empty string or None")
        body: Dict[str, Any] = {
            "command_argv": _argv_arg(command_argv),
            # The worker may run elsewhere: a relative directory would mean nothing there.
            "workdir": os.path.abspath(workdir),
            "name": name,
            "config": _config_arg(config),
            "tags": _tags_arg(tags),
            "priority": _int_arg("priority", priority),
            "gpus": _int_arg("gpus", gpus, minimum=0),
            "timeout_seconds": _seconds_arg("timeout_seconds", timeout_seconds, allow_zero=False),
            "max_retries": _int_arg("max_retries", max_retries, minimum=0),
            "idempotency_key": idempotency_key,
        }
        backoff = _seconds_arg("retry_backoff_seconds", retry_backoff_seconds, allow_zero=True)
        if backoff is not None:
            body["retry_backoff_seconds"] = backoff
        return self._json("POST", "/jobs", body=body, resend=True)

    def get_job(self, job_id: int) -> Optional[Dict[str, Any]]:
        """The job, or None when the server has no such job (404). Other failures raise."""
        try:
            return self._get("/jobs/%d" % _job_id(job_id))
        except ServerError as exc:
            if _not_found(exc, "job_not_found"):
                return None
            raise

    def wait_for_job(self, job_id: int, poll_interval: float = 1.0, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Poll until the job is completed, failed or cancelled; return it.

        Raises the builtin ``TimeoutError`` when ``timeout`` seconds pass first,
        ``ServerError`` (404, ``job_not_found``) for an unknown job, and
        ``ServerUnreachable`` only when the first poll gets no answer (later,
        a restarting server is waited for).
        """
        job_id = _job_id(job_id)
        interval = _seconds_arg("poll_interval", poll_interval, allow_zero=False)
        limit = _seconds_arg("timeout", timeout, allow_zero=True)
        deadline = None if limit is None else time.monotonic() + limit
        job = None  # type: Optional[Dict[str, Any]]
        while True:
            try:
                job = self._get("/jobs/%d" % job_id)
                if job.get("status") in FINISHED_JOB_STATUSES:
                    return job
            except ServerUnreachable:
                # A restarting server is no reason to stop waiting; but the first poll must
                # answer, so that a wrong URL is not waited on forever.
                if job is None:
                    raise
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError(
                    "job %d is still %s after %ss" % (job_id, job.get("status"), timeout)
                )
            pause = interval if deadline is None else min(interval, deadline - now)
            time.sleep(pause)

    def submit_and_wait(
        self,
        command_argv: Sequence[str],
        workdir: Union[str, "os.PathLike[str]", None] = None,
        name: Optional[str] = None,
        config: Optional[Dict[str, Any]] = None,
        tags: Optional[Sequence[str]] = None,
        priority: int = 0,
        gpus: int = 0,
        timeout_seconds: Optional[float] = None,
        max_retries: int = 0,
        poll_interval: float = 1.0,
        timeout: Optional[float] = None,
    ) -> Dict[str, Any]:
        """``submit_job`` then ``wait_for_job``: the finished job."""
        created = self.submit_job(
            command_argv,
            workdir=workdir,
            name=name,
            config=config,
            tags=tags,
            priority=priority,
            gpus=gpus,
            timeout_seconds=timeout_seconds,
            max_retries=max_retries,
        )
        return self.wait_for_job(created["job_id"], poll_interval=poll_interval, timeout=timeout)

    def list_jobs(self, status: Optional[str] = None, limit: int = 50, offset: int = 0) -> List[Dict[str, Any]]:
        """Jobs, newest first. ``status``: a job status, ``"active"`` (the server's default) or ``"all"``.

        The server answers in pages bounded by bytes (``next_offset``, a runctl
        addition); they are followed until ``limit`` jobs.
        """
        status = _text_arg("status", status)
        limit = _int_arg("limit", limit, minimum=1)
        offset = _int_arg("offset", offset, minimum=0)
        jobs = []  # type: List[Dict[str, Any]]
        while True:
            query = {"status": status, "limit": limit - len(jobs), "offset": offset or None}
            page = self._get("/jobs", query)
            jobs.extend(page["jobs"])
            next_offset = page.get("next_offset")
            if not isinstance(next_offset, int) or not page["jobs"] or len(jobs) >= limit:
                return jobs
            offset = next_offset

    def get_active_jobs(self) -> List[Dict[str, Any]]:
        """Queued and running jobs."""
        return self._get("/jobs", {"status": "active"})["jobs"]

    def cancel_job(self, job_id: int) -> Dict[str, Any]:
        """Cancel a job: a queued one at once, a running one when its worker sees ``cancel_requested``.

        Returns ``{"message", "previous_status", "status"}``; a finished job
        raises ``ServerError`` 409 ``job_finished``. Not resent after a
        connection error (check with ``get_job``).
        """
        return self._json("POST", "/jobs/%d/cancel" % _job_id(job_id))

    def cancel_all_queued(self) -> Dict[str, Any]:
        """Cancel every queued job: ``{"message", "cancelled": [job ids]}``."""
        return self._json("POST", "/jobs/cancel-queued")

    def retry_job(self, job_id: int) -> Dict[str, Any]:
        """Queue a finished job again as a new job (``retry_of`` links them)."""
        return self._json("POST", "/jobs/%d/retry" % _job_id(job_id))

    # ------------------------------------------------------------ runs

    def get_runs(
        self,
        status: Optional[str] = None,
        tag: Optional[str] = None,
        limit: int = 50,
        job_id: Optional[int] = None,
    ) -> List[Dict[str, Any]]:
        """Run records (one per job attempt), newest first."""
        query = {
            "status": _text_arg("status", status),
            "tag": _text_arg("tag", tag),
            "job_id": None if job_id is None else _job_id(job_id),
            "limit": _int_arg("limit", limit, minimum=1),
        }
        return self._get("/runs", query)["runs"]

    def get_run(self, run_id: str) -> Optional[Dict[str, Any]]:
        """The run, or None when the server has no such run (404). Other failures raise."""
        try:
            return self._get("/runs/%s" % urllib.parse.quote(_run_id(run_id), safe=""))
        except ServerError as exc:
            if _not_found(exc, "run_not_found"):
                return None
            raise

    def get_metrics(self, run_id: str, since: Optional[int] = None) -> List[Dict[str, Any]]:
        """The run's ``metrics.jsonl`` records; with ``since``, only those with ``_idx >= since``."""
        query = {"since": None if since is None else _int_arg("since", since, minimum=0)}
        return self._get("/runs/%s/metrics" % urllib.parse.quote(_run_id(run_id), safe=""), query)["metrics"]

    def list_artifacts(self, run_id: str) -> List[Dict[str, Any]]:
        """Every file of the run directory: ``[{"path", "size", "modified"}]``."""
        return self._get("/runs/%s/artifacts" % urllib.parse.quote(_run_id(run_id), safe=""))["artifacts"]

    def get_artifact(self, run_id: str, path: str) -> bytes:
        """The bytes of one file of the run directory (``path`` relative to it, e.g. ``"artifacts/model.pt"``)."""
        route = "/runs/%s/artifacts/%s" % (urllib.parse.quote(_run_id(run_id), safe=""), _artifact_path(path))
        return self._call("GET", route, resend=True).body

    # ------------------------------------------------------------ server

    def get_status(self) -> Dict[str, Any]:
        """Job counts by status and worker counts."""
        return self._get("/status")

    def get_workers(self) -> List[Dict[str, Any]]:
        """Registered workers (``offline`` when not heard from for two leases)."""
        return self._get("/workers")["workers"]

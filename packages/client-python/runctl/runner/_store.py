"""The Runner's object store, seen from Python: ``file://`` only (the default).

Keys are relative POSIX paths under the store root, exactly as the Node side's
``ArtifactStore`` names them. Writes go to a temporary file and are renamed
into place, so a reader never sees half an object.
"""

from __future__ import annotations

import os
import tempfile
from typing import List, Optional
from urllib.parse import unquote, urlparse


class StoreError(Exception):
    """The store cannot be used from Python, or an object is missing."""

    def __init__(self, message: str, code: str = "runner_store", hint: Optional[str] = None) -> None:
        super().__init__(message)
        self.code = code
        self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        return text + (" (hint: %s)" % self.hint if self.hint else "")


def default_store_url() -> str:
    """``$RUNCTL_RUNNER_STORE``, else ``file://$XDG_DATA_HOME/runctl/runner-store``."""
    env = os.environ.get("RUNCTL_RUNNER_STORE")
    if env:
        return env
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return "file://" + os.path.join(os.path.abspath(base), "runctl", "runner-store")


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StoreError("bad store key %r" % key, code="bad_key")
    return key


def open_store(url: str):
    """The store for ``url``: ``file://`` here, ``s3://`` in ``_s3`` (standard library, SigV4)."""
    if url.startswith("s3://"):
        from ._s3 import S3Store

        return S3Store(url)
    return FileStore(url)


def normalize_url(url: str) -> str:
    """``file://`` URLs with an absolute path (what the server and the workers need); others as given."""
    if url.startswith("s3://"):
        return url
    return "file://" + FileStore(url).root


class FileStore:
    """A ``file://`` store rooted at a local directory."""

    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        if parsed.scheme != "file":
            raise StoreError(
                "the Python Runner reads and writes objects in file:// and s3:// stores, not %s" % parsed.scheme,
                code="runner_store_unsupported",
                hint="Use a file:// store (shared by the client and the workers, e.g. on one machine or NFS) "
                "or s3://bucket/prefix.",
            )
        if parsed.netloc not in ("", "localhost"):
            raise StoreError("file:// URL with a host: %s" % url, code="runner_store_unsupported")
        self.url = url
        self.root = os.path.abspath(unquote(parsed.path))

    def path(self, key: str) -> str:
        return os.path.join(self.root, *_check_key(key).split("/"))

    def put_bytes(self, key: str, data: bytes) -> None:
        dest = self.path(key)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(dest))
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, dest)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def get_bytes(self, key: str) -> bytes:
        try:
            with open(self.path(key), "rb") as f:
                return f.read()
        except FileNotFoundError:
            raise StoreError("no object %s in %s" % (key, self.url), code="object_not_found") from None

    def exists(self, key: str) -> bool:
        return os.path.isfile(self.path(key))

    def delete(self, key: str) -> None:
        try:
            os.unlink(self.path(key))
        except FileNotFoundError:
            pass

    def list(self, prefix: str) -> List[str]:
        """Keys under a directory-like ``prefix`` (ending in ``/``)."""
        base = self.path(prefix.rstrip("/"))
        out = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                full = os.path.join(dirpath, name)
                out.append(prefix + os.path.relpath(full, base).replace(os.sep, "/"))
        return sorted(out)

    def delete_prefix(self, prefix: str) -> int:
        keys = self.list(prefix)
        for key in keys:
            self.delete(key)
        base = self.path(prefix.rstrip("/"))
        for dirpath, _dirs, _files in sorted(os.walk(base, topdown=False), key=lambda t: -len(t[0])):
            try:
                os.rmdir(dirpath)
            except OSError:
                pass
        return len(keys)

"""Copying files into a run's ``artifacts/`` directory without ever writing outside it."""

from __future__ import annotations

import os
import secrets
import shutil
from typing import Optional


class ArtifactNameError(ValueError):
    """An artifact name that is absolute, empty, or climbs out of ``artifacts/``."""


def artifact_destination(artifacts_dir: str, name: str) -> str:
    """The absolute path ``name`` designates inside ``artifacts_dir``; raises ArtifactNameError when it escapes.

    ``name`` may hold sub-directories (``ckpt/model.pt``, forward or back
    slashes); absolute names, ``..`` components, and names resolving through a
    symlink to outside ``artifacts_dir`` are refused.
    """
    if not isinstance(name, str) or not name.strip():
        raise ArtifactNameError("runctl: artifact name must be a non-empty string")
    if "\x00" in name:
        raise ArtifactNameError("runctl: artifact name %r contains a NUL byte" % name)
    normalized = name.replace("\\", "/")
    if normalized.startswith("/") or os.path.isabs(name) or (len(normalized) > 1 and normalized[1] == ":"):
        raise ArtifactNameError("runctl: artifact name %r must be relative to artifacts/" % name)
    parts = [p for p in normalized.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts):
        raise ArtifactNameError("runctl: artifact name %r escapes artifacts/" % name)
    root = os.path.realpath(artifacts_dir)
    destination = os.path.join(root, *parts)
    # A symlinked sub-directory could still lead elsewhere: check the real parent.
    real_parent = os.path.realpath(os.path.dirname(destination))
    if os.path.commonpath([root, real_parent]) != root:
        raise ArtifactNameError("runctl: artifact name %r resolves outside artifacts/" % name)
    return destination


def copy_artifact(source: str, artifacts_dir: str, name: Optional[str] = None) -> str:
    """Copy the file or directory ``source`` to ``artifacts/<name>`` (default: its base name); returns the destination.

    A file is copied to a temporary name and renamed, so readers never see a
    half-written artifact; an existing artifact of the same name is replaced.
    """
    source = os.fspath(source)
    if not os.path.exists(source):
        raise FileNotFoundError("runctl: no such file to save as an artifact: %s" % source)
    if name is None:
        name = os.path.basename(os.path.normpath(source))
    destination = artifact_destination(artifacts_dir, name)
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    if os.path.isdir(source):
        shutil.copytree(source, destination, dirs_exist_ok=True)
        return destination
    tmp = os.path.join(os.path.dirname(destination), ".%s.%s.tmp" % (os.path.basename(destination), secrets.token_hex(4)))
    try:
        shutil.copy2(source, tmp)
        os.replace(tmp, destination)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return destination

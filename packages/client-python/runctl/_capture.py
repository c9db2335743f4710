"""What the code and environment of a run were: ``git.json`` and ``requirements.txt``.

Each capture is optional and never fatal: a missing ``git`` or ``pip``, a
directory that is not a repository, or a timeout simply leaves the file out.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from typing import Any, Dict, List, Optional

DIFF_LIMIT_BYTES = 1 << 20  # 1 MiB
GIT_TIMEOUT_S = 10.0
PIP_TIMEOUT_S = 60.0


def _git(args: List[str], cwd: str) -> Optional[bytes]:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=GIT_TIMEOUT_S,
            env=dict(os.environ, GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", LC_ALL="C"),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None
    return proc.stdout


def _git_text(args: List[str], cwd: str) -> Optional[str]:
    out = _git(args, cwd)
    if out is None:
        return None
    text = out.decode("utf-8", "replace").strip()
    return text or None


_USERINFO = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*://)[^/@]*@")


def redact_remote(url: Optional[str]) -> Optional[str]:
    """A remote URL without credentials (``https://user:token@host/…`` → ``https://host/…``)."""
    if url is None:
        return None
    return _USERINFO.sub(r"\1", url)


def git_info(cwd: str, diff_limit: int = DIFF_LIMIT_BYTES) -> Optional[Dict[str, Any]]:
    """``{commit, short_hash, branch, dirty, remote, diff, …}`` for the repository holding ``cwd``.

    ``diff`` is ``git diff HEAD`` (staged and unstaged changes to tracked
    files), cut at ``diff_limit`` bytes; ``diff_truncated`` and ``diff_bytes``
    say when and how much. ``untracked`` lists untracked files (not their
    content). None outside a repository or without ``git``.
    """
    if shutil.which("git") is None:
        return None
    commit = _git_text(["rev-parse", "HEAD"], cwd)
    if commit is None:
        return None  # not a repository, or one without commits
    short = _git_text(["rev-parse", "--short", "HEAD"], cwd) or commit[:7]
    branch = _git_text(["symbolic-ref", "--quiet", "--short", "HEAD"], cwd)  # None when detached
    status = _git(["status", "--porcelain", "--untracked-files=all"], cwd)
    untracked: List[str] = []
    dirty = False
    if status is not None:
        for line in status.decode("utf-8", "replace").splitlines():
            if not line.strip():
                continue
            if line.startswith("??"):
                untracked.append(line[3:])
            else:
                dirty = True
    remote = None
    if branch:
        upstream_remote = _git_text(["config", "--get", "branch.%s.remote" % branch], cwd)
        if upstream_remote and upstream_remote != ".":
            remote = _git_text(["remote", "get-url", upstream_remote], cwd)
    if remote is None:
        remote = _git_text(["remote", "get-url", "origin"], cwd)
    if remote is None:
        names = _git_text(["remote"], cwd)
        if names:
            remote = _git_text(["remote", "get-url", names.splitlines()[0]], cwd)
    info: Dict[str, Any] = {
        "commit": commit,
        "short_hash": short,
        "branch": branch,
        "dirty": dirty or bool(untracked),
        "remote": redact_remote(remote),
    }
    diff = _git(["diff", "HEAD", "--no-color", "--no-ext-diff"], cwd) if dirty else b""
    diff = diff or b""
    info["diff"] = diff[:diff_limit].decode("utf-8", "replace")
    info["diff_truncated"] = len(diff) > diff_limit
    info["diff_bytes"] = len(diff)
    if untracked:
        info["untracked"] = untracked[:1000]
    return info


def git_summary(info: Dict[str, Any]) -> Dict[str, Any]:
    """The part of ``git.json`` that goes into ``meta.git``."""
    return {key: info.get(key) for key in ("commit", "short_hash", "branch", "dirty", "remote")}


def capture_requirements(run_dir: str, cwd: str, python: Optional[str] = None) -> Optional[str]:
    """Write the environment's packages into ``run_dir``; returns the file name written, or None.

    ``uv.lock`` in ``cwd`` is copied as is (uv environments often have no pip);
    otherwise ``<python> -m pip freeze`` goes to ``requirements.txt``.
    """
    lock = os.path.join(cwd, "uv.lock")
    if os.path.isfile(lock):
        try:
            shutil.copyfile(lock, os.path.join(run_dir, "uv.lock"))
            return "uv.lock"
        except OSError:
            pass
    python = python or sys.executable
    if not python:
        return None
    try:
        proc = subprocess.run(
            [python, "-m", "pip", "freeze", "--disable-pip-version-check"],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            timeout=PIP_TIMEOUT_S,
            env=dict(os.environ, PIP_NO_INPUT="1"),
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0:
        return None  # most often: No module named pip
    tmp = os.path.join(run_dir, ".requirements.txt.%d.tmp" % os.getpid())
    try:
        with open(tmp, "wb") as f:
            f.write(proc.stdout)
        os.replace(tmp, os.path.join(run_dir, "requirements.txt"))
    except OSError:
        return None
    return "requirements.txt"

"""What the environment says about where a run lives.

- Attach target: ``RUNCTL_RUN_DIR`` (+ ``RUNCTL_RUN_ID``), else whirr's
  ``WHIRR_RUN_DIR`` (+ ``WHIRR_RUN_ID``), exported by the supervisor.
- Runs directory for a new run, per docs/run-directory.md: ``$RUNCTL_RUNS_DIR``;
  else ``local.runs_dir`` of the configuration (``RUNCTL_LOCAL_RUNS_DIR``, the
  nearest ``.runctl.toml`` above the working directory, the user config file),
  relative paths being relative to the directory holding ``.runctl.toml`` (or the
  working directory); default ``./runs``.
"""

from __future__ import annotations

import os
import re
from typing import Mapping, Optional, Tuple

PROJECT_CONFIG_NAME = ".runctl.toml"


def attach_target(env: Optional[Mapping[str, str]] = None) -> Optional[Tuple[str, Optional[str]]]:
    """``(run_dir, run_id)`` when running inside a run started by runctl (or whirr), else None."""
    env = os.environ if env is None else env
    for prefix in ("RUNCTL", "WHIRR"):
        run_dir = env.get(prefix + "_RUN_DIR")
        if run_dir:
            return run_dir, env.get(prefix + "_RUN_ID") or None
    return None


def rank(env: Optional[Mapping[str, str]] = None) -> int:
    """The process's global rank (``RANK``, torchrun-style); 0 when not set or not a number."""
    env = os.environ if env is None else env
    try:
        return int(env.get("RANK", "0") or "0")
    except ValueError:
        return 0


def find_project_config(cwd: str) -> Optional[str]:
    directory = os.path.abspath(cwd)
    while True:
        candidate = os.path.join(directory, PROJECT_CONFIG_NAME)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def user_config_path(env: Mapping[str, str]) -> str:
    xdg = env.get("XDG_CONFIG_HOME")
    base = xdg if xdg and os.path.isabs(xdg) else os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "runctl", "config.toml")


def _toml_local_runs_dir(path: str) -> Optional[str]:
    """``local.runs_dir`` of a TOML file; None when absent or the file is unreadable."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        import tomllib  # Python >= 3.11
    except ImportError:
        return _scan_local_runs_dir(data.decode("utf-8", "replace"))
    try:
        parsed = tomllib.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    local = parsed.get("local")
    value = local.get("runs_dir") if isinstance(local, dict) else None
    return value if isinstance(value, str) and value else None


_TABLE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\s*(#.*)?$")
_STRING = r"\s*=\s*(?:\"((?:[^\"\\]|\\.)*)\"|'([^']*)')\s*(#.*)?$"
_IN_LOCAL = re.compile(r"^\s*runs_dir" + _STRING)
_DOTTED = re.compile(r"^\s*local\s*\.\s*runs_dir" + _STRING)


def _scan_local_runs_dir(text: str) -> Optional[str]:
    """Minimal TOML reading for Python < 3.11 (no tomllib): ``[local] runs_dir = "…"``
    or ``local.runs_dir = "…"`` at top level, basic or literal strings."""
    table = ""
    found: Optional[str] = None
    for line in text.splitlines():
        header = _TABLE.match(line)
        if header and not line.lstrip().startswith("[["):
            table = header.group(1).strip()
            continue
        match = None
        if table == "local":
            match = _IN_LOCAL.match(line)
        elif table == "":
            match = _DOTTED.match(line)
        if match:
            basic, literal = match.group(1), match.group(2)
            if basic is not None:
                found = basic.encode("utf-8").decode("unicode_escape") if "\\" in basic else basic
            else:
                found = literal
    return found or None


def runs_dir(cwd: Optional[str] = None, env: Optional[Mapping[str, str]] = None) -> str:
    """The directory new runs are created in (absolute)."""
    env = os.environ if env is None else env
    cwd = os.getcwd() if cwd is None else cwd
    explicit = env.get("RUNCTL_RUNS_DIR")
    if explicit:
        return os.path.abspath(os.path.join(cwd, os.path.expanduser(explicit)))
    project = find_project_config(cwd)
    base = os.path.dirname(project) if project else cwd
    value = env.get("RUNCTL_LOCAL_RUNS_DIR") or None
    if value is None and project:
        value = _toml_local_runs_dir(project)
    if value is None:
        value = _toml_local_runs_dir(user_config_path(env))
    if value is None:
        return os.path.abspath(os.path.join(cwd, "runs"))
    return os.path.abspath(os.path.join(base, os.path.expanduser(value)))

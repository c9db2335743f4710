"""runctl's Python client: record a training run in a runctl run directory.

Standard library only, Python >= 3.9::

    import runctl

    with runctl.init(name="baseline", config={"lr": 0.01}) as run:
        for step in range(100):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
        run.summary({"best_loss": 0.01})

``runctl.RuntimeController`` receives ``runctl ctl`` commands in the training
loop (runtimectl's API; see docs/control.md). ``runctl.Client`` submits and
follows jobs on a ``runctl server`` (docs/job-queue.md). ``runctl.Runner`` runs
Python functions and objects on ``runctl worker`` processes and returns futures
(docs/runner.md).

See docs/run-directory.md in the runctl repository for the on-disk format.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List

from ._artifacts import ArtifactNameError
from ._client import Client, ServerError, ServerUnreachable
from ._control import RuntimeController
from ._jsonl import read_jsonl
from ._meta import METRICS_FILE, TERMINAL_STATUSES, new_run_id
from ._meta import read_meta as _read_meta
from ._run import Run, init
from ._trainctl import Trainctl, TrainctlError
from .runner import ObjectFuture, ObjectRef, Runner, RunnerError, RunnerTaskError, get, select, wait

__all__ = [
    "ArtifactNameError",
    "Client",
    "ObjectFuture",
    "ObjectRef",
    "Runner",
    "RunnerError",
    "RunnerTaskError",
    "Run",
    "RuntimeController",
    "ServerError",
    "ServerUnreachable",
    "TERMINAL_STATUSES",
    "Trainctl",
    "TrainctlError",
    "get",
    "init",
    "new_run_id",
    "read_meta",
    "read_metrics",
    "select",
    "wait",
]

__version__ = "0.1.0"


def read_metrics(path: "str | os.PathLike[str]") -> List[Dict[str, Any]]:
    """The records of a run's ``metrics.jsonl``; ``path`` is the run directory or the file itself.

    Skips an incomplete last line and lines that do not parse; a missing file
    gives an empty list.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, METRICS_FILE)
    return read_jsonl(path)


def read_meta(run_dir: "str | os.PathLike[str]", raw: bool = False) -> Dict[str, Any]:
    """A run's ``meta.json``. Unless ``raw``, a non-terminal run whose writer is gone
    reads as ``status: "failed"``, ``error: "lost: …"`` (the file is not changed)."""
    return _read_meta(os.fspath(run_dir), raw=raw)

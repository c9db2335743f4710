"""Timestamps in the run-directory format: ISO 8601, UTC, milliseconds, ``Z``.

``datetime.now(timezone.utc).isoformat()`` costs several microseconds, a
noticeable share of a ``run.log`` call, so the date-and-seconds prefix is
formatted once per wall-clock second and only the milliseconds are added per
call. The result looks like ``2026-11-22T20:15:00.123Z``, the same shape
JavaScript's ``Date.prototype.toISOString`` produces.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Optional

_time = time.time
_gmtime = time.gmtime
_strftime = time.strftime

# [second, prefix]; a list so the fast path needs no `global` statement.
# Two threads racing on it can only both write a correct prefix for a second.
_cache = [-1, ""]


def iso_from_epoch(t: float) -> str:
    """Format seconds since the epoch as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    s = int(t)
    cache = _cache
    if s != cache[0]:
        prefix = _strftime("%Y-%m-%dT%H:%M:%S.", _gmtime(s))
        cache[1] = prefix
        cache[0] = s
    else:
        prefix = cache[1]
    return "%s%03dZ" % (prefix, int((t - s) * 1000))


def now_iso() -> str:
    """The current time as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (UTC)."""
    return iso_from_epoch(_time())


def parse_iso(value: object) -> Optional[float]:
    """Seconds since the epoch for an ISO 8601 string (``Z`` or an offset), else None.

    Accepts what JavaScript's ``toISOString`` writes and what Python's
    ``isoformat`` writes; a time without an offset is taken as UTC.
    """
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    # Python < 3.11 only parses 3 or 6 fractional digits: pad or cut to 6.
    dot = text.find(".", 10)
    if dot != -1:
        end = dot + 1
        while end < len(text) and text[end].isdigit():
            end += 1
        frac = text[dot + 1 : end][:6].ljust(6, "0")
        text = text[: dot + 1] + frac + text[end:]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp()

"""Reading the time and list options shared by commands and `routecli serve`'s query strings."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Optional

from routecli.errors import UsageError

_AGO = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str | None, *, now: datetime | None = None) -> datetime | None:
    """`7d`, `24h`, `30m`, `2w` ago, or an ISO date/time (UTC when no offset is given)."""
    if text is None:
        return None
    now = now or datetime.now(timezone.utc)
    match = _AGO.match(text.strip().lower())
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"Cannot read time {text!r}: use e.g. 7d, 24h, 30m or 2026-11-01") from None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def split_list(values: Optional[list[str]]) -> list[str]:
    """`--by tier --by day` and `--by tier,day` alike."""
    return [item.strip() for value in values or [] for item in value.split(",") if item.strip()]

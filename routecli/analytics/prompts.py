"""Prompts the ledger has seen, for calibrating on a user's own traffic."""

from __future__ import annotations

from datetime import datetime
from typing import Iterator

from sqlalchemy import func, select

from routecli.analytics.stats import time_window
from routecli.store import Store
from routecli.store.models import ATTEMPTS


def logged_prompts(store: Store, *, since: datetime | None = None, limit: int = 100_000) -> Iterator[str]:
    """Each distinct prompt text once (newest first), skipping rows stored without text."""
    c = ATTEMPTS.c
    query = (
        select(c.prompt_hash, func.max(c.prompt), func.max(c.created_at).label("last"))
        .where(time_window(since, None), c.prompt.is_not(None), c.source != "route")
        .group_by(c.prompt_hash)
        .order_by(func.max(c.created_at).desc())
        .limit(limit)
    )
    with store.read() as conn:
        for _hash, prompt, _last in conn.execute(query):
            yield prompt

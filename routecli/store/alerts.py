"""Writing alerts: one row per (rule, subject, period), however often the condition is seen."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, text

from routecli.store.models import new_id, stamp, utcnow


def record_alert(conn: Connection, *, kind: str, severity: str, message: str, evidence: dict[str, Any],
                 dedupe_key: str) -> str | None:
    """Insert an alert unless one with the same dedupe_key exists; its id, or None if it did."""
    found = conn.execute(text("SELECT id FROM alerts WHERE dedupe_key = :key"), {"key": dedupe_key}).first()
    if found:
        return None
    alert_id = new_id()
    conn.execute(
        text("INSERT INTO alerts (id, created_at, kind, severity, message, evidence, dedupe_key, acknowledged_at) "
             "VALUES (:id, :at, :kind, :severity, :message, :evidence, :key, NULL)"),
        {"id": alert_id, "at": stamp(utcnow()), "kind": kind, "severity": severity,
         "message": message, "evidence": json.dumps(evidence, sort_keys=True, default=str), "key": dedupe_key},
    )
    return alert_id

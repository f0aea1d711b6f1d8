"""The `attempts` table as a SQLModel class, and the column types it needs.

The schema itself comes only from `migrations.py`; this class maps the same table for
inserts and queries, and a test keeps the two identical.
"""

import hashlib
from datetime import datetime, timezone
from typing import Any, Optional

from sqlalchemy import BigInteger, Double, Text
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel
from ulid import ULID

from routecli import fastjson

SOURCES = ("ask", "batch", "route", "judge", "serve")  # judge: a phase-2 routing call, linked by request_id
STATUSES = ("ok", "error", "skipped", "dry-run")  # skipped: refused before any call (budget, open breaker)
STEPS = ("first", "retry", "fallback", "escalation")

# Fixed width, so text order is time order on every backend and `>=` on strings is correct.
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def new_id() -> str:
    return str(ULID())


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()  # lone surrogates from odd stdin


class UTCDateTime(TypeDecorator):
    """A timezone-aware datetime stored as fixed-width UTC text, read back aware."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            # A naive time could be local or UTC; guessing would silently shift the ledger.
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
        return value.astimezone(timezone.utc).strftime(_TIME_FORMAT)

    def process_result_value(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=timezone.utc)


class JSONText(TypeDecorator):
    """A JSON list or object stored as TEXT, so the DDL stays the same on every backend.

    Takes a list, tuple or dict (never pre-encoded text); reads back the decoded value.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, (list, tuple, dict)):
            raise ValueError(f"expected a list or dict, got {type(value).__name__}")
        return fastjson.dumps(value, sort_keys=True).decode()  # a tuple is written as the list it equals

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else fastjson.loads(value)


class Attempt(SQLModel, table=True):
    """One call attempt: a model answered, failed, was skipped, or a dry run decided."""

    __tablename__ = "attempts"

    id: str = Field(default_factory=new_id, primary_key=True)
    request_id: Optional[str] = Field(default=None, nullable=False)  # None: record() uses id
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    source: str
    run_id: Optional[str] = None
    prompt_hash: str
    prompt: Optional[str] = None
    answer: Optional[str] = None
    system_hash: Optional[str] = None
    agent: Optional[str] = None
    tags: list[str] = Field(default_factory=list, sa_type=JSONText)
    signals: dict[str, Any] = Field(default_factory=dict, sa_type=JSONText)
    classifier: str
    classifier_version: str
    score: float = Field(sa_type=Double)
    tier: str
    provider: str
    model: str
    reasons: list[str] = Field(default_factory=list, sa_type=JSONText)
    phase: str
    notes: list[str] = Field(default_factory=list, sa_type=JSONText)
    status: str
    error_kind: Optional[str] = None
    error_message: Optional[str] = None
    input_tokens: Optional[int] = None
    output_tokens: Optional[int] = None
    cached_tokens: Optional[int] = None
    reasoning_tokens: Optional[int] = None
    ttft_ms: Optional[float] = Field(default=None, sa_type=Double)
    latency_ms: Optional[float] = Field(default=None, sa_type=Double)
    cost_micros: Optional[int] = Field(default=None, sa_type=BigInteger)
    baseline_model: Optional[str] = None
    baseline_cost_micros: Optional[int] = Field(default=None, sa_type=BigInteger)
    price_source: Optional[str] = None
    parent_id: Optional[str] = None
    step: str = "first"
    cache_kind: Optional[str] = None
    cache_source_id: Optional[str] = None
    similarity: Optional[float] = Field(default=None, sa_type=Double)
    saved_micros: Optional[int] = Field(default=None, sa_type=BigInteger)
    confidence: Optional[float] = Field(default=None, sa_type=Double)
    caller: Optional[str] = None
    ab_test: Optional[str] = None  # m005: the A/B test whose variant routed this request
    ab_variant: Optional[str] = None


ATTEMPTS = Attempt.__table__
COLUMNS: tuple[str, ...] = tuple(column.name for column in ATTEMPTS.columns)


def to_row(attempt: Attempt) -> dict[str, Any]:
    """The insert parameters for one attempt, checked before anything is written."""
    return check_row({name: getattr(attempt, name) for name in COLUMNS})


def check_row(fields: dict[str, Any]) -> dict[str, Any]:
    """Insert parameters from plain fields (what the batch writer has; building an Attempt
    per row costs ~70 µs): every column present, defaults filled, status and source checked."""
    unknown = set(fields) - set(COLUMNS)
    if unknown:
        raise ValueError(f"not attempts columns: {sorted(unknown)}")
    row = {name: fields.get(name) for name in COLUMNS}
    row["id"] = row["id"] or new_id()
    row["request_id"] = row["request_id"] or row["id"]
    row["created_at"] = row["created_at"] or utcnow()
    row["step"] = row["step"] or "first"
    if row["step"] not in STEPS:
        raise ValueError(f"attempt step must be one of {STEPS}, got {row['step']!r}")
    if row["source"] not in SOURCES:
        raise ValueError(f"attempt source must be one of {SOURCES}, got {row['source']!r}")
    if row["status"] not in STATUSES:
        raise ValueError(f"attempt status must be one of {STATUSES}, got {row['status']!r}")
    return row


_STAMP = UTCDateTime()


def stamp(when: datetime | None) -> str | None:
    """A datetime as the ledger's fixed-width UTC text (for hand-written SQL)."""
    return _STAMP.process_bind_param(when, None)


def unstamp(value: str | None) -> datetime | None:
    return _STAMP.process_result_value(value, None)

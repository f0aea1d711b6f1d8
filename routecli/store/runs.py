"""Batch runs in the ledger: the `runs` and `run_lines` tables (from migration m002_runs) and their queries.

A line is finished when its row says ok (or dry-run); that row and the attempt it points
at are written in one transaction, so resume can trust it and the output file, made from
these rows, always agrees with the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterator

from sqlalchemy import Column, Connection, Integer, MetaData, Table, Text, case, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import TypeDecorator

from routecli.errors import StoreError
from routecli.store.db import Store
from routecli.store.engine import immediate, reason, write_transaction
from routecli.store.budgets import add_spend
from routecli.store.models import ATTEMPTS, COLUMNS, UTCDateTime, check_row, utcnow
from routecli.store.tags import add_tags

FINISHED = ("ok", "dry-run")
LINE_STATUSES = ("ok", "dry-run", "error", "invalid", "pending")
RUN_STATUSES = ("running", "interrupted", "finished")



class IntBool(TypeDecorator):
    """A flag kept in an INTEGER column (m002): PostgreSQL will not put a boolean into one."""

    impl = Integer
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> int | None:
        return None if value is None else int(bool(value))

    def process_result_value(self, value: Any, dialect: Any) -> bool | None:
        return None if value is None else bool(value)


_metadata = MetaData()
RUNS = Table(
    "runs", _metadata,
    Column("id", Text, primary_key=True),
    Column("input_name", Text, nullable=False),
    Column("input_hash", Text, nullable=False),
    Column("total_lines", Integer, nullable=False),
    Column("output_path", Text),
    Column("dry_run", IntBool, nullable=False),
    Column("status", Text, nullable=False),
    Column("pid", Integer),
    Column("host", Text),
    Column("started_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
)
RUN_LINES = Table(
    "run_lines", _metadata,
    Column("run_id", Text, primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("line_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("attempt_id", Text),
    Column("error_kind", Text),
    Column("error_message", Text),
    Column("answer", Text),  # only with store.save_text = false, and only until the run finishes
    Column("updated_at", UTCDateTime, nullable=False),
)
# Both SQLite and PostgreSQL accept this upsert; attempts add up over retries and resumes.
_UPSERT_LINE = (
    "INSERT INTO run_lines (run_id, line_no, line_id, status, attempts, attempt_id, error_kind,"
    " error_message, answer, updated_at) VALUES (:run_id, :line_no, :line_id, :status, :attempts,"
    " :attempt_id, :error_kind, :error_message, :answer, :updated_at)"
    " ON CONFLICT (run_id, line_no) DO UPDATE SET status = excluded.status,"
    " attempts = run_lines.attempts + excluded.attempts,"
    " attempt_id = COALESCE(excluded.attempt_id, run_lines.attempt_id), error_kind = excluded.error_kind,"
    " error_message = excluded.error_message, answer = excluded.answer, updated_at = excluded.updated_at"
)
_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # what UTCDateTime stores; the upsert is plain SQL
_LINE_FIELDS = ("run_id", "line_no", "line_id", "status", "attempts", "attempt_id", "error_kind",
                "error_message", "answer", "updated_at")
_LINE_DEFAULTS = {"attempt_id": None, "error_kind": None, "error_message": None, "answer": None}


@dataclass(frozen=True)
class Run:
    id: str
    input_name: str
    input_hash: str
    total_lines: int
    output_path: str | None
    dry_run: bool
    status: str
    pid: int | None
    host: str | None
    started_at: datetime
    updated_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class Counts:
    ok: int = 0
    dry_run: int = 0
    error: int = 0
    invalid: int = 0
    pending: int = 0
    attempts: int = 0
    cost_micros: int = 0
    unpriced: int = 0  # ok attempts whose price is unknown: not in cost_micros

    @property
    def finished(self) -> int:
        return self.ok + self.dry_run

    @property
    def failed(self) -> int:
        return self.error + self.invalid


def _fail(store: Store, what: str, exc: SQLAlchemyError, fix: str = "") -> StoreError:
    return StoreError(f"Cannot {what} in the ledger at {store.location}: {reason(exc)}{fix}")


def create_run(store: Store, run: Run) -> None:
    try:
        with write_transaction(store.engine) as conn:
            conn.execute(insert(RUNS), [run.__dict__])
    except SQLAlchemyError as exc:
        raise _fail(store, "record the run", exc) from None


def start_session(store: Store, run_id: str, *, pid: int, host: str, output_path: str | None) -> None:
    """Mark the run as being worked on by this process (resume refuses while it lives)."""
    values = {"status": "running", "updated_at": utcnow(), "finished_at": None, "pid": pid, "host": host,
              "output_path": output_path}
    try:
        with write_transaction(store.engine) as conn:
            conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(**values))
    except SQLAlchemyError as exc:
        raise _fail(store, f"update run {run_id}", exc) from None


def close_run(store: Store, run_id: str, status: str, *, clear_answers: bool) -> None:
    """End a session; clearing the answers kept for the output file goes in the same transaction,
    so a run is never left resumable with its answers gone."""
    if status not in RUN_STATUSES:
        raise ValueError(f"run status must be one of {RUN_STATUSES}, got {status!r}")
    now = utcnow()
    try:
        with write_transaction(store.engine) as conn:
            if clear_answers:
                conn.execute(update(RUN_LINES).where(RUN_LINES.c.run_id == run_id).values(answer=None))
            conn.execute(update(RUNS).where(RUNS.c.id == run_id).values(
                status=status, updated_at=now, finished_at=now if status == "finished" else None, pid=None))
    except SQLAlchemyError as exc:
        raise _fail(store, f"update run {run_id}", exc) from None


class Committer:
    """Writes a batch's results: attempts and line updates in one transaction, so a line is never
    finished without its attempt.

    Built for thousands of small transactions: one connection kept open, and statements sent
    to the driver as they are (values converted once by the columns' own types), not compiled
    per call. Under load this halved the ledger's share of each request's CPU.

    `on_fail` ends the error message: what became of the rows, and what to do."""

    BATCH_FAIL = "; the lines in flight were not recorded and are sent again on resume"

    def __init__(self, store: Store, on_fail: str = BATCH_FAIL) -> None:
        self.store = store
        self.on_fail = on_fail
        self._conn: Connection | None = None
        self._sql: tuple[str, str] | None = None
        self._named: list[tuple[str, Any]] = []  # (column, the driver's value converter or None)

    def _open(self) -> Connection:
        conn = immediate(self.store.engine.connect())
        mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(conn.dialect.paramstyle)
        if mark is None:  # pragma: no cover - every driver routecli supports uses one of these
            raise StoreError(f"the database driver's paramstyle {conn.dialect.paramstyle} is not supported")
        self._named = [(name, column.type.bind_processor(conn.dialect))
                       for name, column in zip(COLUMNS, ATTEMPTS.columns)]
        columns = ", ".join(COLUMNS)
        insert_sql = f"INSERT INTO attempts ({columns}) VALUES ({', '.join(mark for _ in COLUMNS)})"
        self._sql = (insert_sql, _positional(_UPSERT_LINE, mark))
        return conn

    def __call__(self, attempts: list[dict[str, Any]], lines: list[dict[str, Any]],
                 also: Callable[[Connection], None] | None = None) -> None:
        """Insert the rows and lines in one transaction; `also(conn)` runs in it too."""
        try:
            if self._conn is None:
                self._conn = self._open()
            checked = [check_row(fields) for fields in attempts]
            rows = [self._values(row) for row in checked]
            now = utcnow().strftime(_TIME)
            params = [tuple({**_LINE_DEFAULTS, **line, "updated_at": now}[name] for name in _LINE_FIELDS)
                      for line in lines]
            insert_sql, upsert_sql = self._sql  # type: ignore[misc]
            with self._conn.begin():
                if rows:
                    self._conn.exec_driver_sql(insert_sql, rows)
                    add_spend(self._conn, checked)
                    add_tags(self._conn, checked)
                if params:
                    self._conn.exec_driver_sql(upsert_sql, params)
                if also is not None:
                    also(self._conn)
        except SQLAlchemyError as exc:
            self.close()
            raise _fail(self.store, "write", exc, self.on_fail) from None

    def _values(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple([row[name] if convert is None else convert(row[name]) for name, convert in self._named])

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _positional(sql: str, mark: str) -> str:
    """The upsert with driver placeholders, in _LINE_FIELDS order."""
    for name in _LINE_FIELDS:
        sql = sql.replace(f":{name},", f"{mark},").replace(f":{name})", f"{mark})")
    return sql


# ---------------------------------------------------------------- reads


def get_run(store: Store, run_id: str) -> Run | None:
    """The run with this id, or with this unique id prefix (ids are long)."""
    with store.read() as conn:
        found = conn.execute(select(RUNS).where(RUNS.c.id.startswith(run_id, autoescape=True)).limit(2)).all()
    exact = [row for row in found if row.id == run_id]
    chosen = exact or (found if len(found) == 1 else [])
    return Run(**chosen[0]._mapping) if chosen else None


def runs_for_input(store: Store, input_hash: str) -> list[Run]:
    """Runs of this exact input, newest first."""
    query = select(RUNS).where(RUNS.c.input_hash == input_hash).order_by(RUNS.c.started_at.desc())
    with store.read() as conn:
        return [Run(**row._mapping) for row in conn.execute(query)]


def list_runs(store: Store, limit: int | None = None) -> list[Run]:
    query = select(RUNS).order_by(RUNS.c.started_at.desc()).limit(limit)
    with store.read() as conn:
        return [Run(**row._mapping) for row in conn.execute(query)]


def finished_lines(store: Store, run_id: str) -> set[int]:
    query = select(RUN_LINES.c.line_no).where(RUN_LINES.c.run_id == run_id, RUN_LINES.c.status.in_(FINISHED))
    with store.read() as conn:
        return set(conn.execute(query).scalars())


def counts(store: Store, run_ids: list[str]) -> dict[str, Counts]:
    """Line counts by status and the attempts' cost, per run, straight from the rows."""
    found: dict[str, dict[str, int]] = {run_id: {} for run_id in run_ids}
    by_status = (select(RUN_LINES.c.run_id, RUN_LINES.c.status, func.count())
                 .where(RUN_LINES.c.run_id.in_(run_ids)).group_by(RUN_LINES.c.run_id, RUN_LINES.c.status))
    unpriced = func.sum(case(((ATTEMPTS.c.status == "ok") & ATTEMPTS.c.cost_micros.is_(None), 1), else_=0))
    spent = (select(ATTEMPTS.c.run_id, func.count(), func.coalesce(func.sum(ATTEMPTS.c.cost_micros), 0), unpriced)
             .where(ATTEMPTS.c.run_id.in_(run_ids)).group_by(ATTEMPTS.c.run_id))
    with store.read() as conn:
        for run_id, status, number in conn.execute(by_status):
            found[run_id][status.replace("-", "_")] = number
        for run_id, attempts, cost, no_price in conn.execute(spent):
            found[run_id].update(attempts=attempts, cost_micros=int(cost), unpriced=int(no_price or 0))
    return {run_id: Counts(**values) for run_id, values in found.items()}


def result_rows(store: Store, run_id: str, *, order: str = "input") -> Iterator[Any]:
    """Each recorded line with its latest attempt, for the output file; streamed, not loaded."""
    a, line = ATTEMPTS, RUN_LINES
    query = (
        select(line.c.line_no, line.c.line_id, line.c.status, line.c.attempts, line.c.error_kind,
               line.c.error_message, line.c.answer.label("kept_answer"), a.c.answer, a.c.tier, a.c.provider,
               a.c.model, a.c.reasons, a.c.input_tokens, a.c.output_tokens, a.c.cached_tokens,
               a.c.reasoning_tokens, a.c.cost_micros, a.c.latency_ms)
        .select_from(line.outerjoin(a, a.c.id == line.c.attempt_id))
        .where(line.c.run_id == run_id)
        .order_by(line.c.updated_at if order == "done" else line.c.line_no, line.c.line_no)
    )
    with store.read() as conn:
        yield from conn.execution_options(yield_per=1000).execute(query)


def failed_lines(store: Store, run_id: str, limit: int = 20) -> list[Any]:
    query = (select(RUN_LINES.c.line_no, RUN_LINES.c.line_id, RUN_LINES.c.status, RUN_LINES.c.error_kind,
                    RUN_LINES.c.error_message)
             .where(RUN_LINES.c.run_id == run_id, RUN_LINES.c.status.in_(("error", "invalid", "pending")))
             .order_by(RUN_LINES.c.line_no).limit(limit))
    with store.read() as conn:
        return list(conn.execute(query))

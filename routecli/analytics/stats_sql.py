"""The SQL behind `routecli stats`: one index scan makes every sum, index OFFSETs make percentiles.

SQLite has no hash aggregate, so a plain GROUP BY over a million attempts sorts them all
(about 1.5 s). Instead `cube()` groups by a prefix of ix_attempts_cube (m006), which walks
the rows already in that order, into cells of (day, tier, provider, model, status, source,
step, cache kind[, agent]); `fold()` then adds the few cells up per breakdown in the
same statement. Every figure is a sum over cells, so a breakdown costs no second scan. Tags are
a JSON list, so `tag_cube()` makes their cells from the attempt_tags rows instead (m008), and
the untagged ones from attempts whose list is empty; asked for tags alone, the totals come from
those cells too (each attempt once: its lead tag row, or its untagged row), not from `cube()`.
Percentiles cannot be added up: `percentiles()` reads each one at its rank from an index kept
in latency order (m006), or ranks with window functions where no such index fits; PostgreSQL
uses its own percentile_disc.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Sequence

from sqlalchemy import ColumnElement, and_, case, func, literal, literal_column, null, or_, select, text, true, union_all

from routecli.store.models import ATTEMPTS
from routecli.store.tags import ATTEMPT_TAGS

_C = ATTEMPTS.c
# Literal text, not bound parameters: SQLite uses an expression or partial index only when the
# query spells the same constants (m006 writes exactly these).
DAY_SQL = "substr(attempts.created_at, 1, 10)"
_OK, _JUDGE = literal_column("'ok'"), literal_column("'judge'")
_T = ATTEMPT_TAGS.c
# An attempt without tags: every writer stores the empty list as exactly this (m008's indexes say it too).
UNTAGGED = _C.tags == literal_column("'[]'")

DIMENSIONS = ("tier", "model", "provider", "agent", "tag", "day")
PERCENTILES = (50, 95, 99)
METRICS = ("latency_ms", "ttft_ms")
# A window this small is ranked directly; an index OFFSET walks the whole index whatever the window.
SMALL_WINDOW = 20_000


def day_of(table: Any = ATTEMPTS) -> ColumnElement[str]:
    return literal_column(DAY_SQL if table is ATTEMPTS else f"substr({table.name}.created_at, 1, 10)")


def window(since: datetime | None, until: datetime | None, table: Any = ATTEMPTS,
           days: bool = True) -> ColumnElement[bool]:
    """created_at in [since, until); the UTC days bound the cube index's leading column too (`days`)."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.utcoffset() is None:
            raise ValueError(f"{name}={value!r} is naive: pass a timezone-aware datetime")
    clauses: list[Any] = []
    day = day_of(table)
    if since is not None:
        clauses += [table.c.created_at >= since, *([day >= _utc_day(since)] if days else [])]
    if until is not None:
        clauses += [table.c.created_at < until, *([day <= _utc_day(until)] if days else [])]
    return and_(true(), *clauses)


def _utc_day(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d")


# ---------------------------------------------------------------- one scan: cells


_CUBE_ORDER = ("day", "tier", "provider", "model", "status", "source", "step", "cache_kind", "agent")
_SPLITS = ("status", "source", "step", "cache_kind")  # what the sums split on: every cell has them


def _cube_depth(dims: Sequence[str]) -> int:
    """How many leading index columns the cells need: status..cache_kind always (the sums split on them)."""
    return 9 if "agent" in dims else 8


def _when(condition: ColumnElement[bool], value: Any) -> ColumnElement[Any]:
    return case((condition, value))


def _sums(c: Any) -> list[Any]:
    """A cell's plain sums, over attempts or attempt_tags (which copies these columns)."""
    has_cost, has_baseline = c.cost_micros.is_not(None), c.baseline_cost_micros.is_not(None)
    return [
        func.count().label("n"),
        *(func.sum(c[name]).label(name) for name in ("input_tokens", "output_tokens", "cached_tokens",
                                                       "reasoning_tokens", "saved_micros")),
        func.sum(c.cost_micros).label("cost"),
        func.count(c.cost_micros).label("cost_n"),
        func.sum(_when(has_cost, c.baseline_cost_micros)).label("base"),
        func.count(_when(has_cost, c.baseline_cost_micros)).label("covered"),
        func.sum(_when(has_baseline, c.cost_micros)).label("base_cost"),
        func.sum(c.latency_ms).label("lat_sum"),
        func.count(c.latency_ms).label("lat_n"),
        func.sum(c.ttft_ms).label("ttft_sum"),
        func.count(c.ttft_ms).label("ttft_n"),
        func.sum(c.confidence).label("conf_sum"),
        func.count(c.confidence).label("conf_n"),
        func.sum(c.score).label("score_sum"),
    ]


def _cube_columns(depth: int) -> list[Any]:
    return [day_of() if name == "day" else _C[name] for name in _CUBE_ORDER[:depth]]


def cube(where: ColumnElement[bool], dims: Sequence[str]) -> Any:
    """Cells: the attempts in the window grouped by a prefix of ix_attempts_cube, each with plain sums."""
    depth = _cube_depth(dims)
    keys = [column.label(name) for column, name in zip(_cube_columns(depth), _CUBE_ORDER)]
    group = _cube_columns(depth)
    return select(*keys, *_sums(_C)).where(where).group_by(*group).cte("cells").prefix_with("MATERIALIZED")


def tag_cube(since: datetime | None, until: datetime | None) -> Any:
    """Cells per tag (`tag` NULL: untagged): attempt_tags grouped in ix_attempt_tags_cube order, and
    the attempts with no tag in ix_attempts_untagged order (m008; one covering scan each, no sort).
    The cells with `lead` 1 hold each attempt once, so they add up to the totals."""
    tagged = (
        select(_T.tag, _T.lead, *(_T[name] for name in _SPLITS), *_sums(_T))
        .where(window(since, until, ATTEMPT_TAGS, days=False))
        .group_by(_T.tag, _T.lead, *(_T[name] for name in _SPLITS))
    )
    untagged = (
        select(null().label("tag"), literal_column("1").label("lead"), *(_C[name] for name in _SPLITS), *_sums(_C))
        .where(window(since, until, days=False), UNTAGGED)
        .group_by(*(_C[name] for name in _SPLITS))
    )
    return union_all(tagged, untagged).cte("tag_cells").prefix_with("MATERIALIZED")


def _measures(c: Any) -> list[Any]:
    """Sums over cells: the conditions are on the cells' keys, so each row was looked at once."""
    answer = and_(c.status == "ok", c.source != "judge")
    first = and_(c.source != "judge", c.step == "first")
    counted = and_(answer, c.step != "escalation")  # an escalation's baseline was already counted once
    overhead = or_(c.source == "judge", c.step == "escalation")  # routing's own costs, no baseline
    n = c.n
    return [
        func.sum(n).label("attempts"),
        func.sum(_when(first, n)).label("requests"),
        *(func.sum(_when(c.status == status, n)).label(name) for status, name in (
            ("ok", "ok"), ("error", "errors"), ("skipped", "skipped"), ("dry-run", "dry_runs"))),
        func.sum(_when(c.source == "judge", n)).label("judge_calls"),
        *(func.sum(getattr(c, name)).label(name) for name in (
            "input_tokens", "output_tokens", "cached_tokens", "reasoning_tokens")),
        func.sum(c.cost).label("cost"),
        func.sum(_when(c.source == "judge", c.cost)).label("judge_cost"),
        func.sum(_when(and_(c.status == "ok", c.cache_kind.is_(None)), n - c.cost_n)).label("cost_unknown"),
        func.sum(_when(counted, c.covered)).label("savings_rows"),
        func.sum(_when(counted, c.base)).label("savings_baseline"),
        func.sum(_when(counted, c.base_cost)).label("savings_cost"),
        func.sum(_when(overhead, c.cost)).label("overhead_cost"),
        func.sum(c.saved_micros).label("cache_saved"),
        func.sum(_when(answer, n)).label("answers"),
        func.sum(_when(and_(answer, c.cache_kind.is_not(None)), n)).label("cache_hits"),
        *(func.sum(_when(answer, getattr(c, name))).label(name) for name in (
            "lat_sum", "lat_n", "ttft_sum", "ttft_n", "conf_sum", "conf_n")),
        func.sum(_when(first, c.score_sum)).label("score_sum"),
    ]


# ---------------------------------------------------------------- folding cells per breakdown


def _dim_keys(cells: Any, dim: str) -> list[Any]:
    """The one or two key columns of a breakdown over cells."""
    if dim == "total":
        return []
    if dim == "model":
        return [cells.c.provider, cells.c.model]
    return [cells.c[dim]]  # day, tag (in tag cells), tier, provider, agent


def fold(cells: Any, dims: Sequence[str], measures: Any = _measures, tag_cells: Any = None) -> Any:
    """One statement: a row per (breakdown, group), the totals first, keys padded to two columns.
    The tag breakdown folds `tag_cells` (`tag_cube()`; an untagged cell is the NULL group), and
    so do the totals when there are no `cells` (their lead cells count each attempt once)."""
    parts = []
    for dim in ("total", *dims):
        source = tag_cells if dim == "tag" or cells is None else cells
        if source is None:
            raise ValueError("a breakdown by tag needs tag_cells")
        keys = _dim_keys(source, dim)
        padded = [key.label(f"k{i}") for i, key in enumerate(keys)] + [null().label(f"k{i}") for i in
                                                                        range(len(keys), 2)]
        query = select(literal(dim).label("dim"), *padded, *measures(source.c)).select_from(source)
        if source is not cells and dim == "total":
            query = query.where(source.c.lead == 1)
        parts.append(query.group_by(*keys) if keys else query)
    return union_all(*parts)


def _needs_cube(dims: Sequence[str]) -> bool:
    """False for tags alone: the tag cells make the totals too, and a pass over every attempt is saved."""
    return any(dim != "tag" for dim in dims) or "tag" not in dims


def group_key(row: Any) -> tuple:
    """A folded row's group: () for the totals, (provider, model) for a model, else (value,)."""
    if row["dim"] == "total":
        return ()
    return (row["k0"], row["k1"]) if row["dim"] == "model" else (row["k0"],)


def folded(conn: Any, since: datetime | None, until: datetime | None,
           dims: Sequence[str]) -> dict[tuple[str, tuple], dict[str, Any]]:
    """{(dim, key): sums} for the totals ("total", ()) and every group of every breakdown."""
    tag_cells = tag_cube(since, until) if "tag" in dims else None
    cells = cube(window(since, until), dims) if _needs_cube(dims) else None
    rows = conn.execute(fold(cells, dims, tag_cells=tag_cells)).mappings()
    return {(row["dim"], group_key(row)): dict(row) for row in rows}


# ---------------------------------------------------------------- requests that fell back or escalated


def followups(conn: Any, since: datetime | None, until: datetime | None, dims: Sequence[str]) -> dict:
    """{(dim, key): (fallback requests, escalated requests)}, each request counted under the
    group of its first attempt (where routing sent it), like `requests`."""
    steps = [literal_column("'fallback'"), literal_column("'escalation'")]
    flagged = (
        select(
            _C.request_id,
            func.max(case((_C.step == "fallback", 1), else_=0)).label("fallback"),
            func.max(case((_C.step == "escalation", 1), else_=0)).label("escalation"),
        )
        .where(_C.step.in_(steps))  # spelled as ix_attempts_followups' WHERE, so only those rows are read
        .group_by(_C.request_id)
        .subquery("flagged")
    )
    first = ATTEMPTS.alias("f")
    keys = [day_of(first).label("day"), *(first.c[name] for name in ("tier", "provider", "model", "agent"))]
    flagged_firsts = (  # each flagged request's first attempt, looked up once for every breakdown
        select(first.c.id, *keys, flagged.c.fallback, flagged.c.escalation)
        .select_from(flagged.join(first, first.c.request_id == flagged.c.request_id))
        .where(first.c.source != "judge", first.c.step == "first", window(since, until, first))
        .cte("flagged_firsts")
    )
    ff = flagged_firsts.c
    flags = [func.sum(ff.fallback).label("fallback"), func.sum(ff.escalation).label("escalation")]
    cells = tag_cells = None
    if _needs_cube(dims):
        keys = [ff[name] for name in ("day", "tier", "provider", "model", "agent")]
        cells = select(*keys, *flags).group_by(*keys).cte("flag_cells")
    if "tag" in dims:  # the first attempt's tag rows; none: the untagged (NULL) group, its lead row
        tags = ATTEMPT_TAGS.alias("ft")
        lead = func.coalesce(tags.c.lead, 1).label("lead")
        tag_cells = (select(tags.c.tag, lead, *flags)
                     .select_from(flagged_firsts.outerjoin(tags, tags.c.attempt_id == ff.id))
                     .group_by(tags.c.tag, lead).cte("flag_tag_cells"))

    def measures(c: Any) -> list[Any]:
        return [func.sum(c.fallback).label("fallback"), func.sum(c.escalation).label("escalation")]

    rows = conn.execute(fold(cells, dims, measures, tag_cells)).mappings()
    return {(row["dim"], group_key(row)): (int(row["fallback"] or 0), int(row["escalation"] or 0))
            for row in rows}


# ---------------------------------------------------------------- percentiles


def rank(p: int, n: int) -> int:
    """Nearest rank (1-based): the smallest value with at least p% of the values at or below it."""
    return max(1, math.ceil(p * n / 100))


def _answered(metric: str) -> list[ColumnElement[bool]]:
    return [_C.status == _OK, _C.source != _JUDGE, _C[metric].is_not(None)]


_INDEX_KEYS = {"total": (), "tier": ("tier",), "model": ("provider", "model"), "provider": ("provider",),
               "agent": ("agent",), "day": ("substr(created_at, 1, 10)",),  # m006's partial indexes
               "tag": ("tag",)}  # m008's: on attempt_tags, and on attempts for the untagged


def percentiles(conn: Any, dim: str, metric: str, since: datetime | None, until: datetime | None,
                counts: dict[tuple, int]) -> dict:
    """{group key: {"p50": ms, ...}} for the groups of `dim` ("total" included); `counts` is how
    many answers with the metric each group has in the window (from the cells)."""
    if not any(counts.values()):
        return {}
    if conn.dialect.name == "sqlite" and dim in _INDEX_KEYS and sum(counts.values()) >= SMALL_WINDOW:
        return _by_offsets(conn, dim, metric, since, until, counts)
    if conn.dialect.name == "postgresql":
        return _percentile_disc(conn, dim, metric, window(since, until))
    return _ranked(conn, dim, metric, window(since, until))


def _by_offsets(conn: Any, dim: str, metric: str, since: datetime | None, until: datetime | None,
                counts: dict[tuple, int]) -> dict:
    """Each percentile is one row read at its rank, from whichever end of the m006 (m008 for
    tags) index is nearer.

    Plain SQLite text: INDEXED BY (SQLAlchemy cannot say it) keeps the planner from sorting the
    window's rows instead, and the WHERE repeats the partial index's own constants."""
    short = "latency" if metric == "latency_ms" else "ttft"
    terms = [f"status = 'ok' AND source <> 'judge' AND {metric} IS NOT NULL"]
    params: dict[str, Any] = {}
    for name, op, when in (("since", ">=", since), ("until", "<", until)):
        if when is not None:
            terms.append(f"created_at {op} :{name}")
            params[name] = when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out: dict[tuple, dict[str, float | None]] = {}
    for key, n in counts.items():
        if not n:
            continue
        bound = {**params, **{f"k{i}": value for i, value in enumerate(key) if value is not None or dim != "tag"}}
        if dim == "tag":
            table, index = ("attempts", f"ix_attempts_{short}_untagged") if key == (None,) else \
                ("attempt_tags", f"ix_attempt_tags_{short}")
            keyed = ["tags = '[]'"] if key == (None,) else ["tag = :k0"]
        else:
            table, index = "attempts", f"ix_attempts_{short}_{'all' if dim == 'total' else dim}"
            keyed = [f"{column} IS :k{i}" for i, column in enumerate(_INDEX_KEYS[dim])]  # IS: the no-agent group
        sql = (f"SELECT {metric} FROM {table} INDEXED BY {index} WHERE {' AND '.join(terms + keyed)} "
               f"ORDER BY {metric} ")
        values = {}
        for p in PERCENTILES:
            r = rank(p, n)
            ascending = r <= n - r + 1
            offset = r - 1 if ascending else n - r
            query = text(sql + ("ASC" if ascending else "DESC") + " LIMIT 1 OFFSET :offset")
            values[f"p{p}"] = conn.execute(query, {**bound, "offset": offset}).scalar()
        out[key] = values
    return out


def _ranked(conn: Any, dim: str, metric: str, where: ColumnElement[bool]) -> dict:
    """Window functions (any backend, one sort per breakdown): row_number within each group."""
    column = _C[metric]
    keys, source = _groups(dim)
    partition = keys or None
    ranked = (
        select(*[k.label(f"k{i}") for i, k in enumerate(keys)], column.label("v"),
               func.row_number().over(partition_by=partition, order_by=column).label("rn"),
               func.count().over(partition_by=partition).label("n"))
        .select_from(source)
        .where(where, *_answered(metric))
        .subquery()
    )
    group = [ranked.c[f"k{i}"] for i in range(len(keys))]
    picks = [func.min(case((ranked.c.rn * 100 >= p * ranked.c.n, ranked.c.v))).label(f"p{p}") for p in PERCENTILES]
    rows = conn.execute(select(*group, *picks).group_by(*group)).mappings()
    return {tuple(row[f"k{i}"] for i in range(len(keys))): {f"p{p}": row[f"p{p}"] for p in PERCENTILES}
            for row in rows}


def _percentile_disc(conn: Any, dim: str, metric: str, where: ColumnElement[bool]) -> dict:
    """PostgreSQL's own ordered-set aggregate, one hash-grouped pass: percentile_disc(p) is the
    first value whose position reaches p of the group, i.e. the nearest rank, so the figures are
    those of `_ranked` and of SQLite (percentile_cont would interpolate and disagree)."""
    keys, source = _groups(dim)
    picks = [func.percentile_disc(p / 100).within_group(_C[metric]).label(f"p{p}") for p in PERCENTILES]
    query = (select(*[k.label(f"k{i}") for i, k in enumerate(keys)], *picks)
             .select_from(source).where(where, *_answered(metric)).group_by(*keys))
    return {tuple(row[f"k{i}"] for i in range(len(keys))): {f"p{p}": row[f"p{p}"] for p in PERCENTILES}
            for row in conn.execute(query).mappings()}


def _groups(dim: str) -> tuple[list[Any], Any]:
    """(the group key columns, the FROM clause) of a percentile breakdown over attempts."""
    if dim == "tag":  # an attempt without tag rows (m008) is the untagged, NULL, group
        return [_T.tag], ATTEMPTS.outerjoin(ATTEMPT_TAGS, _T.attempt_id == _C.id)
    return ([] if dim == "total" else _plain_keys(dim)), ATTEMPTS


def _plain_keys(dim: str) -> list[Any]:
    if dim == "model":
        return [_C.provider, _C.model]
    return [day_of()] if dim == "day" else [_C[dim]]

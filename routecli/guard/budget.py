"""Which spending limits a call falls under, and the most it could cost.

Pure: the store keeps one counter per key (`day:2026-11-22`, `agent:ci:month:2026-11`,
`run:<id>`...), and a call may start only when, for every key it falls under,
spent + reserved + its worst case stays within the limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from routecli.config_guards import BudgetConfig, Limits
from routecli.domain import Request, Usage

IMAGE_TOKENS = 2_000  # a generous ceiling for one image at any vendor's usual detail
MESSAGE_OVERHEAD = 16  # role markers and separators per message


@dataclass(frozen=True, slots=True)
class Scope:
    key: str  # the counter's key in the store
    label: str  # what a person reads: "daily limit", "agent ci monthly limit"
    limit_micros: int
    period: str  # daily | monthly | total | run
    agent: str | None = None
    tag: str | None = None
    start: str | None = None  # first timestamp (ISO text) the period covers; None: all time
    run_id: str | None = None


def period_start(period: str, now: datetime) -> tuple[str, str | None]:
    """(key suffix, first instant as ledger text) of the UTC period containing `now`."""
    if period == "daily":
        day = now.strftime("%Y-%m-%d")
        return f"day:{day}", f"{day}T00:00:00.000000Z"
    if period == "monthly":
        month = now.strftime("%Y-%m")
        return f"month:{month}", f"{month}-01T00:00:00.000000Z"
    return "total", None


def to_micros(dollars: Decimal) -> int:
    return int((dollars * 1_000_000).to_integral_value())


def _scopes_of(limits: Limits, now: datetime, prefix: str, label: str, **who: str) -> list[Scope]:
    scopes = []
    for period, limit in limits.items():
        suffix, start = period_start(period, now)
        scopes.append(Scope(prefix + suffix, f"{label}{period} limit ${limit}", to_micros(limit), period,
                            start=start, **who))
    return scopes


def scopes(request: Request, config: BudgetConfig, now: datetime, *, run_id: str | None = None,
           run_budget: Decimal | None = None) -> list[Scope]:
    """Every limit this request counts against, most general first."""
    found = _scopes_of(config.limits, now, "", "")
    if request.agent and request.agent in config.agents:
        found += _scopes_of(config.agents[request.agent], now, f"agent:{request.agent}:",
                            f"agent {request.agent} ", agent=request.agent)
    for tag in request.tags:
        if tag in config.tags:
            found += _scopes_of(config.tags[tag], now, f"tag:{tag}:", f"tag {tag} ", tag=tag)
    if run_budget is not None and run_id:
        found.append(Scope(f"run:{run_id}", f"this run's --budget ${run_budget}", to_micros(run_budget), "run",
                           run_id=run_id))
    return found


def keys_for_row(row: dict, created: str) -> list[str]:
    """Every counter key an attempt row's cost adds to (whether or not a limit uses it now)."""
    day, month = f"day:{created[:10]}", f"month:{created[:7]}"
    keys = ["total", day, month]
    if row.get("agent"):
        agent = f"agent:{row['agent']}:"
        keys += [agent + "total", agent + day, agent + month]
    tags = row.get("tags") or []
    if isinstance(tags, str):
        tags = json.loads(tags)
    for tag in tags:
        keys += [f"tag:{tag}:total", f"tag:{tag}:{day}", f"tag:{tag}:{month}"]
    if row.get("run_id"):
        keys.append(f"run:{row['run_id']}")
    return keys


def worst_case_usage(request: Request, default_max_tokens: int) -> Usage:
    """An upper bound on a call's tokens: byte-level tokenizers never make more tokens than
    UTF-8 bytes, so bytes (plus per-message and per-image allowances) bound the input, and
    max_tokens bounds the answer, reasoning included."""
    text_bytes = sum(len(part.encode("utf-8", "surrogatepass")) for part in (
        [request.system or ""] + [message.text for message in request.messages]))
    images = sum(len(message.images) for message in request.messages)
    prompt = text_bytes + MESSAGE_OVERHEAD * (len(request.messages) + 1) + IMAGE_TOKENS * images
    answer = request.max_tokens or default_max_tokens
    return Usage(input_tokens=prompt, output_tokens=answer)


def share_text(spent_micros: int, limit_micros: int) -> str:
    share = spent_micros / limit_micros if limit_micros else 1.0
    return f"${Decimal(spent_micros).scaleb(-6):.2f} of ${Decimal(limit_micros).scaleb(-6):.2f} ({share:.0%})"

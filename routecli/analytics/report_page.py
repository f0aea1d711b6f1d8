"""The HTML of the report: page, headline figures, and one section per chart (data from report_html)."""

from __future__ import annotations

from decimal import Decimal
from html import escape
from typing import Any

from routecli.analytics import svgcharts as charts
from routecli.analytics.report_html import ms_axis, section, usd_axis

_CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
       background: #f6f8fa; margin: 0; }
main { max-width: 980px; margin: 0 auto; padding: 24px 20px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 10px; }
.sub, .note { color: #57606a; font-size: 13px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; margin: 20px 0; }
.card { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 12px 14px; }
.card b { display: block; font-size: 22px; }
.card span { color: #57606a; font-size: 13px; }
section { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 16px 18px; margin: 16px 0; }
svg.chart { width: 100%; height: auto; display: block; font-family: inherit; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; font-size: 13px; margin-top: 6px; }
.legend i { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 6px; vertical-align: -1px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; margin-top: 8px; }
th, td { text-align: right; padding: 4px 8px; border-bottom: 1px solid #eaeef2; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
.win { color: #1a7f37; font-weight: 600; }
"""


def _usd(micros: float | None) -> str:
    return "-" if micros is None else usd_axis(micros / 1_000_000)


def _cards(totals: dict[str, Any]) -> str:
    savings, latency = totals["savings"], totals["latency_ms"]
    pct = "" if savings["saved_pct"] is None else f" ({float(savings['saved_pct']):.0f}%)"
    called = totals["ok"] + totals["errors"]
    items = [
        (f"{totals['requests']:,}", "requests"),
        (usd_axis(float(Decimal(totals["cost_usd"]))), "spent"),
        (usd_axis(float(Decimal(savings["saved_usd"] or 0))) + pct, "saved against the baseline"),
        ("-" if latency["p50"] is None else f"{latency['p50'] / 1000:.2f} s", "median latency"),
        (f"{totals['errors'] * 100 / called:.1f}%" if called else "-", "of calls failed"),
    ]
    cells = "".join(f'<div class="card"><b>{escape(value)}</b><span>{escape(label)}</span></div>' for value, label in items)
    return f'<div class="cards">{cells}</div>'


def _labels(series: dict[str, Any]) -> list[str]:
    return [b[5:].replace("T", " ") + (":00" if series["hourly"] else "") for b in series["buckets"]]


def _cost_section(series: dict[str, Any]) -> str:
    labels = _labels(series)
    dollars = lambda key: [v / 1_000_000 for v in series[key]]  # noqa: E731
    lines = [("baseline model", charts.PALETTE[3], dollars("baseline_cost")),
             ("routed (priced rows)", charts.PALETTE[0], dollars("covered_cost")),
             ("all spend", charts.PALETTE[1], dollars("cost"))]
    green = charts.PALETTE[2]
    chart = charts.line_chart(labels, lines, usd_axis, "cost and savings over time", shade=(0, 1, green), dashed=(2,))
    saved = sum(series["baseline_cost"]) - sum(series["covered_cost"])
    body = chart + charts.legend([(name, colour) for name, colour, _ in lines] + [("savings", green + "55")])
    return section("Cost and savings over time", body,
                   f"The shaded gap is what routing saved: {_usd(saved)} in this window, over answers priced both "
                   "ways; 'all spend' also has failed calls and answers with no baseline price.")


def _tier_section(series: dict[str, Any]) -> str:
    stacks = [(tier, charts.PALETTE[i % len(charts.PALETTE)], values)
              for i, (tier, values) in enumerate(series["tiers"].items())]
    chart = charts.stacked_columns(_labels(series), stacks, "requests per tier over time")
    total = sum(sum(values) for _, _, values in stacks) or 1
    items = [(f"{tier}: {sum(values):,} ({sum(values) * 100 / total:.0f}%)", colour) for tier, colour, values in stacks]
    return section("Tier mix", chart + charts.legend(items))


def _latency_section(latency: list[dict[str, Any]]) -> str:
    rows = [(item["model"], item["quantiles_ms"], item["n"]) for item in latency]
    chart = charts.box_plot(rows, "latency per model", ms_axis)
    return section("Latency per model", chart,
                   "Whiskers p5 to p95, box p25 to p75, the dark line the median; answered calls, cache hits left out.")


def _error_section(errors: list[dict[str, Any]]) -> str:
    rows = [(e["model"], e["errors"] / e["calls"], f"{e['errors'] * 100 / e['calls']:.1f}% ({e['errors']} of {e['calls']})")
            for e in errors]
    top = max([r[1] for r in rows] + [0.05])
    chart = charts.hbars(rows, "error rate per model", top=top, fmt=lambda v: f"{v * 100:g}%")
    return section("Error rates", chart, "Failed calls over calls made; skipped requests and dry runs made no call.")


def _ab_table(report: dict[str, Any]) -> str:
    head = "<tr><th>variant</th><th>strategy</th><th>requests</th><th>cost / request</th><th>95% CI</th>" \
           "<th>escalation</th><th>errors</th><th>feedback (n)</th></tr>"
    strategies = {v["name"]: v["strategy"] for v in report["test"]["variants"]}
    rows = []
    for name, v in report["variants"].items():
        cost, ci = v["cost"], v["cost"]["ci95"]
        feedback = "-" if v["feedback"]["mean"] is None else f"{v['feedback']['mean']:.2f} ({v['feedback']['n']})"
        cls = ' class="win"' if name == report["winner"] else ""
        rate = lambda f: "-" if f["rate"] is None else f"{f['rate'] * 100:.1f}%"  # noqa: E731
        cells = [name, strategies.get(name, "?"), str(v["requests"]), _usd(cost["mean"]),
                 "-" if ci is None else f"{_usd(ci[0])} to {_usd(ci[1])}", rate(v["escalation"]), rate(v["errors"]),
                 feedback]
        rows.append(f"<tr{cls}>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _ab_section(reports: list[dict[str, Any]]) -> str:
    if not reports:
        return section("A/B tests", '<p class="note">No A/B tests yet. Start one with: '
                       "routecli ab start NAME --variant a=rules --variant b=learned@0.5</p>")
    parts = []
    for report in reports:
        test = report["test"]
        rows = [(name, v["cost"]["mean"] / 1e6, v["cost"]["ci95"][0] / 1e6, v["cost"]["ci95"][1] / 1e6)
                for name, v in report["variants"].items() if v["cost"]["ci95"] is not None]
        chart = charts.intervals(rows, f"cost per request in {test['name']}", usd_axis)
        verdict = f'<p class="{"win" if report["winner"] else "note"}">{escape(report["verdict"])}</p>'
        parts.append(f"<h3>{escape(test['name'])} <small class=\"sub\">({escape(test['status'])}, by "
                     f"{escape(test['by'])}, split {escape(test['split'])})</small></h3>{verdict}{chart}{_ab_table(report)}")
    return section("A/B tests", "".join(parts), "Dots are means, bars 95% intervals; a winner is named only when the "
                                               "difference is significant (see `routecli ab report --help`).")


def render_html(data: dict[str, Any]) -> str:
    stamp = lambda iso: iso[:16].replace("T", " ")  # noqa: E731  (minutes are enough for a title)
    window = f"{stamp(data['since']) if data['since'] else 'the first record'} to {stamp(data['until'])} UTC"
    body = "".join([
        "<h1>routecli report</h1>",
        f'<p class="sub">{escape(window)} · generated {escape(data["generated_at"][:19].replace("T", " "))} UTC</p>',
        _cards(data["totals"]),
        _cost_section(data["series"]),
        _tier_section(data["series"]),
        _latency_section(data["latency"]),
        _error_section(data["errors"]),
        _ab_section(data["ab"]),
    ])
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>routecli report</title><style>{_CSS}</style></head><body><main>{body}</main></body></html>\n"
    )

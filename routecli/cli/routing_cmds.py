"""`routecli train` (learn router weights from graded prompts) and `routecli eval` (measure routers)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from routecli.cli import app
from routecli.errors import UsageError


@app.command()
def train(
    data: Path = typer.Argument(..., help="JSONL of {\"prompt\", \"scores\": {model: grade 0..1}} lines."),
    strong: str = typer.Option(..., "--strong", help="The strong (expensive) model, as named in the data."),
    weak: str = typer.Option(..., "--weak", help="The weak (cheap) model, as named in the data."),
    output: Path = typer.Option(Path("weights.json"), "--output", "-o", help="Where to write the weights."),
) -> None:
    """Train the learned router on graded prompts (e.g. the shared Arena data)."""
    from routecli.cli.output import note
    from routecli.routing.learned import version_of
    from routecli.routing.train import dumps, train_file

    weights = train_file(data, strong, weak)
    try:
        output.write_text(dumps(weights), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"Cannot write {output}: {exc.strerror or exc}; check the path") from None
    trained = weights["trained_on"]
    note(
        f"trained on {trained['rows']} prompts (mean label {trained['strong_needed']:.2f}); wrote {output} "
        f"({version_of(output)}); try it: routecli eval {data} --strong {strong} --weak {weak} --weights {output}, "
        f"or route with it: ROUTECLI_WEIGHTS={output}"
    )


@app.command(name="eval")
def eval_(
    data: Path = typer.Argument(..., help="JSONL of {\"prompt\", \"scores\": {model: grade 0..1}} lines."),
    strong: str = typer.Option(..., "--strong", help="The strong model, as named in the data."),
    weak: str = typer.Option(..., "--weak", help="The weak model, as named in the data."),
    router: str = typer.Option("learned", "--router", help="Router to measure (rules and random always run too)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Weights for the learned router (default: shipped)."),
    folds: int = typer.Option(10, "--folds", help="k for k-fold when the weights were trained on this data."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw the curves to FILE.svg or FILE.png."),
    transfer: bool = typer.Option(False, "--transfer", help="Also train on all task types but one, test on that one."),
    as_json: bool = typer.Option(False, "--json", help="Print the full report as JSON."),
) -> None:
    """Measure a router the RouteLLM way: APGR, CPT(50%), CPT(80%), AUC, vs rules-only and random."""
    from routecli.routing import CLASSIFIERS
    from routecli.routing.evaluate import evaluate

    known = sorted(CLASSIFIERS) + ["random"]
    if router not in known:
        raise UsageError(f"Unknown router {router!r}; use one of: {', '.join(known)}")
    if not 2 <= folds <= 50:
        raise UsageError(f"--folds {folds}: use a number from 2 to 50 (10 is usual)")
    if weights is not None and not weights.is_file():
        raise UsageError(f"No weights file {weights}: make one with `routecli train` or drop --weights")
    report = evaluate(data, strong, weak, router=router, k=folds, weights=weights, transfer=transfer)
    if plot is not None:
        from routecli.routing.plot import write

        write(report, plot)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        typer.echo(render(report))
    if plot is not None:
        from routecli.cli.output import note

        note(f"wrote {plot}")


def _pct(value: float | None) -> str:
    return "never" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render(report: dict[str, Any]) -> str:
    from routecli.routing.evaluate import CLEAR_GAP
    from routecli.routing.plot import terminal

    lines = [
        f"{report['strong']} (strong, mean grade {report['strong_mean']:.3f}) vs {report['weak']} "
        f"(weak, {report['weak_mean']:.3f}) on {report['n']} prompts of {report['data']}",
        "",
        f"{'router':<10}{'APGR':>8}{'CPT(50%)':>10}{'CPT(80%)':>10}{'AUC':>8}  how",
    ]
    for name, r in report["routers"].items():
        lines.append(f"{name:<10}{_num(r['apgr']):>8}{_pct(r['cpt50']):>10}{_pct(r['cpt80']):>10}{_num(r['auc']):>8}  {r['how']}")
    lines += [
        "",
        f"APGR: area under PGR over strong share 0..1, thresholds at {report['quantiles']} score quantiles; "
        f"CPT(x): strong share needed for PGR x; AUC: strong graded >= {CLEAR_GAP * 10:.0f} points above weak.",
        "",
        terminal(report),
    ]
    names = list(report["routers"])
    for title, groups in [("task type", report["groups"]["task"]), ("category", report["groups"]["category"])] + (
        [("transfer: " + report["transfer"]["how"], report["transfer"]["groups"])] if "transfer" in report else []
    ):
        lines += ["", f"APGR by {title}:", f"  {'group':<16}{'n':>5}" + "".join(f"{n:>10}" for n in names)]
        for group, row in groups.items():
            lines.append(f"  {group:<16}{row['n']:>5}" + "".join(f"{_num(row[n]['apgr']):>10}" for n in names))
    pooled = report.get("transfer", {}).get("pooled")
    if pooled:  # every group scored by its left-out model, all ranked together
        lines.append(f"  {'all, pooled':<16}{pooled['n']:>5}" + "".join(f"{_num(pooled[n]['apgr']):>10}" for n in names))
    return "\n".join(lines)

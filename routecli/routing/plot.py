"""Plots of an evaluation: PGR against the share of strong-model calls, one line per router.

The terminal plot and the SVG need nothing beyond the standard library; PNG uses matplotlib
when it is installed (`pip install 'routecli[plot]'`) and says so when it is not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from routecli.errors import UsageError

GLYPHS = {"learned": "L", "rules": "R", "random": "."}
COLOURS = ["#1f77b4", "#d62728", "#7f7f7f", "#2ca02c", "#9467bd"]


def _at(curve: list[list[float]], x: float) -> float:
    for (x1, y1), (x2, y2) in zip(curve, curve[1:]):
        if x1 <= x <= x2:
            return y1 if x2 == x1 else y1 + (y2 - y1) * (x - x1) / (x2 - x1)
    return curve[-1][1] if x > curve[-1][0] else curve[0][1]


def _y_range(report: dict[str, Any]) -> tuple[float, float]:
    ys = [y for r in report["routers"].values() for _, y in r["curve"]]
    return min(-0.1, min(ys)), max(1.1, max(ys))


def terminal(report: dict[str, Any], width: int = 61, height: int = 15) -> str:
    """A character plot; later routers are drawn first so the chosen one stays on top."""
    low, high = _y_range(report)
    grid = [[" "] * width for _ in range(height)]
    diagonal = [(c, round((1 - (c / (width - 1) - low) / (high - low)) * (height - 1))) for c in range(width)]
    for col, row in diagonal:  # the straight line random routing follows on average
        if 0 <= row < height:
            grid[row][col] = "`"
    names = list(report["routers"])
    for index, name in reversed(list(enumerate(names))):
        glyph = GLYPHS.get(name, str(index + 1))
        curve = report["routers"][name]["curve"]
        for col in range(width):
            y = _at(curve, col / (width - 1))
            row = round((high - y) / (high - low) * (height - 1))
            grid[max(0, min(height - 1, row))][col] = glyph
    lines = []
    for r, cells in enumerate(grid):
        y = high - r * (high - low) / (height - 1)
        label = f"{y:5.2f} |" if r in (0, height // 2, height - 1) else "      |"
        lines.append(label + "".join(cells))
    lines.append("      +" + "-" * width)
    lines.append("       0%" + " " * (width // 2 - 5) + "50%" + " " * (width - width // 2 - 6) + "100%")
    legend = "  ".join(f"{GLYPHS.get(n, str(i + 1))} {n}" for i, n in enumerate(names))
    lines.append(f"       PGR (0 = weak model alone, 1 = strong alone) by share of strong calls; {legend}")
    return "\n".join(lines)


def svg(report: dict[str, Any]) -> str:
    w, h, left, right, top, bottom = 720, 440, 60, 180, 40, 50
    pw, ph = w - left - right, h - top - bottom
    low, high = _y_range(report)

    def px(x: float, y: float) -> str:
        return f"{left + x * pw:.1f},{top + (high - y) / (high - low) * ph:.1f}"

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="14">{escape(_title(report))}</text>',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x1, y1 = px(tick, low).split(",")
        out.append(f'<line x1="{x1}" y1="{top}" x2="{x1}" y2="{top + ph}" stroke="#eee"/>')
        out.append(f'<text x="{x1}" y="{top + ph + 16}" text-anchor="middle">{tick:.0%}</text>')
        if low <= tick <= high:
            _, y = px(0, tick).split(",")
            out.append(f'<line x1="{left}" y1="{y}" x2="{left + pw}" y2="{y}" stroke="#eee"/>')
            out.append(f'<text x="{left - 6}" y="{float(y) + 4:.1f}" text-anchor="end">{tick:.2f}</text>')
    out.append(f'<polyline points="{px(0, 0)} {px(1, 1)}" fill="none" stroke="#bbb" stroke-dasharray="4 4"/>')
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>')
    out.append(f'<text x="{left + pw / 2}" y="{h - 12}" text-anchor="middle">share of calls to the strong model</text>')
    out.append(f'<text transform="translate(16 {top + ph / 2}) rotate(-90)" text-anchor="middle">'
               "PGR (0 = weak alone, 1 = strong alone)</text>")
    for i, (name, result) in enumerate(report["routers"].items()):
        colour = COLOURS[i % len(COLOURS)]
        points = " ".join(px(x, y) for x, y in result["curve"])
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, y in result["curve"]:
            cx, cy = px(x, y).split(",")
            out.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>')
        y = top + 16 + i * 20
        out.append(f'<line x1="{left + pw + 14}" y1="{y - 4}" x2="{left + pw + 34}" y2="{y - 4}" stroke="{colour}" stroke-width="2"/>')
        out.append(f'<text x="{left + pw + 40}" y="{y}">{escape(name)} APGR {result["apgr"]:.3f}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _title(report: dict[str, Any]) -> str:
    return f"{report['strong']} vs {report['weak']} ({report['n']} prompts)"


def png(report: dict[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(
            "PNG plots need matplotlib: pip install 'routecli[plot]', or write --plot FILE.svg (no extra needed)"
        ) from None
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="#bbb")
    for name, result in report["routers"].items():
        xs, ys = zip(*result["curve"])
        ax.plot(xs, ys, marker=".", label=f"{name} APGR {result['apgr']:.3f}")
    ax.set_xlabel("share of calls to the strong model")
    ax.set_ylabel("PGR (0 = weak alone, 1 = strong alone)")
    ax.set_title(_title(report))
    ax.legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(report: dict[str, Any], path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix not in (".svg", ".png"):
        raise UsageError(f"--plot {path}: name an .svg or .png file")
    try:
        if suffix == ".svg":
            path.write_text(svg(report), encoding="utf-8")
        else:
            png(report, path)
    except OSError as exc:
        raise UsageError(f"Cannot write {path}: {exc.strerror or exc}; check the path") from None

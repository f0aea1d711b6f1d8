"""The optimiser behind `routecli train`: L2-penalised logistic loss on soft labels, L-BFGS.

Pure Python and deterministic: the same design and labels give the same weights to the last
bit (fixed iteration order, no randomness), so the shipped weights rebuild byte for byte.
Each weight is pulled toward its prior (Design.centres), not toward 0.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from routecli.routing.train import Design


def _loss_grad(w: list[float], design: Design, ys: list[float]) -> tuple[float, list[float]]:
    n = len(ys)
    pulls = [x - c for x, c in zip(w, design.centres)]
    grad = [p * d for p, d in zip(design.penalties, pulls)]
    loss = 0.5 * math.fsum(p * d * d for p, d in zip(design.penalties, pulls))
    total = 0.0
    for (cols, vals), y in zip(design.rows, ys):
        z = sum(w[c] * v for c, v in zip(cols, vals))
        softplus = z + math.log1p(math.exp(-z)) if z > 0 else math.log1p(math.exp(z))
        total += softplus - y * z
        d = (_sigmoid(z) - y) / n
        for c, v in zip(cols, vals):
            grad[c] += d * v
    return loss + total / n, grad


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _dot(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b))


def lbfgs(design: Design, ys: list[float], iterations: int, memory: int = 8) -> list[float]:
    """Minimise the penalised log-loss; deterministic, stops when the gradient is flat."""
    w = list(design.centres)
    loss, grad = _loss_grad(w, design, ys)
    history: list[tuple[list[float], list[float], float]] = []
    for _ in range(iterations):
        direction = _two_loop(grad, history)
        slope = _dot(grad, direction)
        if slope >= 0:  # not a descent direction: fall back to steepest descent
            history.clear()
            direction, slope = [-g for g in grad], -_dot(grad, grad)
        step = 1.0
        while True:
            trial = [x + step * d for x, d in zip(w, direction)]
            new_loss, new_grad = _loss_grad(trial, design, ys)
            if new_loss <= loss + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s = [a - b for a, b in zip(trial, w)]
        yv = [a - b for a, b in zip(new_grad, grad)]
        sy = _dot(s, yv)
        if sy > 1e-12:
            history.append((s, yv, 1.0 / sy))
            del history[:-memory]
        converged = abs(loss - new_loss) < 1e-10 * max(1.0, abs(loss))
        w, loss, grad = trial, new_loss, new_grad
        if converged or math.sqrt(_dot(grad, grad)) < 1e-7:
            break
    return w


def _two_loop(grad: list[float], history: list[tuple[list[float], list[float], float]]) -> list[float]:
    q = list(grad)
    alphas = []
    for s, y, rho in reversed(history):
        a = rho * _dot(s, q)
        alphas.append(a)
        q = [qi - a * yi for qi, yi in zip(q, y)]
    if history:
        s, y, _ = history[-1]
        gamma = _dot(s, y) / _dot(y, y)
        q = [gamma * qi for qi in q]
    for (s, y, rho), a in zip(history, reversed(alphas)):
        b = rho * _dot(y, q)
        q = [qi + (a - b) * si for qi, si in zip(q, s)]
    return [-qi for qi in q]

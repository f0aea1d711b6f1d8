"""The little statistics an A/B report needs, in pure Python (no SciPy): intervals and two-sample tests.

Intervals are 95% by default: the normal approximation for means (fine at the sample sizes a
winner needs, see ab_report.MIN_REQUESTS), Wilson's for proportions (honest near 0 and 1).
Tests are two-sided: Welch's t for means (unequal variances), the pooled two-proportion z for rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass
class Moments:
    """Running count, sum and sum of squares: enough for a mean, its variance and Welch's t."""

    n: int = 0
    total: float = 0.0
    squares: float = 0.0

    def add(self, value: float) -> None:
        self.n += 1
        self.total += value
        self.squares += value * value

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """Sample variance (n - 1); clamped at 0 against rounding."""
        if self.n < 2:
            return None
        return max(0.0, (self.squares - self.total * self.total / self.n) / (self.n - 1))


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def mean_interval(m: Moments, z: float = Z95) -> tuple[float, float] | None:
    if m.n < 2 or m.variance is None or m.mean is None:
        return None
    half = z * math.sqrt(m.variance / m.n)
    return m.mean - half, m.mean + half


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    if n <= 0:
        return None
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def welch(a: Moments, b: Moments) -> tuple[float, float] | None:
    """(t, two-sided p) of Welch's test that the means differ; None with fewer than 2 values a side."""
    if a.n < 2 or b.n < 2 or a.mean is None or b.mean is None:
        return None
    va, vb = a.variance / a.n, b.variance / b.n  # type: ignore[operator]
    diff = a.mean - b.mean
    if va + vb == 0:  # no spread at all: the means either are the same or plainly are not
        return (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va * va / (a.n - 1) + vb * vb / (b.n - 1))
    return t, student_t_two_sided(t, df)


def two_proportions(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float] | None:
    """(z, two-sided p) of the pooled two-proportion z test; None when a side is empty."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (k1 + k2) / (n1 + n2)
    diff = k1 / n1 - k2 / n2
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
    z = diff / se
    return z, 2 * normal_sf(abs(z))


def student_t_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with df degrees of freedom: I_{df/(df+t^2)}(df/2, 1/2)."""
    if math.isinf(t):
        return 0.0
    return min(1.0, incomplete_beta(df / (df + t * t), df / 2, 0.5))


def incomplete_beta(x: float, a: float, b: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by Lentz's continued fraction."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # the fraction converges fast only below the mean of the distribution; use the symmetry above it
    if x > (a + 1) / (a + b + 2):
        return 1.0 - math.exp(log_front) * _beta_fraction(1 - x, b, a) / b
    return math.exp(log_front) * _beta_fraction(x, a, b) / a


def _beta_fraction(x: float, a: float, b: float, eps: float = 1e-15, tiny: float = 1e-300) -> float:
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < eps:
            break
    return result

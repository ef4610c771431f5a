"""Confidence intervals and paired significance tests for results tables.

Figures of two scorers evaluated on the same users with the same candidates (same
protocol seed) are paired per user: the test asks whether the per-user differences
are centred on zero. Two tests are offered, both two-sided:

* ``t``: the paired t-test (Student 1908) on the per-user differences; its 95% interval
  for the mean difference is ``mean ± t_{0.975, n-1} · sd / √n``.
* ``wilcoxon``: the Wilcoxon signed-rank test (Wilcoxon 1945), which assumes no
  normality; zero differences are dropped (Wilcoxon's own treatment), which is what
  hit-rate style metrics (per-user values 0 or 1) need.

Users whose value is undefined (NaN, e.g. AUC without a negative) in either scorer
are left out of the pair.
"""
import dataclasses
import math

import numpy as np
from scipy import stats

TESTS = ("t", "wilcoxon")


@dataclasses.dataclass
class PairedTest:
    """Result of comparing scorer A with scorer B on the same users."""

    test: str  # "t" or "wilcoxon"
    num_pairs: int
    mean_difference: float  # mean of A − B
    ci_low: float  # 95% interval of the mean difference (t distribution)
    ci_high: float
    p_value: float

    def to_dict(self):
        return {k: (None if isinstance(v, float) and math.isnan(v) else v)
                for k, v in dataclasses.asdict(self).items()}


def mean_ci(values, confidence=0.95):
    """``(mean, low, high)``: the t-distribution interval of the mean of ``values`` (NaNs dropped)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[~np.isnan(values)]
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if n == 1:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))
    return mean, mean - half, mean + half


def paired_test(a, b, test="t"):
    """Paired two-sided test of per-user values ``a`` against ``b`` (same users, same order)."""
    if test not in TESTS:
        raise ValueError(f"test must be one of {list(TESTS)}, got {test!r}")
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values must be 1-D and equally long, got {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))
    diff = a[keep] - b[keep]
    n = len(diff)
    mean, low, high = mean_ci(diff)
    if n < 2 or not np.any(diff):
        # No variation at all: the scorers agree on every user.
        return PairedTest(test, n, mean if n else math.nan, low, high, 1.0 if n else math.nan)
    if test == "t":
        p = float(stats.ttest_1samp(diff, 0.0).pvalue)
    else:
        p = float(stats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided").pvalue)
    return PairedTest(test, n, mean, low, high, p)


def format_p(p):
    """p-values for tables: ``< 1e-4`` below that, else 4 significant digits."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    return "< 1e-4" if p < 1e-4 else f"{p:.4g}"

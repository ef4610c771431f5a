"""The sections of ``tools/bench_peers.py`` (``make bench-peers``), one module each.

``bpr`` (peers_bpr), ``vbpr`` (peers_vbpr), ``ann`` (peers_ann), ``serving`` (peers_serving) and
``features`` (features). Each module has ``SECTION`` (the docs/benchmarks.md section it writes),
``TITLE`` and ``run(args) -> markdown``; ``tools/bench_peers.py`` adds the load average at the
start and end of the section and publishes it. Helpers shared by several sections live here.
"""
import os
import sys

import numpy as np

TOOLS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(TOOLS)
for _path in (REPO, TOOLS):  # tfvrec, and the tools/bench_*.py scripts whose code the sections reuse
    if _path not in sys.path:
        sys.path.insert(0, _path)


def log(message):
    print(f"[bench_peers] {message}", flush=True)


def ratio(value, reference):
    """``value / reference`` as table text (— when the reference is 0 or missing)."""
    return f"{value / reference:.3f}" if reference else "—"


def load_text(start, end):
    return (f"Load average (1 min) at the start of the section {start[0]:.2f}, at the end {end[0]:.2f} (2 cores; "
            "above about 2.5 other jobs shared the cores and the times are not speed measurements).")


class FactorScorer:
    """A peer's factors as a tfvrec scorer: score(u, i) = p_u · q_i (+ b_i)."""

    def __init__(self, users, items, bias=None):
        self.users, self.items = users, items
        self.bias = np.zeros(len(items)) if bias is None else bias
        self.num_items = len(items)

    def score(self, users, items):
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        return np.einsum("bd,bcd->bc", self.users[users], self.items[items]) + self.bias[items]

    def score_all(self, users):
        return self.users[np.asarray(users, np.int64)] @ self.items.T + self.bias


def select_on_holdout(name, fit, grid, holdout_value, notes):
    """Fit ``fit(lr, lam) -> (scorer, seconds, extra)`` at every grid point, keep the best by
    ``holdout_value(scorer)`` (the train holdout, never the reported split).

    Returns ``(value, scorer, seconds, extra, lr, lam)`` of the best; appends a note per point.
    """
    best = None
    for lr, lam in grid:
        scorer, seconds, extra = fit(lr, lam)
        value = holdout_value(scorer)
        log(f"{name} lr={lr} λ={lam}: holdout {value:.4f}, {seconds:.1f} s")
        notes.append(f"{name} lr={lr}, λ={lam}: holdout {value:.4f} ({seconds:.1f} s)")
        if best is None or value > best[0]:
            best = (value, scorer, seconds, extra, lr, lam)
    return best

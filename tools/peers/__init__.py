"""The peers sections (tfvrec beside cornac, implicit, faiss and hnswlib; issue 18, "ahead of the peers"),
one module each, with what they share: `FactorScorer` (a peer's factors as a tfvrec scorer) and
`select_on_holdout` (each contender's grid point chosen on the train holdout, never on the reported split).

``bpr`` (peers_bpr), ``bpr_posters`` (peers_bpr_posters), ``vbpr`` (peers_vbpr), ``ann`` (peers_ann),
``ann_real`` (peers_ann_real), ``serving`` (peers_serving); with ``features`` (tools/bench_features.py)
they are the ``peers`` group: ``python tools/bench.py --sections peers`` (``make bench-peers``). Without
the bench extra, their quick modes run tfvrec's side alone and say which peers did not run.
"""
import numpy as np

from harness import REPO, TOOLS, log, ratio  # noqa: F401  (shared by the peers modules)

RUNS = "bench_peers"  # the runs folder the peers sections share


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

"""The baselines of CuratorNet's Table 2 (Cartagena et al., §4.3), as evaluation scorers.

Registered with `tfvrec.registry.register_baseline` (``eval.baselines``):

* ``visrank`` — VisRank (Kang et al. 2017; Messina et al. 2018), eq. 15:
  score(u, i) = max_{j ∈ P_u} cosine(f_i, f_j), over the user's whole training history
  and the raw item content of ``model.curatornet.item_content`` (the paper's ResNet embeddings;
  here ``data.features``, the tags or artist one-hot vectors — for the artist the cosine is 1 for the
  same artist, else 0 — or their concatenation, as CuratorNet reads it).
* ``vbpr`` — VBPR, a model of its own (`tfvrec.models.vbpr`, its baseline run in
  `tfvrec.models.vbpr.baselines`); the paper's setting is ``model.vbpr.sampling: guidelines``.
* ``oracle`` — the perfect ranking: the user's held-out items first (AUC 1), the
  table's upper bound.
* ``random`` is the evaluation engine's own.
"""
import numpy as np

from tfvrec.models.curatornet import model as curatornet
from tfvrec.registry import register_baseline


_PRODUCT_CELLS = 1 << 24  # similarities per VisRank product (64 MB of float32)


class VisRankScorer:
    """score(u, i) = max over the user's profile items j of cosine(f_i, f_j) (eq. 15)."""

    def __init__(self, content, profiles, evaluation_note=""):
        content = np.asarray(content, dtype=np.float32)
        self.evaluation_note = evaluation_note
        norms = np.linalg.norm(content, axis=1, keepdims=True)
        self.unit = content / np.maximum(norms, 1e-12)
        self.profiles = profiles  # list per user of item indices
        self.num_items = len(content)

    def _user_scores(self, user, items=None):
        profile = self.profiles[user]
        candidates = self.unit if items is None else self.unit[items]
        if not len(profile):
            return np.zeros(len(candidates), dtype=np.float32)
        return (self.unit[profile] @ candidates.T).max(axis=0)

    def score(self, users, items):
        return np.stack([self._user_scores(int(u), row) for u, row in zip(users, np.asarray(items))])

    def score_all(self, users):
        """One product per block of users (their profile items × every item), not one per user: a
        small product per user costs ~10× more in BLAS set-up than its arithmetic (the demo's VisRank
        row took 14 s of 600 users). Blocks hold at most `_PRODUCT_CELLS` similarities, or one user."""
        users = [int(u) for u in users]
        out = np.zeros((len(users), self.num_items), dtype=np.float32)
        budget = max(1, _PRODUCT_CELLS // max(self.num_items, 1))  # profile rows per product
        block, rows = [], 0
        for n, user in enumerate(users):
            size = len(self.profiles[user])
            if not size:
                continue  # no profile: every item scores 0
            if block and rows + size > budget:
                self._fill(out, users, block)
                block, rows = [], 0
            block.append(n)
            rows += size
        if block:
            self._fill(out, users, block)
        return out

    def _fill(self, out, users, block):
        profiles = [np.asarray(self.profiles[users[n]], dtype=np.int64) for n in block]
        similarities = self.unit[np.concatenate(profiles)] @ self.unit.T
        starts = np.cumsum([0] + [len(p) for p in profiles[:-1]])
        out[block] = np.maximum.reduceat(similarities, starts, axis=0)


class OracleScorer:
    """1 for the user's held-out items, 0 otherwise: ranks the held-out items first."""

    def __init__(self, heldout, num_items):
        self.heldout, self.num_items = heldout, num_items

    def score(self, users, items):
        items = np.asarray(items)
        return np.stack([np.isin(row, self.heldout.get(int(u), ())) for u, row in zip(users, items)]).astype(float)

    def score_all(self, users):
        return self.score(users, np.broadcast_to(np.arange(self.num_items), (len(users), self.num_items)))


@register_baseline("visrank")
def _visrank(dataset, config, heldout):
    content, description = curatornet.item_content(dataset, config)
    return VisRankScorer(content, dataset.train_items_by_user(),
                         f"visrank: max cosine to the user's training items; content (model.curatornet): {description}")


@register_baseline("oracle")
def _oracle(dataset, config, heldout):
    return OracleScorer(heldout, dataset.num_items)

"""Reference scorers every results table should include (popularity, the "MP" of the papers'
tables, and "Random", as in Cartagena et al.'s Table 2).

Both implement :class:`tfvrec.evaluation.protocols.FullScorer`. Their figures anchor a
table: a model that does not beat :class:`PopularityScorer` has learned little about
individual taste, and :class:`RandomScorer` checks the protocol itself (under
``sampled:N`` with one held-out item its expected HR@K is K / (N + 1), its AUC 0.5).
"""
import numpy as np

from tfvrec.evaluation.metrics import keys_to_unit_interval, pair_keys


class PopularityScorer:
    """Score of an item = number of distinct training users who interacted with it.

    Counting distinct (user, item) pairs rather than rows keeps a user who re-buys or
    re-likes one item from making it look popular. The same ranking for every user.
    """

    def __init__(self, train_items, train_users, num_items: int):
        train_items = np.asarray(train_items, dtype=np.int64).ravel()
        train_users = np.asarray(train_users, dtype=np.int64).ravel()
        if train_items.shape != train_users.shape:
            raise ValueError(f"train_items ({train_items.shape}) and train_users ({train_users.shape}) "
                             f"must be equally long")
        if len(train_items) and (train_items.min() < 0 or train_items.max() >= num_items):
            raise ValueError(f"training items must lie in [0, {num_items})")
        pairs = np.unique(np.stack([train_users, train_items], axis=1), axis=0)
        self.num_items = int(num_items)
        self.counts = np.bincount(pairs[:, 1], minlength=self.num_items).astype(np.float64)

    def score(self, users, items):
        return self.counts[np.asarray(items, dtype=np.int64)]

    def score_all(self, users):
        return np.broadcast_to(self.counts, (len(users), self.num_items)).copy()


class RandomScorer:
    """A fixed random ranking per user: score(u, i) is a hash of (seed, u, i) in [0, 1).

    Hashing (instead of drawing on each call) makes the scores a pure function of the
    pair, like a real model's, so they do not depend on batching or call order.
    ``num_items`` is needed only by :meth:`score_all`.
    """

    def __init__(self, seed: int = 0, num_items: int = None):
        self.seed = int(seed)
        self.num_items = None if num_items is None else int(num_items)

    def score(self, users, items):
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        return keys_to_unit_interval(pair_keys(self.seed, users[:, None], items))

    def score_all(self, users):
        if self.num_items is None:
            raise ValueError("RandomScorer.score_all needs the catalogue size: RandomScorer(seed, num_items=...)")
        users = np.asarray(users, dtype=np.int64)
        return self.score(users, np.broadcast_to(np.arange(self.num_items), (len(users), self.num_items)))

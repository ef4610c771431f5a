"""CDL's training triplets (Lei et al., §5): (user, liked image I+, image I− the user does not like).

A favourite is a positive. An image is a safe negative when nothing suggests the user
could like it: it is not among the user's likes, nor their friends' (followees') likes,
nor the likes of members of their groups (where the data has friends or groups), and it
carries none of the user's interest tags (the tags of their training images and their own
tags). When those rules leave fewer than ``min_negatives`` images, they are relaxed in
order — interest tags, then groups, then friends — and the relaxation is counted and logged
(the relaxation is tfvrec's; the paper's Flickr data had negatives in abundance).

Each epoch draws ``triplets_per_user`` triplets for every user with a training like, in a
shuffled order; epoch e draws from ``numpy.random.default_rng([seed, e])``, so the stream
is a pure function of the seed (a resumed run skips exactly the batches it trained on).
TensorFlow-free.
"""
import dataclasses

import numpy as np
from absl import logging

from tfvrec.models.cdl.user_vectors import item_tag_lists, user_own_tags


@dataclasses.dataclass
class NegativePools:
    """Per user, the items allowed as negatives (CSR) and how the rules were applied."""
    splits: np.ndarray  # [U + 1]
    items: np.ndarray
    relaxed: dict  # rule -> number of users for whom it was dropped
    rules: list  # the rules in force


def _likes_by_user(frame, num_users):
    out = [set() for _ in range(num_users)]
    for u, i in zip(frame["user"].values, frame["item"].values):
        out[int(u)].add(int(i))
    return out


def interest_items(dataset, likes=None, use_own_tags=True):
    """``[num_users, num_items]`` bool: the items carrying at least one of the user's interest tags
    (§5: the tags of their training images, and their own post tags unless ``use_own_tags`` is
    False; post tags on held-out pairs are not read, `user_vectors.readable_post_tags`), or None
    when no item carries a tag. ``likes``: per user the set of training items (from the data set
    when None)."""
    n_users, n_items = dataset.num_users, dataset.num_items
    item_tags = item_tag_lists(dataset)
    vocabulary = {t: n for n, t in enumerate(sorted({t for tags in item_tags for t in tags}))}
    if not vocabulary:
        return None
    if likes is None:
        likes = _likes_by_user(dataset.split("train"), n_users)
    has_tag = np.zeros((n_items, len(vocabulary)), bool)
    for i, tags in enumerate(item_tags):
        has_tag[i, [vocabulary[t] for t in tags]] = True
    own = user_own_tags(dataset) if use_own_tags else [[] for _ in range(n_users)]
    tagged = np.zeros((n_users, n_items), bool)
    for u in range(n_users):
        interest = has_tag[list(likes[u])].any(axis=0) if likes[u] else np.zeros(len(vocabulary), bool)
        interest[[vocabulary[t] for t in own[u] if t in vocabulary]] = True
        if interest.any():
            tagged[u] = has_tag[:, interest].any(axis=1)
    return tagged


def negative_pools(dataset, c, usable=None):
    """`NegativePools` of ``dataset``'s training split for ``model.cdl`` section ``c``.

    ``usable`` [num_items] bool: items that may be sampled at all (readable images)."""
    n_users, n_items = dataset.num_users, dataset.num_items
    train = dataset.split("train")
    likes = _likes_by_user(train, n_users)
    usable = np.ones(n_items, bool) if usable is None else np.asarray(usable, bool)
    liked = np.zeros((n_users, n_items), bool)
    liked[train["user"].values, train["item"].values] = True
    rules = []
    friends = None
    if c.exclude_friends and dataset.social is not None and len(dataset.social):
        rules.append("friends")
        friends = np.zeros((n_users, n_items), bool)
        follows = [[] for _ in range(n_users)]
        for u, v in zip(dataset.social["user"].values, dataset.social["followed"].values):
            follows[int(u)].append(int(v))
        for u in range(n_users):
            if follows[u]:
                friends[u] = liked[follows[u]].any(axis=0)
    elif c.exclude_friends:
        logging.info("CDL negatives: %s has no friends (social.tsv): friends' favourites not excluded", dataset.name)
    groups = None
    if c.exclude_groups and dataset.groups is not None and len(dataset.groups):
        rules.append("groups")
        g_ids, g_users = dataset.groups["group"].values, dataset.groups["user"].values
        group_likes = np.zeros((int(g_ids.max()) + 1, n_items), bool)
        for g in np.unique(g_ids):
            group_likes[g] = liked[g_users[g_ids == g]].any(axis=0)
        groups = np.zeros((n_users, n_items), bool)
        for g, u in zip(g_ids, g_users):
            groups[u] |= group_likes[g]
    elif c.exclude_groups:
        logging.info("CDL negatives: %s has no groups (groups.tsv): group images not excluded", dataset.name)
    tagged = interest_items(dataset, likes, c.use_own_tags) if c.exclude_interest_tags else None
    if tagged is not None:
        rules.append("interest tags")
    relaxed = {"interest tags": 0, "groups": 0, "friends": 0, "none left": 0}
    pools = []
    for u in range(n_users):
        base = usable & ~liked[u]
        layers = [("friends", friends), ("groups", groups), ("interest tags", tagged)]
        active = [(name, m[u]) for name, m in layers if m is not None]
        allowed = None
        while True:
            allowed = base.copy()
            for _, mask in active:
                allowed &= ~mask
            if allowed.sum() >= min(c.min_negatives, base.sum()) or not active:
                break
            relaxed[active[-1][0]] += 1
            active = active[:-1]
        if not allowed.any():
            relaxed["none left"] += 1
            allowed = usable.copy()
        pools.append(np.flatnonzero(allowed))
    splits = np.r_[0, np.cumsum([len(p) for p in pools])].astype(np.int64)
    pool = NegativePools(splits=splits, items=np.concatenate(pools).astype(np.int64), relaxed=relaxed, rules=rules)
    logging.info("CDL negatives: %s", describe(pool, n_users))
    return pool


def describe(pool, num_users):
    sizes = np.diff(pool.splits)
    dropped = ", ".join(f"{rule} relaxed for {n} users" for rule, n in pool.relaxed.items() if n) or "no relaxation"
    return (f"rules {pool.rules or ['not liked']}; median pool {int(np.median(sizes))} items per user "
            f"(min {int(sizes.min())}); {dropped} (of {num_users})")


class TripletSampler:
    """``triplets_per_user`` triplets per user per epoch, a pure function of (seed, epoch)."""

    def __init__(self, dataset, c, usable=None):
        train = dataset.split("train")
        usable = np.ones(dataset.num_items, bool) if usable is None else np.asarray(usable, bool)
        keep = usable[train["item"].values]
        order = np.lexsort((train["item"].values[keep], train["user"].values[keep]))
        users, items = train["user"].values[keep][order], train["item"].values[keep][order]
        self.like_splits = np.searchsorted(users, np.arange(dataset.num_users + 1)).astype(np.int64)
        self.like_items = items.astype(np.int64)
        self.users = np.flatnonzero(np.diff(self.like_splits) > 0)
        self.per_user = c.triplets_per_user
        self.pools = negative_pools(dataset, c, usable)

    @property
    def triplets_per_epoch(self):
        return len(self.users) * self.per_user

    def epoch(self, seed, epoch):
        """``(users, positives, negatives)`` int64 arrays of one epoch's triplets, shuffled."""
        rng = np.random.default_rng([seed, epoch])
        users = rng.permutation(np.repeat(self.users, self.per_user))
        lo, n_likes = self.like_splits[users], np.diff(self.like_splits)[users]
        positives = self.like_items[lo + (rng.random(len(users)) * n_likes).astype(np.int64)]
        plo, n_pool = self.pools.splits[users], np.diff(self.pools.splits)[users]
        negatives = self.pools.items[plo + (rng.random(len(users)) * n_pool).astype(np.int64)]
        return users.astype(np.int64), positives, negatives

    def epoch_triplets(self, seed, epoch, need):
        """The ``need`` triplets training epoch ``epoch`` consumes: its draw, cut to ``need`` or topped
        up from further draws. A pure function of its arguments (the unit `tfvrec.triplets` writes)."""
        parts = [self.epoch(seed, epoch)]
        extra = 0
        while sum(len(p[0]) for p in parts) < need:
            extra += 1
            parts.append(self.epoch(seed, 1_000_000 + epoch * 64 + extra))
        return tuple(np.concatenate([part[k] for part in parts])[:need] for k in range(3))

    def batches(self, seed, batch_size, steps_per_epoch):
        """Infinite batches; each epoch is ``steps_per_epoch`` batches (its triplets, topped up
        from the next draw when they do not fill the last batch)."""
        epoch = 0
        while True:
            u, p, n = self.epoch_triplets(seed, epoch, steps_per_epoch * batch_size)
            for step in range(steps_per_epoch):
                s = slice(step * batch_size, (step + 1) * batch_size)
                yield u[s], p[s], n[s], np.array([seed % (2 ** 31), epoch * steps_per_epoch + step], np.int64)
            epoch += 1

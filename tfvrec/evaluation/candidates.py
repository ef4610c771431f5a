"""Who competes with a held-out item: the candidates of one batch of users under each protocol kind.

`tfvrec.evaluation.protocols.evaluate` asks here for the scored candidates of a batch: every allowed item
(`full_batch`, ``full`` and ``new_items``), or the held-out items plus sampled negatives (`sampled_batch`,
``sampled:N`` and ``candidates:N``), restricted to a candidate pool when one is given (`as_pools`: the new
items of ``new_items``, a user's interest-tag items of ``interest_candidates``). Negatives are drawn without
replacement from outside the user's forbidden items, as a pure function of the seed.
"""
import math
from typing import Dict, Mapping, Optional

import numpy as np

from tfvrec.evaluation import metrics as metrics_lib

MAX_CANDIDATE_POSITIVES = 20  # candidates:N — held-out items per user (CDL's 20 hidden favourites)


NO_ITEMS = np.empty(0, dtype=np.int64)


class Pools:
    """A candidate pool: ``shared`` (sorted item indices, every user) or ``by_user`` (user → sorted indices)."""

    def __init__(self, shared=None, by_user=None):
        self.shared, self.by_user = shared, by_user

    def get(self, user):
        return self.shared if self.shared is not None else self.by_user.get(int(user), NO_ITEMS)


def as_pools(candidate_pool, num_items) -> Optional[Pools]:
    if candidate_pool is None:
        return None
    if isinstance(candidate_pool, Mapping):
        return Pools(by_user=as_user_items(candidate_pool, num_items, "candidate_pool"))
    items = np.asarray(candidate_pool)
    if items.ndim != 1 or not (items.size == 0 or np.issubdtype(items.dtype, np.integer)):
        raise ValueError(f"candidate_pool must be a 1-D array of item indices or a mapping user -> item indices, "
                         f"got {type(candidate_pool).__name__} of shape {items.shape} ({items.dtype})")
    return Pools(shared=as_user_items({0: items.astype(np.int64)}, num_items, "candidate_pool")[0])


def restrict_to_pools(heldout_map, users, pools):
    """Held-out items inside each user's pool, and how many (user, item) pairs fell outside."""
    restricted, outside = dict(heldout_map), 0
    for user in users:
        items = heldout_map[user]
        inside = items[sorted_isin(items, pools.get(user))]
        outside += len(items) - len(inside)
        restricted[user] = inside
    return restricted, int(outside)


def sorted_isin(items, sorted_pool):
    """Mask of ``items`` that are in ``sorted_pool`` (sorted, distinct)."""
    if not len(sorted_pool):
        return np.zeros(len(items), dtype=bool)
    position = np.minimum(np.searchsorted(sorted_pool, items), len(sorted_pool) - 1)
    return sorted_pool[position] == items


def full_batch(scorer, users, heldout_map, exclude_map, num_items, pools=None):
    """Score every item (of the pool); mask the excluded ones (held-out items always stay candidates)."""
    batch = len(users)
    if pools is None:
        valid = np.ones((batch, num_items), dtype=bool)
    else:
        valid = np.zeros((batch, num_items), dtype=bool)
        if pools.shared is not None:
            valid[:, pools.shared] = True
        else:
            for row, user in enumerate(users):
                valid[row, pools.get(user)] = True
    relevant = np.zeros((batch, num_items), dtype=bool)
    for row, user in enumerate(users):
        valid[row, exclude_map.get(int(user), NO_ITEMS)] = False
        relevant[row, heldout_map[int(user)]] = True
    valid |= relevant
    score_all = getattr(scorer, "score_all", None)
    if callable(score_all):
        items = np.broadcast_to(np.arange(num_items, dtype=np.int64), (batch, num_items))
        scores = check_scores(score_all(users.copy()), (batch, num_items), "score_all")
        return scores, relevant, valid, items
    # Without score_all, ask only about real candidates so the scorer never sees an excluded
    # item; rows are padded with the user's first held-out item and masked out.
    width = int(valid.sum(axis=1).max())
    items = np.empty((batch, width), dtype=np.int64)
    row_valid = np.zeros((batch, width), dtype=bool)
    for row, user in enumerate(users):
        candidates = np.flatnonzero(valid[row])
        items[row, :len(candidates)] = candidates
        items[row, len(candidates):] = heldout_map[int(user)][0]
        row_valid[row, :len(candidates)] = True
    row_relevant = relevant[np.arange(batch)[:, None], items] & row_valid
    scores = check_scores(scorer.score(users.copy(), items.copy()), items.shape, "score")
    return scores, row_relevant, row_valid, items


def sampled_batch(scorer, users, heldout_map, forbidden_map, num_items, num_negatives, sample_seed, total=False,
                   pools=None):
    """Held-out items + ``num_negatives`` uniform negatives per user, padded to one width. With
    ``total`` (``candidates:N``): at most `MAX_CANDIDATE_POSITIVES` held-out items (a random subset
    per repeat) and negatives filling each user's list to ``num_negatives`` candidates. With
    ``pools``, negatives come from each user's pool only."""
    positives = [heldout_map[int(user)] for user in users]
    forbidden = [forbidden_map[int(user)] for user in users]
    if not total:
        negatives = draw_negatives(sample_seed, users, forbidden, num_items, num_negatives, pools)
        short = sum(len(n) < num_negatives for n in negatives)
    else:
        positives = [np.sort(np.random.default_rng([sample_seed, int(user), 2]).choice(
            pos, MAX_CANDIDATE_POSITIVES, replace=False)) if len(pos) > MAX_CANDIDATE_POSITIVES else pos
            for user, pos in zip(users, positives)]
        wanted = np.array([num_negatives - len(pos) for pos in positives])
        negatives = [None] * len(users)
        for count in np.unique(wanted):
            rows = np.flatnonzero(wanted == count)
            drawn = draw_negatives(sample_seed, users[rows], [forbidden[r] for r in rows], num_items, int(count),
                                    pools)
            for r, n in zip(rows, drawn):
                negatives[r] = n
        short = sum(len(n) < w for n, w in zip(negatives, wanted))
    width = max(len(p) + len(n) for p, n in zip(positives, negatives))
    batch = len(users)
    items = np.empty((batch, width), dtype=np.int64)
    relevant = np.zeros((batch, width), dtype=bool)
    valid = np.zeros((batch, width), dtype=bool)
    for row, (pos, neg) in enumerate(zip(positives, negatives)):
        count = len(pos) + len(neg)
        items[row, :count] = np.concatenate([pos, neg])
        items[row, count:] = pos[0]
        relevant[row, :len(pos)] = True
        valid[row, :count] = True
    scores = check_scores(scorer.score(users.copy(), items.copy()), items.shape, "score")
    return scores, relevant, valid, items, short


SAMPLING_CELLS = 1 << 21  # bound on the draws (and lookup-table cells) held at once


def draw_negatives(sample_seed, users, forbidden, num_items, count, pools):
    """`sample_negatives` from the whole catalogue, or from each user's pool: drawn in the pool's own
    index space (position j of the sorted pool), so a pool of every item draws exactly what no pool
    draws, and no per-user complement of the pool is ever built."""
    if pools is None:
        return sample_negatives(sample_seed, users, forbidden, num_items, count)
    out = [None] * len(users)
    groups = {}
    for row, user in enumerate(users):  # users sharing one pool are drawn for together
        groups.setdefault(id(pools.get(user)), []).append(row)
    for rows in groups.values():
        pool = pools.get(users[rows[0]])
        local = [np.searchsorted(pool, forbidden[r][sorted_isin(forbidden[r], pool)]) for r in rows]
        drawn = sample_negatives(sample_seed, users[np.asarray(rows)], local, len(pool), count)
        for r, positions in zip(rows, drawn):
            out[r] = pool[np.asarray(positions, dtype=np.int64)]
    return out


def sample_negatives(sample_seed, users, forbidden, num_items, count):
    """Per user, ``count`` distinct items drawn uniformly from ``[0, num_items)`` minus ``forbidden``.

    The catalogue is usually far larger than a user's history, so this is rejection
    sampling rather than materialising each user's allowed set (O(num_items) per user):
    a user's j-th draw is ``pair_keys(sample_seed, user, j) % num_items``, and the first
    ``count`` distinct draws outside ``forbidden`` are a uniform sample without
    replacement. Drawing by hash makes a user's negatives independent of which other
    users share the batch. Users whose allowed set is small (at most 2 * count, where
    rejection would waste draws) get an explicit draw from it; fewer than ``count``
    allowed items means all of them.
    """
    out = [None] * len(users)
    rejection = []
    for row, banned in enumerate(forbidden):
        pool = num_items - len(banned)
        if pool <= 2 * count:
            allowed = np.setdiff1d(np.arange(num_items, dtype=np.int64), banned, assume_unique=True)
            if pool > count:
                rng = np.random.default_rng([sample_seed, int(users[row])])
                allowed = rng.choice(allowed, size=count, replace=False)
            out[row] = allowed
        else:
            rejection.append(row)
    # 1.5x the expected number of draws for count accepted ones: enough for nearly every
    # user (repeats matter only when the allowed pool is close to count); the rare
    # shortfall takes the explicit fallback below.
    def draws_needed(row):
        return int(math.ceil(1.5 * count * num_items / (num_items - len(forbidden[row])))) + 32
    rejection.sort(key=draws_needed)
    while rejection:
        width = draws_needed(rejection[-1])
        take = max(1, min(SAMPLING_CELLS // width, SAMPLING_CELLS // num_items))
        chunk, rejection = rejection[-take:], rejection[:-take]
        chunk_users = users[np.asarray(chunk)].astype(np.int64)
        draws = (metrics_lib.pair_keys(sample_seed, chunk_users[:, None], np.arange(width)[None, :])
                 % np.uint64(num_items)).astype(np.int64)
        # first[i, item] = position of the first draw of item in row i, or -1 if forbidden:
        # a draw is taken iff it is that first position (distinct and allowed), with no
        # per-row sort or set search.
        first = np.full((len(chunk), num_items), width, dtype=np.int32)
        banned_rows = np.repeat(np.arange(len(chunk)), [len(forbidden[r]) for r in chunk])
        first[banned_rows, np.concatenate([forbidden[r] for r in chunk])] = -1
        row_index = np.broadcast_to(np.arange(len(chunk))[:, None], draws.shape)
        positions = np.broadcast_to(np.arange(width, dtype=np.int32)[None, :], draws.shape)
        np.minimum.at(first, (row_index, draws), positions)
        accepted = first[row_index, draws] == positions
        taken = accepted & (np.cumsum(accepted, axis=1) <= count)
        for i, row in enumerate(chunk):
            picked = draws[i, taken[i]]
            if len(picked) < count:
                allowed = np.setdiff1d(np.arange(num_items, dtype=np.int64), forbidden[row], assume_unique=True)
                picked = np.random.default_rng([sample_seed, int(users[row])]).choice(allowed, size=count,
                                                                                        replace=False)
            out[row] = picked
    return out


def check_scores(scores, shape, method):
    scores = np.asarray(scores)
    if scores.shape != tuple(shape):
        raise ValueError(f"scorer.{method} returned shape {scores.shape}, expected {tuple(shape)}")
    if not np.issubdtype(scores.dtype, np.number):
        raise ValueError(f"scorer.{method} returned non-numeric dtype {scores.dtype}")
    return scores


def as_user_items(data, num_items, what) -> Dict[int, np.ndarray]:
    if isinstance(data, Mapping):
        pairs = data.items()
    elif isinstance(data, (list, tuple)):
        pairs = enumerate(data)
    else:
        raise TypeError(f"{what} must be a list indexed by user or a dict user -> items, "
                        f"got {type(data).__name__}")
    out = {}
    for user, items in pairs:
        if isinstance(user, bool) or not isinstance(user, (int, np.integer)) or user < 0:
            raise ValueError(f"{what}: user {user!r} is not a non-negative int index")
        items = np.asarray(list(items) if not isinstance(items, np.ndarray) else items, dtype=np.int64).ravel()
        if np.any(items[1:] <= items[:-1]):  # already sorted and distinct is the common case
            items = np.unique(items)
        if len(items) and (items[0] < 0 or items[-1] >= num_items):
            bad = items[0] if items[0] < 0 else items[-1]
            raise ValueError(f"{what}: user {user} has item {bad}, outside [0, {num_items})")
        out[int(user)] = items
    return out


def count_common(sorted_a, sorted_b):
    if not len(sorted_a) or not len(sorted_b):
        return 0
    position = np.minimum(np.searchsorted(sorted_b, sorted_a), len(sorted_b) - 1)
    return int((sorted_b[position] == sorted_a).sum())
